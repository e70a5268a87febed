"""``optimize``: the steps of chapter 11 that make a network faster on this machine, chosen by
timing them side by side, keeping one only when it is faster beyond noise."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .. import stats, validate
from ..bench import MIN_ROUNDS, compare, sampling_arguments
from ..tables import Table
from .compiled import compile
from .fast_shufflenet import as_fast_shufflenet
from .quantize import quantize_int8
from .transforms import fold_bn, to_channels_last

__all__ = ["Optimized", "optimize", "choose", "relative_error", "inference_calls"]

Model = Callable[[torch.Tensor], torch.Tensor]
TOLERANCE = 1e-4  # the largest relative output difference a float step may make


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got - want| / max(1, max |want|): absolute for small outputs, relative for large."""
    validate.tensor("got", got)
    validate.tensor("want", want)
    if got.shape != want.shape:
        raise ValueError(f"got must have want's shape {tuple(want.shape)}, got {tuple(got.shape)}")
    return ((got - want).abs().max() / want.abs().max().clamp(min=1.0)).item()


def inference_calls(fns: Mapping[str, Model], x: torch.Tensor) -> dict[str, Callable[[], Any]]:
    """For :func:`shufflelib.bench.compare`: each of ``fns`` called on ``x`` in inference mode.

    Every candidate pays for the same one ``torch.inference_mode`` block per call, so their
    paired time ratios compare the models alone.
    """
    validate.mapping("fns", fns)
    for name, fn in fns.items():
        validate.function(f"fns[{name!r}]", fn)
    validate.tensor("x", x)

    def call(fn: Model) -> Callable[[], Any]:
        def run() -> Any:
            with torch.inference_mode():
                return fn(x)

        return run

    return {name: call(fn) for name, fn in fns.items()}


@dataclass
class Optimized:
    """What :func:`optimize` returns: call it like the model; chapter 11.

    ``steps`` names the steps kept, ``timings`` the candidates timed on the example input,
    ``max_error`` the largest output difference to the original model on that input (relative
    to the largest output when that exceeds 1), ``agreement`` the int8 top-1 agreement (None for
    float), ``reason`` why this candidate was kept, with the deciding time-ratio intervals. A
    call is the kept candidate's call and nothing more: call it in ``torch.inference_mode()``
    as the timings did.
    """

    fn: Model
    steps: list[str]
    timings: Table
    max_error: float
    compile_seconds: float = 0.0
    agreement: float | None = None
    reason: str = ""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def _check_optimize(model, x, int8, calibration_data, eval_data, min_run_time) -> None:
    validate.module("model", model, eval_mode=True)
    validate.tensor("example_input", x, dims=4, floating=True)
    validate.flag("int8", int8)
    validate.number("min_run_time", min_run_time, above=0)
    if int8 and calibration_data is None:
        raise ValueError("int8=True needs calibration_data (images the model will see)")
    if not int8 and (calibration_data is not None or eval_data is not None):
        raise ValueError("calibration_data and eval_data are used only with int8=True")


def _candidates(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[list[str], Model]]:
    """The float candidates of :func:`optimize`, simplest first: name -> (steps, model)."""
    fast = as_fast_shufflenet(model)
    folded = fold_bn(fast if fast is not None else model)
    prefix = ["fast ShuffleNet V2 units"] if fast is not None else []
    layout = to_channels_last(folded)
    return {
        "eager, NCHW": (prefix + ["BN folding"], folded),
        "eager, channels-last": (prefix + ["BN folding", "channels-last"], layout),
        "compiled": (prefix + ["BN folding", "channels-last", "torch.compile"], compile(layout, x)),
    }


def _float_errors(model: nn.Module, candidates: Mapping[str, Model], x: torch.Tensor):
    """Each float candidate's :func:`relative_error` to ``model`` on ``x`` (RuntimeError above
    :data:`TOLERANCE`)."""
    with torch.inference_mode():
        want = model(x)
        errors = {k: relative_error(f(x), want) for k, f in candidates.items()}
    worst = max(errors.values())
    if worst > TOLERANCE:
        raise RuntimeError(
            f"optimize: a float candidate differs from the model by {worst:.2e} "
            f"(> {TOLERANCE:g}): {errors}"
        )
    return errors


