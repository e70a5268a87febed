"""The four benchmark networks of ShuffleNet V2 (Sec. 2, Tables 1-4), rebuilt, and their sweeps.

Chapter 4 runs the sweeps and reads their verdicts; chapter 3 reuses the network builders to count
multiply-adds and memory access. Each guideline has three parts:

- a **network builder** (``g1_network`` ... ``g4_network``): an ``nn.Module`` with explicit
  channel counts, bias-free convolutions, Kaiming (fan_out) initialisation, and an
  ``in_channels`` attribute giving the input it expects;
- a **configuration list** (``g1_configs`` ... ``g4_configs``): the paper's rows, with channel
  counts chosen so the FLOPs (multiply-adds) stay those of the first row;
- a **sweep** (``g1_sweep`` ... ``g4_sweep``): counts (:func:`shufflelib.cost.madds`,
  :func:`shufflelib.cost.mac`) and times every configuration with
  :func:`shufflelib.bench.compare` in interleaved rounds, and puts the paper's relative speeds
  (from :mod:`shufflelib.reference`) beside ours.

What the paper shows versus what we build (see each builder's docstring for the details):

- The paper's setup (Sec. 2): GPU = GTX 1080Ti with cuDNN 7 (batch 8, batches/s); ARM =
  Snapdragon 810, one thread (batch 1, images/s); input 56x56 (Tables 1-3 captions); "full
  optimisation options (e.g. tensor fusion)". With tensor fusion a BatchNorm folds into its
  convolution at inference, and the paper names no BatchNorm in these benchmarks, so **none of the
  four networks has BatchNorm**. G1-G3 are plain stacks of 1x1 convolutions (no ReLU: the paper
  names none, and G4 studies exactly that cost); G4 has ReLU and the shortcut, each removable.
- ``platform`` ("arm" or "gpu") only picks the paper's channel counts and its comparison
  columns; the networks run on ``device``, wherever that is. Compare machines through the
  **relative speeds** (each row's speed over the first row's), never through absolute numbers.
- Every relative speed comes with its 95% interval from paired, interleaved rounds
  (:func:`shufflelib.bench.compare`), and :func:`verdict` says whether a guideline *holds*, *does
  not hold* or is *too close to call* here from those intervals, never from a difference inside
  them.
- The sweeps time with **one CPU thread** by default (``threads=1``; ``None`` keeps torch's
  current count). That is the paper's ARM condition ("a single thread is used"), and on a
  shared machine it is far steadier: on a busy 2-core machine we saw IQR/median below 0.2 with one
  thread against up to 50 with two, and verdicts that flipped from run to run with two.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from . import stats, validate
from .bench import MIN_ROUNDS, TIME_UNITS, compare, sampling_arguments, using_threads
from .cost import MAC_UNITS, mac, madds
from .env import machine_part, pick_device
from .reference import table as reference_table
from .tables import Table, count

__all__ = [
    "PLATFORMS",
    "PAPER_SCALES",
    "G1_BASE",
    "G1_RATIOS",
    "G2_BASE",
    "G2_GROUPS",
    "G3_STRUCTURES",
    "G3_WIDTHS",
    "G4_WIDTHS",
    "G4_VARIANTS",
    "GuidelineNet",
    "Bottleneck",
    "FragmentBlock",
    "g1_network",
    "g1_configs",
    "g1_sweep",
    "g2_network",
    "g2_configs",
    "g2_sweep",
    "g3_width",
    "g3_network",
    "g3_configs",
    "g3_sweep",
    "g4_network",
    "g4_configs",
    "g4_sweep",
    "verdict",
    "outcome",
    "summary",
    "across_sizes",
]

PLATFORMS = ("arm", "gpu")
PAPER_SCALES = (1, 2, 4)  # the "x1, x2, x4" columns of Tables 1 and 2
TOLERANCE = 0.02  # FLOPs of every configuration within 2% of the first row's, where integers allow

# Table 1 (G1): c for the 1:1 row in the x1 column; ratios c1:c2 = 1:r.
G1_BASE = {"arm": 32, "gpu": 128}
G1_RATIOS = (1, 2, 6, 12)
# Table 2 (G2): c for g = 1 in the x1 column.
G2_BASE = {"arm": 64, "gpu": 128}
G2_GROUPS = (1, 2, 4, 8)
# Table 3 (G3): the paper's three columns per platform, c of the 1-fragment block.
G3_STRUCTURES = (
    "1-fragment",
    "2-fragment-series",
    "4-fragment-series",
    "2-fragment-parallel",
    "4-fragment-parallel",
)
G3_WIDTHS = {"arm": (64, 128, 256), "gpu": (128, 256, 512)}
# Table 4 (G4): channels in the unit, and the (ReLU, shortcut) rows in the paper's order.
G4_WIDTHS = {"arm": (32, 64, 128), "gpu": (32, 64, 128)}
G4_VARIANTS = ((True, True), (True, False), (False, True), (False, False))


# --- input checks (all run before any work) ---------------------------------------------------


@dataclass(frozen=True)
class _Timing:
    """How a sweep times its networks: the input, the device, the threads and the sampling."""

    size: int
    batch: int
    device: torch.device
    min_run_time: float
    threads: int | None
    sampling: dict[str, Any]

    def describe(self) -> str:
        n = torch.get_num_threads() if self.threads is None else self.threads
        threads = count(n, "thread")
        return f"input {self.size}x{self.size}, batch {self.batch}, {self.device}, {threads}"


def _timing(
    size: object,
    batch: object,
    device: object,
    rounds: object,
    min_run_time: object,
    threads: object,
    sampling: dict[str, Any],
) -> _Timing:
    """Every sweep's timing arguments, checked once (``rounds`` by ``sampling_arguments``)."""
    validate.integer("size", size, minimum=1)
    if threads is not None:
        validate.integer("threads", threads, minimum=1)
    validate.integer("batch", batch, minimum=1)
    validate.number("min_run_time", min_run_time, above=0)
    sampling = sampling_arguments(rounds, sampling)
    return _Timing(size, batch, pick_device(device), min_run_time, threads, sampling)


