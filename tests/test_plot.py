"""Every figure has a title and labelled axes, and draws the data it is given."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from shufflelib import cost, ops, plot  # noqa: E402
from shufflelib.bench import Roofline  # noqa: E402
from shufflelib.guidelines import G3_STRUCTURES  # noqa: E402
from shufflelib.tables import Table  # noqa: E402


def drawn_texts(fig) -> list:
    """The text artists a draw of ``fig`` actually puts on the canvas (visible, non-empty)."""
    drawn, original = [], Text.draw

    def record(self, renderer):
        if self.get_visible() and self.get_text().strip() and self.get_alpha() != 0:
            drawn.append(self)
        return original(self, renderer)

    Text.draw = record
    try:
        fig.canvas.draw()
    finally:
        Text.draw = original
    return drawn


def readable(fig) -> None:
    """The book's one figure style holds: drawn at the column's width and resolution, no text
    smaller than plot.SMALLEST points, every text inside the figure, no two texts overlapping."""
    assert fig.get_figwidth() == pytest.approx(plot.WIDTH) and fig.dpi == plot.DPI
    texts = drawn_texts(fig)
    renderer = fig.canvas.get_renderer()
    boxes = [(t, t.get_window_extent(renderer)) for t in texts]
    for t, box in boxes:
        assert t.get_fontsize() >= plot.SMALLEST, f"{t.get_text()!r} at {t.get_fontsize()} pt"
        assert box.x0 >= -1 and box.x1 <= fig.bbox.width + 1, f"{t.get_text()!r} leaves the figure"
        assert box.y0 >= -1 and box.y1 <= fig.bbox.height + 1, f"{t.get_text()!r} leaves the figure"
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1 :]:
            w = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
            h = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
            assert w <= 1 or h <= 1, f"{a.get_text()!r} overlaps {b.get_text()!r}"


def labelled(fig):
    titled = fig._suptitle is not None and fig._suptitle.get_text()
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        assert ax.get_title() or titled, "every panel has a title"
        assert ax.get_xlabel(), "every panel labels its x axis"
    readable(fig)
    plt.close(fig)


def test_weight_blocks_masks_zeros():
    w = ops.group_conv_dense_weight(torch.randn(8, 2, 1, 1), 4)
    fig = plot.weight_blocks({"g = 4": w}, groups=[4])
    image = fig.axes[0].get_images()[0].get_array()
    assert image.mask.sum() == 64 - 16  # the off-diagonal blocks are masked (drawn grey)
    labelled(fig)


def test_connectivity_and_permutation_and_bars():
    m = ops.group_connectivity(8, [2, 2], shuffle=True)
    fig = plot.connectivity({"a": m, "b": ~m}, groups=[2, 2])
    assert "8 of 8" in fig.axes[0].get_title()
    labelled(fig)
    four = {f"g={g}, m={c}, {s}": ops.group_connectivity(c, [g, g], shuffle=s == "shuffle")
            for g, c in ((3, 60), (8, 96)) for s in ("no shuffle", "shuffle")}  # fmt: skip
    fig = plot.connectivity(four, groups=[3, 3, 8, 8])  # chapter 5: two rows of two
    assert [ax.get_visible() for ax in fig.axes] == [True] * 4
    assert fig.axes[0].get_position().y0 > fig.axes[2].get_position().y0
    labelled(fig)
    labelled(plot.permutation(ops.shuffle_permutation(8, 2), 2))
    bars = Table([{"name": "x.clone() (copy floor)", "ratio": 1.0}, {"name": "ours", "ratio": 1.1}])
    fig = plot.benchmark_bars({"NCHW": bars})
    assert [p.get_width() for p in fig.axes[0].patches] == [1.0, 1.1]
    labelled(fig)


def test_cost_vs_groups():
    rows = [
        {"g": g, "params": 64 // g, "MAdds": 640 // g, "median": 1.0, "IQR": 0.1} for g in (1, 2)
    ]
    fig = plot.cost_vs_groups(Table(rows, units={"median": "ms", "IQR": "ms"}))
    assert fig.axes[1].get_ylabel() == "time per forward pass (ms, log)"
    labelled(fig)
    fig = plot.cost_vs_groups(Table(rows, units={"median": "us", "IQR": "us"}))
    assert fig.axes[1].get_ylabel() == "time per forward pass (us, log)"  # the table's unit
    labelled(fig)


def test_mac_curves_and_roofline():
    by_ratio = cost.mac_vs_ratio(8, 8, 8 * 8 * 16 * 16, [0.5, 1.0, 2.0])
    by_groups = cost.mac_vs_groups(8, 8, 16, 8 * 8 * 16 * 16, [1, 2])
    labelled(plot.mac_curves(by_ratio, by_groups))
    roof = Roofline(
        peak_madds=1e11,
        bandwidth=1e10,
        device="cpu",
        matmul_size=64,
        copy_bytes=1,
        cache_bandwidth=5e10,
        cache_copy_bytes=2**20,
    )
    ops_table = Table(
        [
            {
                "operator": "conv",
                "kind": "conv 1x1",
                "MAdds": 100,
                "MAdd/byte": 2.0,
                "GMAdd/s": 15.0,
                "GB/s": 7.5,
            },
            {
                "operator": "ReLU",
                "kind": "data movement",
                "MAdds": 0,
                "MAdd/byte": 0.0,
                "GMAdd/s": 0.0,
                "GB/s": 30.0,
            },
        ]
    )
    fig = plot.roofline(roof, ops_table)
    assert fig.axes[0].get_xscale() == "log"
    labelled(fig)


def test_network_roofline_marks_each_variant_and_batch():
    roof = Roofline(peak_madds=1e11, bandwidth=1e10, device="cpu", matmul_size=64, copy_bytes=1)
    points = Table(
        {
            "operator": f"{variant} (b{b})",
            "kind": f"net, batch {b}",
            "MAdds": 100,
            "MAC": 50,
            "MAdd/byte": 2.0,
            "GMAdd/s": speed * b,
            "GB/s": speed * b / 2,
        }
        for b in (1, 16)
        for variant, speed in (("torchvision eager", 1.0), ("+ compiled", 3.0))
    )
    fig = plot.network_roofline(roof, points)
    ax = fig.axes[0]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    drawn = [
        (line.get_xdata()[0], line.get_ydata()[0])
        for line in ax.lines
        if len(line.get_xdata()) == 1
    ]
    assert sorted(drawn) == [(2.0, 1.0), (2.0, 3.0), (2.0, 16.0), (2.0, 48.0)]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    for expected in ("net, batch 1", "net, batch 16", "torchvision eager", "+ compiled"):
        assert expected in labels
    labelled(fig)


def test_guideline_speeds_draws_three_series_per_config():
    t = Table(
        {"g": g, "relative speed": 1 / g, "paper GPU": 1 / g**0.5, "paper ARM": None}
        for g in (1, 2, 4)
    )
    fig = plot.guideline_speeds({"x1": t, "x2": t}, "g")
    assert len(fig.axes) == 2
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights[:3] == [1.0, 0.5, 0.25] and len(heights) == 9
    labelled(fig)
    for row in t:  # with its interval, our bars carry error bars from speed low to speed high
        row.update({"speed low": row["relative speed"] * 0.9, "speed high": row["relative speed"]})
    fig = plot.guideline_speeds({"x1": t}, "g")
    (ours,) = [c for c in fig.axes[0].containers if getattr(c, "errorbar", None) is not None]
    segments = ours.errorbar.lines[2][0].get_segments()
    assert [s[:, 1].tolist() for s in segments][1] == pytest.approx([0.45, 0.5])
    labelled(fig)
    two = Table(
        {"ReLU": r, "shortcut": "no", "relative speed": 1.0, "paper GPU": 1.0, "paper ARM": 1.0}
        for r in ("yes", "no")
    )
    fig = plot.guideline_speeds({"c=32": two}, ["ReLU", "shortcut"])
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == ["yes/no", "no/no"] and fig.axes[0].get_xlabel() == "ReLU / shortcut"
    labelled(fig)


def test_zoo_figures():
    stages = Table(
        [
            {"stage": "conv1", "params": 1e3, "MAdds": 1e6, "MAC": 2e6},
            {"stage": "stage2", "params": 3e4, "MAdds": 2e7, "MAC": 1e7},
        ],
        title="by stage",
    )
    fig = plot.stage_costs(stages)
    assert [p.get_width() for p in fig.axes[1].patches] == [1.0, 20.0]
    labelled(fig)
    lat = Table(
        [
            {"model": "a", "MAdds": 140.0, "median": 5.0, "IQR": 0.2},
            {"model": "b", "MAdds": 300.0, "median": 7.0, "IQR": 0.4},
        ],
        units={"MAdds": "M", "median": "ms", "IQR": "ms"},
    )
    fig = plot.latency_vs_madds(lat, title="latency")
    assert fig.axes[0].get_ylabel() == "measured latency (ms)"
    labelled(fig)
    fig = plot.survival([0.0, 0.1, 0.2])
    assert list(fig.axes[0].lines[0].get_ydata()) == [1.0, 0.9, 0.8]
    labelled(fig)
    sched = Table(
        [
            {"stage": 1, "image size": 128, "dropout": 0.1},
            {"stage": 2, "image size": 300, "dropout": 0.3},
        ],
        title="schedule",
    )
    fig = plot.schedule(sched)
    assert len(fig.axes) == 2
    assert [ax.get_ylabel() for ax in fig.axes] == ["image side (pixels)", "dropout rate"]
    labelled(fig)


def test_samples_history_and_pareto():
    images = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(40) % 4
    fig = plot.samples(images, labels, ["a", "b", "c", "d"], per_class=3)
    assert len(fig.axes) == 12 and fig.axes[0].get_ylabel() == "a"
    assert (fig.axes[4].get_images()[0].get_array() == images[5].permute(1, 2, 0).numpy()).all()
    plt.close(fig)
    h = Table([{"epoch": e, "train loss": 2.0 / e, "test accuracy": 0.1 * e} for e in (1, 2, 3)])
    fig = plot.history({"net": h, "other": h}, chance=0.1)
    left, right = fig.axes
    assert list(left.lines[0].get_ydata()) == [2.0, 1.0, 2.0 / 3]
    assert len(right.lines) == 3  # two runs and the chance line
    labelled(fig)
    t = Table(
        [
            {"model": "a", "ms": 1.0, "test accuracy": 0.5},
            {"model": "b", "ms": 2.0, "test accuracy": 0.4},
            {"model": "c", "ms": 3.0, "test accuracy": 0.7},
        ]
    )
    fig = plot.pareto(t, "ms", front=["a", "c"], xlabel="latency (ms)")
    ax = fig.axes[0]
    ring = ax.collections[0].get_offsets().tolist()  # the front's points are ringed
    assert ax.get_xlabel() == "latency (ms)" and ring == [[1.0, 0.5], [3.0, 0.7]]
    assert list(ax.lines[-1].get_xdata()) == [1.0, 3.0]  # the front joins a and c
    key = [t.get_text() for t in fig.legends[0].get_texts()]
    assert key == ["a", "b", "c", "Pareto front"]  # the key names every point
    labelled(fig)
    # two panels of one figure share one key
    fig, (left, right) = plot.figure(1, 2, height=4.0, title="two fronts")
    plot.pareto(t, "ms", front=["a", "c"], ax=left)
    plot.pareto(t, "test accuracy", y="ms", front=["a"], ax=right)
    assert len(fig.legends) == 1 and fig.get_figwidth() == plot.WIDTH
    labelled(fig)
    for row in t:
        row.update({"IQR": 0.2, "sd": 0.05})
    fig = plot.pareto(t, "ms", front=["a", "c"], xerr="IQR", yerr="sd", ylabel="acc")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "acc" and len(ax.containers) == 3  # one error bar per point
    bars = ax.containers[0].lines[2]  # (x bars, y bars) of the first point
    assert bars[0].get_segments()[0][:, 0].tolist() == [0.9, 1.1]  # the IQR, split about x
    assert bars[1].get_segments()[0][:, 1].tolist() == pytest.approx([0.45, 0.55])
    labelled(fig)
    typed = Table([{"model": "a", "b1": 1.0, "test accuracy": 0.5}], units={"b1": "ms"})
    ax = plot.pareto(typed, "b1").axes[0]  # without xlabel: the column's header
    assert ax.get_xlabel() == "b1 (ms)" and ax.get_ylabel() == "test accuracy"
    assert ax.get_title() == "test accuracy against b1 (ms)"
    plt.close(ax.figure)
    plt.close(fig)


def test_seed_band():
    runs = [Table([{"epoch": e, "test accuracy": a + 0.1 * e} for e in (1, 2)]) for a in (0.5, 0.6)]
    live = Table([{"epoch": 1, "test accuracy": 0.62}])
    fig = plot.seed_band({"net": runs}, live={"net live": live}, chance=0.1, title="band")
    ax = fig.axes[0]
    assert ax.get_title() == "band" and len(ax.collections) == 1  # the band
    mean, dots, chance = ax.lines
    assert list(mean.get_ydata()) == pytest.approx([0.65, 0.75])
    assert list(dots.get_ydata()) == [0.62] and list(chance.get_ydata()) == [0.1, 0.1]
    labelled(fig)


def test_figures_with_the_books_longest_labels_stay_readable():
    # chapter 3's operators, chapter 4's G3 structures, chapter 7's zoo: real names and counts
    names = ["1x1 32->32", "1x1 128->128", "1x1 512->512", "3x3 depthwise 128"]
    names += [f"1x1 256, g={g}" for g in (1, 2, 4, 8)]
    rows = [
        {"operator": n, "kind": "group conv" if "g=" in n else "1x1 conv", "MAdds": 10,
         "MAdd/byte": 1.0 + k / 4, "GMAdd/s": 10.0 + k, "GB/s": 5.0}
        for k, n in enumerate(names)
    ] + [
        {"operator": n, "kind": "no arithmetic", "MAdds": 0, "MAdd/byte": 0.0, "GMAdd/s": 0.0,
         "GB/s": 20.0}
        for n in ("ReLU", "add", "concat", "channel shuffle")
    ]  # fmt: skip
    roof = Roofline(
        peak_madds=1e11, bandwidth=1e10, device="AMD EPYC (2 cores, 2 threads) | device cpu",
        matmul_size=64, copy_bytes=1, cache_bandwidth=5e10, cache_copy_bytes=2**20,
    )  # fmt: skip
    labelled(plot.roofline(roof, Table(rows)))
    structures = Table(
        {"structure": s, "relative speed": 1.0 - k / 10, "paper GPU": 1.0, "paper ARM": None}
        for k, s in enumerate(G3_STRUCTURES)
    )
    fig = plot.guideline_speeds({f"c = {c}": structures for c in (64, 128, 256)}, "structure")
    assert [ax.get_title() for ax in fig.axes[:3]] == ["c = 64", "c = 128", "c = 256"]
    labelled(fig)
    zoo = Table(
        ({"model": f"shufflenet_v2_x{w} (torchvision)", "MAdds": 40.0 * (k + 1),
          "median": 3.0 + k / 10, "IQR": 0.5}
         for k, w in enumerate(("0_5", "1_0", "1_5", "2_0", "0_5 ours", "1_0 ours"))),
        units={"MAdds": "M", "median": "ms", "IQR": "ms"},
    )  # fmt: skip
    labelled(plot.latency_vs_madds(zoo, title="latency against multiply-adds, batch 1"))


def test_publish_keeps_a_figure_for_other_pages_and_checks_its_arguments():
    fig, _ = plot.figure(title="kept")
    assert plot.publish("zoo_latency", fig) is fig
    with pytest.raises(ValueError, match="identifier"):
        plot.publish("zoo latency", fig)
    with pytest.raises(TypeError, match="Figure"):
        plot.publish("zoo_latency", "a figure")
    plt.close(fig)


def test_the_style_is_the_books_and_can_be_set_again():
    plt.rcParams["font.size"] = 20
    plot.use_style()
    assert plt.rcParams["font.size"] == plot.STYLE["font.size"]
    assert plt.rcParams["xtick.labelsize"] == plot.SMALLEST
    assert plt.rcParams["figure.dpi"] == plot.DPI
    fig, axes = plot.figure(2, 2, height=5.0)
    assert axes.shape == (2, 2) and fig.get_size_inches().tolist() == [plot.WIDTH, 5.0]
    plt.close(fig)


def test_achieved_roofline_colours_each_convolution_and_marks_each_map():
    roof = Roofline(peak_madds=1e11, bandwidth=1e10, device="cpu", matmul_size=64, copy_bytes=1)
    table = Table(
        [
            {"map": m, "convolution": c, "intensity": i, "achieved": a}
            for m in ("96\u00d756\u00d756", "768\u00d77\u00d77")
            for c, i, a in (
                ("regular", 20.0, 50.0),
                ("depthwise", 1.1, 3.0),
                ("partial", 5.0, 20.0),
            )
        ],
        units={"intensity": "MAdd/byte", "achieved": "GMAdd/s"},
    )
    fig = plot.achieved_roofline(roof, table)
    ax = fig.axes[0]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    points = [line for line in ax.lines if len(line.get_xdata()) == 1]
    assert len(points) == 6 and len({line.get_color() for line in points}) == 3
    assert "GMAdd/s" in ax.get_ylabel() and "MAdd/byte" in ax.get_xlabel()
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "partial 3x3" in labels and "map 768\u00d77\u00d77" in labels
    labelled(fig)


FUNCTIONS = [n for n in plot.__all__ if callable(getattr(plot, n))]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_plot_function_is_tested(name):
    # Read from this file's own code, so the check cannot drift from the tests above.
    source = Path(__file__).read_text().split("def test_every_plot_function_is_tested")[0]
    assert f"plot.{name}(" in source, f"plot.{name} has no test in tests/test_plot.py"
