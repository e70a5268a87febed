"""Chapter 12's experiments: equal-FLOPs convolutions, achieved FLOPS, FasterNet's claim."""

import math

import pytest
import torch

from shufflelib import achieved, cost, reference, stats
from shufflelib.models.fasternet import PartialConv
from shufflelib.tables import Table

FAST = {"rounds": 2, "max_rounds": 2, "min_run_time": 0.005}


@pytest.mark.parametrize(("channels", "size"), [(96, 56), (192, 28), (16, 5)])
def test_equal_flops_convs_do_the_same_multiply_adds(channels, size):
    convs = achieved.equal_flops_convs(channels, size, batch=2)
    assert list(convs) == list(achieved.CONVOLUTIONS)
    cp = channels // 4
    shapes = {name: shape for name, (_, shape) in convs.items()}
    assert shapes == {
        "regular": (2, cp, size, size),
        "depthwise": (2, cp * cp, size, size),
        "partial": (2, channels, size, size),
    }
    work = {name: cost.madds(m, shape) for name, (m, shape) in convs.items()}
    assert set(work.values()) == {2 * size * size * 9 * cp * cp}, work  # h w k^2 c_p^2, Eq. 4
    for module, shape in convs.values():
        assert not module.training
        assert module(torch.zeros(shape)).shape == shape


def test_equal_width_is_the_papers_table1():
    convs = achieved.equal_flops_convs(96, 14, match="width")
    assert {name: shape[1] for name, (_, shape) in convs.items()} == dict.fromkeys(
        achieved.CONVOLUTIONS, 96
    )
    work = {name: cost.madds(m, shape) for name, (m, shape) in convs.items()}
    assert work["regular"] == 16 * work["partial"]  # 1/16 of a regular conv's FLOPs (n_div=4)
    assert work["depthwise"] == 14 * 14 * 9 * 96


def test_partial_conv_convolves_a_quarter_and_passes_the_rest():
    pconv = PartialConv(16).eval()
    x = torch.randn(1, 16, 6, 6)
    with torch.no_grad():
        y = pconv(x)
        assert torch.equal(y[:, 4:], x[:, 4:])
        assert torch.allclose(y[:, :4], pconv.partial_conv3(x[:, :4]))
    # The paper's memory access (Eq. 5, exact) is the convolution's alone; the split-and-concat
    # implementation also copies the untouched channels: 2 h w c more elements.
    h = w = 6
    paper = h * w * 2 * 4 + 9 * 4 * 4
    assert cost.mac(pconv.partial_conv3, (1, 4, h, w)).elements == paper
    assert cost.mac(pconv, (1, 16, h, w)).elements == paper + 2 * h * w * 16


def test_achieved_flops_counts_times_and_compares():
    table = achieved.achieved_flops(((16, 6), (8, 4)), **FAST)
    assert isinstance(table, Table)
    assert table.columns == ["map", "convolution", "channels", "MAdds", "MAC", "intensity",
                             "median", "IQR", "achieved", "FLOPS / depthwise", "low",
                             "high"]  # fmt: skip
    assert table.unit("achieved") == "GMAdd/s" and table.unit("median") == "ms"
    assert table.column("map") == ["16\u00d76\u00d76"] * 3 + ["8\u00d74\u00d74"] * 3
    assert list(table.times) == ["16\u00d76\u00d76", "8\u00d74\u00d74"]
    for row in table:
        assert row["achieved"] == pytest.approx(row["MAdds"] * 1e6 / (row["median"] * 1e-3) / 1e9)
        assert row["intensity"] == pytest.approx(row["MAdds"] / row["MAC"])
        if row["convolution"] == "depthwise":
            assert row["FLOPS / depthwise"] == 1.0
    assert len({r["MAdds"] for r in table if r["map"] == "16\u00d76\u00d76"}) == 1
    assert "interleaved round" in table.note and torch.__version__ in table.note
    assert "NCHW" in table.title


def test_achieved_flops_in_channels_last_counts_the_same():
    nchw = achieved.achieved_flops(((8, 4),), **FAST)
    nhwc = achieved.achieved_flops(((8, 4),), channels_last=True, **FAST)
    assert "channels-last" in nhwc.title
    for column in ("MAdds", "MAC", "intensity"):
        assert nchw.column(column) == nhwc.column(column)


