import math
import statistics

import pytest
import torch
from torch import nn

from shufflelib import bench
from shufflelib.bench import (
    Measurement,
    compare,
    measure,
    model_latency,
)
from shufflelib.tables import Table

FAST = {"min_run_time": 0.01}


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


def test_warm_up_timing_and_every_round_run_at_the_threads_asked_for():
    # The count is set once around a measurement (warm-up included) and once around all of a
    # comparison's rounds, never switched call by call; afterwards the caller's count is back.
    torch.set_num_threads(2)
    seen = []

    def fn():
        seen.append(torch.get_num_threads())

    measure(fn, threads=1, warmup=2, **FAST)
    assert set(seen) == {1} and torch.get_num_threads() == 2
    seen.clear()
    switches = []
    with pytest.MonkeyPatch.context() as mp:
        real = torch.set_num_threads
        mp.setattr(torch, "set_num_threads", lambda n: (switches.append(n), real(n)))
        compare({"a": fn, "b": fn}, (), baseline="a", rounds=2, max_rounds=2, **FAST, threads=1)
    assert set(seen) == {1} and torch.get_num_threads() == 2
    assert switches.count(2) == 1  # back to the caller's count once, at the end, not per call
    with bench.using_threads(None):
        assert torch.get_num_threads() == 2
    with pytest.raises(ValueError, match="threads.*0"):
        with bench.using_threads(0):
            pass


def test_measurement_as_row():
    m = Measurement(label="f", median=0.002, iqr=0.0005, runs=10, threads=1, device="cpu")
    row = m.as_row()
    assert row == {"name": "f", "median": 2.0, "IQR": 0.5, "runs": 10}
    row = m.as_row("us")
    assert row["median"] == pytest.approx(2000.0)
    assert row["IQR"] == pytest.approx(500.0)
    assert m.as_row("s")["median"] == 0.002
    with pytest.raises(ValueError, match="'ns'"):
        m.as_row("ns")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"min_run_time": 0}, ValueError, "min_run_time"),
        ({"min_run_time": -1.0}, ValueError, "min_run_time"),
        ({"min_run_time": "1"}, TypeError, "min_run_time must be a finite number > 0, got '1'"),
        ({"warmup": -1}, ValueError, "warmup must be an int >= 0, got -1"),
        ({"warmup": 1.5}, TypeError, "warmup must be an int >= 0, got 1.5"),
        ({"threads": 0}, ValueError, "threads must be an int >= 1, got 0"),
        ({"threads": 2.0}, TypeError, "threads"),
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


def three_candidates():
    return {"a": lambda x: x + 1, "b": lambda x: x * 2, "c": lambda x: x.sum()}


def test_compare_table():
    table = compare(
        three_candidates(), torch.ones(8), baseline="a", rounds=2, max_rounds=2, title="t", **FAST
    )
    assert isinstance(table, Table)
    assert table.title == "t"
    assert table.column("name") == ["a", "b", "c"]
    assert table.columns == ["name", "median", "IQR", "ratio", "ratio low", "ratio high"]
    assert table.units == {"median": "ms", "IQR": "ms"} and table.unit("ratio") == ""
    assert str(table).splitlines()[1].split()[:5] == ["name", "median", "(ms)", "IQR", "(ms)"]
    assert "2 interleaved rounds (max_rounds=2 reached)" in table.note
    assert table[0]["ratio"] == 1.0
    for row in table:
        assert math.isfinite(row["median"]) and row["median"] > 0
        assert math.isfinite(row["IQR"]) and row["IQR"] >= 0
        # the median is in ms: the per-round seconds times 1000
        assert row["median"] == pytest.approx(statistics.median(table.times[row["name"]]) * 1e3)
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
    assert table.column("IQR") == [0.0, 0.0, 0.0]
    for row in table:
        assert row["ratio"] == pytest.approx(row["median"] / table[2]["median"])


def test_compare_unknown_baseline():
    with pytest.raises(ValueError, match="'z'"):
        compare(three_candidates(), torch.ones(8), baseline="z", rounds=1, **FAST)


