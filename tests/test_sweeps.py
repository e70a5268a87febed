import math

import pytest
import torch

from shufflelib.bench import Roofline
from shufflelib.sweeps import (
    group_conv_sweep,
    mbconv_vs_fused,
    operator_roofline,
    roofline_reading,
    shuffle_benchmark,
    shuffle_split_benchmark,
)
from shufflelib.tables import Table

FAST = {"min_run_time": 0.01}


SHUFFLE_NAMES = ["clone", "shufflelib", "textbook", "ChannelShuffle", "gather"]


@pytest.mark.parametrize("channels_last", [False, True])
def test_shuffle_benchmark(channels_last):
    shape = (2, 8, 4, 4)
    table = shuffle_benchmark(
        input_size=shape, groups=2, channels_last=channels_last, rounds=1, max_rounds=1, **FAST
    )
    assert isinstance(table, Table)
    names = table.column("name")
    assert len(names) == len(SHUFFLE_NAMES)
    for name, part in zip(names, SHUFFLE_NAMES, strict=True):
        assert part in name
    assert table.columns == ["name", "median", "IQR", "ratio", "ratio low", "ratio high", "GB/s"]
    assert table.units == {"median": "ms", "IQR": "ms"}
    assert set(table.times) == set(names) and all(len(t) == 1 for t in table.times.values())
    assert table[0]["ratio"] == 1.0
    bytes_moved = 2 * 2 * 8 * 4 * 4 * 4  # read + write, float32
    for row in table:
        assert math.isfinite(row["median"]) and row["median"] > 0
        assert math.isfinite(row["GB/s"]) and row["GB/s"] > 0
        assert row["GB/s"] == pytest.approx(bytes_moved / (row["median"] * 1e-3) / 1e9)
    assert "g=2" in table.title
    assert str(shape) in table.title
    assert ("channels_last" in table.title) == channels_last
    assert "bytes moved" in table.note
    assert torch.__version__ in table.note


def test_shuffle_benchmark_other_groups():
    table = shuffle_benchmark(
        input_size=(1, 12, 2, 2), groups=3, device="cpu", rounds=1, max_rounds=1, **FAST
    )
    assert len(table) == 5
    assert "g=3" in table.title


def test_shuffle_split_benchmark():
    shape = (2, 8, 4, 4)
    table = shuffle_split_benchmark(input_size=shape, rounds=1, max_rounds=1, **FAST)
    names = table.column("name")
    assert len(names) == 3
    assert "clone" in names[0]
    assert "shuffle, split" in names[1]
    assert "shuffle_split" in names[2]
    assert table[0]["ratio"] == 1.0
    for row in table:
        assert math.isfinite(row["median"]) and row["median"] > 0
        assert row["ratio"] > 0
    assert str(shape) in table.title


@pytest.mark.parametrize("shape", [(2, 8, 4), (2, 8, 4, 4, 1), (8,)])
def test_benchmarks_wrong_rank(shape):
    with pytest.raises(ValueError, match=r"input_size must be .* of length 4, got \("):
        shuffle_benchmark(input_size=shape, rounds=1, **FAST)
    with pytest.raises(ValueError, match=r"input_size must be .* of length 4, got \("):
        shuffle_split_benchmark(input_size=shape, rounds=1, **FAST)


def test_benchmarks_channels_not_divisible():
    with pytest.raises(ValueError, match=r"\b6\b.*\b4\b"):
        shuffle_benchmark(input_size=(2, 6, 4, 4), groups=4, rounds=1, **FAST)
    with pytest.raises(ValueError, match=r"\b6\b"):
        shuffle_split_benchmark(input_size=(2, 6, 4, 4), rounds=1, **FAST)


def test_shuffle_benchmark_bad_rounds():
    with pytest.raises(ValueError, match="rounds"):
        shuffle_benchmark(input_size=(2, 8, 4, 4), rounds=0, **FAST)


def test_group_conv_sweep():
    channels, size = 8, 4
    table = group_conv_sweep(
        channels, size, batch=1, groups=[1, 2, 8], device="cpu", max_rounds=8, **FAST
    )
    assert table.column("g") == [1, 2, 8]
    assert table[0]["time / g=1"] == table[0]["low"] == table[0]["high"] == 1.0
    for row in table[1:]:  # paired ratios to g=1, with their interval, from interleaved rounds
        assert row["low"] <= row["time / g=1"] <= row["high"]
    assert set(table.times) == {"g=1", "g=2", "g=8"} and 6 <= len(table.times["g=8"]) <= 8
    assert "interleaved rounds" in table.note
    assert table.column("weight shape") == [(8, 8, 1, 1), (8, 4, 1, 1), (8, 1, 1, 1)]
    assert table.column("params") == [64, 32, 8]
    assert table.column("MAdds") == [64 * 16, 32 * 16, 8 * 16]
    for row in table:
        assert math.isfinite(row["median"]) and row["median"] > 0
        assert row["IQR"] >= 0
        assert row["GMAdd/s"] == pytest.approx(row["MAdds"] / (row["median"] * 1e-3) / 1e9)
    assert table.header("median") == "median (ms)" and table.unit("GMAdd/s") == ""
    assert torch.__version__ in table.note