def _timed_ops(label: str, seconds: dict[str, list[float]]) -> Table:
    rows = [{"map": label, "convolution": n, "MAdds": 1.0} for n in seconds]
    table = Table(rows)
    table.times, table.how = {label: seconds}, {"estimator": "median", "confidence": 0.95}
    return table


def test_operator_verdicts_decide_from_paired_rounds():
    seconds = {
        "regular": [1.0] * 8,
        "depthwise": [4.0, 4.1, 3.9, 4.0, 4.2, 4.0, 3.8, 4.0],
        "partial": [2.0] * 8,
    }
    verdicts = achieved.operator_verdicts(_timed_ops("96\u00d756\u00d756", seconds))
    assert verdicts.column("claim") == [
        "partial achieves more FLOPS than depthwise",
        "regular achieves more FLOPS than partial",
    ]
    assert verdicts[0]["ratio"] == pytest.approx(2.0)
    assert verdicts[1]["ratio"] == pytest.approx(2.0)
    assert verdicts.column("verdict") == [stats.HOLDS, stats.HOLDS]
    assert verdicts[0]["paper CPU"] == pytest.approx(29.67 / 7.52)  # Table 1, CPU, 96x56x56
    assert verdicts[1]["paper CPU"] is None
    other = achieved.operator_verdicts(_timed_ops("8\u00d74\u00d74", seconds))
    assert other[0]["paper CPU"] is None  # a map the paper did not measure


def test_network_flops_and_its_verdicts():
    names = ("shufflenet_v2_x0_5", "fasternet_t0")
    table = achieved.network_flops(names, (1, 2), image_size=32, channels_last=True, **FAST)
    assert "channels-last" in table.title
    assert table.column("model") == list(names) * 2 and table.column("batch") == [1, 1, 2, 2]
    assert table.unit("achieved") == "GMAdd/s" and "BatchNorm folded" in table.title
    for row in table:
        assert row["achieved"] == pytest.approx(
            row["batch"] * row["MAdds"] * 1e6 / (row["median"] * 1e-3) / 1e9
        )
    assert table[0]["time / shufflenet_v2_x0_5"] == 1.0
    verdicts = achieved.network_verdicts(table)
    assert len(verdicts) == 4 and set(verdicts.column("verdict")) <= set(stats.VERDICTS)
    assert table.how == {"estimator": "median", "confidence": 0.95}


def test_network_verdicts_scale_the_time_ratio_by_the_work():
    rows = [
        {"model": "fasternet_t0", "batch": 1, "MAdds": 340.0},
        {"model": "mobilenet_v2", "batch": 1, "MAdds": 170.0},
    ]
    table = Table(rows)
    table.times = {1: {"fasternet_t0": [1.0, 1.1, 0.9] * 3, "mobilenet_v2": [1.5, 1.65, 1.35] * 3}}
    table.how = {"estimator": "median", "confidence": 0.95}
    faster, flops = achieved.network_verdicts(table)
    assert faster["claim"] == "fasternet_t0 is faster than mobilenet_v2"
    assert faster["ratio"] == pytest.approx(1.5) and faster["verdict"] == stats.HOLDS
    assert flops["ratio"] == pytest.approx(3.0) and flops["verdict"] == stats.HOLDS
    assert faster["paper CPU"] == pytest.approx(12.2 / 9.2)
    assert flops["paper CPU"] == pytest.approx(0.34 / 0.31 * 12.2 / 9.2)


def test_published_sizes_within_two_percent_of_the_paper():
    table = achieved.published_sizes()
    assert table.column("model") == ["fasternet_t0", "fasternet_t1", "fasternet_t2"]
    assert table.column("within") == ["yes"] * 3
    assert all(abs(v) <= 2 for v in table.column("params off") + table.column("MAdds off"))
    assert "arXiv:2303.03667" in table.title and table.unit("MAdds") == "G"


