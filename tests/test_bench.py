import math
import platform

import pytest
import torch
from torch import nn

from shufflelib.bench import (
    MachineInfo,
    Measurement,
    compare,
    group_conv_sweep,
    machine_info,
    measure,
    pick_device,
    shuffle_benchmark,
    shuffle_split_benchmark,
)
from shufflelib.tables import Table

FAST = {"min_run_time": 0.01}


@pytest.fixture
def no_accelerator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


# machine_info and pick_device


def test_machine_info_cpu():
    info = machine_info("cpu")
    assert isinstance(info, MachineInfo)
    assert info.device == "cpu"
    assert info.threads == torch.get_num_threads()
    assert info.torch == torch.__version__
    assert info.python == platform.python_version()
    assert isinstance(info.cores, int) and info.cores >= 1
    assert isinstance(info.cpu, str) and info.cpu
    text = str(info)
    assert torch.__version__ in text
    assert "cpu" in text
    assert platform.python_version() in text
    assert f"{info.threads} threads" in text and info.cpu in text
    assert "\n" not in text


def test_machine_info_default_device(no_accelerator):
    info = machine_info()
    assert info.device == "cpu"
    assert info == machine_info(torch.device("cpu"))


def test_pick_device_without_accelerator(no_accelerator):
    assert pick_device() == torch.device("cpu")


def test_pick_device_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device() == torch.device("cuda")


def test_pick_device_named_cpu():
    assert pick_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["cuda", "mps"])
def test_pick_device_named_but_unavailable(name, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match=f"'{name}'.*not available"):
        pick_device(name)


@pytest.mark.parametrize("name", ["cuda", "mps"])
def test_pick_device_named_and_available(name, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device(name) == torch.device(name)


@pytest.mark.parametrize("name", ["tpu", "CPU", "cuda:0", ""])
def test_pick_device_unknown(name):
    with pytest.raises(ValueError, match=repr(name)):
        pick_device(name)


# measure


def check_measurement(m, label):
    assert isinstance(m, Measurement)
    assert m.label == label
    assert math.isfinite(m.median) and m.median > 0
    assert math.isfinite(m.iqr) and m.iqr >= 0
    assert isinstance(m.runs, int) and m.runs >= 1
    assert m.threads == torch.get_num_threads()
    assert m.device == "cpu"


def test_measure_function():
    m = measure(lambda x: x * 2, torch.ones(8), **FAST)
    check_measurement(m, "<lambda>")


def test_measure_named_function_and_several_inputs():
    m = measure(torch.add, (torch.ones(4), torch.ones(4)), **FAST)
    check_measurement(m, "add")
    m = measure(torch.add, [torch.ones(4), torch.ones(4)], label="sum of two", **FAST)
    check_measurement(m, "sum of two")


def test_measure_module():
    model = nn.Linear(4, 2).eval()
    m = measure(model, torch.ones(3, 4), **FAST)
    check_measurement(m, "Linear")


def test_measure_calls_the_function_with_the_inputs():
    seen = []

    def fn(a, b):
        seen.append((a, b, torch.is_grad_enabled()))

    x = torch.ones(2)
    measure(fn, (x, 3), warmup=0, **FAST)
    assert len(seen) >= 1
    assert all(a is x and b == 3 and not grad for a, b, grad in seen)
    seen.clear()
    measure(fn, (x, 3), warmup=0, no_grad=False, **FAST)
    assert all(grad for _, _, grad in seen)


def test_measure_warmup_calls():
    calls = []

    def fn():
        calls.append(1)

    measure(fn, warmup=3, **FAST)
    assert len(calls) >= 3 + 1


def test_measure_threads_argument_and_restores_thread_count():
    before = torch.get_num_threads()
    m = measure(lambda x: x + 1, torch.ones(4), threads=1, **FAST)
    assert m.threads == 1
    assert torch.get_num_threads() == before


def test_measurement_as_row():
    m = Measurement(label="f", median=0.002, iqr=0.0005, runs=10, threads=1, device="cpu")
    row = m.as_row()
    assert row == {"name": "f", "median (ms)": 2.0, "IQR (ms)": 0.5, "runs": 10}
    row = m.as_row("us")
    assert row["median (us)"] == pytest.approx(2000.0)
    assert row["IQR (us)"] == pytest.approx(500.0)
    assert m.as_row("s")["median (s)"] == 0.002


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"min_run_time": 0}, ValueError, "min_run_time"),
        ({"min_run_time": -1.0}, ValueError, "min_run_time"),
        ({"min_run_time": "1"}, ValueError, "min_run_time"),
        ({"warmup": -1}, ValueError, "warmup"),
        ({"warmup": 1.5}, ValueError, "warmup"),
        ({"threads": 0}, ValueError, "threads"),
        ({"threads": 2.0}, ValueError, "threads"),
    ],
)
def test_measure_bad_arguments_raise_before_calling(kwargs, error, match):
    calls = []

    def fn(x):
        calls.append(x)

    with pytest.raises(error, match=match):
        measure(fn, torch.ones(2), **kwargs)
    assert calls == []


