"""Chapter 12's experiments: the FLOPS a convolution achieves, and FasterNet's claim.

FasterNet (Chen et al., CVPR 2023, arXiv:2303.03667) writes latency as FLOPs over the FLOPS a
layer achieves, and argues that depthwise convolution is slow for its FLOPs because it is
memory-bound (chapter 3's roofline), while its partial convolution (PConv: a dense 3x3
convolution over a quarter of the channels, the rest passed through) achieves more. Here:

- :func:`equal_flops_convs` builds a regular, a depthwise and a partial 3x3 convolution with
  exactly the same multiply-adds (or, as the paper's Table 1, the same width);
- :func:`achieved_flops` counts (``torch.utils.flop_counter`` via :mod:`shufflelib.cost`) and
  times them side by side (paired, interleaved rounds via :func:`shufflelib.bench.compare`) at
  several feature-map sizes, and :func:`operator_verdicts` decides which achieves more FLOPS;
- :func:`network_flops` and :func:`network_verdicts` do the same for whole networks (FasterNet-T0
  against MobileNetV2 and ShuffleNet V2);
- :func:`published_sizes` checks FasterNet-T0/T1/T2's parameters and multiply-adds against the
  paper's Table 3.

Tables use bare column names with their units declared once (``Table(units=...)``).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from . import models, reference, stats, validate
from .bench import MIN_ROUNDS, compare, compare_modules, inference_copy, sampling_arguments
from .cost import count_params, mac, madds
from .deploy.transforms import fold_bn as fold_batchnorm
from .deploy.transforms import to_channels_last
from .env import pick_device
from .models.fasternet import FASTERNET_CONFIGS, PartialConv
from .tables import Table

__all__ = [
    "CONVOLUTIONS",
    "MATCHES",
    "PAPER_MAPS",
    "ZOO",
    "PAPER_NAMES",
    "equal_flops_convs",
    "achieved_flops",
    "operator_verdicts",
    "network_flops",
    "network_verdicts",
    "published_sizes",
]

CONVOLUTIONS = ("regular", "depthwise", "partial")
MATCHES = ("flops", "width")
# The paper's Table 1: (channels, side) of the four feature maps, one per FasterNet stage.
PAPER_MAPS = ((96, 56), (192, 28), (384, 14), (768, 7))
# FasterNet-T0 and the networks its paper compares it with at similar accuracy (Table 3), and
# ShuffleNet V2 1x, the book's own network of about half the FLOPs.
ZOO = ("fasternet_t0", "mobilenet_v2", "shufflenet_v2_x1_5", "shufflenet_v2_x1_0")
# Zoo name -> the row of the paper's Table 3 (reference.table("fasternet.table3")).
PAPER_NAMES = {
    "fasternet_t0": "FasterNet-T0",
    "fasternet_t1": "FasterNet-T1",
    "fasternet_t2": "FasterNet-T2",
    "mobilenet_v2": "MobileNetV2",
    "shufflenet_v2_x1_5": "ShuffleNetV2 x1.5",
    "shufflenet_v2_x2_0": "ShuffleNetV2 x2",
}
_CONV_UNITS = {
    "MAdds": "M",
    "MAC": "MB",
    "intensity": "MAdd/byte",
    "median": "ms",
    "IQR": "ms",
    "achieved": "GMAdd/s",
}
_RATIO = ("ratio", "low", "high")


def _conv3x3(channels: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, 3, padding=1, groups=groups, bias=False)


def equal_flops_convs(
    channels: int, size: int, *, batch: int = 1, n_div: int = 4, match: str = "flops"
) -> dict[str, tuple[nn.Module, tuple[int, int, int, int]]]:
    """A regular, a depthwise and a partial 3x3 convolution, each with its input shape; ch. 12.

    ``partial`` is FasterNet's PConv on a ``channels``-wide ``size`` x ``size`` map: a dense 3x3
    convolution over ``c_p = channels / n_div`` channels, the others passed through, so its
    multiply-adds are ``h w 9 c_p^2``. With ``match="flops"`` the other two do exactly as many:
    ``regular`` is a dense 3x3 convolution ``c_p -> c_p`` (PConv without its untouched channels)
    and ``depthwise`` a depthwise 3x3 convolution over ``c_p^2`` channels (``h w 9 c_p^2`` too).
    With ``match="width"`` both take all ``channels``, as in the paper's Table 1: then the
    regular one does ``n_div^2`` times PConv's multiply-adds. Modules are in eval mode.
    """
    validate.integer("channels", channels, minimum=1)
    validate.integer("size", size, minimum=1)
    validate.integer("batch", batch, minimum=1)
    validate.integer("n_div", n_div, 1, channels)
    validate.choice("match", match, MATCHES)
    if channels % n_div:
        raise ValueError(f"channels must be divisible by n_div={n_div}, got {channels}")
    cp = channels // n_div
    wide = {"flops": (cp, cp * cp), "width": (channels, channels)}[match]
    convs = {
        "regular": (_conv3x3(wide[0]), wide[0]),
        "depthwise": (_conv3x3(wide[1], groups=wide[1]), wide[1]),
        "partial": (PartialConv(channels, n_div), channels),
    }
    return {name: (m.eval(), (batch, c, size, size)) for name, (m, c) in convs.items()}


def _check_maps(maps: object) -> tuple[tuple[int, int], ...]:
    what = "a non-empty sequence of (channels, size) pairs"
    if isinstance(maps, str | bytes) or not isinstance(maps, Sequence):
        raise TypeError(f"maps must be {what}, got {validate.show(maps)}")
    if not maps:
        raise ValueError(f"maps must be {what}, got {maps!r}")
    return tuple(validate.shape(f"maps[{k}]", m, length=2) for k, m in enumerate(maps))  # type: ignore[misc]


def _spread(seconds: Sequence[float]) -> tuple[float, float]:
    """Median and interquartile range of per-round times, in milliseconds."""
    q = statistics.quantiles(seconds, n=4) if len(seconds) > 1 else [seconds[0]] * 3
    return statistics.median(seconds) * 1e3, (q[2] - q[0]) * 1e3


def _flops_ratio(
    times: Mapping[str, Sequence[float]],
    work: Mapping[str, float],
    a: str,
    b: str,
    how: Mapping[str, Any],
) -> stats.Interval:
    """Achieved FLOPS of ``a`` over ``b``'s, paired by round: ``(work_a / work_b) (t_b / t_a)``.

    At equal work this is the inverse time ratio; its interval is the time ratio's, scaled.
    ``how`` holds the ``estimator`` and ``confidence`` the timings were sampled for.
    """
    iv = stats.ratio_interval(times[b], times[a], **how)
    k = work[a] / work[b]
    return stats.Interval(
        k * iv.estimate, k * iv.low, k * iv.high, iv.n, iv.confidence, iv.estimator
    )


def _how(sampling: Mapping[str, Any]) -> dict[str, Any]:
    """The estimator and confidence of :func:`shufflelib.bench.compare`'s sampling arguments."""
    return {"estimator": sampling["estimator"], "confidence": sampling["confidence"]}