def test_the_papers_tables():
    ops = reference.table("fasternet.table1")
    assert len(ops) == 16 and ops.unit("CPU FLOPS") == "G/s"
    pconv = [r for r in ops if r["operator"] == "PConv 3x3"]
    assert [r["CPU FLOPS"] for r in pconv] == [29.67, 52.43, 45.25, 32.27]
    for r in ops:  # FLOPS (G/s) = FLOPs (M) / latency (ms), within the paper's rounding
        assert r["CPU FLOPS"] == pytest.approx(r["FLOPs"] / r["CPU latency"], rel=0.03)
    nets = {r["network"]: r for r in reference.table("fasternet.table3")}
    assert (nets["FasterNet-T0"]["params"], nets["FasterNet-T0"]["FLOPs"]) == (3.9, 0.34)
    assert (nets["FasterNet-T1"]["params"], nets["FasterNet-T1"]["FLOPs"]) == (7.6, 0.85)
    assert (nets["FasterNet-T2"]["params"], nets["FasterNet-T2"]["FLOPs"]) == (15.0, 1.91)
    assert [nets[f"FasterNet-T{k}"]["top-1"] for k in range(3)] == [71.9, 76.2, 78.9]
    assert all(name in nets for name in achieved.PAPER_NAMES.values())


BAD = [
    (lambda: achieved.equal_flops_convs(0, 8), ValueError, "channels", "0"),
    (lambda: achieved.equal_flops_convs(10, 8), ValueError, "channels", "10"),
    (lambda: achieved.equal_flops_convs(16, "8"), TypeError, "size", "'8'"),
    (lambda: achieved.equal_flops_convs(16, 8, match="area"), ValueError, "match", "'area'"),
    (lambda: achieved.equal_flops_convs(16, 8, n_div=32), ValueError, "n_div", "32"),
    (lambda: achieved.achieved_flops([]), ValueError, "maps", "[]"),
    (lambda: achieved.achieved_flops("96x56"), TypeError, "maps", "'96x56'"),
    (lambda: achieved.achieved_flops([(96,)]), ValueError, "maps[0]", "(96,)"),
    (lambda: achieved.achieved_flops(batch=0), ValueError, "batch", "0"),
    (lambda: achieved.achieved_flops(threads=0), ValueError, "threads", "0"),
    (lambda: achieved.achieved_flops(max_seconds=-1), ValueError, "max_seconds", "-1"),
    (lambda: achieved.operator_verdicts([1]), TypeError, "table", "[1]"),
    (lambda: achieved.operator_verdicts(Table([{"a": 1}], title="x")), ValueError, "table", "'x'"),
    (
        lambda: achieved.network_verdicts(Table([{"model": "a"}], title="y")),
        ValueError,
        "table",
        "'y'",
    ),
    (lambda: achieved.network_flops(("nope",)), ValueError, "names[0]", "'nope'"),
    (lambda: achieved.network_flops(batch_sizes=(0,)), ValueError, "batch_sizes", "(0,)"),
    (lambda: achieved.network_flops(fold_bn=1), TypeError, "fold_bn", "1"),
    (lambda: achieved.network_flops(channels_last=0), TypeError, "channels_last", "0"),
    (lambda: achieved.achieved_flops(channels_last="yes"), TypeError, "channels_last", "'yes'"),
    (lambda: achieved.network_flops(image_size=8), ValueError, "image_size", "8"),
    (lambda: achieved.published_sizes(("t9",)), ValueError, "variants[0]", "'t9'"),
    (lambda: achieved.published_sizes(tolerance=0), ValueError, "tolerance", "0"),
]


@pytest.mark.parametrize("case", BAD, ids=[f"{c[2]}={c[3]}" for c in BAD])
def test_bad_input_names_the_argument_and_the_value(case):
    call, error, argument, shown = case
    with pytest.raises(error) as raised:
        call()
    assert type(raised.value) is error
    assert argument in str(raised.value) and shown in str(raised.value), str(raised.value)


def test_ratios_are_finite_with_enough_rounds():
    table = _timed_ops("a", {"regular": [1.0] * 6, "depthwise": [2.0] * 6, "partial": [1.5] * 6})
    for row in achieved.operator_verdicts(table):
        assert math.isfinite(row["low"]) and math.isfinite(row["high"])
