"""The experiments of chapters 1, 2, 3 and 8, each one function returning a Table.

Chapter 1's group-convolution sweep, chapter 2's channel-shuffle benchmarks, chapter 3's operators
on the roofline and chapter 8's MBConv against Fused-MBConv. They count with :mod:`shufflelib.cost`
and time with :mod:`shufflelib.bench` (paired, interleaved rounds with intervals); chapter 4's
guideline experiments live in :mod:`shufflelib.guidelines`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from . import validate
from .bench import (
    MIN_ROUNDS,
    TIME_UNITS,
    Roofline,
    compare,
    compare_modules,
    measure,
    sampling_arguments,
)
from .cost import MAC_UNITS, count_params, mac, madds
from .env import machine_info, pick_device
from .models.efficientnet_v2 import FusedMBConv, MBConv
from .ops import channel_shuffle, channel_split, shuffle_permutation, shuffle_split
from .tables import Table, count

__all__ = [
    "shuffle_benchmark",
    "shuffle_split_benchmark",
    "group_conv_sweep",
    "operator_roofline",
    "roofline_reading",
    "mbconv_vs_fused",
]


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


def _make_input(input_size: Sequence[int], channels_last: bool, device: torch.device | str | None):
    input_size = validate.shape("input_size", input_size, length=4)
    validate.flag("channels_last", channels_last)
    device = pick_device(device)
    x = torch.randn(*input_size, generator=torch.Generator().manual_seed(0)).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def shuffle_benchmark(
    input_size: Sequence[int] = (32, 232, 28, 28),
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
    to :func:`shufflelib.bench.compare`.
    """
    validate.integer("groups", groups, minimum=1)
    sampling = sampling_arguments(rounds, sampling)
    x = _make_input(input_size, channels_last, device)
    if x.shape[1] % groups:
        raise ValueError(f"groups must divide the channel count {x.shape[1]}, got {groups}")
    candidates = _shuffle_candidates(groups)
    expected = channel_shuffle(x, groups)
    for name, fn in candidates.items():
        if "clone" not in name and not torch.equal(fn(x), expected):
            raise RuntimeError(f"{name} disagrees with channel_shuffle")
    layout = "channels_last" if channels_last else "contiguous (NCHW)"
    title = f"channel shuffle, g={groups}, input {tuple(input_size)} float32, {layout}, {x.device}"
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
        row["GB/s"] = mib * 2**20 / (row["median"] * 1e-3) / 1e9
    table.note += f" | bytes moved per call (read + write): {mib:.1f} MiB"
    return table


