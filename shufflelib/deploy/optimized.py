"""``optimize``: the fastest inference of a network on this machine at the precision asked for.

The candidates are chapter 11's PyTorch steps and the runtimes outside PyTorch that are
installed (ONNX Runtime, OpenVINO: :mod:`~shufflelib.deploy.runtimes`), timed side by side; a
more complex candidate is kept only when it is faster beyond noise (:func:`choose`).
"""

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
from .quantize import quantize_int8, relative_error, top1_agreement
from .runtimes import (
    PRECISIONS,
    RUNTIMES,
    RuntimeModel,
    chosen_runtimes,
    onnx_models,
    runtime_model,
    runtime_models,
)
from .transforms import folded, for_export, reparameterisable, to_channels_last

__all__ = [
    "Optimized",
    "optimize",
    "choose",
    "challenger",
    "relative_error",
    "inference_calls",
    "TOLERANCE",
]

Model = Callable[[torch.Tensor], torch.Tensor]
TOLERANCE = 1e-4  # the largest relative output difference a float32 path may make


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

    ``backend`` (``"PyTorch"``, ``"ONNX Runtime"`` or ``"OpenVINO"``) and ``precision`` say
    what runs, ``steps`` how it was made, ``timings`` the candidates timed on the example input,
    ``max_error`` the largest output difference to the original model on that input (relative
    to the largest output when that exceeds 1), ``agreement`` the top-1 agreement of a reduced
    precision with float32 (None for float32), ``reason`` why this candidate was kept, with the
    deciding time-ratio intervals, and which candidates were left out; ``runoff`` the second
    timing of the kept candidate against its :func:`challenger`, when there was one. A call is
    the kept candidate's call and nothing more, whichever backend won.
    """

    fn: Model
    steps: list[str]
    timings: Table
    max_error: float
    compile_seconds: float = 0.0
    agreement: float | None = None
    reason: str = ""
    backend: str = "PyTorch"
    precision: str = "float32"
    runoff: Table | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


@dataclass
class _Candidate:
    steps: list[str]
    fn: Model
    backend: str = "PyTorch"
    precision: str = "float32"
    error: float = float("nan")
    agreement: float | None = None


def _check_optimize(model, x, calibration_data, eval_data, precisions, min_agreement, runtimes):
    validate.module("model", model, eval_mode=True)
    validate.tensor("example_input", x, dims=4, floating=True)
    wanted = validate.choices("precisions", precisions, PRECISIONS)
    validate.number("min_agreement", min_agreement, minimum=0, maximum=1)
    reduced = [p for p in wanted if p != "float32"]
    if reduced and calibration_data is None:
        raise ValueError(
            f"precisions {reduced} need calibration_data (images the model will see: int8 "
            "calibrates on them, and every reduced precision's agreement with float32 is "
            "measured on eval_data, by default on these)"
        )
    if not reduced and (calibration_data is not None or eval_data is not None):
        raise ValueError(
            "calibration_data and eval_data are used only when precisions allows bfloat16 or "
            f"int8, got precisions {list(wanted)}"
        )
    chosen = chosen_runtimes(runtimes)
    validate.fits("example_input", x, model)  # last: one forward pass, before any compile
    return wanted, chosen


def _torch_candidates(model: nn.Module, x: torch.Tensor) -> dict[str, _Candidate]:
    """The PyTorch float candidates, simplest first."""
    fast = as_fast_shufflenet(model)
    deployed = folded(fast if fast is not None else model)  # BN, and a RepVGG's branches
    made = ["fast ShuffleNet V2 units"] if fast is not None else []
    made.append("re-parameterised" if reparameterisable(model) else "BN folding")
    layout = to_channels_last(deployed)
    compiled = compile(layout, x)
    return {
        "eager, NCHW": _Candidate(made, deployed),
        "eager, channels-last": _Candidate([*made, "channels-last"], layout),
        "compiled": _Candidate([*made, "channels-last", "torch.compile"], compiled),
    }


def _torch_int8(layout: _Candidate, calibration_data, eval_data, x) -> _Candidate | None:
    """PyTorch's int8 (PT2E, compiled) of the channels-last network; None without torchao."""
    try:
        q = quantize_int8(layout.fn, calibration_data, example_input=x, eval_data=eval_data)
    except ImportError:
        return None
    steps = [*layout.steps, "int8 (PT2E)", "torch.compile"]
    return _Candidate(steps, q, precision="int8", agreement=q.agreement)