@pytest.mark.parametrize("fn", [None, 3, "x * 2", torch.ones(2)])
def test_measure_non_callable(fn):
    with pytest.raises(TypeError, match="callable"):
        measure(fn, torch.ones(2), **FAST)


# compare


def three_candidates():
    return {"a": lambda x: x + 1, "b": lambda x: x * 2, "c": lambda x: x.sum()}


def test_compare_table():
    table = compare(
        three_candidates(), torch.ones(8), baseline="a", rounds=2, max_rounds=2, title="t", **FAST
    )
    assert isinstance(table, Table)
    assert table.title == "t"
    assert table.column("name") == ["a", "b", "c"]
    assert table.columns == ["name", "median (ms)", "IQR (ms)", "ratio", "ratio low", "ratio high"]
    assert "2 interleaved rounds (max_rounds=2 reached)" in table.note
    assert table[0]["ratio"] == 1.0
    for row in table:
        assert math.isfinite(row["median (ms)"]) and row["median (ms)"] > 0
        assert math.isfinite(row["IQR (ms)"]) and row["IQR (ms)"] >= 0
        assert math.isfinite(row["ratio"]) and row["ratio"] > 0
    assert torch.__version__ in table.note
    assert "cpu" in table.note


def test_compare_baseline_not_first_and_one_round():
    table = compare(
        three_candidates(), (torch.ones(8),), baseline="c", rounds=1, max_rounds=1, **FAST
    )
    assert table.column("name") == ["a", "b", "c"]
    assert table[2]["ratio"] == 1.0
    # One round: no spread.
    assert table.column("IQR (ms)") == [0.0, 0.0, 0.0]
    for row in table:
        assert row["ratio"] == pytest.approx(row["median (ms)"] / table[2]["median (ms)"])


def test_compare_unknown_baseline():
    with pytest.raises(ValueError, match="'z'"):
        compare(three_candidates(), torch.ones(8), baseline="z", rounds=1, **FAST)


@pytest.mark.parametrize("rounds", [0, -1, 1.0, "2"])
def test_compare_bad_rounds(rounds):
    with pytest.raises(ValueError, match="rounds"):
        compare(three_candidates(), torch.ones(8), baseline="a", rounds=rounds, **FAST)


# compare samples until the intervals are narrow (fake clock and fake timings: no wall clock)


@pytest.fixture
def fake_timing(monkeypatch):
    """measure() returns scripted seconds per candidate; each call advances a fake clock by 1 s."""
    from shufflelib import bench

    state = {"now": 0.0, "calls": []}
    scripts: dict = {}

    def measure(fn, inputs, *, label, **kwargs):
        state["now"] += 1.0
        state["calls"].append(label)
        t = next(scripts[label])
        return Measurement(label=label, median=t, iqr=0.0, runs=1, threads=1, device="cpu")

    monkeypatch.setattr(bench, "measure", measure)
    monkeypatch.setattr(bench, "_clock", lambda: state["now"])
    state["scripts"] = scripts
    return state


def cycle(*values):
    import itertools

    return itertools.cycle(values)


def two():
    return {"base": lambda: None, "other": lambda: None}


