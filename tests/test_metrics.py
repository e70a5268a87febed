"""shufflelib.metrics: the direct-metric table, the Pareto front, FLOPs-vs-clock disagreements."""

import statistics

import pytest
import torch
from torch import nn

from shufflelib import metrics
from shufflelib.cost import madds
from shufflelib.tables import Table


def net(width: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )


def test_direct_metrics_counts_and_times_every_model(one_thread):
    models = {"narrow": net(4), "wide": net(32).train()}
    t = metrics.direct_metrics(
        models,
        {"narrow": 0.3, "wide": 0.6},
        image_size=16,
        batch_sizes=(1, 4),
        device="cpu",
        min_run_time=0.01,
        max_seconds=2,
    )
    assert t.column("model") == ["narrow", "wide"]
    assert t.column("test accuracy") == [0.3, 0.6]
    assert set(t.times) == {"b1", "b4"} and len(t.times["b1"]["wide"]) >= 6
    assert t[0]["MAdds"] == pytest.approx(madds(models["narrow"], (1, 3, 16, 16)) / 1e6)
    assert t[1]["params"] == pytest.approx((32 * 27 + 32) / 1e6)
    # MAC of the 3x3 conv alone: input 3*256, weights 32*27 + 32, output 32*256; ReLU and pool add
    assert t[1]["MAC"] * 1e6 >= 3 * 256 + 32 * 28 + 32 * 256
    for b in (1, 4):
        assert all(v > 0 for v in t.column(f"b{b}"))
        assert all(v >= 0 for v in t.column(f"b{b} IQR"))
        assert t.unit(f"b{b}") == t.unit(f"b{b} IQR") == "ms"
        # ms per batch: the median of the per-round seconds, times 1000
        seconds = sorted(t.times[f"b{b}"]["wide"])
        assert t[1][f"b{b}"] == pytest.approx(statistics.median(seconds) * 1e3)
    assert [t.header(c) for c in ("params", "MAdds", "MAC", "b4 IQR", "test accuracy")] == [
        "params (M)",
        "MAdds (M)",
        "MAC (M)",
        "b4 IQR (ms)",
        "test accuracy",
    ]
    assert models["wide"].training, "the caller's model keeps its train mode"


def test_direct_metrics_without_accuracy_times_untrained_networks(one_thread):
    t = metrics.direct_metrics(
        {"a": net(4), "b": net(8), "c": net(2)}, None, image_size=8, batch_sizes=(2,),
        min_run_time=0.01, max_seconds=1,
    )  # fmt: skip
    assert t.columns[:4] == ["model", "params", "MAdds", "MAC"] and "test accuracy" not in t.columns
    assert len(t.column("b2")) == 3 and t.unit("b2") == "ms"
    assert len(metrics.latency_pairs(t, "b2")) == 3  # compared by the clock alone
    with_c = metrics.latency_pairs(t, "b2", against="c")
    assert len(with_c) == 2 and all("c" in (r["model"], r["against"]) for r in with_c)
    assert with_c.title.startswith("against c, ")
    with pytest.raises(ValueError, match="against must be one of 'a', 'b', 'c'; got 'd'"):
        metrics.latency_pairs(t, "b2", against="d")


def test_direct_metrics_rejects_bad_input():
    with pytest.raises(ValueError, match="one entry per model"):
        metrics.direct_metrics({"a": net(4)}, {"b": 0.5})
    with pytest.raises(ValueError, match="fraction in \\[0, 1\\]"):
        metrics.direct_metrics({"a": net(4)}, {"a": 50})
    with pytest.raises(TypeError, match="torch.nn.Module"):
        metrics.direct_metrics({"a": "net"}, {"a": 0.5})
    with pytest.raises(ValueError, match="batch_sizes"):
        metrics.direct_metrics({"a": net(4)}, {"a": 0.5}, batch_sizes=(0,))
    with pytest.raises(ValueError, match="one per seed"):
        metrics.direct_metrics({"a": net(4)}, {"a": [0.5, 1.5]})


def test_direct_metrics_gives_mean_and_spread_over_seeds(one_thread):
    t = metrics.direct_metrics(
        {"a": net(4)}, {"a": [0.5, 0.7]}, image_size=16, batch_sizes=(1,), max_seconds=1
    )
    assert t[0]["test accuracy"] == pytest.approx(0.6) and t[0]["seeds"] == 2
    assert t[0]["test accuracy sd"] == pytest.approx(0.1414, abs=1e-4)


TABLE = Table(
    [
        {"model": "a", "MAdds": 10.0, "b1": 3.0, "test accuracy": 0.50},
        {"model": "b", "MAdds": 20.0, "b1": 2.0, "test accuracy": 0.60},
        {"model": "c", "MAdds": 30.0, "b1": 4.0, "test accuracy": 0.55},
        {"model": "d", "MAdds": 40.0, "b1": 5.0, "test accuracy": 0.70},
    ],
    units={"MAdds": "M", "b1": "ms"},
)


def test_pareto_front():
    assert metrics.pareto_front(TABLE, "b1") == ["b", "d"]  # a is slower and worse than b
    assert metrics.pareto_front(TABLE, "MAdds") == ["a", "b", "d"]
    with pytest.raises(ValueError, match="no column 'ms'"):
        metrics.pareto_front(TABLE, "ms")


