"""Every figure the book draws. Functions here draw data they are given; they compute no results.

Each returns the matplotlib ``Figure``; notebooks end the cell with ``;`` so it shows once.

All figures share one style (:data:`STYLE`, set when this module is imported): they are drawn at
the width of the book's content column, :data:`WIDTH` inches at :data:`DPI` dots per inch, so the
page shows them at their natural size, and no text in them is smaller than :data:`SMALLEST`
points. Points are labelled through a legend of markers rather than by text beside them, which
can overlap. ``tests/test_plot.py`` checks every function against this; ``tests/test_site.py``
checks the built pages.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .env import machine_part
from .tables import Table

if TYPE_CHECKING:
    from .bench import Roofline

__all__ = [
    "WIDTH",
    "DPI",
    "SMALLEST",
    "STYLE",
    "use_style",
    "figure",
    "publish",
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
    "achieved_roofline",
]

WIDTH = 6.6  # inches: the content column of a book page at 1280 px is about 690 px
DPI = 100  # so one inch of figure is 100 CSS pixels on the page
TEXT = 9  # points: titles, axis labels
SMALLEST = 8  # points: tick labels, legends, any other text; 8 pt at 100 dpi is 11 px
STYLE: dict[str, Any] = {
    "figure.figsize": (WIDTH, 3.4),
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "figure.constrained_layout.use": True,
    "font.size": TEXT,
    "axes.titlesize": TEXT,
    "axes.labelsize": TEXT,
    "figure.titlesize": TEXT + 1,
    "xtick.labelsize": SMALLEST,
    "ytick.labelsize": SMALLEST,
    "legend.fontsize": SMALLEST,
    "legend.title_fontsize": SMALLEST,
}


def use_style() -> None:
    """Set the book's figure style (:data:`STYLE`); importing this module calls it."""
    plt.rcParams.update(STYLE)


use_style()


def _wrap(text: str, inches: float, size: float = TEXT) -> str:
    """``text`` broken into lines that fit ``inches`` at ``size`` points (0.55 em per character);
    its own line breaks are kept."""
    width = max(12, int(inches * 72 / (0.55 * size)))
    return "\n".join(textwrap.fill(line, width) for line in text.split("\n"))


def _label(words: str, *notes: str) -> str:
    """An axis label: ``words`` and, in brackets, the non-empty ``notes`` (a column's unit):
    ``_label("measured latency", "ms")`` is "measured latency (ms)"."""
    notes = tuple(n for n in notes if n)
    return f"{words} ({', '.join(notes)})" if notes else words


def figure(nrows: int = 1, ncols: int = 1, height: float = 3.4, title: str = "", **kw):
    """A figure of the column's width with an ``nrows`` x ``ncols`` grid of panels.

    Returns ``(fig, axes)`` as ``plt.subplots`` does; ``title`` becomes the (wrapped) suptitle.
    For notebooks that put several of this module's panels side by side (chapter 10).
    """
    fig, axes = plt.subplots(nrows, ncols, figsize=(WIDTH, height), **kw)
    if title:
        fig.suptitle(_wrap(title, WIDTH, TEXT + 1))
    return fig, axes


