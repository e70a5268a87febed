"""Every figure has a title and labelled axes, and draws the data it is given."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from shufflelib import cost, ops, plot  # noqa: E402
from shufflelib.bench import Roofline  # noqa: E402
from shufflelib.tables import Table  # noqa: E402


def labelled(fig):
    titled = fig._suptitle is not None and fig._suptitle.get_text()
    for ax in fig.axes:
        assert ax.get_title() or titled, "every panel has a title"
        assert ax.get_xlabel(), "every panel labels its x axis"
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
    labelled(plot.permutation(ops.shuffle_permutation(8, 2), 2))
    bars = Table([{"name": "x.clone() (copy floor)", "ratio": 1.0}, {"name": "ours", "ratio": 1.1}])
    fig = plot.benchmark_bars({"NCHW": bars})
    assert [p.get_width() for p in fig.axes[0].patches] == [1.0, 1.1]
    labelled(fig)


def test_cost_vs_groups():
    t = Table(
        {"g": g, "params": 64 // g, "MAdds": 640 // g, "median (ms)": 1.0, "IQR (ms)": 0.1}
        for g in (1, 2, 4)
    )
    labelled(plot.cost_vs_groups(t))


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
            "MAC (bytes)": 50,
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
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
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
            {"stage": "conv1", "params": 1e3, "MAdds": 1e6, "MAC (bytes)": 2e6},
            {"stage": "stage2", "params": 3e4, "MAdds": 2e7, "MAC (bytes)": 1e7},
        ],
        title="by stage",
    )
    fig = plot.stage_costs(stages)
    assert [p.get_width() for p in fig.axes[1].patches] == [1.0, 20.0]
    labelled(fig)
    lat = Table(
        [
            {"model": "a", "MAdds (M)": 140.0, "median (ms)": 5.0, "IQR (ms)": 0.2},
            {"model": "b", "MAdds (M)": 300.0, "median (ms)": 7.0, "IQR (ms)": 0.4},
        ]
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
    assert ax.get_xlabel() == "latency (ms)" and len(ax.collections) == 1  # one scatter
    assert list(ax.lines[0].get_xdata()) == [1.0, 3.0]  # the front joins a and c
    labelled(fig)
    plt.close(fig)
    for row in t:
        row.update({"IQR": 0.2, "sd": 0.05})
    fig = plot.pareto(t, "ms", front=["a", "c"], xerr="IQR", yerr="sd", ylabel="acc")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "acc" and len(ax.containers) == 3  # one error bar per point
    bars = ax.containers[0].lines[2]  # (x bars, y bars) of the first point
    assert bars[0].get_segments()[0][:, 0].tolist() == [0.9, 1.1]  # the IQR, split about x
    assert bars[1].get_segments()[0][:, 1].tolist() == pytest.approx([0.45, 0.55])
    labelled(fig)
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


@pytest.mark.parametrize("name", plot.__all__)
def test_every_plot_function_is_tested(name):
    # Read from this file's own code, so the check cannot drift from the tests above.
    source = Path(__file__).read_text().split("def test_every_plot_function_is_tested")[0]
    assert f"plot.{name}(" in source, f"plot.{name} has no test in tests/test_plot.py"