@pytest.mark.parametrize(
    ("rounds", "error"), [(0, ValueError), (-1, ValueError), (1.0, TypeError), ("2", TypeError)]
)
def test_compare_bad_rounds(rounds, error):
    with pytest.raises(error, match=f"rounds must be an int >= 1, got {rounds!r}"):
        compare(three_candidates(), torch.ones(8), baseline="a", rounds=rounds, **FAST)


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
        ({"max_rounds": 3}, ValueError, "max_rounds must be an int >= 6, got 3"),
        ({"max_rounds": 7.0}, TypeError, "max_rounds.*7.0"),
        ({"target": 0}, ValueError, "target must be a finite number > 0 and < 1, got 0"),
        ({"target": 1.5}, ValueError, "target.*1.5"),
        ({"target": "3%"}, TypeError, "target must be a finite number.*'3%'"),
        ({"max_seconds": 0}, ValueError, "max_seconds must be a finite number > 0, got 0"),
        ({"max_seconds": None}, TypeError, "max_seconds.*None"),
        ({"estimator": "mode"}, ValueError, "estimator must be one of.*'mode'"),
        ({"confidence": 1.0}, ValueError, "confidence"),
        ({"min_run_time": 0}, ValueError, "min_run_time"),
        ({"threads": 0}, ValueError, "threads"),
        ({"candidates": {}}, ValueError, "candidates must have at least one entry"),
        ({"candidates": [len]}, TypeError, "candidates must be a mapping"),
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
        model_latency({"a": nn.Conv2d(3, 4, 1)}, (1, 3, 4, 4), round=3)
    assert fake_timing["calls"] == []


@pytest.mark.parametrize(
    "kwargs", [{"threads": True}, {"min_run_time": True}, {"warmup": True}, {"threads": 1.0}]
)
def test_measure_rejects_bools_and_floats_before_running(kwargs):
    calls = []
    with pytest.raises(TypeError, match=repr(next(iter(kwargs.values())))):
        measure(lambda: calls.append(1), (), **kwargs)
    assert calls == [], "nothing may run before the arguments are checked"


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
    ("kwargs", "error"),
    [
        ({"matmul_size": 8}, ValueError),
        ({"copy_mib": 0}, ValueError),
        ({"cache_mib": True}, TypeError),
        ({"matmul_size": 64.0}, TypeError),
    ],
)
def test_roofline_probe_bad_sizes(kwargs, error):
    from shufflelib.bench import roofline_probe

    with pytest.raises(error, match=repr(next(iter(kwargs.values())))):
        roofline_probe("cpu", **kwargs)


def test_model_latency_table():
    from torch import nn

    small = {"a": nn.Conv2d(3, 4, 1), "b": nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())}
    t = model_latency(small, (1, 3, 8, 8), device="cpu", rounds=2, max_rounds=2, min_run_time=0.01)
    assert t.column("model") == ["a", "b"]
    assert t[0]["time / a"] == 1.0 and t[1]["median"] > 0
    assert t[0]["time / a low"] == t[0]["time / a high"] == 1.0
    assert set(t.times) == {"a", "b"} and all(len(v) == 2 for v in t.times.values())
    assert t.intervals["b"].estimate == t[1]["time / a"]
    assert t[0]["params"] == pytest.approx(16 / 1e6)
    assert t[1]["MAdds"] == pytest.approx(8 * 3 * 9 * 6 * 6 / 1e6)
    assert t.units == {"params": "M", "MAdds": "M", "median": "ms", "IQR": "ms"}
    assert [t.header(c) for c in ("params", "median", "images/s")] == [
        "params (M)",
        "median (ms)",
        "images/s",
    ]
    assert t[1]["images/s"] == pytest.approx(1 / (t[1]["median"] * 1e-3))
    with pytest.raises(ValueError, match="at least one"):
        model_latency({}, (1, 3, 8, 8))
    with pytest.raises(TypeError, match="'x'"):
        model_latency({"x": "not a model"}, (1, 3, 8, 8))


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


def test_timing_leaves_the_callers_models_as_they_were():
    from shufflelib.bench import inference_copy, model_latency

    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).train()
    model_latency({"net": net}, (1, 3, 4, 4), device="cpu", rounds=1, max_rounds=1, **FAST)
    assert net.training and net[1].training, "the caller's model stays in train mode"
    ready = nn.Conv2d(3, 4, 1).eval()
    assert inference_copy(ready, torch.device("cpu")) is ready, "no copy when nothing changes"
    copied = inference_copy(net, torch.device("cpu"))
    assert copied is not net and not copied.training and net.training
    assert torch.equal(copied[0].weight, net[0].weight)