def publish(name: str, fig: Figure) -> Figure:
    """Keep ``fig`` under ``name`` for other pages of the book, and return it.

    In the book's build this is MyST-NB's ``glue`` (the front page shows chapter 7's figure
    this way); where MyST-NB is not installed (Colab, a plain Jupyter) it does nothing more.
    The cell still shows the figure once, as any other.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be a Python identifier such as 'zoo_latency', got {name!r}")
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    try:
        from myst_nb import glue
    except ImportError:
        return fig
    glue(name, fig, display=False)
    return fig


def _panels(n: int) -> int:
    """Columns for ``n`` panels of a bar or line chart: at most two side by side."""
    return 1 if n == 1 else 2


_MARKERS = "osD^v<>PX*hp"


def _key_below(fig: Figure, handles: Sequence[Any], columns: int = 3) -> None:
    """One legend for the whole figure, under its panels, in as many columns (up to ``columns``)
    as its longest entry leaves room for."""
    longest = max(len(h.get_label()) for h in handles) * SMALLEST * 0.55 / 72 + 0.5  # inches
    columns = max(1, min(columns, int(WIDTH // longest)))
    fig.legend(handles=list(handles), loc="outside lower center", ncols=columns, frameon=False)


GROUP_COLOURS = plt.get_cmap("tab10").colors


def _group_lines(ax, channels: int, groups: int, axis: str = "both") -> None:
    size = channels / groups
    for k in range(1, groups):
        pos = k * size - 0.5
        if axis in ("both", "x"):
            ax.axvline(pos, color="0.5", lw=0.8, ls=":")
        if axis in ("both", "y"):
            ax.axhline(pos, color="0.5", lw=0.8, ls=":")


def _matrix_row(n: int, title: str):
    """``n`` square panels under a wrapped title: in one row up to three, else two to a row."""
    ncols = n if n <= 3 else 2
    nrows = -(-n // ncols)
    side = WIDTH / max(ncols, 2)
    fig, axes = figure(nrows, ncols, height=(side + 0.6) * nrows + 0.5, title=title)
    axes = [axes] if n == 1 else list(getattr(axes, "flat", axes))
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def weight_blocks(dense_weights: Mapping[str, torch.Tensor], groups: Sequence[int]) -> Figure:
    """|W| of 1x1 (or kxk, summed over the kernel) convolutions as C_out x C_in matrices; ch. 1."""
    title = "Weights as a matrix: a group convolution is block diagonal (grey = always 0)"
    fig, axes = _matrix_row(len(dense_weights), title)
    for ax, (name, w), g in zip(axes, dense_weights.items(), groups):
        m = w.detach().abs().sum(dim=(2, 3)).cpu()
        cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")  # masked (zero) entries: grey
        ax.imshow(torch.where(m == 0, float("nan"), m).numpy(), cmap=cmap, interpolation="nearest")
        _group_lines(ax, m.shape[0], g)
        ax.set_title(name)
        ax.set_xlabel("input channel")
        ax.set_ylabel("output channel")
    return fig


def connectivity(
    matrices: Mapping[str, torch.Tensor], groups: Sequence[int] | None = None, suptitle: str = ""
) -> Figure:
    """Boolean "output o sees input i" matrices side by side (chapters 1 and 2)."""
    n = len(matrices)
    title = suptitle or "Which input channels each output channel depends on (blue = yes)"
    fig, axes = _matrix_row(n, title)
    for k, (ax, (name, m)) in enumerate(zip(axes, matrices.items())):
        m = m.cpu()
        ax.imshow(m.float().numpy(), cmap="Blues", vmin=0, vmax=1.3, interpolation="nearest")
        if groups is not None:
            _group_lines(ax, m.shape[0], groups[k])
        seen = m.sum(dim=1).float().mean().item()
        text = f"{name}: each output sees {seen:.0f} of {m.shape[1]} inputs"
        ax.set_title(_wrap(text, WIDTH / max(n if n <= 3 else 2, 2) - 0.5))
        ax.set_xlabel("input channel")
        ax.set_ylabel("output channel")
    return fig


def permutation(perm: torch.Tensor, groups: int, title: str = "") -> Figure:
    """A channel permutation drawn as arrows from input slots to output slots; chapter 2.

    ``perm[k]`` is the input channel that lands in output slot ``k``. Colours mark the input
    group each channel came from.
    """
    perm = perm.cpu().tolist()
    c = len(perm)
    per_group = c // groups
    fig, ax = figure(height=2.6)
    for y, label, order in ((1.0, "input", list(range(c))), (0.0, "output", perm)):
        for slot, ch in enumerate(order):
            colour = GROUP_COLOURS[(ch // per_group) % len(GROUP_COLOURS)]
            ax.add_patch(Rectangle((slot - 0.42, y - 0.12), 0.84, 0.24, color=colour))
            ax.text(slot, y, str(ch), ha="center", va="center", fontsize=SMALLEST, color="white")
        ax.text(-0.8, y, label, ha="right", va="center")
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
    return fig


def cost_vs_groups(table: Table, x: str = "g", title: str = "") -> Figure:
    """Two panels against the group count: what the paper counts (params, MAdds) and time; ch. 1."""
    g = table.column(x)
    title = title or "Group convolution: cost on paper vs measured time"
    fig, (left, right) = figure(1, 2, height=3.4, title=title)
    left.plot(g, table.column("params"), "o-", label="parameters")
    left.plot(g, table.column("MAdds"), "s-", label="multiply-adds")
    left.set_xscale("log", base=2)
    left.set_yscale("log")
    left.set_xlabel("groups g (log scale)")
    left.set_ylabel("count (log scale)")
    left.set_title("Cost on paper: falls as 1/g")
    left.legend()
    median = table.column("median")
    iqr = table.column("IQR")
    right.errorbar(g, median, yerr=[v / 2 for v in iqr], fmt="o-", capsize=3, color="C2")
    right.set_xscale("log", base=2)
    right.set_yscale("log")
    right.set_xlabel("groups g (log scale)")
    right.set_ylabel(_label("time per forward pass", table.unit("median"), "log"))
    right.set_title("Measured time here (bars: IQR)")
    return fig


def benchmark_bars(tables: Mapping[str, Table], value: str = "ratio", title: str = "") -> Figure:
    """Horizontal bars of one column (default: time relative to the baseline) per table; ch. 2.

    One panel per table, stacked, so that long implementation names keep their room.
    """
    n = len(tables)
    rows = sum(len(t) for t in tables.values())
    title = title or "Channel shuffle implementations against the copy floor"
    fig, axes = figure(n, 1, height=0.28 * rows + 1.1 * n + 0.6, title=title, sharex=True)
    axes = [axes] if n == 1 else list(axes)
    top = max(max(t.column(value)) for t in tables.values())
    for ax, (name, table) in zip(axes, tables.items()):
        labels = table.column("name")
        values = table.column(value)
        colours = ["0.6" if "clone" in lab else "C0" for lab in labels]
        ax.barh(range(len(labels)), values, color=colours)
        ax.set_yticks(range(len(labels)), labels)
        ax.invert_yaxis()
        ax.axvline(1.0, color="k", lw=0.8, ls="--")
        for k, v in enumerate(values):
            ax.text(v, k, f" {v:.2f}x", va="center", fontsize=SMALLEST)
        ax.set_title(name)
        ax.set_xlim(0, max(top * 1.2, 1.5))
    axes[-1].set_xlabel("time relative to x.clone() (lower is faster; 1 = copy floor)")
    return fig


def mac_curves(by_ratio: Table, by_groups: Table, checked: Table | None = None) -> Figure:
    """G1 and G2 at fixed FLOPs: MAC against c2/c1, and MAC against g; chapter 3.

    ``checked`` (optional) holds integer configurations whose MAC was counted by
    :func:`shufflelib.cost.mac`; they are drawn as markers on the curves.
    """
    title = "Memory access cost of a 1x1 convolution at fixed multiply-adds B"
    fig, (left, right) = figure(1, 2, height=3.4, title=title)
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
    left.legend()
    right.plot(by_groups.column("g"), by_groups.column("MAC"), "o-", color="C1")
    right.set_xscale("log", base=2)
    right.set_xlabel("groups g (log scale)")
    right.set_ylabel("MAC (elements)")
    right.set_title("G2: MAC grows with g")
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
    """This machine's roofline with measured operators on it, and data movement below it; ch. 3.

    Colour tells the operator's kind, the marker which operator it is (see the key).
    """
    compute = [r for r in operators if r["MAdds"] > 0]
    moving = [r for r in operators if r["MAdds"] == 0]  # kind "no arithmetic"
    title = (
        f"Roofline of this machine ({roof.device}): peak {roof.peak_madds / 1e9:.0f} GMAdd/s, "
        f"ridge at {roof.ridge:.1f} MAdd/byte"
    )
    fig, (top, bottom) = figure(
        2, 1, height=4.6 + 0.25 * len(moving) + 0.2 * len(compute), title=title,
        height_ratios=[3.2, 0.6 + 0.25 * len(moving)],
    )  # fmt: skip
    _roof_lines(top, roof, [r["MAdd/byte"] for r in compute])
    kinds = sorted({r["kind"] for r in compute})
    for k, r in enumerate(compute):
        colour = f"C{kinds.index(r['kind'])}"
        marker = _MARKERS[k % len(_MARKERS)]
        top.plot(r["MAdd/byte"], r["GMAdd/s"], marker, color=colour, ms=7, ls="")
        top.plot([], [], marker, color=colour, ls="", label=f"{r['operator']} ({r['kind']})")
    top.set_title("Operators with arithmetic: measured against the roofline")
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    names = [r["operator"] for r in moving]
    bottom.barh(range(len(moving)), [r["GB/s"] for r in moving], color="C4")
    bottom.set_yticks(range(len(moving)), names)
    bottom.invert_yaxis()
    bottom.axvline(roof.bandwidth / 1e9, color="k", lw=2, label="DRAM copy")
    if roof.cache_copy_bytes:
        bottom.axvline(roof.cache_bandwidth / 1e9, color="k", ls=":", label="in-cache copy")
    bottom.set_xlabel("achieved GB/s (MAC bytes / time)")
    bottom.set_title("No arithmetic: only bandwidth matters")
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return fig


def network_roofline(roof: Roofline, points: Table, title: str = "") -> Figure:
    """Whole networks on this machine's roofline, one point per variant and batch; chapter 11.

    ``points`` comes from :func:`shufflelib.ladder.roofline_points`. Colour tells the network and
    batch size (its ``kind``), the marker the variant (the text of ``operator`` before " (b");
    the points of one network and batch share an intensity, so they stand in a column, and the
    gap between a point and the roofline above it is the time that variant leaves on the table.
    """
    title = (
        title
        or f"Whole networks on the roofline of this machine ({roof.device}): peak "
        f"{roof.peak_madds / 1e9:.0f} GMAdd/s"
    )
    fig, ax = figure(height=5.2, title=title)
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
    _key_below(fig, lines + handles, columns=2)
    return fig


def guideline_speeds(
    tables: Mapping[str, Table], config: str | Sequence[str], title: str = ""
) -> Figure:
    """Relative speed per configuration: this machine beside the paper's GPU and ARM; chapter 4.

    One panel per table (one per size column), two to a row. Each configuration gets three bars:
    our measured speed (with its 95% interval, ``speed low`` to ``speed high``, when the table
    has them) and the paper's GPU and ARM speeds, each divided by the first configuration's.
    ``config`` names the column(s) that label a configuration (several are joined with "/");
    long labels wrap, and then the panels stand one above another.
    """
    columns = [config] if isinstance(config, str) else list(config)
    n = len(tables)
    every = [["/".join(str(row[c]) for c in columns) for row in t] for t in tables.values()]
    # Long labels (chapter 4's G3 structures) get a panel of the full width, one above another.
    ncols = 1 if max(len(lab) for labels in every for lab in labels) > 8 else _panels(n)
    nrows = -(-n // ncols)
    title = title or "Relative speed: higher is faster; the first configuration is 1"
    fig, axes = figure(nrows, ncols, height=2.5 * nrows + 0.9, title=title, sharey=True)
    axes = list(axes.flat) if n > 1 else [axes]
    series = (
        ("relative speed", "this machine", "C0"),
        ("paper GPU", "paper: GPU", "C1"),
        ("paper ARM", "paper: ARM", "C2"),
    )
    for ax, (name, table), labels in zip(axes, tables.items(), every):
        for k, (column, label, colour) in enumerate(series):
            values = [v if v is not None else float("nan") for v in table.column(column)]
            err = None
            if column == "relative speed" and "speed low" in table.columns:  # the 95% interval
                low, high = table.column("speed low"), table.column("speed high")
                err = [
                    [v - lo for v, lo in zip(values, low)],
                    [hi - v for v, hi in zip(values, high)],
                ]
            ax.bar(
                [i + (k - 1) * 0.27 for i in range(len(labels))],
                values,
                width=0.27,
                color=colour,
                label=label if err is None else f"{label} (95% interval)",
                yerr=err,
                capsize=2,
                error_kw={"elinewidth": 0.8},
            )
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        room = (WIDTH / ncols - 0.8) / len(labels)  # inches of axis per configuration
        ticks = [_wrap(lab.replace("-", " "), room, SMALLEST) for lab in labels]
        ax.set_xticks(range(len(labels)), ticks)
        ax.set_xlabel(" / ".join(columns))
        ax.set_title(name)
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax in axes[::ncols]:
        ax.set_ylabel("relative speed")
    handles, _ = axes[0].get_legend_handles_labels()
    _key_below(fig, handles)
    return fig


def stage_costs(table: Table, title: str = "") -> Figure:
    """Parameters, MAdds and MAC per stage, from :func:`shufflelib.cost.stage_report`; ch. 5-8."""
    stages = [str(s) for s in table.column("stage")]
    height = 0.22 * len(stages) + 1.6
    fig, axes = figure(1, 3, height=height, title=title or table.title, sharey=True)
    panels = (
        ("params", "parameters (millions)", 1e6),
        ("MAdds", "multiply-adds (millions)", 1e6),
        ("MAC", "memory access (MB)", 1e6),
    )
    for k, (ax, (column, label, scale)) in enumerate(zip(axes, panels)):
        ax.barh(range(len(stages)), [v / scale for v in table.column(column)], color=f"C{k}")
        ax.set_xlabel(label)
        ax.set_title(f"{column} by stage")
    axes[0].set_yticks(range(len(stages)), stages)
    axes[0].invert_yaxis()
    return fig


def _marked_points(ax, names, xs, ys, colours=None, xerr=None, yerr=None) -> list:
    """One marker per point, with error bars; returns the legend handles naming each point."""
    handles = []
    for k, (name, x, y) in enumerate(zip(names, xs, ys)):
        colour = colours[k] if colours else f"C{k % 10}"
        marker = _MARKERS[k % len(_MARKERS)]
        ax.errorbar(
            x,
            y,
            xerr=None if xerr is None else xerr[k],
            yerr=None if yerr is None else yerr[k],
            fmt=marker,
            color=colour,
            ms=7,
            elinewidth=1,
            capsize=3,
        )
        handles.append(plt.Line2D([], [], marker=marker, color=colour, ls="", label=str(name)))
    return handles


def latency_vs_madds(table: Table, title: str = "") -> Figure:
    """Measured latency against multiply-adds, one marked point per model (IQR bars); ch. 5-8.

    Takes a :func:`shufflelib.bench.model_latency` table. Points on one line through the origin
    would mean FLOPs predict speed; the scatter around it is what they miss. The axes span the
    data (they do not start at zero), and the key names each point.
    """
    fig, ax = figure(height=4.2)
    x, y, iqr = table.column("MAdds"), table.column("median"), table.column("IQR")
    handles = _marked_points(ax, table.column("model"), x, y, yerr=[v / 2 for v in iqr])
    ax.margins(0.12)
    ax.set_xlabel("multiply-adds (millions)")
    ax.set_ylabel(_label("measured latency", table.unit("median")))
    heading = title or table.title
    if table.note:  # the machine it was measured on (bench.model_latency's note)
        heading += f"\n{machine_part(table.note)}"
    ax.set_title(_wrap(heading, WIDTH))
    _key_below(fig, handles)
    return fig


def survival(probabilities: Sequence[float], title: str = "") -> Figure:
    """Stochastic depth: each block's survival probability (1 - drop probability); chapter 8."""
    fig, ax = figure(height=2.9)
    keep = [1 - p for p in probabilities]
    ax.plot(range(len(keep)), keep, "o-", ms=3)
    ax.set_xlabel("block index (input side to output side)")
    ax.set_ylabel("survival probability")
    ax.set_ylim(min(keep + [0.75]) - 0.02, 1.01)
    ax.set_title(title or "Stochastic depth: deeper blocks are dropped more often")
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
    n = len(settings)
    ncols = _panels(n)
    nrows = -(-n // ncols)
    fig, axes = figure(nrows, ncols, height=2.3 * nrows + 0.4, title=title or table.title)
    axes = list(axes.flat) if n > 1 else [axes]
    for k, (ax, name) in enumerate(zip(axes, settings)):
        ax.plot(table.column("stage"), table.column(name), "o-", color=f"C{k}")
        ax.set_xlabel("training stage")
        ax.set_ylabel(_SCHEDULE_UNITS.get(name, name))
        ax.set_title(name)
        ax.set_xticks(table.column("stage"))
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig


def samples(
    images: torch.Tensor,
    labels: torch.Tensor,
    classes: Sequence[str],
    per_class: int = 8,
    title: str = "",
) -> Figure:
    """uint8 images (n, 3, H, W) in a grid: a row per class, ``per_class`` of each; chapter 9."""
    side = min(0.6, (WIDTH - 1.4) / per_class)
    fig, axes = plt.subplots(
        len(classes), per_class, figsize=(WIDTH, side * len(classes) + 0.7), squeeze=False
    )
    for c, name in enumerate(classes):
        picks = (labels == c).nonzero().flatten()[:per_class].tolist()
        for k in range(per_class):
            ax = axes[c][k]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if k < len(picks):
                ax.imshow(images[picks[k]].permute(1, 2, 0).numpy(), interpolation="nearest")
        axes[c][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=SMALLEST)
    fig.suptitle(title or f"{per_class} images of each of the {len(classes)} classes")
    fig.supxlabel(f"examples of each class ({images.shape[-1]}x{images.shape[-2]} pixels)")
    return fig


def history(runs: Mapping[str, Table], chance: float | None = None, title: str = "") -> Figure:
    """Training curves: train loss and test accuracy per epoch, one line per run; chapter 9.

    Takes histories as ``shufflelib.train.fit`` returns them. ``chance`` draws the accuracy of
    guessing (0.1 for ten classes) as a dashed line.
    """
    fig, (left, right) = figure(1, 2, height=3.4, title=title or "Training curves")
    for k, (name, h) in enumerate(runs.items()):
        epochs = h.column("epoch")
        left.plot(epochs, h.column("train loss"), "o-", ms=3, color=f"C{k}", label=name)
        if "test accuracy" in h.columns:
            right.plot(epochs, h.column("test accuracy"), "o-", ms=3, color=f"C{k}", label=name)
    if chance is not None:
        right.axhline(chance, color="0.4", ls="--", lw=1, label="chance")
    left.set_xlabel("epoch")
    left.set_ylabel("training loss (cross-entropy)")
    left.set_title("training loss")
    right.set_xlabel("epoch")
    right.set_ylabel("test accuracy (top-1)")
    right.set_title("test accuracy")
    right.set_ylim(0, 1)
    for ax in (left, right):
        ax.xaxis.get_major_locator().set_params(integer=True)
    right.legend(loc="best")
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
    """Quality ``y`` against cost ``x``, a marked point per row, the Pareto front joined; ch. 10.

    ``front`` names the rows on the front (as :func:`shufflelib.metrics.pareto_front` finds
    them); their markers are outlined in red. ``xerr`` and ``yerr`` name columns drawn as error
    bars: a full width (an IQR, split evenly about the point) for ``xerr``, plus and minus the
    value (a standard deviation) for ``yerr``. Draws into ``ax`` when given (panels of one
    :func:`figure`); the figure gets one key naming the points, under its panels.
    """
    fig, ax = figure(height=4.2) if ax is None else (ax.figure, ax)
    names, xs, ys = table.column(label), table.column(x), table.column(y)
    xe = [v / 2 for v in table.column(xerr)] if xerr else None
    ye = table.column(yerr) if yerr else None
    handles = _marked_points(ax, names, xs, ys, xerr=xe, yerr=ye)
    on = [n in front for n in names]
    ax.scatter(
        [v for v, f in zip(xs, on) if f], [v for v, f in zip(ys, on) if f],
        s=160, facecolors="none", edgecolors="C3", lw=1.5, zorder=3,
    )  # fmt: skip
    points = sorted((xv, yv) for xv, yv, f in zip(xs, ys, on) if f)
    if points:
        ax.step(*zip(*points), where="post", color="C3", lw=1.2)
    ax.set_xlabel(xlabel or table.header(x))
    ax.set_ylabel(ylabel or table.header(y))
    ax.margins(0.15)
    title = title or f"{table.header(y)} against {table.header(x)}"
    ax.set_title(_wrap(title, ax.get_position().width * WIDTH))
    if not fig.legends:
        front_key = plt.Line2D(
            [], [], color="C3", marker="o", mfc="none", ms=11, label="Pareto front"
        )
        _key_below(fig, [*handles, front_key])
    return fig


def seed_band(
    stored: Mapping[str, Sequence[Table]],
    live: Mapping[str, Table] | None = None,
    chance: float | None = None,
    title: str = "",
) -> Figure:
    """Test accuracy per epoch: the band from the lowest to the highest seed, the seeds' mean as
    a line, one colour per network, and ``live`` runs drawn over them as dots; chapter 9."""
    fig, ax = figure(height=4.2)
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
    lowest = [v for hs in stored.values() for h in hs for v in h.column("test accuracy")]
    lowest += [v for h in (live or {}).values() for v in h.column("test accuracy")]
    lowest += [] if chance is None else [chance]
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (top-1)")
    ax.set_ylim(max(0.0, min(lowest) - 0.03), 1.0)  # the plateau near 1 keeps its room
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="lower right")
    ax.set_title(title or "Test accuracy per epoch over seeds")
    return fig