# --- building blocks --------------------------------------------------------------------------


def _conv(c_in: int, c_out: int, kernel_size: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, groups=groups, bias=False)


def _init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


class GuidelineNet(nn.Sequential):
    """A stack of benchmark blocks that knows its input width (``in_channels``); chapter 4."""

    def __init__(self, blocks: Sequence[nn.Module], in_channels: int, description: str):
        super().__init__(*blocks)
        self.in_channels = in_channels
        self.description = description
        _init(self)

    def input_size(self, batch: int = 1, size: int = 56) -> tuple[int, int, int, int]:
        """The ``(N, C, H, W)`` shape this network takes."""
        return (batch, self.in_channels, size, size)

    def extra_repr(self) -> str:
        return self.description


# --- G1: equal channel width minimises MAC (Table 1) ------------------------------------------


def g1_network(c1: int, c2: int, blocks: int = 10) -> GuidelineNet:
    """G1's benchmark: ``blocks`` blocks of two 1x1 convs, c1 -> c2 then c2 -> c1; chapter 4.

    The paper: "stacking 10 building blocks repeatedly. Each block contains two convolution
    layers. The first contains c1 input channels and c2 output channels, and the second
    otherwise." We build exactly that: bias-free 1x1 convs, no BatchNorm and no ReLU (the paper
    names neither; with its tensor fusion a BatchNorm would fold away). Input: ``c1`` channels.
    """
    validate.integer("c1", c1, minimum=1)
    validate.integer("c2", c2, minimum=1)
    validate.integer("blocks", blocks, minimum=1)
    body = [nn.Sequential(_conv(c1, c2), _conv(c2, c1)) for _ in range(blocks)]
    return GuidelineNet(body, c1, f"G1: {blocks} x (1x1 conv {c1}->{c2}, 1x1 conv {c2}->{c1})")


def _g1_pair(c: int, r: int, channels: str) -> tuple[int, int]:
    if channels == "paper":
        c1 = math.floor(c / math.sqrt(r))
        return c1, r * c1
    c1 = max(1, round(c / math.sqrt(r)))
    c2 = r * c1
    if abs(c1 * c2 / (c * c) - 1) > TOLERANCE:
        c2 = round(c * c / c1)  # keep FLOPs; the ratio is then only close to 1:r
    return c1, c2


def g1_configs(
    scale: int = 1, platform: str = "arm", channels: str = "flops"
) -> list[tuple[str, int, int]]:
    """``[(label, c1, c2)]`` for c1:c2 = 1:1, 1:2, 1:6, 1:12 at equal FLOPs; chapter 4.

    ``c = G1_BASE[platform] * scale`` (32 for the ARM column, 128 for GPU). The paper prints
    (c1, c2) for its x1 columns only; that its x2 and x4 columns scale the channels by 2 and 4 is
    **our reading**. FLOPs per block are ``2 hw c1 c2``, held at
    ``2 hw c^2``:

    - ``channels="flops"`` (default): ``c1 = round(c / sqrt(r))`` and ``c2 = r c1`` when that keeps
      ``c1 c2`` within 2% of ``c^2``; otherwise ``c2 = round(c^2 / c1)``, which keeps the FLOPs
      and makes the ratio only close to 1:r (ARM x1 1:2 gives (23, 45), 1:12 gives (9, 114)).
    - ``channels="paper"``: the rule that reproduces every pair the paper prints,
      ``c1 = floor(c / sqrt(r))``, ``c2 = r c1`` (GPU (90,180), (52,312), (36,432); ARM (22,44),
      (13,78), (9,108)). Its FLOPs fall up to 5.5% below the 1:1 row's (ARM 1:2, 1:12).
    """
    validate.integer("scale", scale, minimum=1)
    validate.choice("platform", platform, PLATFORMS)
    validate.choice("channels", channels, ("flops", "paper"))
    c = G1_BASE[platform] * scale
    return [(f"1:{r}", *_g1_pair(c, r, channels)) for r in G1_RATIOS]


