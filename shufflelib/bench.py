"""Measuring speed honestly: the machine, the median and its spread, ratios taken side by side.

Built on ``torch.utils.benchmark`` (warm-up, blocked autorange, CUDA synchronisation). Chapter 1
introduces it. :func:`compare` times candidates in paired, interleaved rounds and samples until
every time ratio's confidence interval (:mod:`shufflelib.stats`) is narrow enough or a time cap
is reached; chapter 4 ("How this book measures") explains the procedure. :func:`roofline_probe`
measures the machine's two ceilings (chapter 3). The experiments that use these tools live one
layer up (:mod:`shufflelib.sweeps`, :mod:`shufflelib.guidelines`, ...).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from . import stats, validate
from .cost import count_params, madds
from .env import MachineInfo, machine_info, pick_device
from .files import shared
from .tables import Table, count

__all__ = [
    "Measurement",
    "measure",
    "using_threads",
    "compare",
    "compare_modules",
    "ratio_intervals",
    "MIN_ROUNDS",
    "TIME_UNITS",
    "sampling_arguments",
    "Roofline",
    "ROOFLINE_FILE",
    "roofline_probe",
    "inference_copy",
    "model_latency",
]


def _timer_module():
    # Importing torch.utils.benchmark imports torch.utils.cpp_extension, which logs a warning on
    # machines that have a CUDA toolkit but no GPU. We compile nothing, so hush that one logger
    # for the import only (no global filter is left behind).
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        import torch.utils.benchmark as timer_module
    finally:
        logger.setLevel(level)
    return timer_module


@dataclass(frozen=True)
class Measurement:
    """Seconds per call: the median over timed blocks, with its interquartile range."""

    label: str
    median: float
    iqr: float
    runs: int
    threads: int
    device: str
    fastest: float = float("nan")  # seconds per call in the fastest timed block

    def as_row(self, unit: str = "ms") -> dict[str, Any]:
        """One table row: ``median`` and ``IQR`` in ``unit`` ("s", "ms" or "us"); a
        :class:`~shufflelib.tables.Table` of such rows declares ``units={"median": unit,
        "IQR": unit}``."""
        scales = {"s": 1.0, "ms": 1e3, "us": 1e6}
        if unit not in scales:
            raise ValueError(f"unit must be one of {sorted(scales)}, got {unit!r}")
        scale = scales[unit]
        return {
            "name": self.label,
            "median": self.median * scale,
            "IQR": self.iqr * scale,
            "runs": self.runs,
        }


def _device_of(inputs: Sequence[Any]) -> str:
    for t in inputs:
        if isinstance(t, torch.Tensor):
            return str(t.device)
    return "cpu"


@contextlib.contextmanager
def using_threads(n: int | None) -> Iterator[None]:
    """torch's CPU threads set to ``n`` for the block (as they are when None), then restored.

    Timing sets them once around a whole measurement or comparison: switching the count for
    every call makes the thread pool resize inside the timed loop, and a compiled graph is
    specialised to the thread count it was compiled at.
    """
    if n is not None:
        validate.integer("threads", n, minimum=1)
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def measure(
    fn: Callable[..., Any],
    inputs: Sequence[Any] | torch.Tensor = (),
    *,
    label: str | None = None,
    min_run_time: float = 0.5,
    warmup: int = 2,
    threads: int | None = None,
    no_grad: bool = True,
) -> Measurement:
    """Time ``fn(*inputs)`` with ``torch.utils.benchmark``: median and IQR of blocked runs.

    ``fn`` may be a function or an ``nn.Module`` (timed as it is: call ``.eval()`` first for
    inference). ``threads`` defaults to torch's current thread count (``Timer`` alone would use 1).
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable (a function or nn.Module), got {validate.show(fn)}")
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    validate.number("min_run_time", min_run_time, above=0)
    validate.integer("warmup", warmup, minimum=0)
    threads = torch.get_num_threads() if threads is None else threads
    validate.integer("threads", threads, minimum=1)
    validate.flag("no_grad", no_grad)
    label = label or getattr(fn, "__name__", type(fn).__name__)
    inputs = tuple(inputs)

    def call():
        if no_grad:
            with torch.no_grad():
                return fn(*inputs)
        return fn(*inputs)

    with using_threads(threads):  # warm-up and timing at one thread count
        for _ in range(warmup):
            call()
        timer = _timer_module().Timer(
            stmt="call()", globals={"call": call}, num_threads=threads, label=label
        )
        m = timer.blocked_autorange(min_run_time=min_run_time)
    times = sorted(m.times)
    q1, q3 = (statistics.quantiles(times, n=4)[i] for i in (0, 2)) if len(times) > 1 else (0, 0)
    return Measurement(
        label=label,
        median=m.median,
        iqr=q3 - q1,
        runs=m.number_per_run * len(m.times),
        threads=threads,
        device=_device_of(inputs),
        fastest=times[0],
    )