def _time_convs(
    convs: Mapping[str, tuple[nn.Module, tuple[int, ...]]],
    device: torch.device,
    threads: int | None,
    min_run_time: float,
    sampling: dict[str, Any],
    channels_last: bool = False,
) -> Table:
    """The convolutions of one map timed side by side on their own inputs (bench.compare)."""
    gen = torch.Generator().manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    calls = {}
    for name, (module, shape) in convs.items():
        x = torch.randn(*shape, generator=gen).to(device, memory_format=layout)
        module = module.to(device, memory_format=layout)
        calls[name] = lambda m=module, x=x: m(x)
    return compare(
        calls,
        (),
        baseline="depthwise",
        min_run_time=min_run_time,
        device=device,
        threads=threads,
        **sampling,
    )


def _conv_rows(
    label: str,
    convs: Mapping[str, tuple[nn.Module, tuple[int, ...]]],
    times: Mapping[str, Any],
    how: Mapping[str, Any],
) -> list[dict[str, Any]]:
    work = {name: madds(m, shape) for name, (m, shape) in convs.items()}
    rows = []
    for name, (module, shape) in convs.items():
        moved = mac(module, shape).bytes
        median, iqr = _spread(times[name])
        iv = _flops_ratio(times, work, name, "depthwise", how)
        rows.append(
            {
                "map": label,
                "convolution": name,
                "channels": shape[1],
                "MAdds": work[name] / 1e6,
                "MAC": moved / 1e6,
                "intensity": work[name] / moved,
                "median": median,
                "IQR": iqr,
                "achieved": work[name] / (median * 1e-3) / 1e9,
                "FLOPS / depthwise": iv.estimate,
                "low": iv.low,
                "high": iv.high,
            }
        )
    return rows