# --- G2: excessive group convolution increases MAC (Table 2) ----------------------------------


def g2_network(c: int, groups: int, layers: int = 10) -> GuidelineNet:
    """G2's benchmark: ``layers`` 1x1 group convolutions c -> c with ``groups`` groups; ch. 4.

    The paper: "a benchmark network is built by stacking 10 pointwise group convolution layers".
    We build that: bias-free, no BatchNorm, no ReLU. ``groups`` must divide ``c``.
    """
    validate.integer("c", c, minimum=1)
    validate.integer("groups", groups, minimum=1)
    validate.integer("layers", layers, minimum=1)
    if c % groups:
        raise ValueError(f"groups must divide the channels: c={c} is not divisible by {groups}")
    body = [_conv(c, c, groups=groups) for _ in range(layers)]
    return GuidelineNet(body, c, f"G2: {layers} x 1x1 group conv {c}->{c}, g={groups}")


def g2_configs(scale: int = 1, platform: str = "arm") -> list[tuple[int, int]]:
    """``[(g, c)]`` for g = 1, 2, 4, 8 at the FLOPs of g = 1; chapter 4.

    FLOPs per layer are ``hw c^2 / g``; with ``base = G2_BASE[platform] * scale`` (64 ARM, 128 GPU)
    the ideal width is ``base sqrt(g)``, and a group conv needs ``g | c``, so
    ``c = g * round(base * sqrt(g) / g)``, the multiple of g nearest the ideal. This keeps the
    FLOPs within 2% of g = 1's wherever a multiple of g allows it; the one place none does is
    ARM x1, g = 8 (176 gives -5.5%, 184 gives +3.3%; we take 184). Against the paper's x1
    columns: GPU 128/182/256/360 vs the paper's 128/180/256/360 (both within 1.1%); ARM
    64/90/128/184 vs 64/90/128/180 (180 is not divisible by 8, so the paper's ARM g = 8 network
    cannot be built as a PyTorch group convolution).
    """
    validate.integer("scale", scale, minimum=1)
    validate.choice("platform", platform, PLATFORMS)
    base = G2_BASE[platform] * scale
    return [(g, g * max(1, round(base * math.sqrt(g) / g))) for g in G2_GROUPS]


# --- G3: network fragmentation reduces parallelism (Table 3) ----------------------------------


def _parse_structure(structure: object) -> tuple[int, str]:
    validate.choice("structure", structure, G3_STRUCTURES)
    if structure == "1-fragment":
        return 1, "series"
    n, _, arrangement = structure.split("-")  # type: ignore[union-attr]
    return int(n), arrangement


class FragmentBlock(nn.Module):
    """``fragments`` 1x1 convs c -> c, one after another ("series") or side by side ("parallel").

    Parallel branches all read the block's input and their outputs are summed; chapter 4.
    """

    def __init__(self, channels: int, fragments: int, arrangement: str):
        super().__init__()
        validate.integer("channels", channels, minimum=1)
        validate.integer("fragments", fragments, minimum=1)
        validate.choice("arrangement", arrangement, ("series", "parallel"))
        self.arrangement = arrangement
        self.convs = nn.ModuleList(_conv(channels, channels) for _ in range(fragments))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.arrangement == "series":
            for conv in self.convs:
                x = conv(x)
            return x
        out = self.convs[0](x)
        for conv in self.convs[1:]:
            out = out + conv(x)
        return out


def g3_width(structure: str, c: int) -> int:
    """Per-fragment width giving a ``structure`` block the FLOPs of a 1-fragment block of ``c``.

    ``k`` fragments of ``c' -> c'`` cost ``k c'^2`` per pixel, so ``c' = round(c / sqrt(k))``
    (within 2% of ``c^2`` for every width the paper uses); chapter 4.
    """
    k, _ = _parse_structure(structure)
    validate.integer("c", c, minimum=1)
    return max(1, round(c / math.sqrt(k)))


def g3_network(structure: str, c: int, blocks: int = 10) -> GuidelineNet:
    """G3's benchmark: a block of 1 to 4 1x1 convs, series or parallel, stacked; chapter 4.

    The paper: "each building block consists of from 1 to 4 1x1 convolutions, which are arranged
    in sequence or in parallel ... Each block is repeatedly stacked for 10 times"; "c denotes the
    number of channels for 1-fragment" and the other structures adjust their channels so their
    FLOPs equal the 1-fragment block's. The block drawings (the paper's appendix Fig. 1) are
    images that no transcription we have carries, so the parallel merge is **our choice**:

    - series: ``k`` convs ``c' -> c'`` one after another;
    - parallel: ``k`` convs ``c' -> c'`` all reading the block input, outputs **summed** (so every
      block keeps width ``c'`` and stacks; the ``k - 1`` additions are part of what a fragmented
      block costs);
    - ``c' = g3_width(structure, c) = round(c / sqrt(k))``: FLOPs equal the 1-fragment block's.

    Bias-free convs, no BatchNorm, no ReLU. Input: ``c'`` channels.
    """
    k, arrangement = _parse_structure(structure)
    validate.integer("c", c, minimum=1)
    validate.integer("blocks", blocks, minimum=1)
    width = g3_width(structure, c)
    body = [FragmentBlock(width, k, arrangement) for _ in range(blocks)]
    desc = f"G3: {blocks} x {structure} block ({k} x 1x1 conv {width}->{width}, {arrangement})"
    return GuidelineNet(body, width, desc)


