"""Measuring speed honestly: the machine, the median and its spread, ratios taken side by side.

Built on ``torch.utils.benchmark`` (warm-up, blocked autorange, CUDA synchronisation). Chapter 1
introduces it; chapter 2 uses it for the channel-shuffle benchmark, as does
``benchmarks/bench_shuffle.py``. :func:`compare` times candidates in paired, interleaved rounds
and samples until every time ratio's confidence interval (:mod:`shufflelib.stats`) is narrow
enough or a time cap is reached; chapter 4 ("How this book measures") explains the procedure.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch

from . import stats
from .cost import count_params, mac, madds
from .ops import channel_shuffle, channel_split, shuffle_permutation, shuffle_split
from .tables import Table, count

__all__ = [
    "MachineInfo",
    "Measurement",
    "machine_info",
    "pick_device",
    "measure",
    "compare",
    "ratio_intervals",
    "MIN_ROUNDS",
    "sampling_arguments",
    "shuffle_benchmark",
    "shuffle_split_benchmark",
    "group_conv_sweep",
    "Roofline",
    "roofline_probe",
    "machine_part",
    "operator_roofline",
    "roofline_reading",
    "model_latency",
    "mbconv_vs_fused",
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


def pick_device(prefer: str | None = None) -> torch.device:
    """CUDA if present, then Apple's MPS, then the CPU (or ``prefer`` when given); chapter 1."""
    if prefer is not None:
        if prefer not in ("cpu", "cuda", "mps"):
            raise ValueError(f"prefer must be 'cpu', 'cuda' or 'mps', got {prefer!r}")
        mps = getattr(torch.backends, "mps", None)
        available = {
            "cpu": True,
            "cuda": torch.cuda.is_available(),
            "mps": mps is not None and mps.is_available(),
        }
        if not available[prefer]:
            raise ValueError(
                f"device {prefer!r} was asked for but is not available on this machine"
            )
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@cache
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if platform.system() == "Darwin":
        import subprocess

        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=5,
            )
            if out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown CPU"


@dataclass(frozen=True)
class MachineInfo:
    """What a measurement was taken on. ``str()`` gives the one line printed under every table."""

    cpu: str
    cores: int
    threads: int
    device: str
    torch: str
    python: str

    def __str__(self) -> str:
        return (
            f"{self.cpu} ({count(self.cores, 'core')}, {count(self.threads, 'thread')}) "
            f"| device {self.device}"
            f" | torch {self.torch} | Python {self.python}"
        )


def machine_info(device: torch.device | str | None = None) -> MachineInfo:
    """CPU model, core and thread counts, device, torch and Python versions; chapter 1."""
    device = torch.device(device) if device is not None else pick_device()
    name = device.type
    if device.type == "cuda":
        name = f"cuda ({torch.cuda.get_device_name(device)})"
    return MachineInfo(
        cpu=_cpu_model(),
        cores=os.cpu_count() or 1,
        threads=torch.get_num_threads(),
        device=name,
        torch=torch.__version__,
        python=platform.python_version(),
    )


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
        scales = {"s": 1.0, "ms": 1e3, "us": 1e6}
        if unit not in scales:
            raise ValueError(f"unit must be one of {sorted(scales)}, got {unit!r}")
        scale = scales[unit]
        return {
            "name": self.label,
            f"median ({unit})": self.median * scale,
            f"IQR ({unit})": self.iqr * scale,
            "runs": self.runs,
        }


def _not_int(v: object) -> bool:
    return isinstance(v, bool) or not isinstance(v, int)


def _not_number(v: object) -> bool:
    return isinstance(v, bool) or not isinstance(v, (int, float))


