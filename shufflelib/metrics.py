"""Direct metrics: accuracy against measured speed, the Pareto front, where FLOPs mislead; ch. 10.

The ShuffleNet V2 paper's first lesson is to judge a network by a direct metric (its speed on
the target machine) beside its accuracy, not by FLOPs. ``direct_metrics`` puts trained models'
test accuracy beside their parameters, multiply-adds, memory access cost and latency measured
here (interleaved, with :func:`shufflelib.bench.model_latency`); ``pareto_front`` finds the
models no other model beats on both axes; ``disagreements`` lists the pairs that FLOPs and the
clock rank in opposite orders, and ``verdict`` says it in sentences computed from the table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import torch
from torch import nn

from . import validate
from .bench import MIN_ROUNDS, inference_copy, model_latency, sampling_arguments
from .cost import mac
from .env import pick_device
from .stats import CLOSE, Interval, ratio_interval, spread
from .tables import Table, count

__all__ = [
    "direct_metrics",
    "pareto_front",
    "disagreements",
    "verdict",
    "accuracy_pairs",
    "latency_pairs",
    "published",
]


def _check_models(models: Mapping[str, nn.Module], accuracy: Mapping[str, Any] | None) -> None:
    validate.mapping("models", models)
    for name, m in models.items():
        validate.module(f"models[{name!r}]", m)
    if accuracy is None:
        return
    validate.mapping("accuracy", accuracy)
    if set(accuracy) != set(models):
        raise ValueError(
            f"accuracy must give one entry per model ({sorted(models)}), got "
            f"{sorted(accuracy) if isinstance(accuracy, Mapping) else accuracy!r}"
        )
    for name, a in accuracy.items():
        values = list(a) if isinstance(a, Sequence) else [a]
        if not values or any(
            isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1 for v in values
        ):
            raise ValueError(
                f"accuracy[{name!r}] must be a fraction in [0, 1] or a list of them (one per "
                f"seed), got {a!r}"
            )


def _accuracy_columns(a: float | Sequence[float]) -> dict[str, Any]:
    if not isinstance(a, Sequence):
        return {"test accuracy": a}
    if len(a) == 1:
        return {"test accuracy": a[0], "seeds": 1}
    mean, sd = spread(list(a))
    return {"test accuracy": mean, "test accuracy sd": sd, "seeds": len(a)}


def direct_metrics(
    models: Mapping[str, nn.Module],
    accuracy: Mapping[str, float | Sequence[float]] | None,
    image_size: int = 32,
    batch_sizes: Sequence[int] = (1, 16),
    *,
    device: torch.device | str | None = None,
    threads: int | None = None,
    rounds: int = MIN_ROUNDS,
    min_run_time: float = 0.2,
    **sampling: Any,
) -> Table:
    """One row per model: accuracy, params, MAdds, MAC and latency per batch size; chapter 10.

    ``accuracy`` gives each model's test accuracy, or a list of them (one per seed): then the
    row shows their mean, ``test accuracy sd`` (the spread over seeds) and ``seeds``; None
    leaves accuracy out, for networks timed but not trained (chapter 10's later designs). Latency
    is the median (and IQR) of interleaved rounds on ``device`` (default: the best one here),
    ``threads`` CPU threads (default: all), sampled as :func:`shufflelib.bench.compare` does
    (``sampling`` goes there). Columns ``b{N}`` and ``b{N} IQR`` (ms) for each batch size
    ``N``; the table's ``times`` attribute keeps, per ``b{N}`` column, every model's per-round
    seconds, so :func:`pareto_front` and :func:`disagreements` compare models by paired
    ratios with intervals. ``params``, ``MAdds`` and ``MAC`` are in millions; MAC counts
    elements, as the paper's definition does.
    """
    _check_models(models, accuracy)
    validate.integer("image_size", image_size, minimum=8)
    validate.shape("batch_sizes", batch_sizes)
    sampling = sampling_arguments(rounds, sampling)
    device = pick_device(device)
    rows: dict[str, dict[str, Any]] = {
        name: {"model": name, **(_accuracy_columns(accuracy[name]) if accuracy is not None else {})}
        for name in models
    }
    times: dict[str, dict[str, list[float]]] = {}
    for b in batch_sizes:
        timed = model_latency(
            models,
            (b, 3, image_size, image_size),
            device=device,
            threads=threads,
            min_run_time=min_run_time,
            **sampling,
        )
        times[f"b{b}"] = timed.times
        for r in timed:
            row = rows[r["model"]]
            row.setdefault("params", r["params"])
            row.setdefault("MAdds", r["MAdds"])
            row[f"b{b}"] = r["median"]
            row[f"b{b} IQR"] = r["IQR"]
    for name, m in models.items():  # counted on a CPU copy where needed: the caller's stay put
        cpu_model = inference_copy(m, torch.device("cpu"))
        rows[name]["MAC"] = mac(cpu_model, (1, 3, image_size, image_size)).elements / 1e6
    first = ["model", "test accuracy", "test accuracy sd", "seeds"]
    order = [k for k in first if k in next(iter(rows.values()))]
    order += ["params", "MAdds", "MAC"]
    table = [
        {k: row[k] for k in order} | {k: row[k] for k in row if k not in order}
        for row in rows.values()
    ]
    title = f"direct metrics at {image_size}x{image_size}, {device}"
    if threads is not None:
        title += f", {count(threads, 'thread')}"
    units = {"params": "M", "MAdds": "M", "MAC": "M"}
    units |= {k: "ms" for b in batch_sizes for k in (f"b{b}", f"b{b} IQR")}
    out = Table(table, title=title, note=timed.note, units=units)
    out.times = times
    return out


def _column(table: Table, name: str) -> list[Any]:
    if not isinstance(table, Table):
        raise TypeError(f"table must be a shufflelib Table, got {validate.show(table)}")
    return table.column(name)


def _cost_ratio(table: Table, cost: str, i: int, j: int) -> Interval:
    """Row i's cost over row j's: a paired interval for measured times, exact for counts."""
    samples = getattr(table, "times", {}).get(cost)
    if samples is not None:
        names = table.column("model")
        return ratio_interval(samples[names[i]], samples[names[j]])
    a, b = table[i][cost], table[j][cost]
    return Interval(a / b, a / b, a / b, 1, estimator="exact")


def _quality_side(table: Table, quality: str, i: int, j: int) -> int:
    """+1 if row i is better than row j beyond their spreads, -1 if worse, 0 if within."""
    q = table.column(quality)
    sd_col = f"{quality} sd"
    sd = table.column(sd_col) if sd_col in table.columns else [0.0] * len(table)
    gap = q[i] - q[j]
    if abs(gap) <= sd[i] + sd[j]:
        return 0
    return 1 if gap > 0 else -1


def pareto_front(
    table: Table, cost: str, quality: str = "test accuracy", label: str = "model"
) -> list[str]:
    """The rows no other row beats beyond the noise; sorted by ``cost``; chapter 10.

    Row j beats row i when it is at least as good on both axes and better on one, where
    "better" must exceed the noise: on a measured time (a column of the table's ``times``) the
    paired ratio's 95% interval must lie wholly below or above 1, and on ``quality`` the gap
    must exceed the sum of the two spreads (column ``{quality} sd``, when present). Rows too
    close to call both stay on the front.
    """
    names, c, _ = _column(table, label), _column(table, cost), _column(table, quality)
    front = []
    for i in range(len(names)):
        dominated = False
        for j in range(len(names)):
            if j == i:
                continue
            cheaper = -_cost_ratio(table, cost, j, i).side(1.0)  # +1: j cheaper than i
            better = _quality_side(table, quality, j, i)
            if cheaper >= 0 and better >= 0 and (cheaper > 0 or better > 0):
                dominated = True
                break
        if not dominated:
            front.append(i)
    return [names[i] for i in sorted(front, key=lambda i: c[i])]


def disagreements(
    table: Table, predicted: str = "MAdds", measured: str = "b1", label: str = "model"
) -> Table:
    """Pairs of models that ``predicted`` cost and ``measured`` time put in opposite orders.

    A row says: by ``predicted`` model ``cheaper`` costs less, yet by ``measured`` it is the
    slower one, beyond the noise (the 95% interval of the paired time ratio lies above 1).
    Pairs whose interval straddles 1 are not listed: the clock cannot order them. Chapter 10.
    """
    names = _column(table, label)
    p = _column(table, predicted)
    _column(table, measured)
    rows = []
    for i, j in combinations(range(len(names)), 2):
        if p[i] == p[j]:
            continue
        cheap, dear = (i, j) if p[i] < p[j] else (j, i)
        ratio = _cost_ratio(table, measured, cheap, dear)
        if ratio.side(1.0) > 0:
            rows.append(
                {
                    "cheaper by " + predicted: names[cheap],
                    "than": names[dear],
                    predicted + " ratio": p[cheap] / p[dear],
                    "time ratio": ratio.estimate,
                    "95% interval": ratio.bounds,
                }
            )
    words = f"{table.header(predicted)} and {table.header(measured)}"
    return Table(rows, title=f"where {words} disagree beyond the noise")


def _ranking(table: Table, column: str) -> str:
    """Names from cheapest to dearest by ``column``; "=" joins neighbours too close to call."""
    names = _column(table, "model")
    _column(table, column)
    order = sorted(range(len(names)), key=lambda i: table[i][column])
    words = [names[order[0]]]
    for prev, k in zip(order, order[1:]):
        tied = _cost_ratio(table, column, k, prev).side(1.0) == 0
        words.append(("= " if tied else "< ") + names[k])
    return " ".join(words)


def verdict(table: Table, predicted: str = "MAdds", measured: str = "b1") -> str:
    """Sentences, computed from ``table``, on whether ``predicted`` ranked the models as the
    clock did, beyond the noise of the clock; chapter 10."""
    ranked = f"{_ranking(table, predicted)}.", f"{_ranking(table, measured)}."
    cost, clock = table.header(predicted), table.header(measured)
    lines = [
        f"Cheapest to dearest by {cost}: {ranked[0]}",
        f"Fastest to slowest by {clock} (= too close to call): {ranked[1]}",
    ]
    pairs = disagreements(table, predicted, measured)
    if not pairs:
        lines.append(
            f"No pair of models is ordered one way by {cost} and the other way by the clock "
            "beyond the noise."
        )
    for row in pairs:
        r = list(row.values())
        lines.append(
            f"{r[0]} needs {r[2]:.2f}x the {cost} of {r[1]}, yet takes {r[3]:.2f}x its "
            f"time (95% interval {r[4]})."
        )
    return "\n".join(lines)


def latency_pairs(
    table: Table, measured: str = "b1", label: str = "model", against: str | None = None
) -> Table:
    """Every pair of models: the paired time ratio on ``measured`` with its 95% interval.

    Each row puts the faster model (by the ratio's estimate) first; ``verdict`` is "faster" when
    the interval lies wholly below 1 and "too close to call" otherwise. ``against`` (a model of
    the table) keeps only the pairs with that model. Needs the table's ``times`` (from
    :func:`direct_metrics`). Chapters 10 and 11.
    """
    names = _column(table, label)
    _column(table, measured)
    if measured not in getattr(table, "times", {}):
        raise ValueError(
            f"latency_pairs needs the per-round times of {measured!r} (direct_metrics)"
        )
    if against is not None:
        validate.choice("against", against, names)
    rows = []
    for i, j in combinations(range(len(names)), 2):
        if against is not None and against not in (names[i], names[j]):
            continue
        ratio = _cost_ratio(table, measured, i, j)
        if ratio.estimate > 1:
            i, j = j, i
            ratio = _cost_ratio(table, measured, i, j)
        rows.append(
            {
                "model": names[i],
                "against": names[j],
                "time ratio": ratio.estimate,
                "95% interval": ratio.bounds,
                "verdict": "faster" if ratio.side(1.0) < 0 else CLOSE,
            }
        )
    title = f"latency, pair by pair ({table.header(measured)}): paired ratios with intervals"
    if against is not None:
        title = f"against {against}, {title}"
    return Table(rows, title=title)


def accuracy_pairs(table: Table, quality: str = "test accuracy") -> Table:
    """Every pair of models: the accuracy gap, the two spreads, and whether it exceeds them.

    A model is called more accurate than another only when the gap between their means exceeds
    the sum of their spreads over seeds (``{quality} sd``); otherwise the pair is "too close to
    call". Chapter 10.
    """
    names = _column(table, "model")
    q = _column(table, quality)
    sd_col = f"{quality} sd"
    if sd_col not in table.columns:
        raise ValueError(f"accuracy_pairs needs the spread over seeds, a column {sd_col!r}")
    rows = []
    for i, j in combinations(range(len(names)), 2):
        hi, lo = (i, j) if q[i] >= q[j] else (j, i)
        side = _quality_side(table, quality, hi, lo)
        rows.append(
            {
                "model": names[hi],
                "against": names[lo],
                "gap": q[hi] - q[lo],
                "spreads": table[hi][sd_col] + table[lo][sd_col],
                "verdict": "more accurate" if side > 0 else CLOSE,
            }
        )
    return Table(rows, title="accuracy, pair by pair: is the gap beyond the seeds' spread?")


def published(max_mflops: float = 50.0) -> Table:
    """The ShuffleNet V2 paper's Table 8 rows up to ``max_mflops``, as accuracy and time; ch. 10.

    Quoted, not measured: ImageNet top-1 accuracy (100 - the paper's error), its FLOPs, and its
    speeds turned into times (ARM: ms per image at batch 1; GPU: ms per batch of 8), so that the
    Pareto front is found the same way as for our table.
    """
    from .reference import table

    validate.number("max_mflops", max_mflops, above=0)
    source = table("shufflenet_v2.table8")
    rows = [
        {
            "model": r["model"],
            "input": r["input"],
            "MFLOPs": r["MFLOPs"],
            "top-1 accuracy": round(1 - r["top-1 err"] / 100, 3),
            "ARM": 1000 / r["ARM"],
            "GPU": 1000 / r["GPU"],
        }
        for r in source
        if r["MFLOPs"] <= max_mflops and r["ARM"] and r["GPU"]
    ]
    return Table(
        rows,
        title=f"ShuffleNet V2 paper, Table 8, up to {max_mflops:g} MFLOPs (ImageNet, published)",
        note=source.note,
        units={"ARM": "ms", "GPU": "ms per batch of 8"},
    )