def _g3_width_of(width_index: object, c: object, platform: str) -> tuple[int, int | None]:
    widths = G3_WIDTHS[platform]
    if c is not None:
        validate.integer("c", c, minimum=1)
        index = widths.index(c) if c in widths else None
        return c, index  # type: ignore[return-value]
    validate.integer("width_index", width_index, minimum=0, maximum=len(widths) - 1)
    return widths[width_index], width_index  # type: ignore[index,return-value]


def g3_configs(
    width_index: int = 0, platform: str = "arm", c: int | None = None
) -> list[tuple[str, int]]:
    """``[(structure, per-fragment width)]`` for the five structures of Table 3; chapter 4.

    ``c`` (the 1-fragment width) is the paper's column ``width_index`` (ARM 64/128/256, GPU
    128/256/512) unless given.
    """
    validate.choice("platform", platform, PLATFORMS)
    width, _ = _g3_width_of(width_index, c, platform)
    return [(s, g3_width(s, width)) for s in G3_STRUCTURES]


# --- G4: element-wise operations are non-negligible (Table 4) ---------------------------------


class Bottleneck(nn.Module):
    """The ResNet bottleneck unit, ``c -> c/4 -> c/4 -> c``, with removable ReLU and shortcut.

    1x1 conv (c -> c/4), 3x3 conv (c/4 -> c/4), 1x1 conv (c/4 -> c), ReLU after the first two
    convs and after the sum, as in ResNet (He et al., 2016); ``activation_layer=None`` removes all
    three ReLUs, ``shortcut=False`` the identity addition. No BatchNorm; chapter 4.
    """

    def __init__(
        self,
        channels: int,
        *,
        shortcut: bool = True,
        activation_layer: Callable[..., nn.Module] | None = nn.ReLU,
        reduction: int = 4,
    ):
        super().__init__()
        validate.integer("reduction", reduction, minimum=1)
        if channels % reduction:
            raise ValueError(
                f"channels must be divisible by the bottleneck reduction {reduction}, "
                f"got {channels}"
            )
        mid = channels // reduction
        self.has_skip = shortcut
        self.conv1 = _conv(channels, mid)
        self.conv2 = _conv(mid, mid, kernel_size=3)
        self.conv3 = _conv(mid, channels)
        act: Callable[[], nn.Module] = (
            nn.Identity if activation_layer is None else lambda: activation_layer(inplace=True)
        )
        self.act1, self.act2, self.act3 = act(), act(), act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.conv1(x))
        out = self.act2(self.conv2(out))
        out = self.conv3(out)
        if self.has_skip:
            out = out + x
        return self.act3(out)


def g4_network(c: int, relu: bool = True, shortcut: bool = True, blocks: int = 10) -> GuidelineNet:
    """G4's benchmark: the ResNet bottleneck unit stacked ``blocks`` times; chapter 4.

    The paper: the ResNet "bottleneck" unit (1x1 conv, 3x3 conv, 1x1 conv, with ReLU and shortcut
    connection), ReLU and shortcut removed separately, stacked 10 times; "c is the number of
    channels in unit". We read c as the unit's input/output width and use ResNet's bottleneck
    ratio, ``c -> c/4 -> c/4 -> c`` (so ``c`` must be divisible by 4). That reading gives the
    paper's ARM throughput a plausible ~2-3 GMAdd/s at every width; taking c as the inner width
    would put the Snapdragon 810 above 20 GMAdd/s, several times its rate in Tables 1-2. No
    BatchNorm (folded at inference by the paper's tensor fusion). ReLUs are in-place, the shortcut
    is an identity addition (in == out), as in ResNet.
    """
    validate.integer("c", c, minimum=4)
    validate.integer("blocks", blocks, minimum=1)
    if c % 4:
        raise ValueError(f"c must be divisible by 4 (the bottleneck is c -> c/4 -> c), got {c}")
    validate.flag("relu", relu)
    validate.flag("shortcut", shortcut)
    act = nn.ReLU if relu else None
    body = [Bottleneck(c, shortcut=shortcut, activation_layer=act) for _ in range(blocks)]
    desc = (
        f"G4: {blocks} x bottleneck {c}->{c // 4}->{c // 4}->{c}, "
        f"ReLU {'yes' if relu else 'no'}, shortcut {'yes' if shortcut else 'no'}"
    )
    return GuidelineNet(body, c, desc)