MIN_ROUNDS = stats.min_rounds()  # the fewest rounds whose median has a finite 95% interval
MAX_ROUNDS = 40
TARGET = 0.03  # stop sampling once every ratio is known within about +-3%
MAX_SECONDS = 20.0  # the default time cap of one comparison
TIME_UNITS = {"median": "ms", "IQR": "ms"}  # the units of compare's time columns


def _clock() -> float:
    return time.perf_counter()


def _check_sampling(
    rounds: object,
    max_rounds: object,
    target: object,
    max_seconds: object,
    estimator: object,
    confidence: object,
) -> None:
    """Reject bad sampling arguments of :func:`compare` (and its callers) before any work."""
    validate.integer("rounds", rounds, minimum=1)
    validate.integer("max_rounds", max_rounds, minimum=rounds)  # type: ignore[arg-type]
    validate.number("target", target, above=0, below=1)
    validate.number("max_seconds", max_seconds, above=0)
    validate.choice("estimator", estimator, stats.ESTIMATORS)
    validate.number("confidence", confidence, above=0, below=1)


def _max_rounds(rounds: object, max_rounds: object) -> object:
    """``max_rounds``, or when None ``max(MAX_ROUNDS, rounds)``."""
    if max_rounds is not None:
        return max_rounds
    usable = isinstance(rounds, int) and not isinstance(rounds, bool)
    return max(MAX_ROUNDS, rounds) if usable else MAX_ROUNDS  # type: ignore[call-overload]


def _check_candidates(
    candidates: object, baseline: object, min_run_time: object, threads: object
) -> None:
    validate.mapping("candidates", candidates)
    for name, fn in candidates.items():  # type: ignore[attr-defined]
        if not callable(fn):
            raise TypeError(f"candidates[{name!r}] must be callable, got {validate.show(fn)}")
    validate.choice("baseline", baseline, list(candidates))  # type: ignore[arg-type]
    validate.number("min_run_time", min_run_time, above=0)
    if threads is not None:
        validate.integer("threads", threads, minimum=1)


def _one_round(
    candidates: Mapping[str, Callable[..., Any]],
    inputs: tuple[Any, ...],
    order: Sequence[str],
    min_run_time: float,
    threads: int | None,
) -> dict[str, float]:
    """Seconds per call of every candidate, timed one after the other in ``order``."""
    return {
        name: measure(
            candidates[name],
            inputs,
            label=name,
            min_run_time=min_run_time,
            warmup=1,
            threads=threads,
        ).median
        for name in order
    }


def ratio_intervals(
    times: Mapping[str, Sequence[float]],
    baseline: str,
    *,
    estimator: str = "median",
    confidence: float = 0.95,
) -> dict[str, stats.Interval]:
    """Every candidate's time over the baseline's, paired by round, with its interval; ch. 3."""
    out = {}
    for name, ts in times.items():
        if name == baseline:
            n = len(ts)
            out[name] = stats.Interval(1.0, 1.0, 1.0, n, confidence, estimator)
        else:
            out[name] = stats.ratio_interval(
                ts, times[baseline], estimator=estimator, confidence=confidence
            )
    return out


def _stop(
    intervals: Mapping[str, stats.Interval],
    n: int,
    rounds: int,
    max_rounds: int,
    target: float,
    spent: float,
    max_seconds: float,
) -> str | None:
    """Why sampling stops after ``n`` rounds (None: go on). The next round must fit the cap."""
    if n < rounds:
        return None
    if all(iv.halfwidth <= target for iv in intervals.values()):
        return f"every interval within +-{target:.0%}"
    if n >= max_rounds:
        return f"max_rounds={max_rounds} reached"
    if spent + spent / n > max_seconds:
        return f"time cap of {max_seconds:g} s reached"
    return None