def achieved_roofline(roof: Roofline, table: Table, title: str = "") -> Figure:
    """3x3 convolutions on this machine's roofline: colour per convolution, marker per map;
    chapter 12. Takes :func:`shufflelib.achieved.achieved_flops`'s table (``intensity`` in
    MAdd/byte, ``achieved`` in GMAdd/s); a point's height is the FLOPS it achieved, and the gap
    to the roofline above it what it leaves on the table."""
    title = title or (
        f"3x3 convolutions on the roofline of this machine ({roof.device}): peak "
        f"{roof.peak_madds / 1e9:.0f} GMAdd/s, ridge at {roof.ridge:.1f} MAdd/byte"
    )
    fig, ax = figure(height=4.8, title=title)
    _roof_lines(ax, roof, table.column("intensity"))
    kinds = list(dict.fromkeys(table.column("convolution")))
    maps = list(dict.fromkeys(table.column("map")))
    for r in table:
        ax.plot(
            r["intensity"],
            r["achieved"],
            _MARKERS[maps.index(r["map"]) % len(_MARKERS)],
            color=f"C{kinds.index(r['convolution']) % 10}",
            ms=8,
        )
    ax.set_xlabel(f"arithmetic intensity ({table.unit('intensity')} of MAC, log scale)")
    ax.set_ylabel(f"achieved FLOPS ({table.unit('achieved')}, log scale)")
    handles = [
        plt.Line2D([], [], color=f"C{k % 10}", marker="o", ls="", label=f"{kind} 3x3")
        for k, kind in enumerate(kinds)
    ] + [
        plt.Line2D(
            [], [], color="0.3", marker=_MARKERS[m % len(_MARKERS)], ls="", label=f"map {name}"
        )
        for m, name in enumerate(maps)
    ]
    lines, _ = ax.get_legend_handles_labels()
    _key_below(fig, lines + handles, columns=3)
    return fig