def test_group_conv_sweep_kernel_size():
    table = group_conv_sweep(4, 3, kernel_size=3, batch=2, groups=[4], device="cpu", **FAST)
    assert table.column("params") == [9 * 4]
    assert table.column("MAdds") == [9 * 4 * 3 * 3 * 2]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"groups": [3]}, ValueError, r"\b3\b"),
        ({"groups": [0]}, ValueError, r"\b0\b"),
        ({"groups": [True]}, TypeError, "True"),
        ({"kernel_size": 2}, ValueError, "kernel_size"),
        ({"kernel_size": 0}, ValueError, "kernel_size"),
        ({"channels": 0}, ValueError, "channels must be an int >= 1, got 0"),
        ({"size": "4"}, TypeError, "size must be an int >= 1, got '4'"),
    ],
)
def test_group_conv_sweep_bad_arguments(kwargs, error, match):
    args = {"channels": 8, "size": 4, "device": "cpu", **FAST, **kwargs}
    with pytest.raises(error, match=match):
        group_conv_sweep(**args)


def test_operator_roofline_rows():
    table = operator_roofline("cpu", size=2, batch=1, min_run_time=0.01)
    names = table.column("operator")
    assert names[:3] == ["1x1 32->32", "1x1 128->128", "1x1 512->512"]
    assert {"ReLU", "add", "concat", "channel shuffle", "3x3 depthwise 128"} <= set(names)
    assert sum(k == "group conv" for k in table.column("kind")) == 4
    for row in table:
        assert row["MAC"] > 0 and row["median"] > 0
        assert row["GMAdd/s"] == pytest.approx(row["MAdds"] / (row["median"] * 1e-3) / 1e9)
        if row["kind"] == "no arithmetic":
            assert row["MAdds"] == 0 and row["MAdd/byte"] == 0
        else:
            assert row["MAdd/byte"] == pytest.approx(row["MAdds"] / row["MAC"])
    rows = {r["operator"]: r for r in table}
    # Same MAdds/4 per step in g, same feature maps: intensity falls as g grows.
    g = [rows[f"1x1 256, g={k}"]["MAdd/byte"] for k in (1, 2, 4, 8)]
    assert g == sorted(g, reverse=True)
    with pytest.raises(ValueError, match="size"):
        operator_roofline("cpu", size=0)


def test_roofline_reading_explains_every_operator_above_the_roof():
    # peak 100 GMAdd/s, DRAM 10 GB/s (ridge 10 MAdd/byte), in-cache copy 40 GB/s
    roof = Roofline(100e9, 10e9, "cpu", 64, 1, cache_bandwidth=40e9, cache_copy_bytes=2**20)

    def row(name, intensity, gmadds, gbs=0.0):
        madds = 0 if intensity == 0 else 1000
        return {"operator": name, "MAdds": madds, "MAC": 2**21, "MAdd/byte": intensity,
                "GMAdd/s": gmadds, "GB/s": gbs}  # fmt: skip

    ops = Table(
        [
            row("dw", 1.0, 5.0),  # half of 1 x 10 GB/s
            row("cached", 1.0, 20.0),  # twice the DRAM roof, half the cache roof
            row("fast", 20.0, 150.0),  # compute-bound, above the 100 GMAdd/s peak
            row("ReLU", 0.0, 0.0, gbs=30.0),  # a copy at 30 GB/s: cached
        ]
    )
    r = {x["operator"]: x for x in roofline_reading(roof, ops)}
    assert r["dw"]["bound here"] == "memory" and r["dw"]["of DRAM roof"] == pytest.approx(0.5)
    assert r["dw"]["reading"] == "within the roof"
    assert r["cached"]["of DRAM roof"] == pytest.approx(2.0)
    assert r["cached"]["of cache roof"] == pytest.approx(0.5)
    assert "2.0 MiB stay in cache" in r["cached"]["reading"]
    assert r["fast"]["bound here"] == "compute" and "beats the probe" in r["fast"]["reading"]
    assert r["ReLU"]["bound here"] == "memory" and r["ReLU"]["of DRAM roof"] == pytest.approx(3.0)
    assert "stay in cache" in r["ReLU"]["reading"]
    with pytest.raises(TypeError, match="Roofline"):
        roofline_reading("roof", ops)
    with pytest.raises(ValueError, match="operator_roofline"):
        roofline_reading(roof, Table([{"a": 1}]))


def test_mbconv_vs_fused_table():
    f = mbconv_vs_fused(
        (8, 16), size=4, batch=1, device="cpu", rounds=1, max_rounds=1, min_run_time=0.01
    )
    assert f.column("width") == [8, 16]
    assert set(f.times) == {8, 16} and set(f.intervals) == {8, 16}
    for row in f:
        # Fused-MBConv's expansion is a full 3x3 conv: 9x the MAdds of the 1x1 it replaces.
        assert row["Fused-MBConv MAdds"] > row["MBConv MAdds"]
        assert row["fused / MBConv time"] > 0
        assert row["MBConv IQR"] >= 0 and row["Fused-MBConv IQR"] >= 0
        assert row["MBConv"] > 0 and row["Fused-MBConv"] > 0  # the median times
    assert [f.header(c) for c in ("MBConv MAdds", "Fused-MBConv MAC", "MBConv", "MBConv IQR")] == [
        "MBConv MAdds (M)",
        "Fused-MBConv MAC (MB)",
        "MBConv (ms)",
        "MBConv IQR (ms)",
    ]
    assert f.unit("fused / MBConv time") == ""
    with pytest.raises(ValueError, match="widths"):
        mbconv_vs_fused((6,))