def test_compare_stops_at_the_minimum_when_the_target_is_met(fake_timing):
    fake_timing["scripts"].update(base=cycle(1e-3), other=cycle(2e-3))  # exactly 2x, no noise
    table = compare(two(), (), baseline="base", min_run_time=0.01)
    assert len(table.times["base"]) == 6 == len(table.times["other"])  # stats.min_rounds()
    iv = table.intervals["other"]
    assert (iv.estimate, iv.low, iv.high, iv.n) == pytest.approx((2.0, 2.0, 2.0, 6))
    assert table[1]["ratio"] == pytest.approx(2.0) and table[1]["ratio low"] == pytest.approx(2.0)
    assert table.intervals["base"].halfwidth == 0
    assert "6 interleaved rounds (every interval within +-3%)" in table.note
    assert "median" in table.note and "95% interval" in table.note


def test_compare_alternates_the_order_within_rounds(fake_timing):
    fake_timing["scripts"].update(base=cycle(1e-3), other=cycle(2e-3))
    compare(two(), (), baseline="base", min_run_time=0.01)
    calls = fake_timing["calls"]
    assert calls[:4] == ["base", "other", "other", "base"]


def test_compare_samples_on_while_noisy_up_to_max_rounds(fake_timing):
    fake_timing["scripts"].update(base=cycle(1e-3), other=cycle(1e-3, 1.5e-3, 0.7e-3))
    table = compare(two(), (), baseline="base", min_run_time=0.01, max_rounds=9, max_seconds=1e6)
    assert len(table.times["other"]) == 9
    assert table.intervals["other"].halfwidth > 0.03
    assert "9 interleaved rounds (max_rounds=9 reached)" in table.note


def test_compare_honours_the_time_cap(fake_timing):
    # 2 fake seconds per round: 6 rounds take 12 s, a 7th would pass a 13 s cap
    fake_timing["scripts"].update(base=cycle(1e-3), other=cycle(1e-3, 1.5e-3, 0.7e-3))
    table = compare(two(), (), baseline="base", min_run_time=0.01, max_seconds=13)
    assert len(table.times["base"]) == 6
    assert "time cap of 13 s reached" in table.note
    # the minimum number of rounds always runs, even past the cap
    table = compare(two(), (), baseline="base", min_run_time=0.01, rounds=8, max_seconds=1)
    assert len(table.times["base"]) == 8


def test_compare_other_estimators(fake_timing):
    fake_timing["scripts"].update(base=cycle(1e-3), other=cycle(3e-3))
    table = compare(two(), (), baseline="base", min_run_time=0.01, estimator="mean")
    assert table.intervals["other"].estimator == "mean"
    assert table[1]["ratio"] == pytest.approx(3.0)
    assert "mean of the per-round ratios" in table.note


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_rounds": 3}, ValueError, r"max_rounds must be an int >= rounds \(6\), got 3"),
        ({"max_rounds": 7.0}, ValueError, "max_rounds.*7.0"),
        ({"target": 0}, ValueError, "target must be in"),
        ({"target": 1.5}, ValueError, "target.*1.5"),
        ({"target": "3%"}, TypeError, "target must be a number.*'3%'"),
        ({"max_seconds": 0}, ValueError, "max_seconds must be > 0, got 0"),
        ({"max_seconds": None}, TypeError, "max_seconds.*None"),
        ({"estimator": "mode"}, ValueError, "estimator must be one of.*'mode'"),
        ({"confidence": 1.0}, ValueError, "confidence"),
        ({"min_run_time": 0}, ValueError, "min_run_time"),
        ({"threads": 0}, ValueError, "threads"),
        ({"candidates": {}}, TypeError, "non-empty mapping"),
        ({"candidates": {"base": 3}}, TypeError, "candidates\\['base'\\] must be callable"),
    ],
)
def test_compare_rejects_bad_sampling_before_any_work(fake_timing, kwargs, error, match):
    candidates = kwargs.pop("candidates", two())
    with pytest.raises(error, match=match):
        compare(candidates, (), baseline="base", **kwargs)
    assert fake_timing["calls"] == []


def test_wrappers_reject_bad_sampling_before_any_work(fake_timing):
    from shufflelib.bench import model_latency

    with pytest.raises(ValueError, match="estimator"):
        model_latency({"a": nn.Conv2d(3, 4, 1)}, (1, 3, 4, 4), estimator="best")
    with pytest.raises(TypeError, match="unexpected arguments \\['round'\\]"):
        shuffle_benchmark(shape=(2, 8, 4, 4), round=3)
    assert fake_timing["calls"] == []


# shuffle_benchmark and shuffle_split_benchmark

SHUFFLE_NAMES = ["clone", "shufflelib", "textbook", "ChannelShuffle", "gather"]