def _device_of(inputs: Sequence[Any]) -> str:
    for t in inputs:
        if isinstance(t, torch.Tensor):
            return str(t.device)
    return "cpu"


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
        raise TypeError(f"fn must be callable (a function or nn.Module), got {type(fn).__name__}")
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    if _not_number(min_run_time) or min_run_time <= 0:
        raise ValueError(f"min_run_time must be a positive number of seconds, got {min_run_time!r}")
    if _not_int(warmup) or warmup < 0:
        raise ValueError(f"warmup must be an int >= 0, got {warmup!r}")
    threads = torch.get_num_threads() if threads is None else threads
    if _not_int(threads) or threads < 1:
        raise ValueError(f"threads must be an int >= 1, got {threads!r}")
    label = label or getattr(fn, "__name__", type(fn).__name__)
    inputs = tuple(inputs)

    def call():
        if no_grad:
            with torch.no_grad():
                return fn(*inputs)
        return fn(*inputs)

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
    if _not_int(rounds) or rounds < 1:  # type: ignore[operator]
        raise ValueError(f"rounds must be an int >= 1, got {rounds!r}")
    if _not_int(max_rounds) or max_rounds < rounds:  # type: ignore[operator]
        raise ValueError(f"max_rounds must be an int >= rounds ({rounds}), got {max_rounds!r}")
    if _not_number(target):
        raise TypeError(f"target must be a number (relative half-width), got {target!r}")
    if not 0 < target < 1:  # type: ignore[operator]
        raise ValueError(f"target must be in (0, 1), e.g. 0.03 for +-3%, got {target!r}")
    if _not_number(max_seconds):
        raise TypeError(f"max_seconds must be a number of seconds, got {max_seconds!r}")
    if not max_seconds > 0:  # type: ignore[operator]
        raise ValueError(f"max_seconds must be > 0, got {max_seconds!r}")
    if estimator not in stats.ESTIMATORS:
        raise ValueError(f"estimator must be one of {stats.ESTIMATORS}, got {estimator!r}")
    if _not_number(confidence) or not 0 < confidence < 1:  # type: ignore[operator]
        raise ValueError(f"confidence must be a number in (0, 1), got {confidence!r}")


def _max_rounds(rounds: object, max_rounds: object) -> object:
    """``max_rounds``, or when None ``max(MAX_ROUNDS, rounds)``."""
    if max_rounds is not None:
        return max_rounds
    return max(MAX_ROUNDS, rounds) if not _not_int(rounds) else MAX_ROUNDS  # type: ignore


def _check_candidates(
    candidates: object, baseline: object, min_run_time: object, threads: object
) -> None:
    if not isinstance(candidates, Mapping) or not candidates:
        raise TypeError(
            f"candidates must be a non-empty mapping name -> callable, got {candidates!r}"
        )
    for name, fn in candidates.items():
        if not callable(fn):
            raise TypeError(f"candidates[{name!r}] must be callable, got {type(fn).__name__}")
    if baseline not in candidates:
        raise ValueError(f"baseline {baseline!r} is not one of the candidates {list(candidates)}")
    if _not_number(min_run_time) or not min_run_time > 0:  # type: ignore[operator]
        raise ValueError(f"min_run_time must be a positive number of seconds, got {min_run_time!r}")
    if threads is not None and (_not_int(threads) or threads < 1):  # type: ignore[operator]
        raise ValueError(f"threads must be an int >= 1 or None, got {threads!r}")


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
                "median (ms)": statistics.median(ts) * 1e3,
                "IQR (ms)": (q[2] - q[0]) * 1e3,
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
    defaults to ``max(40, rounds)``). Columns: median time, IQR over rounds, ``ratio`` (the
    estimate) with ``ratio low`` and ``ratio high``. The table also carries ``times`` (name ->
    per-round seconds, the paired samples) and ``intervals`` (name -> Interval vs the baseline).
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
    while why is None:
        n = len(times[baseline])
        order = list(candidates) if n % 2 == 0 else list(candidates)[::-1]
        for name, t in _one_round(candidates, inputs, order, min_run_time, threads).items():
            times[name].append(t)
        intervals = ratio_intervals(times, baseline, estimator=estimator, confidence=confidence)
        why = _stop(intervals, n + 1, rounds, max_rounds, target, _clock() - start, max_seconds)
    table = Table(_compare_rows(times, intervals), title=title)
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


def _textbook_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    # The version found in most tutorials (and torchvision): view, transpose, contiguous, view.
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