def _compare_rows(
    times: Mapping[str, Sequence[float]], intervals: Mapping[str, stats.Interval]
) -> list[dict[str, Any]]:
    rows = []
    for name, ts in times.items():
        q = statistics.quantiles(ts, n=4) if len(ts) > 1 else [ts[0], ts[0], ts[0]]
        iv = intervals[name]
        rows.append(
            {
                "name": name,
                "median": statistics.median(ts) * 1e3,
                "IQR": (q[2] - q[0]) * 1e3,
                "ratio": iv.estimate,
                "ratio low": iv.low,
                "ratio high": iv.high,
            }
        )
    return rows


def compare(
    candidates: Mapping[str, Callable[..., Any]],
    inputs: Sequence[Any] | torch.Tensor,
    *,
    baseline: str,
    rounds: int = MIN_ROUNDS,
    min_run_time: float = 0.2,
    title: str = "",
    device: torch.device | str | None = None,
    threads: int | None = None,
    max_rounds: int | None = None,
    target: float = TARGET,
    max_seconds: float = MAX_SECONDS,
    estimator: str = "median",
    confidence: float = 0.95,
) -> Table:
    """Time several functions on the same inputs in interleaved rounds, until the ratios are known.

    Each round times every candidate once (in reverse order every other round); its ratio to
    ``baseline`` (time / baseline time) is taken within the round, so slow drifts of a shared
    machine cancel. After ``rounds`` rounds (at least), sampling stops as soon as every ratio's
    ``confidence`` interval (:func:`shufflelib.stats.ratio_interval`, ``estimator``) has a
    relative half-width <= ``target``, or at ``max_rounds``, or when another round would pass
    ``max_seconds`` of wall-clock time (the first ``rounds`` always run; ``max_rounds``
    defaults to ``max(40, rounds)``). Columns: ``median`` time and ``IQR`` over rounds (both
    in ms), ``ratio`` (the estimate) with ``ratio low`` and ``ratio high``. The table also
    carries ``times`` (name -> per-round seconds, the paired samples) and ``intervals`` (name ->
    Interval vs the baseline).
    Candidates that need different inputs can be closures taking none (``inputs=()``); then
    pass ``device`` so the machine line names it. ``threads`` sets torch's CPU threads for the
    timing (default: as they are); one thread is steadier on a shared machine. Chapters 1-4.
    """
    _check_candidates(candidates, baseline, min_run_time, threads)
    max_rounds = _max_rounds(rounds, max_rounds)
    _check_sampling(rounds, max_rounds, target, max_seconds, estimator, confidence)
    inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    times: dict[str, list[float]] = {name: [] for name in candidates}
    start, why = _clock(), None
    with using_threads(threads):  # set once for every round, not switched for every call
        while why is None:
            n = len(times[baseline])
            order = list(candidates) if n % 2 == 0 else list(candidates)[::-1]
            for name, t in _one_round(candidates, inputs, order, min_run_time, threads).items():
                times[name].append(t)
            intervals = ratio_intervals(times, baseline, estimator=estimator, confidence=confidence)
            why = _stop(intervals, n + 1, rounds, max_rounds, target, _clock() - start, max_seconds)
    table = Table(_compare_rows(times, intervals), title=title, units=TIME_UNITS)
    table.times, table.intervals = times, intervals
    device = device if device is not None else _device_of(inputs)
    info = machine_info(device)
    if threads is not None:  # the machine line states the threads the timing used
        info = MachineInfo(**{**info.__dict__, "threads": threads})
    table.note = (
        f"{info} | {count(n + 1, 'interleaved round')} ({why}); ratio: {estimator} of the "
        f"per-round ratios, {confidence:.0%} interval"
    )
    return table


_SAMPLING = ("max_rounds", "target", "max_seconds", "estimator", "confidence")


def sampling_arguments(rounds: int, sampling: Mapping[str, Any]) -> dict[str, Any]:
    """``rounds`` and the other sampling arguments of :func:`compare`, checked before any work."""
    unknown = [k for k in sampling if k not in _SAMPLING]
    if unknown:
        raise TypeError(f"unexpected arguments {unknown}; the sampling arguments are {_SAMPLING}")
    full = {
        "max_rounds": None,
        "target": TARGET,
        "max_seconds": MAX_SECONDS,
        "estimator": "median",
        "confidence": 0.95,
        **sampling,
    }
    full["max_rounds"] = _max_rounds(rounds, full["max_rounds"])
    _check_sampling(rounds, *(full[k] for k in _SAMPLING))
    return {"rounds": rounds, **full}