def g4_configs() -> list[tuple[str, bool, bool]]:
    """``[(label, relu, shortcut)]`` in the paper's row order (yes/yes, yes/no, no/yes, no/no)."""
    return [
        (f"ReLU {'yes' if r else 'no'}, shortcut {'yes' if s else 'no'}", r, s)
        for r, s in G4_VARIANTS
    ]


# --- the sweeps -------------------------------------------------------------------------------


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _paper_relative(name: str, column: str | None) -> list[float | None]:
    """The paper's speeds in ``column`` of table ``name``, each over the first row's."""
    ref = reference_table(name)
    if column is None:
        return [None] * len(ref)
    values = ref.column(column)
    return [v / values[0] for v in values]


def _run(
    configs: list[tuple[dict[str, Any], GuidelineNet]],
    timing: _Timing,
    title: str,
    paper: tuple[str, str | None, str | None],
) -> Table:
    """Count and time every (row, network) pair side by side; the shared body of every sweep."""
    rows: list[dict[str, Any]] = []
    candidates: dict[str, Callable[[], torch.Tensor]] = {}
    for row, net in configs:
        net.to(timing.device).eval()
        shape = net.input_size(timing.batch, timing.size)
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(timing.device)
        row = {**row, "MAdds": madds(net, shape), "MAC": mac(net, shape).bytes}
        candidates[str(row["label"])] = lambda net=net, x=x: net(x)
        rows.append(row)
    with using_threads(timing.threads):  # compare() names the thread count it ran at
        timed = compare(
            candidates,
            (),
            baseline=rows[0]["label"],
            min_run_time=timing.min_run_time,
            title=title,
            device=timing.device,
            **timing.sampling,
        )
    return _sweep_table(rows, timed, timing.batch, paper, title)


def _inverse(ratio: float) -> float:
    """Speed from a time ratio; an unbounded interval end (0 or inf) maps to inf or 0."""
    return 1.0 / ratio if ratio > 0 else math.inf


def _sweep_table(
    rows: list[dict[str, Any]],
    timed: Table,
    batch: int,
    paper: tuple[str, str | None, str | None],
    title: str,
) -> Table:
    """The sweep's rows with their times, relative speeds (and intervals) and the paper's."""
    name, gpu_column, arm_column = paper
    paper_gpu = _paper_relative(name, gpu_column)
    paper_arm = _paper_relative(name, arm_column)
    out = []
    for row, t, pg, pa in zip(rows, timed, paper_gpu, paper_arm):
        row.pop("label")
        row.update(
            {
                "median": t["median"],
                "IQR": t["IQR"],
                "relative speed": 1.0 / t["ratio"],
                "speed low": _inverse(t["ratio high"]),
                "speed high": _inverse(t["ratio low"]),
                "paper GPU": pg,
                "paper ARM": pa,
            }
        )
        out.append(row)
    columns = ", ".join(c for c in (gpu_column, arm_column) if c) or "none at this width"
    note = (
        f"{timed.note} | relative speed: 1 / (time ratio to the first row), with its interval "
        f"(speed low, speed high) | paper GPU/ARM: speed / the paper's first row, "
        f"ShuffleNet V2 {name.split('.')[-1].replace('table', 'Table ')} ({columns})"
    )
    table = Table(out, title=title, note=note, units={**TIME_UNITS, **MAC_UNITS})
    table.times = getattr(timed, "times", {})
    table.intervals = getattr(timed, "intervals", {})
    return table


def _scale_columns(name: str, scale: int) -> tuple[str, str | None, str | None]:
    """The paper's table and its GPU and ARM columns at ``scale`` (None where it has none)."""
    column = f"x{scale}" if scale in PAPER_SCALES else None
    return name, column and f"GPU {column}", column and f"ARM {column}"