def _shuffle_candidates(groups: int) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    module = torch.nn.ChannelShuffle(groups)
    cache_perm: dict[int, torch.Tensor] = {}

    def index_gather(x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if c not in cache_perm:
            cache_perm[c] = shuffle_permutation(c, groups).to(x.device)
        return x.index_select(1, cache_perm[c])

    return {
        "x.clone() (copy floor)": lambda x: x.clone(),
        "shufflelib channel_shuffle": lambda x: channel_shuffle(x, groups),
        "textbook view-transpose-contiguous": lambda x: _textbook_shuffle(x, groups),
        "torch.nn.ChannelShuffle": module,
        "index gather (index_select)": index_gather,
    }


def _make_input(shape: Sequence[int], channels_last: bool, device: torch.device | str | None):
    if len(shape) != 4:
        raise ValueError(f"shape must be (N, C, H, W), got {tuple(shape)}")
    device = pick_device() if device is None else torch.device(device)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0)).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def shuffle_benchmark(
    shape: Sequence[int] = (32, 232, 28, 28),
    groups: int = 2,
    *,
    channels_last: bool = False,
    device: torch.device | str | None = None,
    rounds: int = MIN_ROUNDS,
    min_run_time: float = 0.2,
    threads: int | None = None,
    **sampling: Any,
) -> Table:
    """Channel-shuffle implementations against a plain copy, side by side; chapter 2.

    A shuffle reads and writes every element once, exactly as ``x.clone()`` does, so the clone
    is the floor. All candidates are checked to give identical results before timing.
    ``threads`` and ``sampling`` (``max_rounds``, ``target``, ``max_seconds``, ``estimator``) go
    to :func:`compare`.
    """
    sampling = sampling_arguments(rounds, sampling)
    x = _make_input(shape, channels_last, device)
    candidates = _shuffle_candidates(groups)
    expected = channel_shuffle(x, groups)
    for name, fn in candidates.items():
        if "clone" not in name and not torch.equal(fn(x), expected):
            raise RuntimeError(f"{name} disagrees with channel_shuffle")
    layout = "channels_last" if channels_last else "contiguous (NCHW)"
    title = f"channel shuffle, g={groups}, input {tuple(shape)} float32, {layout}, {x.device}"
    table = compare(
        candidates,
        x,
        baseline="x.clone() (copy floor)",
        min_run_time=min_run_time,
        title=title,
        threads=threads,
        **sampling,
    )
    mib = 2 * x.numel() * x.element_size() / 2**20
    for row in table:
        # Every candidate reads and writes the tensor once: bytes moved / time.
        row["GB/s"] = mib * 2**20 / (row["median (ms)"] * 1e-3) / 1e9
    table.note += f" | bytes moved per call (read + write): {mib:.1f} MiB"
    return table


def shuffle_split_benchmark(
    shape: Sequence[int] = (32, 232, 28, 28),
    *,
    device: torch.device | str | None = None,
    rounds: int = MIN_ROUNDS,
    min_run_time: float = 0.2,
    threads: int | None = None,
    **sampling: Any,
) -> Table:
    """``shuffle_split`` against a shuffle followed by a split into two contiguous halves; ch. 2.

    ``threads`` and ``sampling`` (``max_rounds``, ``target``, ``max_seconds``, ``estimator``) go
    to :func:`compare`.
    """
    sampling = sampling_arguments(rounds, sampling)
    x = _make_input(shape, False, device)

    def split_after_shuffle(t: torch.Tensor):
        a, b = channel_split(channel_shuffle(t, 2))
        return a.contiguous(), b.contiguous()

    candidates = {
        "x.clone() (copy floor)": lambda t: t.clone(),
        "shuffle, split, 2x contiguous": split_after_shuffle,
        "shufflelib shuffle_split": shuffle_split,
    }
    got, want = shuffle_split(x), split_after_shuffle(x)
    if not (torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])):
        raise RuntimeError("shuffle_split disagrees with channel_split(channel_shuffle(x, 2))")
    title = f"shuffle then split in halves, input {tuple(shape)} float32, {x.device}"
    return compare(
        candidates,
        x,
        baseline="x.clone() (copy floor)",
        min_run_time=min_run_time,
        title=title,
        threads=threads,
        **sampling,
    )