@pytest.mark.parametrize("channels_last", [False, True])
def test_shuffle_benchmark(channels_last):
    shape = (2, 8, 4, 4)
    table = shuffle_benchmark(
        shape=shape, groups=2, channels_last=channels_last, rounds=1, max_rounds=1, **FAST
    )
    assert isinstance(table, Table)
    names = table.column("name")
    assert len(names) == len(SHUFFLE_NAMES)
    for name, part in zip(names, SHUFFLE_NAMES, strict=True):
        assert part in name
    assert table.columns == ["name", "median (ms)", "IQR (ms)", "ratio", "ratio low", "ratio high",
                             "GB/s"]  # fmt: skip
    assert set(table.times) == set(names) and all(len(t) == 1 for t in table.times.values())
    assert table[0]["ratio"] == 1.0
    bytes_moved = 2 * 2 * 8 * 4 * 4 * 4  # read + write, float32
    for row in table:
        assert math.isfinite(row["median (ms)"]) and row["median (ms)"] > 0
        assert math.isfinite(row["GB/s"]) and row["GB/s"] > 0
        assert row["GB/s"] == pytest.approx(bytes_moved / (row["median (ms)"] * 1e-3) / 1e9)
    assert "g=2" in table.title
    assert str(shape) in table.title
    assert ("channels_last" in table.title) == channels_last
    assert "bytes moved" in table.note
    assert torch.__version__ in table.note


def test_shuffle_benchmark_other_groups():
    table = shuffle_benchmark(
        shape=(1, 12, 2, 2), groups=3, device="cpu", rounds=1, max_rounds=1, **FAST
    )
    assert len(table) == 5
    assert "g=3" in table.title


def test_shuffle_split_benchmark():
    shape = (2, 8, 4, 4)
    table = shuffle_split_benchmark(shape=shape, rounds=1, max_rounds=1, **FAST)
    names = table.column("name")
    assert len(names) == 3
    assert "clone" in names[0]
    assert "shuffle, split" in names[1]
    assert "shuffle_split" in names[2]
    assert table[0]["ratio"] == 1.0
    for row in table:
        assert math.isfinite(row["median (ms)"]) and row["median (ms)"] > 0
        assert row["ratio"] > 0
    assert str(shape) in table.title


@pytest.mark.parametrize("shape", [(2, 8, 4), (2, 8, 4, 4, 1), (8,)])
def test_benchmarks_wrong_rank(shape):
    with pytest.raises(ValueError, match="shape"):
        shuffle_benchmark(shape=shape, rounds=1, **FAST)
    with pytest.raises(ValueError, match="shape"):
        shuffle_split_benchmark(shape=shape, rounds=1, **FAST)


def test_benchmarks_channels_not_divisible():
    with pytest.raises(ValueError, match=r"\b6\b.*\b4\b"):
        shuffle_benchmark(shape=(2, 6, 4, 4), groups=4, rounds=1, **FAST)
    with pytest.raises(ValueError, match=r"\b6\b"):
        shuffle_split_benchmark(shape=(2, 6, 4, 4), rounds=1, **FAST)


def test_shuffle_benchmark_bad_rounds():
    with pytest.raises(ValueError, match="rounds"):
        shuffle_benchmark(shape=(2, 8, 4, 4), rounds=0, **FAST)


# group_conv_sweep


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
        assert math.isfinite(row["median (ms)"]) and row["median (ms)"] > 0
        assert row["IQR (ms)"] >= 0
        assert row["GMAdd/s"] > 0
    assert torch.__version__ in table.note


def test_group_conv_sweep_kernel_size():
    table = group_conv_sweep(4, 3, kernel_size=3, batch=2, groups=[4], device="cpu", **FAST)
    assert table.column("params") == [9 * 4]
    assert table.column("MAdds") == [9 * 4 * 3 * 3 * 2]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"groups": [3]}, r"\b3\b"),
        ({"groups": [0]}, r"\b0\b"),
        ({"groups": [True]}, "True"),
        ({"kernel_size": 2}, "kernel_size"),
        ({"kernel_size": 0}, "kernel_size"),
    ],
)
def test_group_conv_sweep_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        group_conv_sweep(8, 4, device="cpu", **{**FAST, **kwargs})


