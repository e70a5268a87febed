"""Every figure the book draws. Functions here draw data they are given; they compute no results.

Each returns the matplotlib ``Figure``; notebooks end the cell with ``;`` so it shows once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .tables import Table

if TYPE_CHECKING:
    from .bench import Roofline

__all__ = [
    "weight_blocks",
    "connectivity",
    "permutation",
    "cost_vs_groups",
    "benchmark_bars",
    "mac_curves",
    "roofline",
    "network_roofline",
    "guideline_speeds",
    "stage_costs",
    "latency_vs_madds",
    "survival",
    "schedule",
    "samples",
    "history",
    "pareto",
    "seed_band",
]

GROUP_COLOURS = plt.get_cmap("tab10").colors


def _group_lines(ax, channels: int, groups: int, axis: str = "both") -> None:
    size = channels / groups
    for k in range(1, groups):
        pos = k * size - 0.5
        if axis in ("both", "x"):
            ax.axvline(pos, color="0.5", lw=0.8, ls=":")
        if axis in ("both", "y"):
            ax.axhline(pos, color="0.5", lw=0.8, ls=":")


def weight_blocks(dense_weights: Mapping[str, torch.Tensor], groups: Sequence[int]) -> Figure:
    """|W| of 1x1 (or kxk, summed over the kernel) convolutions as C_out x C_in matrices; ch. 1."""
    fig, axes = plt.subplots(1, len(dense_weights), figsize=(3.2 * len(dense_weights), 3.4))
    axes = [axes] if len(dense_weights) == 1 else list(axes)
    for ax, (name, w), g in zip(axes, dense_weights.items(), groups):
        m = w.detach().abs().sum(dim=(2, 3)).cpu()
        cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")  # masked (zero) entries: grey
        ax.imshow(torch.where(m == 0, float("nan"), m).numpy(), cmap=cmap, interpolation="nearest")
        _group_lines(ax, m.shape[0], g)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("input channel")
        ax.set_ylabel("output channel")
    fig.suptitle("Weights as a matrix: a group convolution is block diagonal (grey = always 0)")
    fig.tight_layout()
    return fig


def connectivity(
    matrices: Mapping[str, torch.Tensor], groups: Sequence[int] | None = None, suptitle: str = ""
) -> Figure:
    """Boolean "output o sees input i" matrices side by side (chapters 1 and 2)."""
    n = len(matrices)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.6))
    axes = [axes] if n == 1 else list(axes)
    for k, (ax, (name, m)) in enumerate(zip(axes, matrices.items())):
        m = m.cpu()
        ax.imshow(m.float().numpy(), cmap="Blues", vmin=0, vmax=1.3, interpolation="nearest")
        if groups is not None:
            _group_lines(ax, m.shape[0], groups[k])
        seen = m.sum(dim=1).float().mean().item()
        ax.set_title(f"{name}\neach output sees {seen:.0f} of {m.shape[1]} inputs", fontsize=10)
        ax.set_xlabel("input channel of the stack")
        ax.set_ylabel("output channel of the stack")
    fig.suptitle(suptitle or "Which input channels each output channel depends on (blue = yes)")
    fig.tight_layout()
    return fig


def permutation(perm: torch.Tensor, groups: int, title: str = "") -> Figure:
    """A channel permutation drawn as arrows from input slots to output slots; chapter 2.

    ``perm[k]`` is the input channel that lands in output slot ``k``. Colours mark the input
    group each channel came from.
    """
    perm = perm.cpu().tolist()
    c = len(perm)
    per_group = c // groups
    fig, ax = plt.subplots(figsize=(max(6.0, 0.42 * c), 3.0))
    for y, label, order in ((1.0, "input", list(range(c))), (0.0, "output", perm)):
        for slot, ch in enumerate(order):
            colour = GROUP_COLOURS[(ch // per_group) % len(GROUP_COLOURS)]
            ax.add_patch(Rectangle((slot - 0.42, y - 0.12), 0.84, 0.24, color=colour))
            ax.text(slot, y, str(ch), ha="center", va="center", fontsize=8, color="white")
        ax.text(-0.8, y, label, ha="right", va="center", fontsize=10)
    for slot, ch in enumerate(perm):
        colour = GROUP_COLOURS[(ch // per_group) % len(GROUP_COLOURS)]
        ax.annotate(
            "",
            xy=(slot, 0.13),
            xytext=(ch, 0.87),
            arrowprops=dict(arrowstyle="->", color=colour, lw=1.0, alpha=0.8),
        )
    ax.set_xlim(-3.2, c - 0.4)
    ax.set_ylim(-0.35, 1.35)
    ax.set_xlabel("channel position (number in the box: which input channel it holds)")
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_title(title or f"Channel shuffle of {c} channels in {groups} groups (colour = group)")
    fig.tight_layout()
    return fig


def cost_vs_groups(table: Table, x: str = "g", title: str = "") -> Figure:
    """Two panels against the group count: what the paper counts (params, MAdds) and time; ch. 1."""
    g = table.column(x)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(g, table.column("params"), "o-", label="parameters")
    left.plot(g, table.column("MAdds"), "s-", label="multiply-adds")
    left.set_xscale("log", base=2)
    left.set_yscale("log")
    left.set_xlabel("groups g (log scale)")
    left.set_ylabel("count (log scale)")
    left.set_title("Cost on paper: falls as 1/g")
    left.legend()
    median = table.column("median (ms)")
    iqr = table.column("IQR (ms)")
    right.errorbar(g, median, yerr=[v / 2 for v in iqr], fmt="o-", capsize=3, color="C2")
    right.set_xscale("log", base=2)
    right.set_yscale("log")
    right.set_xlabel("groups g (log scale)")
    right.set_ylabel("time per forward pass (ms, log scale)")
    right.set_title("Measured time on this machine (bars: IQR)")
    fig.suptitle(title or "Group convolution: cost on paper vs measured time")
    fig.tight_layout()
    return fig


def benchmark_bars(tables: Mapping[str, Table], value: str = "ratio", title: str = "") -> Figure:
    """Horizontal bars of one column (default: time relative to the baseline) per table; ch. 2."""
    n = len(tables)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 3.2), sharex=True)
    axes = [axes] if n == 1 else list(axes)
    for ax, (name, table) in zip(axes, tables.items()):
        labels = table.column("name")
        values = table.column(value)
        colours = ["0.6" if "clone" in lab else "C0" for lab in labels]
        ax.barh(range(len(labels)), values, color=colours)
        ax.set_yticks(range(len(labels)), labels, fontsize=9)
        ax.invert_yaxis()
        ax.axvline(1.0, color="k", lw=0.8, ls="--")
        for k, v in enumerate(values):
            ax.text(v, k, f" {v:.2f}x", va="center", fontsize=9)
        ax.set_xlabel("time relative to x.clone() (lower is faster; 1 = copy floor)")
        ax.set_title(name, fontsize=10)
        ax.set_xlim(0, max(max(values) * 1.25, 1.5))
    fig.suptitle(title or "Channel shuffle implementations against the copy floor")
    fig.tight_layout()
    return fig


def mac_curves(by_ratio: Table, by_groups: Table, checked: Table | None = None) -> Figure:
    """G1 and G2 at fixed FLOPs: MAC against c2/c1, and MAC against g; chapter 3.

    ``checked`` (optional) holds integer configurations whose MAC was counted by
    :func:`shufflelib.cost.mac`; they are drawn as markers on the curves.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(by_ratio.column("c2/c1"), by_ratio.column("MAC"), "-", label="MAC (Eq. 1)")
    left.plot(
        by_ratio.column("c2/c1"),
        by_ratio.column("lower bound"),
        "--",
        color="0.4",
        label=r"bound $2\sqrt{hwB} + B/hw$",
    )
    if checked is not None:
        left.plot(
            checked.column("c2/c1"),
            checked.column("MAC"),
            "o",
            color="C3",
            label="counted by cost.mac",
        )
    left.set_xscale("log", base=2)
    left.set_xlabel("c2 / c1 (log scale)")
    left.set_ylabel("MAC (elements)")
    left.set_title("G1: MAC is smallest at c1 = c2")
    left.legend(fontsize=8)
    right.plot(by_groups.column("g"), by_groups.column("MAC"), "o-", color="C1")
    right.set_xscale("log", base=2)
    right.set_xlabel("groups g (log scale)")
    right.set_ylabel("MAC (elements)")
    right.set_title("G2: MAC grows with g")
    fig.suptitle("Memory access cost of a 1x1 convolution at fixed multiply-adds B")
    fig.tight_layout()
    return fig