def _timing(
    channels_last: object,
    min_run_time: object,
    threads: object,
    rounds: int,
    sampling: Mapping[str, Any],
) -> dict[str, Any]:
    """The timing arguments shared by the experiments, checked before any work; the sampling
    arguments of :func:`shufflelib.bench.compare` with ``rounds``."""
    validate.flag("channels_last", channels_last)
    validate.number("min_run_time", min_run_time, above=0)
    if threads is not None:
        validate.integer("threads", threads, minimum=1)
    return sampling_arguments(rounds, sampling)


def achieved_flops(
    maps: Sequence[tuple[int, int]] = PAPER_MAPS,
    *,
    batch: int = 1,
    n_div: int = 4,
    match: str = "flops",
    channels_last: bool = False,
    device: torch.device | str | None = None,
    threads: int | None = None,
    rounds: int = MIN_ROUNDS,
    min_run_time: float = 0.05,
    **sampling: Any,
) -> Table:
    """The FLOPS that regular, depthwise and partial 3x3 convolutions achieve; chapter 12.

    For each ``(channels, size)`` of ``maps`` the three convolutions of
    :func:`equal_flops_convs` (``match``: equal FLOPs or equal width) are counted (multiply-adds
    by ``torch.utils.flop_counter``, MAC by :func:`shufflelib.cost.mac`) and timed side by side
    in paired, interleaved rounds (:func:`shufflelib.bench.compare`; ``sampling``:
    ``max_rounds``, ``target``, ``max_seconds`` (default 3 s per map), ``estimator``). One row
    per convolution and map: ``achieved`` is multiply-adds over the median time, and ``FLOPS /
    depthwise`` its achieved FLOPS over the depthwise one's, paired by round, with its 95%
    interval (``low``, ``high``). ``channels_last`` times every input and weight in NHWC memory
    (the counts do not change). The table keeps ``times`` (map -> name -> per-round seconds)
    and ``how`` (the estimator and confidence of the intervals).
    """
    maps = _check_maps(maps)
    validate.integer("batch", batch, minimum=1)
    validate.choice("match", match, MATCHES)
    sampling = _timing(
        channels_last, min_run_time, threads, rounds, {"max_seconds": 3.0, **sampling}
    )
    device = pick_device(device)
    convs = {
        f"{c}\u00d7{s}\u00d7{s}": equal_flops_convs(c, s, batch=batch, n_div=n_div, match=match)
        for c, s in maps
    }  # every map built (and its arguments checked) before any timing
    rows, times, note = [], {}, ""
    for label, group in convs.items():
        timed = _time_convs(group, device, threads, min_run_time, sampling, channels_last)
        times[label], note = timed.times, timed.note
        rows += _conv_rows(label, group, timed.times, _how(sampling))
    title = (
        f"3x3 convolutions at equal {'FLOPs' if match == 'flops' else 'width'} "
        f"(PConv c_p = c/{n_div}), batch {batch}, float32, "
        f"{'channels-last' if channels_last else 'NCHW'}, {device}"
    )
    table = Table(rows, title=title, note=note, units=_CONV_UNITS)
    table.times, table.how = times, _how(sampling)
    return table


def _check_timed(name: str, table: object, column: str) -> Table:
    if not isinstance(table, Table):
        raise TypeError(f"{name} must be a shufflelib Table, got {validate.show(table)}")
    timed = isinstance(getattr(table, "times", None), dict) and hasattr(table, "how")
    if column not in table.columns or not timed:
        raise ValueError(
            f"{name} must be the Table that {column!r} timings came in, got {table.title!r}"
        )
    return table


def _paper_operator_ratio(label: str) -> float | None:
    """The paper's CPU FLOPS of PConv over DWConv on map ``label`` (Table 1, equal width)."""
    rows = {(r["operator"], r["map"]): r for r in reference.table("fasternet.table1")}
    pconv, dwconv = rows.get(("PConv 3x3", label)), rows.get(("DWConv 3x3", label))
    return pconv["CPU FLOPS"] / dwconv["CPU FLOPS"] if pconv and dwconv else None