@pytest.mark.parametrize(
    "kwargs", [{"threads": True}, {"min_run_time": True}, {"warmup": True}, {"threads": 1.0}]
)
def test_measure_rejects_bools_and_floats_before_running(kwargs):
    calls = []
    with pytest.raises(ValueError, match=repr(next(iter(kwargs.values())))):
        measure(lambda: calls.append(1), (), **kwargs)
    assert calls == [], "nothing may run before the arguments are checked"


def test_measurement_as_row_units():
    m = Measurement(label="f", median=0.002, iqr=0.0005, runs=10, threads=1, device="cpu")
    assert m.as_row("ms")["median (ms)"] == pytest.approx(2.0)
    assert m.as_row("us")["IQR (us)"] == pytest.approx(500.0)
    with pytest.raises(ValueError, match="'ns'"):
        m.as_row("ns")


# The roofline (chapter 3)


def test_roofline_probe_small_and_its_algebra():
    from shufflelib.bench import Roofline, roofline_probe

    roof = roofline_probe("cpu", matmul_size=64, copy_mib=1, cache_mib=1, min_run_time=0.01)
    assert roof.peak_madds > 0 and roof.bandwidth > 0 and roof.cache_bandwidth > 0
    assert roof.copy_bytes == 2**20 and roof.matmul_size == 64
    assert roof.ridge == pytest.approx(roof.peak_madds / roof.bandwidth)
    assert "GMAdd/s" in str(roof) and "GB/s" in str(roof)
    made = Roofline(peak_madds=100.0, bandwidth=10.0, device="cpu", matmul_size=64, copy_bytes=1)
    assert made.ridge == 10.0
    assert made.attainable(1.0) == 10.0  # memory-bound: intensity x bandwidth
    assert made.attainable(50.0) == 100.0  # compute-bound: the flat roof


def test_one_build_probes_the_roofline_once_and_shares_it(tmp_path, monkeypatch):
    import json

    from shufflelib import bench

    store = tmp_path / "build" / "roofline.json"  # its folder need not exist yet
    monkeypatch.setenv(bench.ROOFLINE_FILE, str(store))
    calls = []
    real = bench._probe
    monkeypatch.setattr(bench, "_probe", lambda *a: calls.append(a) or real(*a))
    small = dict(copy_mib=1, cache_mib=1, min_run_time=0.01)
    first = bench.roofline_probe("cpu", matmul_size=64, **small)
    again = bench.roofline_probe("cpu", matmul_size=64, **small)  # another chapter, same build
    assert again == first and len(calls) == 1
    other = bench.roofline_probe("cpu", matmul_size=128, **small)  # other sizes: probed anew
    assert other.matmul_size == 128 and len(calls) == 2
    kept = json.loads(store.read_text())
    assert len(kept) == 2 and all("matmul" in key and "device cpu" in key for key in kept)
    monkeypatch.delenv(bench.ROOFLINE_FILE)
    bench.roofline_probe("cpu", matmul_size=64, **small)  # no file named: always measures
    assert len(calls) == 3


def test_a_ceiling_comes_from_the_fastest_block():
    from shufflelib.bench import measure

    m = measure(torch.relu, torch.randn(64, 64), min_run_time=0.02)
    assert 0 < m.fastest <= m.median


@pytest.mark.parametrize(
    "kwargs", [{"matmul_size": 8}, {"copy_mib": 0}, {"cache_mib": True}, {"matmul_size": 64.0}]
)
def test_roofline_probe_bad_sizes(kwargs):
    from shufflelib.bench import roofline_probe

    with pytest.raises(ValueError, match=repr(next(iter(kwargs.values())))):
        roofline_probe("cpu", **kwargs)


def test_operator_roofline_rows():
    from shufflelib.bench import operator_roofline

    table = operator_roofline("cpu", size=2, batch=1, min_run_time=0.01)
    names = table.column("operator")
    assert names[:3] == ["1x1 32->32", "1x1 128->128", "1x1 512->512"]
    assert {"ReLU", "add", "concat", "channel shuffle", "3x3 depthwise 128"} <= set(names)
    assert sum(k == "group conv" for k in table.column("kind")) == 4
    for row in table:
        assert row["MAC (bytes)"] > 0 and row["median (ms)"] > 0
        if row["kind"] == "no arithmetic":
            assert row["MAdds"] == 0 and row["MAdd/byte"] == 0
        else:
            assert row["MAdd/byte"] == pytest.approx(row["MAdds"] / row["MAC (bytes)"])
    rows = {r["operator"]: r for r in table}
    # Same MAdds/4 per step in g, same feature maps: intensity falls as g grows.
    g = [rows[f"1x1 256, g={k}"]["MAdd/byte"] for k in (1, 2, 4, 8)]
    assert g == sorted(g, reverse=True)
    with pytest.raises(ValueError, match="size"):
        operator_roofline("cpu", size=0)