def _roof_lines(ax, roof: Roofline, intensities: Sequence[float]) -> None:
    """The roofline (and the in-cache copy line) over the given intensities, log-log axes."""
    lo, hi = min([*intensities, roof.ridge]) / 4, max([*intensities, roof.ridge]) * 4
    grid = [lo * (hi / lo) ** (k / 200) for k in range(201)]
    ax.plot(
        grid,
        [roof.attainable(x) / 1e9 for x in grid],
        "k-",
        lw=2,
        label=f"roofline (DRAM {roof.bandwidth / 1e9:.0f} GB/s)",
    )
    if roof.cache_copy_bytes:
        ax.plot(
            grid,
            [min(roof.peak_madds, x * roof.cache_bandwidth) / 1e9 for x in grid],
            "k:",
            lw=1,
            label=f"in-cache copy {roof.cache_bandwidth / 1e9:.0f} GB/s",
        )
    ax.axvline(roof.ridge, color="0.6", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (multiply-adds per byte of MAC, log scale)")
    ax.set_ylabel("GMAdd/s (log scale)")


def roofline(roof: Roofline, operators: Table) -> Figure:
    """This machine's roofline with measured operators on it, and data movement beside it; ch. 3."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4), width_ratios=[1.4, 1])
    compute = [r for r in operators if r["MAdds"] > 0]
    _roof_lines(left, roof, [r["MAdd/byte"] for r in compute])
    kinds = sorted({r["kind"] for r in compute})
    for k, kind in enumerate(kinds):
        rows = [r for r in compute if r["kind"] == kind]
        left.plot(
            [r["MAdd/byte"] for r in rows],
            [r["GMAdd/s"] for r in rows],
            "o",
            color=f"C{k}",
            label=kind,
        )
        for r in rows:
            left.annotate(
                r["operator"],
                (r["MAdd/byte"], r["GMAdd/s"]),
                fontsize=7,
                xytext=(4, -3),
                textcoords="offset points",
            )
    left.set_title("Operators with arithmetic: measured vs the roofline")
    left.legend(fontsize=7, loc="lower right")
    moving = [r for r in operators if r["MAdds"] == 0]  # kind "no arithmetic"
    names = [r["operator"] for r in moving]
    right.barh(range(len(moving)), [r["GB/s"] for r in moving], color="C4")
    right.set_yticks(range(len(moving)), names)
    right.invert_yaxis()
    right.axvline(roof.bandwidth / 1e9, color="k", lw=2, label="DRAM copy")
    if roof.cache_copy_bytes:
        right.axvline(roof.cache_bandwidth / 1e9, color="k", ls=":", label="in-cache copy")
    right.set_xlabel("achieved GB/s (MAC bytes / time)")
    right.set_title("No arithmetic: only bandwidth matters")
    right.legend(fontsize=8)
    fig.suptitle(
        f"Roofline of this machine ({roof.device}): peak {roof.peak_madds / 1e9:.0f} GMAdd/s, "
        f"ridge at {roof.ridge:.1f} MAdd/byte"
    )
    fig.tight_layout()
    return fig


_MARKERS = "osD^v<>PX*"


def network_roofline(roof: Roofline, points: Table, title: str = "") -> Figure:
    """Whole networks on this machine's roofline, one point per variant and batch; chapter 11.

    ``points`` comes from :func:`shufflelib.deploy.roofline_points`. Colour tells the network and
    batch size (its ``kind``), the marker the variant (the text of ``operator`` before " (b");
    the points of one network and batch share an intensity, so they stand in a column, and the
    gap between a point and the roofline above it is the time that variant leaves on the table.
    """
    fig, ax = plt.subplots(figsize=(9, 5))
    _roof_lines(ax, roof, [r["MAdd/byte"] for r in points])
    kinds = list(dict.fromkeys(r["kind"] for r in points))
    variants = list(dict.fromkeys(r["operator"].split(" (b")[0] for r in points))
    for r in points:
        variant = r["operator"].split(" (b")[0]
        ax.plot(
            r["MAdd/byte"],
            r["GMAdd/s"],
            _MARKERS[variants.index(variant) % len(_MARKERS)],
            color=f"C{kinds.index(r['kind']) % 10}",
            ms=8,
            mfc="none" if variants.index(variant) == 0 else None,
        )
    handles = [
        plt.Line2D([], [], color=f"C{k % 10}", marker="o", ls="", label=kind)
        for k, kind in enumerate(kinds)
    ] + [
        plt.Line2D(
            [],
            [],
            color="0.3",
            ls="",
            marker=_MARKERS[v % len(_MARKERS)],
            label=variant,
            mfc="none" if v == 0 else None,
        )
        for v, variant in enumerate(variants)
    ]
    lines, _ = ax.get_legend_handles_labels()
    ax.legend(handles=lines + handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title(
        title
        or f"Whole networks on the roofline of this machine ({roof.device}): peak "
        f"{roof.peak_madds / 1e9:.0f} GMAdd/s"
    )
    fig.tight_layout()
    return fig


def guideline_speeds(
    tables: Mapping[str, Table], config: str | Sequence[str], title: str = ""
) -> Figure:
    """Relative speed per configuration: this machine beside the paper's GPU and ARM; chapter 4.

    One panel per table (one per size column). Each configuration gets three bars: our measured
    speed and the paper's GPU and ARM speeds, each divided by the first configuration's.
    ``config`` names the column(s) that label a configuration (several are joined with "/").
    """
    columns = [config] if isinstance(config, str) else list(config)
    n = len(tables)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), sharey=True)
    axes = [axes] if n == 1 else list(axes)
    series = (
        ("relative speed", "this machine", "C0"),
        ("paper GPU", "paper: GPU", "C1"),
        ("paper ARM", "paper: ARM", "C2"),
    )
    for ax, (name, table) in zip(axes, tables.items()):
        labels = ["/".join(str(row[c]) for c in columns) for row in table]
        for k, (column, label, colour) in enumerate(series):
            values = [v if v is not None else float("nan") for v in table.column(column)]
            ax.bar(
                [i + (k - 1) * 0.27 for i in range(len(labels))],
                values,
                width=0.27,
                color=colour,
                label=label,
            )
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.set_xlabel(" / ".join(columns))
        ax.set_title(name, fontsize=10)
    axes[0].set_ylabel("speed relative to the first configuration")
    axes[0].legend(fontsize=8)
    fig.suptitle(title or "Relative speed: higher is faster; the first configuration is 1")
    fig.tight_layout()
    return fig


def stage_costs(table: Table, title: str = "") -> Figure:
    """Parameters, MAdds and MAC per stage, from :func:`shufflelib.cost.stage_report`; ch. 5-8."""
    stages = [str(s) for s in table.column("stage")]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    panels = (
        ("params", "parameters (millions)", 1e6),
        ("MAdds", "multiply-adds (millions)", 1e6),
        ("MAC (bytes)", "memory access (MB)", 1e6),
    )
    for k, (ax, (column, label, scale)) in enumerate(zip(axes, panels)):
        ax.barh(range(len(stages)), [v / scale for v in table.column(column)], color=f"C{k}")
        ax.set_xlabel(label)
        ax.set_title(f"{column} by stage", fontsize=10)
    axes[0].set_yticks(range(len(stages)), stages, fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle(title or table.title)
    fig.tight_layout()
    return fig


def latency_vs_madds(table: Table, title: str = "") -> Figure:
    """Measured latency against multiply-adds, one point per model (with IQR bars); ch. 5-8.

    Takes a :func:`shufflelib.bench.model_latency` table. Points on one line through the origin
    would mean FLOPs predict speed; the scatter around it is what they miss.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    x, y, iqr = table.column("MAdds (M)"), table.column("median (ms)"), table.column("IQR (ms)")
    ax.errorbar(x, y, yerr=[v / 2 for v in iqr], fmt="o", capsize=3)
    for k, (name, xi, yi) in enumerate(zip(table.column("model"), x, y)):
        # Alternate the label side so that models of similar cost do not overwrite each other.
        offset, align = ((6, 4), "left") if k % 2 == 0 else ((-6, -10), "right")
        ax.annotate(
            str(name), (xi, yi), fontsize=8, xytext=offset, textcoords="offset points", ha=align
        )
    ax.set_xlabel("multiply-adds (millions)")
    ax.set_ylabel("measured latency (ms)")
    ax.set_xlim(0, max(x) * 1.25)
    ax.set_ylim(0, max(y) * 1.25)
    ax.set_title(title or table.title, fontsize=10)
    fig.tight_layout()
    return fig


def survival(probabilities: Sequence[float], title: str = "") -> Figure:
    """Stochastic depth: each block's survival probability (1 - drop probability); chapter 8."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    keep = [1 - p for p in probabilities]
    ax.plot(range(len(keep)), keep, "o-", ms=3)
    ax.set_xlabel("block index (input side to output side)")
    ax.set_ylabel("survival probability")
    ax.set_ylim(min(keep + [0.75]) - 0.02, 1.01)
    ax.set_title(title or "Stochastic depth: deeper blocks are dropped more often")
    fig.tight_layout()
    return fig


_SCHEDULE_UNITS = {
    "image size": "image side (pixels)",
    "RandAugment": "RandAugment magnitude",
    "mixup alpha": "mixup alpha",
    "dropout": "dropout rate",
}


def schedule(table: Table, title: str = "") -> Figure:
    """A training schedule per stage, one panel per setting (e.g. progressive learning); ch. 8."""
    settings = [c for c in table.columns if c != "stage"]
    fig, axes = plt.subplots(1, len(settings), figsize=(3.0 * len(settings), 3.0))
    axes = [axes] if len(settings) == 1 else list(axes)
    for k, (ax, name) in enumerate(zip(axes, settings)):
        ax.plot(table.column("stage"), table.column(name), "o-", color=f"C{k}")
        ax.set_xlabel("training stage")
        ax.set_ylabel(_SCHEDULE_UNITS.get(name, name))
        ax.set_title(name, fontsize=10)
        ax.set_xticks(table.column("stage"))
    fig.suptitle(title or table.title)
    fig.tight_layout()
    return fig


def samples(
    images: torch.Tensor,
    labels: torch.Tensor,
    classes: Sequence[str],
    per_class: int = 8,
    title: str = "",
) -> Figure:
    """uint8 images (n, 3, H, W) in a grid: a row per class, ``per_class`` of each; chapter 9."""
    fig, axes = plt.subplots(
        len(classes), per_class, figsize=(0.75 * per_class + 1.4, 0.75 * len(classes) + 0.5)
    )
    for c, name in enumerate(classes):
        picks = (labels == c).nonzero().flatten()[:per_class].tolist()
        for k in range(per_class):
            ax = axes[c][k]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if k < len(picks):
                ax.imshow(images[picks[k]].permute(1, 2, 0).numpy(), interpolation="nearest")
        axes[c][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title or f"{per_class} images of each of the {len(classes)} classes")
    fig.supxlabel(f"examples of each class ({images.shape[-1]}x{images.shape[-2]} pixels)")
    fig.tight_layout()
    return fig


def history(runs: Mapping[str, Table], chance: float | None = None, title: str = "") -> Figure:
    """Training curves: train loss and test accuracy per epoch, one line per run; chapter 9.

    Takes histories as ``shufflelib.train.fit`` returns them. ``chance`` draws the accuracy of
    guessing (0.1 for ten classes) as a dashed line.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for k, (name, h) in enumerate(runs.items()):
        epochs = h.column("epoch")
        left.plot(epochs, h.column("train loss"), "o-", ms=3, color=f"C{k}", label=name)
        if "test accuracy" in h.columns:
            right.plot(epochs, h.column("test accuracy"), "o-", ms=3, color=f"C{k}", label=name)
    if chance is not None:
        right.axhline(chance, color="0.4", ls="--", lw=1, label="chance")
    left.set_xlabel("epoch")
    left.set_ylabel("training loss (cross-entropy, smoothed labels)")
    left.set_title("training loss", fontsize=10)
    right.set_xlabel("epoch")
    right.set_ylabel("test accuracy (top-1)")
    right.set_title("test accuracy", fontsize=10)
    right.set_ylim(0, 1)
    for ax in (left, right):
        ax.xaxis.get_major_locator().set_params(integer=True)
    right.legend(fontsize=8, loc="best")
    fig.suptitle(title or "Training curves")
    fig.tight_layout()
    return fig


def pareto(
    table: Table,
    x: str,
    y: str = "test accuracy",
    label: str = "model",
    front: Sequence[str] = (),
    xlabel: str = "",
    ax=None,
    title: str = "",
    xerr: str | None = None,
    yerr: str | None = None,
    ylabel: str = "",
) -> Figure:
    """Quality ``y`` against cost ``x``, one point per row, the Pareto ``front`` joined; ch. 10.

    ``front`` names the rows on the front (as :func:`shufflelib.metrics.pareto_front` finds
    them). ``xerr`` and ``yerr`` name columns drawn as error bars: a full width (an IQR, split
    evenly about the point) for ``xerr``, plus and minus the value (a standard deviation) for
    ``yerr``. Draws into ``ax`` when given.
    """
    fig, ax = plt.subplots(figsize=(5.6, 4.0)) if ax is None else (ax.figure, ax)
    names, xs, ys = table.column(label), table.column(x), table.column(y)
    xe = [v / 2 for v in table.column(xerr)] if xerr else None
    ye = table.column(yerr) if yerr else None
    on = [n in front for n in names]
    colours = ["C3" if f else "0.55" for f in on]
    if xe is not None or ye is not None:
        for k in range(len(names)):
            ax.errorbar(
                xs[k],
                ys[k],
                xerr=None if xe is None else xe[k],
                yerr=None if ye is None else ye[k],
                fmt="none",
                ecolor=colours[k],
                elinewidth=1,
                capsize=3,
            )
    ax.scatter(xs, ys, color=colours, zorder=3)
    points = sorted((xv, yv) for xv, yv, f in zip(xs, ys, on) if f)
    if points:
        ax.step(*zip(*points), where="post", color="C3", lw=1.2, label="Pareto front")
        ax.legend(fontsize=8, loc="lower right")
    for k, (n, xv, yv) in enumerate(zip(names, xs, ys)):
        offset, align = ((6, 4), "left") if k % 2 == 0 else ((-6, -10), "right")
        ax.annotate(
            str(n), (xv, yv), fontsize=8, xytext=offset, textcoords="offset points", ha=align
        )
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    ax.set_xlim(0, max(xs) * 1.3)
    ax.set_title(title or f"{y} against {x}", fontsize=10)
    fig.tight_layout()
    return fig


def seed_band(
    stored: Mapping[str, Sequence[Table]],
    live: Mapping[str, Table] | None = None,
    chance: float | None = None,
    title: str = "",
) -> Figure:
    """Test accuracy per epoch: the band from the lowest to the highest seed, the seeds' mean as
    a line, one colour per network, and ``live`` runs drawn over them as dots; chapter 9."""
    fig, ax = plt.subplots(figsize=(6.8, 4.0))
    for k, (name, histories) in enumerate(stored.items()):
        curves = torch.tensor([h.column("test accuracy") for h in histories])
        epochs = histories[0].column("epoch")
        lo, hi = curves.min(0).values, curves.max(0).values
        ax.fill_between(epochs, lo.tolist(), hi.tolist(), color=f"C{k}", alpha=0.25, lw=0)
        label = f"{name} ({len(histories)} seeds)"
        ax.plot(epochs, curves.mean(0).tolist(), color=f"C{k}", lw=1.2, label=label)
    for k, (name, h) in enumerate((live or {}).items()):
        ax.plot(
            h.column("epoch"), h.column("test accuracy"), "o", color="black", ms=5,
            mfc="white" if k else "black", label=f"{name} (trained live)",
        )  # fmt: skip
    if chance is not None:
        ax.axhline(chance, color="0.4", ls="--", lw=1, label="chance")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (top-1)")
    ax.set_ylim(0, 1)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title or "Test accuracy per epoch over seeds", fontsize=10)
    fig.tight_layout()
    return fig