@dataclass(frozen=True)
class Roofline:
    """A machine's two ceilings: peak multiply-add rate and memory bandwidth; chapter 3.

    An operator with arithmetic intensity ``I`` (multiply-adds per byte moved) can run at most at
    ``min(peak, I * bandwidth)`` multiply-adds per second (Williams et al., 2009).
    """

    peak_madds: float  # multiply-adds per second, from a large float32 matrix product
    bandwidth: float  # bytes per second (read + write), from a copy far larger than the caches
    device: str
    matmul_size: int
    copy_bytes: int
    cache_bandwidth: float = float("nan")  # the same for a copy small enough to stay in cache
    cache_copy_bytes: int = 0

    @property
    def ridge(self) -> float:
        """Intensity (MAdd/byte) where the two ceilings meet: below it, memory bound."""
        return self.peak_madds / self.bandwidth

    def attainable(self, intensity: float) -> float:
        """The roofline: the best MAdd/s an operator of this intensity can reach here."""
        return min(self.peak_madds, intensity * self.bandwidth)

    def __str__(self) -> str:
        return (
            f"peak {self.peak_madds / 1e9:.1f} GMAdd/s ({self.matmul_size}^2 float32 matmul), "
            f"bandwidth {self.bandwidth / 1e9:.1f} GB/s ({self.copy_bytes / 2**20:.0f} MiB copy)\n"
            f"ridge {self.ridge:.2f} MAdd/byte; in-cache copy "
            f"{self.cache_bandwidth / 1e9:.1f} GB/s "
            f"({self.cache_copy_bytes / 2**20:.0f} MiB copy); device {self.device}"
        )


ROOFLINE_FILE = "SHUFFLEBOOK_ROOFLINE"  # env: a JSON file where one build keeps its roofline


def roofline_probe(
    device: torch.device | str | None = None,
    *,
    matmul_size: int | None = None,
    copy_mib: int | None = None,
    cache_mib: int = 2,
    min_run_time: float = 0.5,
) -> Roofline:
    """Measure this machine's peak multiply-add rate and copy bandwidth, in a few seconds; ch. 3.

    Peak: square float32 matrix products (``n^3`` multiply-adds) of side ``n`` and ``n / 2``,
    the best case for arithmetic. Bandwidth: ``dst.copy_(src)`` on buffers far larger than the
    caches, counting bytes read plus bytes written; a copy of ``cache_mib`` (small enough to stay
    in the caches) gives the bandwidth that small tensors see. Each ceiling is taken from the
    *fastest* timed block, not the median: other work on the machine can slow a run but never
    speed it past the hardware, so the fastest run is the closest to the ceiling.

    When the environment variable ``SHUFFLEBOOK_ROOFLINE`` names a file (the Makefile sets it
    for a build), the first chapter to probe writes its result there and every later call on
    the same machine, device, thread count and sizes reads it, so all chapters of one build
    draw the same roofline.
    """
    device = pick_device(device)
    big = device.type != "cpu"
    n = matmul_size if matmul_size is not None else (8192 if big else 2048)
    mib = copy_mib if copy_mib is not None else (1024 if big else 256)
    validate.integer("matmul_size", n, minimum=64)
    validate.integer("copy_mib", mib, minimum=1)
    validate.integer("cache_mib", cache_mib, minimum=1)
    validate.number("min_run_time", min_run_time, above=0)
    key = f"{machine_info(device)} | matmul {n} | copy {mib} MiB | cache {cache_mib} MiB"
    measured = shared(
        os.environ.get(ROOFLINE_FILE),
        key,
        lambda: asdict(_probe(device, n, mib, cache_mib, min_run_time)),
    )
    return Roofline(**measured)