def _compare_modules(
    modules: Mapping[str, torch.nn.Module],
    x: torch.Tensor,
    device: torch.device,
    min_run_time: float,
    threads: int | None,
    sampling: Mapping[str, Any],
) -> Table:
    """:func:`compare` of ``module(x)`` for each module, against the first one."""
    return compare(
        {name: (lambda m=m: m(x)) for name, m in modules.items()},
        (),
        baseline=next(iter(modules)),
        min_run_time=min_run_time,
        device=device,
        threads=threads,
        **sampling,
    )


def group_conv_sweep(
    channels: int = 256,
    size: int = 28,
    *,
    kernel_size: int = 1,
    batch: int = 8,
    groups: Sequence[int] | None = None,
    device: torch.device | str | None = None,
    min_run_time: float = 0.05,
    threads: int | None = None,
    rounds: int = MIN_ROUNDS,
    **sampling: Any,
) -> Table:
    """One ``channels -> channels`` convolution per group count: parameters, MAdds and time; ch. 1.

    Parameters and multiply-adds are counted by :mod:`shufflelib.cost` (not by formula). The
    forward passes on a ``(batch, channels, size, size)`` input are timed side by side in
    interleaved rounds by :func:`compare` (``sampling``: ``max_rounds``, ``target``,
    ``max_seconds``, ``estimator``), so ``time / g=1`` is a paired ratio with its 95% interval
    (``low``, ``high``), and a slow moment of the machine falls on every group count alike.
    """
    if groups is None:
        groups = [g for g in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if g <= channels]
    for g in groups:
        if _not_int(g) or g < 1 or channels % g:
            raise ValueError(
                f"every group count must be an int >= 1 dividing {channels}, got {g!r}"
            )
    if _not_int(kernel_size) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd int >= 1, got {kernel_size!r}")
    sampling = sampling_arguments(rounds, {"max_seconds": 10.0, **sampling})
    device = pick_device() if device is None else torch.device(device)
    shape = (batch, channels, size, size)
    x = torch.randn(*shape, device=device)
    convs = {
        f"g={g}": torch.nn.Conv2d(
            channels, channels, kernel_size, padding=kernel_size // 2, groups=g, bias=False
        ).to(device)
        for g in groups
    }
    first = next(iter(convs))
    timed = _compare_modules(convs, x, device, min_run_time, threads, sampling)
    rows = []
    for g, row in zip(groups, timed):
        conv, ops = convs[row["name"]], madds(convs[row["name"]], shape)
        rows.append(
            {
                "g": g,
                "weight shape": tuple(conv.weight.shape),
                "params": count_params(conv),
                "MAdds": ops,
                "median (ms)": row["median (ms)"],
                "IQR (ms)": row["IQR (ms)"],
                f"time / {first}": row["ratio"],
                "low": row["ratio low"],
                "high": row["ratio high"],
                "GMAdd/s": ops / (row["median (ms)"] * 1e-3) / 1e9,
            }
        )
    title = (
        f"{kernel_size}x{kernel_size} convolution {channels}->{channels} channels, "
        f"input ({batch}, {channels}, {size}, {size}), {device}"
    )
    table = Table(rows, title=title, note=timed.note)
    table.times, table.intervals = timed.times, timed.intervals
    return table


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