def g1_sweep(
    scale: int = 1,
    platform: str = "arm",
    size: int = 56,
    batch: int = 1,
    device: torch.device | str | None = None,
    rounds: int = MIN_ROUNDS,
    min_run_time: float = 0.2,
    *,
    threads: int | None = 1,
    channels: str = "flops",
    blocks: int = 10,
    **sampling: Any,
) -> Table:
    """Table 1 rebuilt: G1's network at c1:c2 = 1:1, 1:2, 1:6, 1:12, counted and timed; ch. 4.

    One row per ratio: the configuration, channels, MAdds, MAC, median and IQR time,
    our relative speed (1 / time ratio to the 1:1 row within each round) and the paper's relative
    speeds at the same scale column (None when ``scale`` is not 1, 2 or 4). See
    :func:`g1_configs` for the channel rule and :func:`g1_network` for the network.

    Every sweep takes the same timing arguments: ``size`` (input side, 56 in the paper),
    ``batch`` (1 as on the paper's ARM; its GPU used 8), ``device`` (default: CUDA, MPS, then
    CPU), ``rounds`` (the least number of interleaved rounds), ``min_run_time`` and the other
    sampling arguments (``max_rounds``, ``target``, ``max_seconds``, ``estimator``; all passed
    to :func:`shufflelib.bench.compare`) and ``threads`` (CPU threads while timing, default 1;
    None keeps torch's setting). The relative speed comes with its interval (``speed low``,
    ``speed high``); the table carries ``times`` (per-round seconds by row label) and
    ``intervals``. A bad value raises before any network is built: ``TypeError`` for the wrong
    kind, ``ValueError`` for a value not allowed, naming the argument and the value.
    """
    configs = g1_configs(scale, platform, channels)
    timing = _timing(size, batch, device, rounds, min_run_time, threads, sampling)
    validate.integer("blocks", blocks, minimum=1)
    pairs = [
        ({"label": label, "c1:c2": label, "c1": c1, "c2": c2}, g1_network(c1, c2, blocks))
        for label, c1, c2 in configs
    ]
    title = (
        f"G1 equal channel width: {blocks} blocks of 1x1 convs c1->c2->c1, equal FLOPs; "
        f"{platform.upper()} column x{scale} (c={G1_BASE[platform] * scale}), "
        f"{timing.describe()}"
    )
    return _run(pairs, timing, title, _scale_columns("shufflenet_v2.table1", scale))


def g2_sweep(
    scale: int = 1,
    platform: str = "arm",
    size: int = 56,
    batch: int = 1,
    device: torch.device | str | None = None,
    rounds: int = MIN_ROUNDS,
    min_run_time: float = 0.2,
    *,
    threads: int | None = 1,
    layers: int = 10,
    **sampling: Any,
) -> Table:
    """Table 2 rebuilt: G2's network at g = 1, 2, 4, 8 with equal FLOPs, counted and timed; ch. 4.

    Same columns as :func:`g1_sweep`, with ``g`` and ``c``; channel rule in :func:`g2_configs`.
    """
    configs = g2_configs(scale, platform)
    timing = _timing(size, batch, device, rounds, min_run_time, threads, sampling)
    validate.integer("layers", layers, minimum=1)
    pairs = [({"label": f"g={g}", "g": g, "c": c}, g2_network(c, g, layers)) for g, c in configs]
    title = (
        f"G2 group convolution: {layers} 1x1 group convs c->c, equal FLOPs; "
        f"{platform.upper()} column x{scale} (c={G2_BASE[platform] * scale} at g=1), "
        f"{timing.describe()}"
    )
    return _run(pairs, timing, title, _scale_columns("shufflenet_v2.table2", scale))


def g3_sweep(
    width_index: int = 0,
    platform: str = "arm",
    size: int = 56,
    batch: int = 1,
    device: torch.device | str | None = None,
    rounds: int = MIN_ROUNDS,
    min_run_time: float = 0.2,
    *,
    threads: int | None = 1,
    c: int | None = None,
    blocks: int = 10,
    **sampling: Any,
) -> Table:
    """Table 3 rebuilt: the five G3 structures at equal FLOPs, counted and timed; chapter 4.

    ``width_index`` picks the paper's column (ARM c = 64/128/256, GPU 128/256/512); ``c`` sets the
    1-fragment width directly (paper columns then only where it is one of the paper's widths).
    Columns: ``structure``, ``c`` (1-fragment width), ``c per fragment``, then as
    :func:`g1_sweep`.
    """
    validate.choice("platform", platform, PLATFORMS)
    width, index = _g3_width_of(width_index, c, platform)
    timing = _timing(size, batch, device, rounds, min_run_time, threads, sampling)
    validate.integer("blocks", blocks, minimum=1)
    pairs = [
        (
            {"label": s, "structure": s, "c per fragment": w},
            g3_network(s, width, blocks),
        )
        for s, w in g3_configs(platform=platform, c=width)
    ]
    gpu = arm = None
    if index is not None:
        gpu, arm = f"GPU c={G3_WIDTHS['gpu'][index]}", f"ARM c={G3_WIDTHS['arm'][index]}"
    title = (
        f"G3 fragmentation: {blocks} blocks of 1-4 1x1 convs, equal FLOPs; "
        f"{platform.upper()} c={width}, {timing.describe()}"
    )
    return _run(pairs, timing, title, ("shufflenet_v2.table3", gpu, arm))