def _noisy(gap: float, noise: float, sd: float) -> Table:
    """Two models: "fast" takes ``1 - gap`` of "slow"'s time, timed in 12 paired rounds."""
    g = torch.Generator().manual_seed(0)
    drift = torch.exp(0.3 * torch.randn(12, generator=g))
    jitter = torch.exp(noise * torch.randn(2, 12, generator=g))
    t = Table(
        [
            {"model": "slow", "b1": 1.0, "test accuracy": 0.90, "test accuracy sd": sd},
            {"model": "fast", "b1": 1 - gap, "test accuracy": 0.89, "test accuracy sd": sd},
        ]
    )
    t.times = {
        "b1": {
            "slow": (drift * jitter[0]).tolist(),
            "fast": ((1 - gap) * drift * jitter[1]).tolist(),
        }
    }
    return t


def test_the_front_and_the_disagreements_know_the_noise():
    # fast is 10% faster beyond its noise, and 0.01 less accurate: within spreads of 0.01 each
    clear = _noisy(0.10, 0.01, 0.01)
    assert metrics.pareto_front(clear, "b1") == ["fast"]  # as accurate, and faster
    # the same gap with spreads of 0.001: slow is more accurate beyond its spread, both stay
    assert metrics.pareto_front(_noisy(0.10, 0.01, 0.001), "b1") == ["fast", "slow"]
    # a 2% gap in 10% noise: neither is faster beyond the noise, both stay on the front
    close = _noisy(0.02, 0.10, 0.01)
    assert metrics.pareto_front(close, "b1") == ["fast", "slow"]
    assert "fast = slow" in metrics.verdict(_with_madds(close))
    fast = metrics.latency_pairs(clear)[0]
    assert (fast["model"], fast["against"], fast["verdict"]) == ("fast", "slow", "faster")
    assert 0.85 < fast["time ratio"] < 0.95
    assert metrics.latency_pairs(close)[0]["verdict"] == "too close to call"
    with pytest.raises(ValueError, match="per-round times"):
        metrics.latency_pairs(TABLE)
    pairs = metrics.accuracy_pairs(clear)
    assert pairs[0]["verdict"] == "too close to call" and pairs[0]["gap"] == pytest.approx(0.01)
    assert metrics.accuracy_pairs(_noisy(0.1, 0.01, 0.001))[0]["verdict"] == "more accurate"
    with pytest.raises(ValueError, match="spread over seeds"):
        metrics.accuracy_pairs(TABLE)


def _with_madds(t: Table) -> Table:
    out = Table([dict(r, **{"MAdds": m}) for r, m in zip(t, (2.0, 1.0))], units=t.units)
    out.times = t.times
    return out


def test_disagreements_and_verdict():
    d = metrics.disagreements(TABLE)
    assert len(d) == 1 and list(d[0].values())[:2] == ["a", "b"]
    assert list(d[0].values())[2:4] == [0.5, 1.5]
    text = metrics.verdict(TABLE)
    assert "Cheapest to dearest by MAdds (M): a < b < c < d." in text
    assert "by b1 (ms) (= too close to call): b < a < c < d." in text
    assert "a needs 0.50x the MAdds (M) of b, yet takes 1.50x its time" in text
    agree = Table([dict(r, **{"b1": r["MAdds"]}) for r in TABLE])
    assert "No pair of models is ordered one way by MAdds and" in metrics.verdict(agree)
    assert d.title == "where MAdds (M) and b1 (ms) disagree beyond the noise"
    assert list(d[0])[:3] == ["cheaper by MAdds", "than", "MAdds ratio"]
    # with measured rounds: fast has fewer MAdds and is faster beyond the noise, so they agree
    assert not metrics.disagreements(_with_madds(_noisy(0.10, 0.01, 0.01)))
    slow_cheap = _with_madds(_noisy(0.10, 0.01, 0.01))
    slow_cheap[0]["MAdds"], slow_cheap[1]["MAdds"] = 1.0, 2.0
    row = metrics.disagreements(slow_cheap)[0]
    assert row["than"] == "fast" and row["time ratio"] > 1.05


def test_published_quotes_table_8():
    t = metrics.published(50)
    row = next(r for r in t if r["model"] == "ShuffleNet v2 0.5x (ours)")
    assert row["top-1 accuracy"] == pytest.approx(0.603) and row["MFLOPs"] == 41
    assert row["ARM"] == pytest.approx(1000 / 57.0)
    assert t.header("ARM") == "ARM (ms)" and t.header("GPU") == "GPU (ms per batch of 8)"
    assert all(r["MFLOPs"] <= 50 for r in t) and len(t) == 8
    assert "ShuffleNet v2 0.5x (ours)" in metrics.pareto_front(t, "ARM", "top-1 accuracy")
    with pytest.raises(ValueError, match="max_mflops"):
        metrics.published(0)


def test_every_table_reader_names_a_missing_column():
    table = Table([{"model": "a", "MAdds": 1.0}], units={"MAdds": "M"})
    with pytest.raises(ValueError, match="no column 'b1' in the table"):
        metrics.verdict(table)
    with pytest.raises(ValueError, match="no column 'b1' in the table"):
        metrics.pareto_front(table, cost="b1")
    with pytest.raises(TypeError, match="table must be a shufflelib Table, got \\[1, 2\\]"):
        metrics.verdict([1, 2])