def _probe(device: torch.device, n: int, mib: int, cache_mib: int, run: float) -> Roofline:
    rates = []
    for side in (n // 2, n):
        a = torch.randn(side, side, device=device)
        b = torch.randn(side, side, device=device)
        rates.append(side**3 / measure(torch.mm, (a, b), label="matmul", min_run_time=run).fastest)
        del a, b
    src = torch.ones(mib * 2**20 // 4, device=device)
    dst = torch.empty_like(src)
    cp = measure(dst.copy_, (src,), label="copy", min_run_time=run)
    del src, dst
    small = torch.ones(cache_mib * 2**20 // 4, device=device)
    small_dst = torch.empty_like(small)
    cache = measure(small_dst.copy_, (small,), label="copy", min_run_time=run)
    return Roofline(
        cache_bandwidth=2 * small.numel() * 4 / cache.fastest,
        cache_copy_bytes=small.numel() * 4,
        peak_madds=max(rates),
        bandwidth=2 * mib * 2**20 / cp.fastest,
        device=str(device),
        matmul_size=n,
        copy_bytes=mib * 2**20,
    )


def inference_copy(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` ready to time on ``device`` in eval mode, leaving the caller's model as it was.

    A model already in eval mode on ``device`` is returned as it is (no copy, nothing changed);
    otherwise a deep copy is moved and switched to eval, so timing never moves the caller's
    weights or flips its train/eval mode.
    """
    validate.module("model", model)
    on_device = all(p.device == device for p in model.parameters())
    if on_device and not any(m.training for m in model.modules()):
        return model
    return copy.deepcopy(model).to(device).eval()


def compare_modules(
    modules: Mapping[str, torch.nn.Module],
    x: torch.Tensor,
    *,
    min_run_time: float = 0.2,
    threads: int | None = None,
    **sampling: Any,
) -> Table:
    """:func:`compare` of ``module(x)`` for each module, against the first one, on ``x``'s device.

    ``sampling`` takes ``rounds`` and the other sampling arguments of :func:`compare`.
    """
    validate.mapping("modules", modules)
    validate.tensor("x", x)
    return compare(
        {name: (lambda m=m: m(x)) for name, m in modules.items()},
        (),
        baseline=next(iter(modules)),
        min_run_time=min_run_time,
        device=x.device,
        threads=threads,
        **sampling,
    )


def _check_models(models: object) -> Mapping[str, torch.nn.Module]:
    validate.mapping("models", models)
    for name, model in models.items():  # type: ignore[attr-defined]
        validate.module(f"models[{name!r}]", model)
    return models  # type: ignore[return-value]


def model_latency(
    models: Mapping[str, torch.nn.Module],
    input_size: Sequence[int] = (1, 3, 224, 224),
    *,
    device: torch.device | str | None = None,
    rounds: int = MIN_ROUNDS,
    min_run_time: float = 0.3,
    threads: int | None = None,
    **sampling: Any,
) -> Table:
    """Whole networks side by side: parameters, MAdds and measured latency; chapters 5-8.

    Every model runs in eval mode on the same input shape (on a copy where needed: the caller's
    models keep their device and mode, see :func:`inference_copy`), timed in interleaved rounds
    with :func:`compare` (``sampling``: ``max_rounds``, ``target``, ``max_seconds``,
    ``estimator``); ``time / first`` is each model's time over the first model's, with its
    interval. The table carries ``times`` (model -> per-round seconds, for any other paired
    ratio) and ``intervals``. ``threads=1`` times on one CPU thread, as the papers' phone
    measurements did.
    """
    _check_models(models)
    input_size = validate.shape("input_size", input_size, length=4)
    sampling = sampling_arguments(rounds, sampling)
    device = pick_device(device)
    x = torch.randn(*input_size, device=device)
    nets = {name: inference_copy(m, device) for name, m in models.items()}
    counts = {name: (count_params(m), madds(m, input_size)) for name, m in nets.items()}
    first = next(iter(nets))
    timed = compare_modules(nets, x, min_run_time=min_run_time, threads=threads, **sampling)
    rows = []
    for row in timed:
        params, ops = counts[row["name"]]
        rows.append(
            {
                "model": row["name"],
                "params": params / 1e6,
                "MAdds": ops / 1e6,
                "median": row["median"],
                "IQR": row["IQR"],
                "images/s": input_size[0] / (row["median"] * 1e-3),
                f"time / {first}": row["ratio"],
                f"time / {first} low": row["ratio low"],
                f"time / {first} high": row["ratio high"],
            }
        )
    title = f"latency at input {tuple(input_size)}, eval mode, {device}"
    if threads is not None:
        title += f", {count(threads, 'thread')}"
    units = {"params": "M", "MAdds": "M", **TIME_UNITS}
    table = Table(rows, title=title, note=timed.note, units=units)
    table.times, table.intervals = timed.times, timed.intervals
    return table