def g4_sweep(
    c: int = 32,
    platform: str = "arm",
    size: int = 56,
    batch: int = 1,
    device: torch.device | str | None = None,
    rounds: int = MIN_ROUNDS,
    min_run_time: float = 0.2,
    *,
    threads: int | None = 1,
    blocks: int = 10,
    **sampling: Any,
) -> Table:
    """Table 4 rebuilt: the bottleneck with/without ReLU and shortcut, counted and timed; ch. 4.

    Rows in the paper's order: ReLU/shortcut yes/yes, yes/no, no/yes, no/no. The paper's columns
    are c = 32, 64, 128 on both platforms (None for other ``c``). MAdds are equal across rows by
    construction (ReLU and addition are not multiply-adds); MAC is not.
    """
    validate.choice("platform", platform, PLATFORMS)
    validate.integer("c", c, minimum=4)
    if c % 4:
        raise ValueError(f"c must be divisible by 4 (the bottleneck is c -> c/4 -> c), got {c}")
    timing = _timing(size, batch, device, rounds, min_run_time, threads, sampling)
    validate.integer("blocks", blocks, minimum=1)
    pairs = [
        (
            {"label": label, "ReLU": _yes(r), "shortcut": _yes(s)},
            g4_network(c, relu=r, shortcut=s, blocks=blocks),
        )
        for label, r, s in g4_configs()
    ]
    widths = G4_WIDTHS[platform]
    gpu = arm = None
    if c in widths:
        i = widths.index(c)
        gpu, arm = f"GPU c={G4_WIDTHS['gpu'][i]}", f"ARM c={G4_WIDTHS['arm'][i]}"
    title = (
        f"G4 element-wise operations: {blocks} ResNet bottlenecks {c}->{c // 4}->{c}, "
        f"ReLU and shortcut removed separately; {platform.upper()} c={c}, "
        f"{timing.describe()}"
    )
    return _run(pairs, timing, title, ("shufflenet_v2.table4", gpu, arm))


# --- verdicts ---------------------------------------------------------------------------------

_REFERENCE = {"G1": "1:1", "G2": "g=1", "G3": "1-fragment", "G4": "ReLU yes, shortcut yes"}
_LABELS: dict[str, Callable[[dict[str, Any]], str]] = {
    "G1": lambda r: str(r["c1:c2"]),
    "G2": lambda r: f"g={r['g']}",
    "G3": lambda r: str(r["structure"]),
    "G4": lambda r: f"ReLU {r['ReLU']}, shortcut {r['shortcut']}",
}


def _speeds(table: Sequence[dict[str, Any]], guideline: str) -> dict[str, stats.Interval]:
    """Each row's relative speed and its interval, as Intervals over the reference row's speed."""
    speeds: dict[str, stats.Interval] = {}
    for row in table:
        missing = [c for c in ("relative speed", "speed low", "speed high") if c not in row]
        if missing:
            raise ValueError(f"every row needs the columns {missing}, got {sorted(row)}")
        try:
            label = _LABELS[guideline](row)
        except KeyError as e:
            raise ValueError(f"{guideline} needs a column {e.args[0]!r} in every row") from None
        values = (float(row[c]) for c in ("relative speed", "speed low", "speed high"))
        speeds[label] = stats.Interval(*values, n=0)
    ref = _need(speeds, _REFERENCE[guideline], guideline).estimate
    return {
        k: stats.Interval(v.estimate / ref, v.low / ref, v.high / ref, 0) for k, v in speeds.items()
    }


def _need(speeds: dict[str, stats.Interval], label: str, guideline: str) -> stats.Interval:
    if label not in speeds:
        raise ValueError(f"{guideline} needs a row {label!r}; the table has {list(speeds)}")
    return speeds[label]


def _x(iv: stats.Interval) -> str:
    return f"{iv.estimate:.{iv.decimals}f}x {iv.bounds}"


def _slower_rows(
    speeds: dict[str, stats.Interval], ref: str, deciding: Sequence[str]
) -> tuple[str, str]:
    """G1-G3: no row faster than ``ref`` beyond noise, and every ``deciding`` row slower."""
    faster = [k for k, v in speeds.items() if k != ref and v.side(1.0) > 0]
    if faster:
        k = max(faster, key=lambda k: speeds[k].estimate)
        return stats.FAILS, f"{k} runs at {_x(speeds[k])} the speed of {ref}, faster beyond noise"
    tied = [k for k in deciding if speeds[k].side(1.0) == 0]
    words = "; ".join(f"{k} runs at {_x(speeds[k])} the speed of {ref}" for k in deciding)
    if tied:
        return (
            stats.CLOSE,
            f"no row is faster than {ref}, but {words} ({', '.join(tied)} within noise)",
        )
    return stats.HOLDS, f"no row is faster than {ref} beyond noise; {words}"