def operator_verdicts(table: Table) -> Table:
    """Which convolution achieves more FLOPS, per map, with intervals and verdicts; chapter 12.

    Takes :func:`achieved_flops`'s table. Two claims per map, each a paired ratio of achieved
    FLOPS with its 95% interval: "partial achieves more FLOPS than depthwise" (the paper's
    claim) and "regular achieves more FLOPS than partial" (what PConv's pass-through costs).
    ``paper CPU`` is the paper's Table 1 ratio for the first claim (Intel i9-9900X, one thread,
    batch 1, ten stacked layers, at equal *width*), where the paper has the map.
    """
    _check_timed("table", table, "convolution")
    rows = []
    for label, times in table.times.items():
        work = {r["convolution"]: r["MAdds"] for r in table if r["map"] == label}
        for a, b in (("partial", "depthwise"), ("regular", "partial")):
            iv = _flops_ratio(times, work, a, b, table.how)
            rows.append(
                {
                    "map": label,
                    "claim": f"{a} achieves more FLOPS than {b}",
                    "ratio": iv.estimate,
                    "low": iv.low,
                    "high": iv.high,
                    "verdict": stats.verdict(iv, 1.0, claim="above"),
                    "paper CPU": _paper_operator_ratio(label) if b == "depthwise" else None,
                }
            )
    title = "Achieved FLOPS, paired ratios with 95% intervals: does the claim hold here?"
    return Table(rows, title=title, note=table.note)


def _inference_nets(
    names: Sequence[str], image_size: int, fold_bn: bool, channels_last: bool, device: torch.device
) -> tuple[dict[str, nn.Module], dict[str, tuple[int, int]]]:
    """Each zoo network in eval mode on ``device`` (BN folded), with its params and MAdds."""
    nets, counts = {}, {}
    for name in names:
        model = models.build(name).eval()
        counts[name] = (count_params(model), madds(model, (1, 3, image_size, image_size)))
        model = fold_batchnorm(model) if fold_bn else model
        nets[name] = inference_copy(to_channels_last(model) if channels_last else model, device)
    return nets, counts


def _network_rows(
    names: Sequence[str], batch: int, counts: Mapping[str, tuple[int, int]], timed: Table
) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        params, work = counts[name]
        median, iqr = _spread(timed.times[name])
        iv = timed.intervals[name]
        rows.append(
            {
                "model": name,
                "batch": batch,
                "params": params / 1e6,
                "MAdds": work / 1e6,
                "median": median,
                "IQR": iqr,
                "achieved": batch * work / (median * 1e-3) / 1e9,
                f"time / {names[0]}": iv.estimate,
                "low": iv.low,
                "high": iv.high,
            }
        )
    return rows


def network_flops(
    names: Sequence[str] = ZOO,
    batch_sizes: Sequence[int] = (1, 8),
    *,
    image_size: int = 224,
    fold_bn: bool = True,
    channels_last: bool = False,
    device: torch.device | str | None = None,
    threads: int | None = 1,
    rounds: int = MIN_ROUNDS,
    min_run_time: float = 0.1,
    **sampling: Any,
) -> Table:
    """Whole zoo networks: params, MAdds, latency and the FLOPS they achieve; chapter 12.

    Each network is built in eval mode, its BatchNorms folded when ``fold_bn`` (as the FasterNet
    paper measures), and timed side by side with the others, per batch size, in paired,
    interleaved rounds (:func:`shufflelib.bench.compare_modules`; one CPU thread by default, as
    the paper's CPU column). ``MAdds`` are per image; ``achieved`` is the batch's multiply-adds
    over its median time; ``time / <first>`` is the time over the first network's with its 95%
    interval (``low``, ``high``). ``channels_last`` runs every network and input in NHWC
    memory (:func:`shufflelib.deploy.transforms.to_channels_last`). The table keeps ``times``
    (batch -> name -> per-round seconds) and ``how`` (the estimator and confidence).
    """
    names = validate.choices("names", names, models.names())
    batch_sizes = validate.shape("batch_sizes", batch_sizes)
    validate.integer("image_size", image_size, minimum=32)
    validate.flag("fold_bn", fold_bn)
    sampling = _timing(
        channels_last, min_run_time, threads, rounds, {"max_seconds": 10.0, **sampling}
    )
    device = pick_device(device)
    nets, counts = _inference_nets(names, image_size, fold_bn, channels_last, device)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    rows, times, note = [], {}, ""
    for batch in batch_sizes:
        x = torch.randn(batch, 3, image_size, image_size, device=device)
        x = x.contiguous(memory_format=layout)
        timed = compare_modules(nets, x, min_run_time=min_run_time, threads=threads, **sampling)
        times[batch], note = timed.times, timed.note
        rows += _network_rows(names, batch, counts, timed)
    folded = "BatchNorm folded" if fold_bn else "BatchNorm as trained"
    layout = "channels-last" if channels_last else "NCHW"
    title = f"zoo networks at {image_size}x{image_size}, eval mode, {folded}, {layout}, {device}"
    units = {"params": "M", "MAdds": "M", "median": "ms", "IQR": "ms", "achieved": "GMAdd/s"}
    table = Table(rows, title=title, note=note, units=units)
    table.times, table.how = times, _how(sampling)
    return table