def machine_part(note: str) -> str:
    """The machine line at the start of a timing table's note, without the sampling details
    :func:`compare` appends ("| 6 interleaved rounds ..."); for titles and summaries."""
    parts = str(note).split(" | ")
    cut = next((i for i, p in enumerate(parts) if "interleaved round" in p), len(parts))
    return " | ".join(parts[:cut])


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
    device = pick_device() if device is None else torch.device(device)
    big = device.type != "cpu"
    n = matmul_size if matmul_size is not None else (8192 if big else 2048)
    mib = copy_mib if copy_mib is not None else (1024 if big else 256)
    if _not_int(n) or n < 64:
        raise ValueError(f"matmul_size must be an int >= 64, got {n!r}")
    if _not_int(mib) or mib < 1:
        raise ValueError(f"copy_mib must be an int >= 1, got {mib!r}")
    if _not_int(cache_mib) or cache_mib < 1:
        raise ValueError(f"cache_mib must be an int >= 1, got {cache_mib!r}")
    if _not_number(min_run_time) or min_run_time <= 0:
        raise ValueError(f"min_run_time must be a positive number of seconds, got {min_run_time!r}")
    key = f"{machine_info(device)} | matmul {n} | copy {mib} MiB | cache {cache_mib} MiB"
    path = os.environ.get(ROOFLINE_FILE)
    if not path:
        return _probe(device, n, mib, cache_mib, min_run_time)
    import fcntl  # a build runs on Linux or macOS; the lock makes chapters run side by side wait

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        kept = json.loads(Path(path).read_text()) if Path(path).is_file() else {}
        if key not in kept:
            kept[key] = asdict(_probe(device, n, mib, cache_mib, min_run_time))
            tmp = Path(f"{path}.tmp")
            tmp.write_text(json.dumps(kept, indent=1))
            os.replace(tmp, path)  # atomic: a reader sees the old file or the new one
        return Roofline(**kept[key])


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