def _judge(table: Sequence[dict[str, Any]], guideline: str) -> tuple[str, str]:
    """(verdict, sentence) for one sweep; see :func:`verdict`."""
    upper = guideline.upper() if isinstance(guideline, str) else guideline  # "g1" is G1
    g = validate.choice("guideline", upper, tuple(_REFERENCE))
    if not len(table):
        raise ValueError("the table has no rows")
    speeds = _speeds(table, g)
    ref = _REFERENCE[g]
    if g == "G4":
        bare = _need(speeds, "ReLU no, shortcut no", g)
        result = {1: stats.HOLDS, -1: stats.FAILS, 0: stats.CLOSE}[bare.side(1.0)]
        words = f"without ReLU and shortcut the unit runs at {_x(bare)} the speed of the full unit"
    else:
        deciding = {"G1": ["1:12"], "G2": ["g=8"], "G3": [k for k in speeds if k.startswith("4-")]}
        for k in deciding[g] or ["4-fragment-series"]:
            _need(speeds, k, g)
        result, words = _slower_rows(speeds, ref, deciding[g])
    lead = {stats.HOLDS: "holds", stats.FAILS: "does not hold", stats.CLOSE: "is too close to call"}
    return result, f"{g} {lead[result]} here: {words}"


def verdict(table: Sequence[dict[str, Any]], guideline: str) -> str:
    """Whether a sweep bears the guideline out, as a sentence with the deciding intervals; ch. 4.

    The sentence starts "G1 holds here", "G1 does not hold here" or "G1 is too close to call
    here". Each row's relative speed (to the guideline's reference row: 1:1, g=1, 1-fragment,
    ReLU and shortcut yes) comes with its interval (``speed low``, ``speed high``): the row is
    *faster* when the whole interval is above 1, *slower* when it is below 1, and within noise
    otherwise. The rules:

    - **G1** holds if no row is faster and 1:12 is slower; fails if some row is faster.
    - **G2** holds if no row is faster and g=8 is slower; fails if some row is faster.
    - **G3** holds if no row is faster and both 4-fragment rows are slower; fails if some row is
      faster.
    - **G4** holds if the no-ReLU, no-shortcut row is faster; fails if it is slower.

    Otherwise the guideline is too close to call here. The table needs the sweep's
    configuration columns (``c1:c2``, ``g``, ``structure`` or ``ReLU`` + ``shortcut``),
    ``relative speed``, ``speed low`` and ``speed high``; any list of such dicts works.
    """
    return _judge(table, guideline)[1]


def outcome(table: Sequence[dict[str, Any]], guideline: str) -> str:
    """Just the verdict of :func:`verdict`: one of :data:`shufflelib.stats.VERDICTS`; ch. 4."""
    return _judge(table, guideline)[0]


def summary(results: Mapping[str, Mapping[str, Table]]) -> Table:
    """One row per guideline and size: the verdict and the sentence with its intervals; ch. 4.

    ``results`` maps a guideline ("G1" .. "G4") to its sweeps, keyed by a size label, e.g.
    ``{"G1": {"x1": g1_sweep(1), ...}, ...}``. The column ``verdict`` is "holds", "does not
    hold" or "too close to call"; ``why`` is the rest of :func:`verdict`'s sentence, with the
    deciding intervals. The note is the first sweep's machine line; each sweep's own table says
    how many rounds it ran and why it stopped.
    """
    rows = []
    note = ""
    for guideline, tables in results.items():
        for size, table in tables.items():
            result, text = _judge(table, guideline)
            note = note or machine_part(getattr(table, "note", ""))
            why = text.split(": ", 1)[1]  # the sentence without its "G1 holds here" lead
            rows.append(
                {"guideline": guideline.upper(), "size": size, "verdict": result, "why": why}
            )
    note += " | 95% intervals of paired, interleaved rounds, per sweep (see each sweep's note)"
    return Table(rows, title="ShuffleNet V2's guidelines, measured on this machine", note=note)


def across_sizes(tables: Mapping[str, Table], row: int = -1) -> str:
    """How one configuration's relative speed changes from the first size to the last; ch. 4.

    ``tables`` are one guideline's sweeps keyed by size label, in order of size (chapter 4's G4
    at c = 32, 64, 128); ``row`` picks the configuration (default: the last, G4's no-ReLU,
    no-shortcut row). The sentence quotes each size's speed with its interval and says whether
    it *falls* or *rises* from the first size to the last (their intervals do not overlap) or
    is too close to call.
    """
    validate.mapping("tables", tables)
    if len(tables) < 2:
        raise ValueError(f"tables must map at least two size labels to sweeps, got {tables!r}")
    validate.integer("row", row)
    speeds = {}
    for size, table in tables.items():
        if not isinstance(table, Sequence) or not -len(table) <= row < len(table):
            raise ValueError(f"row {row!r} is not a row of the {size!r} sweep")
        r = table[row]
        speeds[size] = tuple(float(r[c]) for c in ("relative speed", "speed low", "speed high"))
    quoted = ", ".join(f"{k} {v:.2f}x [{lo:.2f}, {hi:.2f}]" for k, (v, lo, hi) in speeds.items())
    (first, a), (last, b) = list(speeds.items())[0], list(speeds.items())[-1]
    if a[1] > b[2]:
        trend = f"falls from {first} to {last}"
    elif a[2] < b[1]:
        trend = f"rises from {first} to {last}"
    else:
        trend = f"is too close to call between {first} and {last}"
    return f"relative speed {quoted}: it {trend}"