def test_roofline_reading_explains_every_operator_above_the_roof():
    from shufflelib.bench import Roofline, roofline_reading

    # peak 100 GMAdd/s, DRAM 10 GB/s (ridge 10 MAdd/byte), in-cache copy 40 GB/s
    roof = Roofline(100e9, 10e9, "cpu", 64, 1, cache_bandwidth=40e9, cache_copy_bytes=2**20)

    def row(name, intensity, gmadds, gbs=0.0):
        madds = 0 if intensity == 0 else 1000
        return {"operator": name, "MAdds": madds, "MAC (bytes)": 2**21, "MAdd/byte": intensity,
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


def test_model_latency_and_mbconv_vs_fused_tables():
    from torch import nn

    from shufflelib.bench import mbconv_vs_fused, model_latency

    small = {"a": nn.Conv2d(3, 4, 1), "b": nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())}
    t = model_latency(small, (1, 3, 8, 8), device="cpu", rounds=2, max_rounds=2, min_run_time=0.01)
    assert t.column("model") == ["a", "b"]
    assert t[0]["time / a"] == 1.0 and t[1]["median (ms)"] > 0
    assert t[0]["time / a low"] == t[0]["time / a high"] == 1.0
    assert set(t.times) == {"a", "b"} and all(len(v) == 2 for v in t.times.values())
    assert t.intervals["b"].estimate == t[1]["time / a"]
    assert t[0]["params (M)"] == pytest.approx(16 / 1e6)
    assert t[1]["MAdds (M)"] == pytest.approx(8 * 3 * 9 * 6 * 6 / 1e6)
    with pytest.raises(ValueError, match="at least one"):
        model_latency({}, (1, 3, 8, 8))
    with pytest.raises(TypeError, match="'x'"):
        model_latency({"x": "not a model"}, (1, 3, 8, 8))
    f = mbconv_vs_fused(
        (8, 16), size=4, batch=1, device="cpu", rounds=1, max_rounds=1, min_run_time=0.01
    )
    assert f.column("width") == [8, 16]
    assert set(f.times) == {8, 16} and set(f.intervals) == {8, 16}
    for row in f:
        # Fused-MBConv's expansion is a full 3x3 conv: 9x the MAdds of the 1x1 it replaces.
        assert row["Fused-MBConv MAdds (M)"] > row["MBConv MAdds (M)"]
        assert row["fused / MBConv time"] > 0
        assert row["MBConv IQR (ms)"] >= 0 and row["Fused-MBConv IQR (ms)"] >= 0
    with pytest.raises(ValueError, match="widths"):
        mbconv_vs_fused((6,))


def test_compare_and_model_latency_time_on_the_threads_asked_for():
    from torch import nn

    from shufflelib.bench import model_latency

    before = torch.get_num_threads()
    t = compare(
        {"a": lambda: torch.ones(4) * 2},
        (),
        baseline="a",
        rounds=1,
        max_rounds=1,
        min_run_time=0.01,
        threads=1,
    )
    assert ", 1 thread)" in t.note
    lat = model_latency(
        {"a": nn.Conv2d(3, 4, 1)},
        (1, 3, 4, 4),
        device="cpu",
        rounds=1,
        max_rounds=1,
        min_run_time=0.01,
        threads=1,
    )
    assert "1 thread" in lat.title and ", 1 thread)" in lat.note
    assert torch.get_num_threads() == before, "the thread count is restored"


def test_machine_part_drops_the_sampling_details():
    from shufflelib.bench import machine_part

    note = "CPU (2 cores, 1 thread) | device cpu | torch 2 | 6 interleaved rounds (cap); ratio: x"
    assert machine_part(note) == "CPU (2 cores, 1 thread) | device cpu | torch 2"
    assert machine_part("CPU | device cpu") == "CPU | device cpu"