def shuffle_split_benchmark(
    input_size: Sequence[int] = (32, 232, 28, 28),
    *,
    device: torch.device | str | None = None,
    rounds: int = MIN_ROUNDS,
    min_run_time: float = 0.2,
    threads: int | None = None,
    **sampling: Any,
) -> Table:
    """``shuffle_split`` against a shuffle followed by a split into two contiguous halves; ch. 2.

    ``threads`` and ``sampling`` (``max_rounds``, ``target``, ``max_seconds``, ``estimator``) go
    to :func:`shufflelib.bench.compare`.
    """
    sampling = sampling_arguments(rounds, sampling)
    x = _make_input(input_size, False, device)
    if x.shape[1] % 2:
        raise ValueError(
            f"input_size must have an even channel count to split, got {tuple(input_size)}"
        )

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
    title = f"shuffle then split in halves, input {tuple(input_size)} float32, {x.device}"
    return compare(
        candidates,
        x,
        baseline="x.clone() (copy floor)",
        min_run_time=min_run_time,
        title=title,
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
    interleaved rounds by :func:`shufflelib.bench.compare` (``sampling``: ``max_rounds``,
    ``target``, ``max_seconds``, ``estimator``), so ``time / g=1`` is a paired ratio with its
    95% interval (``low``, ``high``), and a slow moment of the machine falls on every group
    count alike.
    """
    validate.integer("channels", channels, minimum=1)
    validate.integer("size", size, minimum=1)
    validate.integer("batch", batch, minimum=1)
    validate.integer("kernel_size", kernel_size, minimum=1)
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd int >= 1, got {kernel_size}")
    if groups is None:
        groups = [g for g in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if g <= channels]
    for g in validate.shape("groups", groups):
        if channels % g:
            raise ValueError(f"every group count must divide channels={channels}, got {g}")
    sampling = sampling_arguments(rounds, {"max_seconds": 10.0, **sampling})
    device = pick_device(device)
    shape = (batch, channels, size, size)
    x = torch.randn(*shape, device=device)
    convs = {
        f"g={g}": torch.nn.Conv2d(
            channels, channels, kernel_size, padding=kernel_size // 2, groups=g, bias=False
        ).to(device)
        for g in groups
    }
    first = next(iter(convs))
    timed = compare_modules(convs, x, min_run_time=min_run_time, threads=threads, **sampling)
    rows = []
    for g, row in zip(groups, timed):
        conv, ops = convs[row["name"]], madds(convs[row["name"]], shape)
        rows.append(
            {
                "g": g,
                "weight shape": tuple(conv.weight.shape),
                "params": count_params(conv),
                "MAdds": ops,
                "median": row["median"],
                "IQR": row["IQR"],
                f"time / {first}": row["ratio"],
                "low": row["ratio low"],
                "high": row["ratio high"],
                "GMAdd/s": ops / (row["median"] * 1e-3) / 1e9,
            }
        )
    title = (
        f"{kernel_size}x{kernel_size} convolution {channels}->{channels} channels, "
        f"input ({batch}, {channels}, {size}, {size}), {device}"
    )
    table = Table(rows, title=title, note=timed.note, units=TIME_UNITS)
    table.times, table.intervals = timed.times, timed.intervals
    return table


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
    validate.integer("size", size, minimum=1)
    validate.integer("batch", batch, minimum=1)
    validate.number("min_run_time", min_run_time, above=0)
    device = pick_device(device)

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
                "MAC": moved,
                "MAdd/byte": work / moved,
                "median": m.median * 1e3,
                "IQR": m.iqr * 1e3,
                "GMAdd/s": work / m.median / 1e9,
                "GB/s": moved / m.median / 1e9,
            }
        )
    title = f"operators on input (batch {batch}, C, {size}, {size}), float32, {device}"
    return Table(
        rows, title=title, note=str(machine_info(device)), units={**TIME_UNITS, **MAC_UNITS}
    )


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
        raise TypeError(f"roof must be a bench.Roofline, got {validate.show(roof)}")
    if not isinstance(operators, Table):
        raise TypeError(f"operators must be the Table of operator_roofline, got {operators!r}")
    if "GMAdd/s" not in operators.columns:
        raise ValueError(
            f"operators must be the Table of operator_roofline, got {operators.title!r}"
        )
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
            mb = r["MAC"] / 2**20
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
    timed = compare_modules(blocks, x, min_run_time=min_run_time, threads=threads, **sampling)
    by_name = {r["name"]: r for r in timed}
    row: dict[str, Any] = {"width": shape[1], "map": f"{shape[2]}x{shape[3]}"}
    for k, b in blocks.items():
        row[f"{k} MAdds"] = madds(b, shape) / 1e6
        row[f"{k} MAC"] = mac(b, shape).bytes / 1e6
        row[k] = by_name[k]["median"]
        row[f"{k} IQR"] = by_name[k]["IQR"]
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
    width stands for one stage. Per block ``k``: ``{k} MAdds`` (M), ``{k} MAC`` (MB), its median
    time ``{k}`` and ``{k} IQR`` (ms). ``fused / MBConv time`` is the paired time ratio (with its
    interval) of :func:`shufflelib.bench.compare` (``sampling`` goes there). The table carries
    ``times`` and ``intervals`` keyed by width.
    """
    if any(c < 8 or c % 4 for c in validate.shape("widths", widths)):
        raise ValueError(f"widths must be ints >= 8 divisible by 4, got {tuple(widths)}")
    if size is not None:
        validate.integer("size", size, minimum=1)
    validate.integer("expand_ratio", expand_ratio, minimum=1)
    validate.integer("batch", batch, minimum=1)
    sampling = sampling_arguments(rounds, sampling)
    device = pick_device(device)
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
    units = {}
    for k in ("MBConv", "Fused-MBConv"):
        units |= {f"{k} MAdds": "M", f"{k} MAC": "MB", k: "ms", f"{k} IQR": "ms"}
    table = Table(rows, title=title, note=notes, units=units)
    table.times, table.intervals = times, intervals
    return table