def _runtime_candidates(model, x, calibration_data, wanted, runtimes) -> dict[str, _Candidate]:
    """Every installed runtime path at the precisions ``wanted``, simplest first."""
    int8 = calibration_data if "int8" in wanted else None
    if not runtimes:
        return {}
    exported = onnx_models(for_export(model), x, int8)
    # compiled for the example's shape, as torch.compile is (OpenVINO plans every buffer once)
    runners = runtime_models(exported, runtimes=runtimes, precisions=wanted, input_size=x.shape)
    return {
        name: _Candidate(["ONNX export", name], r, RUNTIMES[r.runtime], r.precision)
        for name, r in runners.items()
    }


def _any_batch(fn: Model) -> Model:
    """``fn``, or for a runtime compiled for one input shape its twin that takes any batch (the
    same file, runtime, precision and threads), to measure an agreement on other batches."""
    if not isinstance(fn, RuntimeModel) or getattr(fn, "input_size", None) is None:
        return fn
    bf16 = fn.precision == "bfloat16"
    return runtime_model(fn.onnx_model, fn.runtime, bfloat16=bf16, threads=fn.threads)


def _measure(model, candidates: dict[str, _Candidate], x, data, min_agreement) -> list[str]:
    """Each candidate's error on ``x``, and a reduced precision's agreement on ``data``; a
    runtime beyond :data:`TOLERANCE` or below ``min_agreement`` is left out (said why)."""
    with torch.inference_mode():
        want = model(x)
        for c in candidates.values():
            c.error = relative_error(c.fn(x), want)
    dropped = []
    for name, c in list(candidates.items()):
        if c.precision == "float32":
            if c.backend != "PyTorch" and c.error > TOLERANCE:
                dropped.append(f"{name} left out: error {c.error:.1e} > {TOLERANCE:g}")
                del candidates[name]
            continue
        if c.agreement is None:
            c.agreement = top1_agreement(model, _any_batch(c.fn), data)
        if c.agreement < min_agreement:
            dropped.append(f"{name} left out: agreement {c.agreement:.4f} < {min_agreement:g}")
            del candidates[name]
    return dropped


def _check_torch_errors(candidates: Mapping[str, _Candidate]) -> None:
    """PyTorch's float steps must keep the outputs: a RuntimeError says by how much otherwise."""
    errors = {k: c.error for k, c in candidates.items() if c.backend == "PyTorch"}
    errors = {k: e for k, e in errors.items() if candidates[k].precision == "float32"}
    if max(errors.values()) > TOLERANCE:
        raise RuntimeError(
            f"optimize: a float candidate differs from the model by {max(errors.values()):.2e} "
            f"(> {TOLERANCE:g}): {errors}"
        )


def _timed(candidates: Mapping[str, _Candidate], x, min_run_time, sampling, what="candidates"):
    table = compare(
        inference_calls({k: c.fn for k, c in candidates.items()}, x),
        (),
        baseline=next(iter(candidates)),
        min_run_time=min_run_time,
        title=f"optimize: {what} on input {tuple(x.shape)}",
        **sampling,
    )
    for row in table:
        c = candidates[row["name"]]
        row["backend"], row["precision"], row["max error"] = c.backend, c.precision, c.error
        row["agreement"] = "" if c.agreement is None else c.agreement
    return table