def _paper_network_ratios(first: str, other: str) -> tuple[float | None, float | None]:
    """The paper's CPU latency ratio (other over first) and FLOPS ratio (first over other)."""
    rows = {r["network"]: r for r in reference.table("fasternet.table3")}
    a, b = rows.get(PAPER_NAMES.get(first, "")), rows.get(PAPER_NAMES.get(other, ""))
    if a is None or b is None:
        return None, None
    slower = b["CPU latency"] / a["CPU latency"]
    return slower, a["FLOPs"] / b["FLOPs"] * slower


def network_verdicts(table: Table) -> Table:
    """The paper's claim for the first network against each other one, per batch; chapter 12.

    Takes :func:`network_flops`'s table. Two claims per pair, each a paired ratio with its 95%
    interval: "<first> is faster" (the other's time over the first's, above 1) and "<first>
    achieves more FLOPS" (the first's achieved FLOPS over the other's: the time ratio times the
    ratio of their multiply-adds). ``paper CPU`` gives the paper's ratio (Table 3: Intel
    i9-9900X, one thread, batch 1) at batch 1, where the paper has both networks.
    """
    _check_timed("table", table, "model")
    first = table[0]["model"]
    rows = []
    for batch, times in table.times.items():
        work = {r["model"]: r["MAdds"] for r in table if r["batch"] == batch}
        for other in [m for m in work if m != first]:
            paper = _paper_network_ratios(first, other) if batch == 1 else (None, None)
            faster = stats.ratio_interval(times[other], times[first], **table.how)
            more = _flops_ratio(times, work, first, other, table.how)
            for claim, iv, published in (("is faster", faster, paper[0]),
                                         ("achieves more FLOPS", more, paper[1])):  # fmt: skip
                rows.append(
                    {
                        "batch": batch,
                        "claim": f"{first} {claim} than {other}",
                        **dict(zip(_RATIO, (iv.estimate, iv.low, iv.high))),
                        "verdict": stats.verdict(iv, 1.0, claim="above"),
                        "paper CPU": published,
                    }
                )
    title = f"FasterNet's claim on this machine: {first} against each network, paired ratios"
    return Table(rows, title=title, note=table.note)


def published_sizes(variants: Sequence[str] = ("t0", "t1", "t2"), tolerance: float = 0.02) -> Table:
    """FasterNet's parameters and multiply-adds, counted, beside the paper's Table 3; ch. 12.

    ``params off`` and ``MAdds off`` are our count over the paper's, minus 1, in percent;
    ``within`` says whether both are within ``tolerance`` (2%). The paper prints two decimals
    of GFLOPs (multiply-adds), so 0.34 G stands for anything from 0.335 to 0.345 G.
    """
    variants = validate.choices("variants", variants, tuple(FASTERNET_CONFIGS))
    validate.number("tolerance", tolerance, above=0, below=1)
    paper = {r["network"]: r for r in reference.table("fasternet.table3")}
    rows = []
    for variant in variants:
        name = f"fasternet_{variant}"
        model = models.build(name).eval()
        ours = (count_params(model) / 1e6, madds(model, (1, 3, 224, 224)) / 1e9)
        ref = paper[PAPER_NAMES[name]]
        off = (100 * (ours[0] / ref["params"] - 1), 100 * (ours[1] / ref["FLOPs"] - 1))
        rows.append(
            {
                "model": name,
                "params": ours[0],
                "paper params": ref["params"],
                "params off": off[0],
                "MAdds": ours[1],
                "paper MAdds": ref["FLOPs"],
                "MAdds off": off[1],
                "within": "yes" if max(map(abs, off)) <= 100 * tolerance else "no",
            }
        )
    units = {"params": "M", "paper params": "M", "params off": "%", "MAdds": "G",
             "paper MAdds": "G", "MAdds off": "%"}  # fmt: skip
    source = reference.table("fasternet.table3").title
    return Table(rows, title=f"FasterNet counted here against {source}", units=units)