def optimize(
    model: nn.Module,
    example_input: torch.Tensor,
    int8: bool = False,
    calibration_data: torch.Tensor | Iterable[Any] | None = None,
    *,
    eval_data: torch.Tensor | Iterable[Any] | None = None,
    rounds: int = MIN_ROUNDS,
    min_run_time: float = 0.1,
    **sampling: Any,
) -> Optimized:
    """The fastest inference of ``model`` on this machine that keeps its outputs; chapter 11.

    Folds BatchNorm (:func:`~shufflelib.deploy.fold_bn`; a ShuffleNet V2, ours or torchvision's,
    is rebuilt with the fast units of :func:`~shufflelib.deploy.fast_shufflenet_v2`), times the
    folded model in NCHW and in channels-last memory, compiles it
    (:func:`~shufflelib.deploy.compile`) and with ``int8`` also quantises
    (:func:`~shufflelib.deploy.quantize_int8`, on ``calibration_data``, agreement on
    ``eval_data``). All candidates are timed on ``example_input`` here, in interleaved rounds
    (:func:`shufflelib.bench.compare`; ``sampling`` goes there), and a more complex candidate
    replaces a simpler one only when it is faster beyond noise: its paired time ratio to the
    simpler one has its whole interval below 1 (:func:`choose`). ``reason`` says why. The
    float result must match ``model`` within 1e-4 (relative to the largest output when that
    exceeds 1), or a RuntimeError says by how much. ``model`` is not changed.
    """
    x = example_input
    _check_optimize(model, x, int8, calibration_data, eval_data, min_run_time)
    sampling = sampling_arguments(rounds, sampling)
    options = _candidates(model, x)
    errors = _float_errors(model, {k: f for k, (_, f) in options.items()}, x)
    quantized = None
    if int8:
        layout = options["eager, channels-last"][1]
        quantized = quantize_int8(layout, calibration_data, example_input=x, eval_data=eval_data)
        kept = options["eager, channels-last"][0] + ["int8 (PT2E)", "torch.compile"]
        options["int8"] = (kept, quantized)
    table = compare(
        inference_calls({k: f for k, (_, f) in options.items()}, x),
        (),
        baseline="eager, NCHW",
        min_run_time=min_run_time,
        title=f"optimize: candidates on input {tuple(x.shape)}",
        **sampling,
    )
    for row in table:
        row["max error"] = errors.get(row["name"], "")
    best, reason = choose(table.times, estimator=sampling["estimator"])
    kept, fn = options[best]
    return Optimized(
        fn,
        kept,
        table,
        max_error=errors.get(best, float("nan")),
        compile_seconds=getattr(fn, "compile_seconds", 0.0),
        agreement=quantized.agreement if quantized is not None else None,
        reason=reason,
    )


def choose(times: Mapping[str, Sequence[float]], *, estimator: str = "median") -> tuple[str, str]:
    """The candidate to keep, from paired per-round times listed simplest first; chapter 11.

    Starting from the simplest, each more complex candidate replaces the one kept so far only
    when it is faster beyond noise: the interval of its paired time ratio to the kept one
    (:func:`shufflelib.stats.ratio_interval`) lies wholly below 1. Returns the name kept and the
    reason, with every interval that decided.
    """
    validate.mapping("times", times)
    validate.choice("estimator", estimator, stats.ESTIMATORS)
    names = list(times)
    kept, words = names[0], []
    for name in names[1:]:
        iv = stats.ratio_interval(times[name], times[kept], estimator=estimator)
        faster = iv.side(1.0) < 0
        verdict = "faster, kept" if faster else "not faster beyond noise"
        words.append(f"{name} / {kept} time {iv}: {verdict}")
        kept = name if faster else kept
    return kept, f"kept {kept}; " + "; ".join(words) if words else f"kept {kept}, the only one"