def optimize(
    model: nn.Module,
    example_input: torch.Tensor,
    calibration_data: torch.Tensor | Iterable[Any] | None = None,
    *,
    precisions: Sequence[str] = ("float32",),
    min_agreement: float = 0.99,
    runtimes: Sequence[str] | None = None,
    eval_data: torch.Tensor | Iterable[Any] | None = None,
    rounds: int = MIN_ROUNDS,
    min_run_time: float = 0.1,
    **sampling: Any,
) -> Optimized:
    """The fastest inference of ``model`` on this machine at the precisions allowed; chapter 11.

    Candidates, simplest first: the model as deployed (:func:`~shufflelib.deploy.folded`: BatchNorm,
    and a RepVGG's or MobileOne's branches, folded;
    a ShuffleNet V2, ours or torchvision's, rebuilt with the fast units) in NCHW and in
    channels-last memory, compiled (:func:`~shufflelib.deploy.compile`); then, for each runtime
    of ``runtimes`` (None: every one installed, ``()``: none), the exported model
    (:func:`~shufflelib.deploy.export_onnx`) in ONNX Runtime and OpenVINO (compiled for the
    example's shape, as ``torch.compile`` is), in float32, and in
    the other ``precisions`` allowed: ``"bfloat16"`` (OpenVINO, on a CPU with the
    instructions) and ``"int8"`` (PyTorch's PT2E when torchao is installed, and
    :func:`~shufflelib.deploy.quantize_onnx` in both runtimes, calibrated on
    ``calibration_data``). A float32 candidate must match ``model`` within :data:`TOLERANCE`
    (relative to the largest output when that exceeds 1; a runtime that does not is left out,
    a PyTorch step that does not raises a RuntimeError), a reduced precision must agree with it
    on at least ``min_agreement`` of ``eval_data``'s images (top-1; default: the calibration
    images). All are timed on ``example_input`` in interleaved rounds
    (:func:`shufflelib.bench.compare`; ``sampling`` goes there), and one replaces a simpler one
    only when faster beyond noise (:func:`choose`). ``model`` is not changed.
    """
    x = example_input
    wanted, chosen = _check_optimize(
        model, x, calibration_data, eval_data, precisions, min_agreement, runtimes
    )
    validate.number("min_run_time", min_run_time, above=0)
    sampling = sampling_arguments(rounds, sampling)
    candidates = _torch_candidates(model, x)
    candidates.update(_runtime_candidates(model, x, calibration_data, wanted, chosen))
    notes = []
    if "int8" in wanted:
        int8 = _torch_int8(candidates["eager, channels-last"], calibration_data, eval_data, x)
        if int8 is None:
            notes.append("PyTorch int8 left out: torchao is not installed")
        else:
            candidates["compiled int8"] = int8
    data = eval_data if eval_data is not None else calibration_data
    notes += _measure(model, candidates, x, data, min_agreement)
    _check_torch_errors(candidates)
    table = _timed(_ordered(candidates), x, min_run_time, sampling)
    best, reason = choose(table.times, estimator=sampling["estimator"])
    rival, runoff = challenger(table.times, best, estimator=sampling["estimator"]), None
    if rival is not None:  # the two timed alone, for as long again: a narrower interval
        pair = {k: candidates[k] for k in (best, rival)}
        runoff = _timed(pair, x, min_run_time, sampling, what="run-off")
        best, words = choose(runoff.times, estimator=sampling["estimator"])
        reason += f"; run-off against {rival}, the two alone: {words}"
    c = candidates[best]
    return Optimized(
        c.fn,
        c.steps,
        table,
        max_error=c.error,
        compile_seconds=getattr(c.fn, "compile_seconds", 0.0),
        agreement=c.agreement,
        reason="; ".join([reason, *notes]),
        backend=c.backend,
        precision=c.precision,
        runoff=runoff,
    )


def _ordered(candidates: Mapping[str, _Candidate]) -> dict[str, _Candidate]:
    """Float32 first, then bfloat16, then int8; within each, as listed (simplest first)."""
    rank = {p: k for k, p in enumerate(PRECISIONS)}
    return dict(sorted(candidates.items(), key=lambda kv: rank[kv[1].precision]))


def choose(times: Mapping[str, Sequence[float]], *, estimator: str = "median") -> tuple[str, str]:
    """The candidate to keep, from paired per-round times listed simplest first; chapter 11.

    Starting from the simplest, each more complex candidate replaces the one kept so far only
    when it is faster beyond noise: the interval of its paired time ratio to the kept one
    (:func:`shufflelib.stats.ratio_interval`) lies wholly below 1. Returns the name kept and the
    reason, with every interval that decided. :func:`optimize` then times the kept one again
    against its :func:`challenger`, if it has one.
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


def challenger(
    times: Mapping[str, Sequence[float]], kept: str, *, estimator: str = "median"
) -> str | None:
    """The candidate that may be faster than the one :func:`choose` kept; chapter 11.

    :func:`choose` keeps the simpler of two candidates whose paired time ratio is too close to
    call, so what it keeps may be slower than another by as much as the noise. The challenger
    is the candidate with the lowest paired time ratio to ``kept`` (the estimate of
    :func:`shufflelib.stats.ratio_interval`), when that estimate is below 1; None when no
    candidate's is. :func:`optimize` times the two again, alone, and keeps the challenger only
    when it is faster beyond noise.
    """
    validate.mapping("times", times)
    validate.choice("estimator", estimator, stats.ESTIMATORS)
    if kept not in times:
        raise ValueError(f"kept must be one of the candidates {list(times)}, got {kept!r}")
    ratios = {
        name: stats.ratio_interval(t, times[kept], estimator=estimator).estimate
        for name, t in times.items()
        if name != kept
    }
    rival = min(ratios, key=ratios.get, default=None)
    return rival if rival is not None and ratios[rival] < 1 else None