class _Elementwise(torch.nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "ReLU":
            return torch.relu(x)
        if self.kind == "add":
            return x + x
        if self.kind == "concat":
            return torch.cat((x, x), dim=1)
        return channel_shuffle(x, 2)


def operator_roofline(
    device: torch.device | str | None = None,
    *,
    size: int = 28,
    batch: int = 8,
    min_run_time: float = 0.2,
) -> Table:
    """The chapter 3 operators, each counted (MAdds, MAC) and timed, ready for the roofline.

    1x1 convolutions at three widths, a 3x3 depthwise convolution, 1x1 group convolutions with
    g = 1, 2, 4, 8 at 256 channels, and the operators with no arithmetic (kind "no arithmetic"):
    ReLU, add, concat and channel shuffle (128 channels), all on a ``(batch, C, size, size)`` input.
    """
    device = pick_device() if device is None else torch.device(device)
    if _not_int(size) or size < 1 or _not_int(batch) or batch < 1:
        raise ValueError(f"size and batch must be ints >= 1, got size={size!r}, batch={batch!r}")

    def conv(c_in: int, c_out: int, k: int = 1, g: int = 1) -> torch.nn.Module:
        return torch.nn.Conv2d(c_in, c_out, k, padding=k // 2, groups=g, bias=False)

    ops_: list[tuple[str, str, torch.nn.Module, int]] = [
        *[(f"1x1 {c}->{c}", "1x1 conv", conv(c, c), c) for c in (32, 128, 512)],
        ("3x3 depthwise 128", "depthwise", conv(128, 128, 3, 128), 128),
        *[(f"1x1 256, g={g}", "group conv", conv(256, 256, 1, g), 256) for g in (1, 2, 4, 8)],
        *[(kind, "no arithmetic", _Elementwise(kind), 128) for kind in ("ReLU", "add", "concat")],
        ("channel shuffle", "no arithmetic", _Elementwise("shuffle"), 128),
    ]
    rows = []
    for name, family, module, channels in ops_:
        module = module.to(device).eval()
        shape = (batch, channels, size, size)
        x = torch.randn(*shape, device=device)
        work = madds(module, shape)
        moved = mac(module, shape).bytes
        m = measure(module, x, label=name, min_run_time=min_run_time)
        rows.append(
            {
                "operator": name,
                "kind": family,
                "MAdds": work,
                "MAC (bytes)": moved,
                "MAdd/byte": work / moved,
                "median (ms)": m.median * 1e3,
                "IQR (ms)": m.iqr * 1e3,
                "GMAdd/s": work / m.median / 1e9,
                "GB/s": moved / m.median / 1e9,
            }
        )
    title = f"operators on input (batch {batch}, C, {size}, {size}), float32, {device}"
    return Table(rows, title=title, note=str(machine_info(device)))


def roofline_reading(roof: Roofline, operators: Table) -> Table:
    """Each operator of :func:`operator_roofline` read against ``roof``; chapter 3.

    ``bound here`` says which ceiling limits it on this machine (memory below the ridge, compute
    above; data movement is always memory). ``of DRAM roof`` is its measured rate over the most
    the roofline allows it (GMAdd/s over ``min(P, I * bandwidth)``, or GB/s over the bandwidth
    for operators with no arithmetic), and ``of cache roof`` the same with the in-cache copy
    bandwidth. ``reading`` explains any operator above the DRAM roof: the roof is a ceiling for
    data streamed from DRAM, and tensors that stay in cache move faster, up to the cache roof;
    an operator above that too means the probe's ceiling is below what this operator reaches.
    """
    if not isinstance(roof, Roofline):
        raise TypeError(f"roof must be a bench.Roofline, got {type(roof).__name__}")
    if not isinstance(operators, Table) or "GMAdd/s" not in operators.columns:
        raise ValueError("operators must be the Table that bench.operator_roofline returns")
    # data in cache moves at least as fast as from DRAM, whatever a noisy probe measured
    cache_bw = roof.bandwidth
    if roof.cache_copy_bytes:
        cache_bw = max(roof.cache_bandwidth, roof.bandwidth)
    rows = []
    for r in operators:
        moving = r["MAdds"] == 0
        if moving:
            dram, cache = r["GB/s"] * 1e9 / roof.bandwidth, r["GB/s"] * 1e9 / cache_bw
        else:
            done, i = r["GMAdd/s"] * 1e9, r["MAdd/byte"]
            dram = done / roof.attainable(i)
            cache = done / min(roof.peak_madds, i * cache_bw)
        if dram <= 1:
            reading = "within the roof"
        elif cache <= 1:
            mb = r["MAC (bytes)"] / 2**20
            reading = f"above the DRAM roof: its {mb:.1f} MiB stay in cache"
        else:
            reading = "above both roofs: this operator beats the probe's ceiling"
        rows.append(
            {
                "operator": r["operator"],
                "MAdd/byte": r["MAdd/byte"],
                "bound here": "memory" if moving or r["MAdd/byte"] < roof.ridge else "compute",
                "of DRAM roof": dram,
                "of cache roof": cache,
                "reading": reading,
            }
        )
    title = f"the operators against this machine's roofline (ridge {roof.ridge:.2f} MAdd/byte)"
    return Table(rows, title=title, note=operators.note)


def _check_models(models: object, input_size: Sequence[int]) -> None:
    if not isinstance(models, Mapping) or not models:
        raise ValueError(f"models must name at least one model, got {models!r}")
    for name, model in models.items():
        if not isinstance(model, torch.nn.Module):
            raise TypeError(
                f"models[{name!r}] must be a torch.nn.Module, got {type(model).__name__}"
            )
    if len(input_size) != 4:
        raise ValueError(f"input_size must be (N, C, H, W), got {tuple(input_size)}")


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

    Every model runs in eval mode on the same input shape, timed in interleaved rounds with
    :func:`compare` (``sampling``: ``max_rounds``, ``target``, ``max_seconds``, ``estimator``);
    ``time / first`` is each model's time over the first model's, with its interval. The table
    carries ``times`` (model -> per-round seconds, for any other paired ratio) and
    ``intervals``. ``threads=1`` times on one CPU thread, as the papers' phone measurements did.
    """
    _check_models(models, input_size)
    sampling = sampling_arguments(rounds, sampling)
    device = pick_device() if device is None else torch.device(device)
    x = torch.randn(*input_size, device=device)
    nets = {name: m.to(device).eval() for name, m in models.items()}
    counts = {name: (count_params(m), madds(m, input_size)) for name, m in nets.items()}
    first = next(iter(nets))
    timed = _compare_modules(nets, x, device, min_run_time, threads, sampling)
    rows = []
    for row in timed:
        params, ops = counts[row["name"]]
        rows.append(
            {
                "model": row["name"],
                "params (M)": params / 1e6,
                "MAdds (M)": ops / 1e6,
                "median (ms)": row["median (ms)"],
                "IQR (ms)": row["IQR (ms)"],
                "images/s": input_size[0] / (row["median (ms)"] * 1e-3),
                f"time / {first}": row["ratio"],
                f"time / {first} low": row["ratio low"],
                f"time / {first} high": row["ratio high"],
            }
        )
    title = f"latency at input {tuple(input_size)}, eval mode, {device}"
    if threads is not None:
        title += f", {count(threads, 'thread')}"
    table = Table(rows, title=title, note=timed.note)
    table.times, table.intervals = timed.times, timed.intervals
    return table


def _block_pair(
    blocks: dict[str, torch.nn.Module],
    shape: tuple[int, int, int, int],
    device: torch.device,
    min_run_time: float,
    threads: int | None,
    sampling: dict[str, Any],
) -> tuple[dict[str, Any], Table]:
    """One width of :func:`mbconv_vs_fused`: both blocks counted and timed side by side."""
    x = torch.randn(*shape, device=device)
    blocks = {k: b.to(device).eval() for k, b in blocks.items()}
    timed = compare(
        {k: (lambda b=b: b(x)) for k, b in blocks.items()},
        (),
        baseline="MBConv",
        min_run_time=min_run_time,
        device=device,
        threads=threads,
        **sampling,
    )
    by_name = {r["name"]: r for r in timed}
    row: dict[str, Any] = {"width": shape[1], "map": f"{shape[2]}x{shape[3]}"}
    for k, b in blocks.items():
        row[f"{k} MAdds (M)"] = madds(b, shape) / 1e6
        row[f"{k} MAC (MB)"] = mac(b, shape).bytes / 1e6
        row[f"{k} (ms)"] = by_name[k]["median (ms)"]
        row[f"{k} IQR (ms)"] = by_name[k]["IQR (ms)"]
    fused = by_name["Fused-MBConv"]
    row["fused / MBConv time"] = fused["ratio"]
    row["fused / MBConv low"] = fused["ratio low"]
    row["fused / MBConv high"] = fused["ratio high"]
    return row, timed


def mbconv_vs_fused(
    widths: Sequence[int] = (24, 48, 96, 192),
    *,
    size: int | None = None,
    expand_ratio: int = 4,
    batch: int = 8,
    device: torch.device | str | None = None,
    rounds: int = MIN_ROUNDS,
    min_run_time: float = 0.2,
    threads: int | None = None,
    **sampling: Any,
) -> Table:
    """MBConv against Fused-MBConv at several widths: MAdds, MAC and measured time; chapter 8.

    Both blocks map ``c -> c`` at stride 1 with the same expansion; the feature map shrinks as the
    width grows (``size`` defaults to ``56 * 24 / c``, as in a real network's stages), so each
    width stands for one stage. ``fused / MBConv time`` is the paired time ratio (with its
    interval) of :func:`compare` (``sampling`` goes there). The table carries ``times`` and
    ``intervals`` keyed by width.
    """
    from .models.efficientnet_v2 import FusedMBConv, MBConv

    if not widths or any(_not_int(c) or c < 8 or c % 4 for c in widths):
        raise ValueError(f"widths must be ints >= 8 divisible by 4, got {widths!r}")
    sampling = sampling_arguments(rounds, sampling)
    device = pick_device() if device is None else torch.device(device)
    rows, times, intervals, notes = [], {}, {}, ""
    for c in widths:
        hw = size if size is not None else max(7, round(56 * 24 / c))
        blocks = {
            "MBConv": MBConv(c, c, expand_ratio=expand_ratio, kernel_size=3, stride=1),
            "Fused-MBConv": FusedMBConv(c, c, expand_ratio=expand_ratio, kernel_size=3, stride=1),
        }
        row, timed = _block_pair(
            blocks, (batch, c, hw, hw), device, min_run_time, threads, sampling
        )
        rows.append(row)
        notes, times[c], intervals[c] = timed.note, timed.times, timed.intervals["Fused-MBConv"]
    title = f"MBConv vs Fused-MBConv, expansion {expand_ratio}, batch {batch}, {device}"
    if threads is not None:
        title += f", {count(threads, 'thread')}"
    table = Table(rows, title=title, note=notes)
    table.times, table.intervals = times, intervals
    return table
