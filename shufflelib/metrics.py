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

from .bench import model_latency, pick_device
from .cost import mac
from .tables import Table

__all__ = ["direct_metrics", "pareto_front", "disagreements", "verdict", "published"]


def _check_models(models: Mapping[str, nn.Module], accuracy: Mapping[str, float]) -> None:
    if not isinstance(models, Mapping) or not models:
        raise ValueError(f"models must be a non-empty mapping of name -> model, got {models!r}")
    for name, m in models.items():
        if not isinstance(m, nn.Module):
            raise TypeError(f"models[{name!r}] must be a torch.nn.Module, got {type(m).__name__}")
    if not isinstance(accuracy, Mapping) or set(accuracy) != set(models):
        raise ValueError(
            f"accuracy must give one number per model ({sorted(models)}), got "
            f"{sorted(accuracy) if isinstance(accuracy, Mapping) else accuracy!r}"
        )
    for name, a in accuracy.items():
        if isinstance(a, bool) or not isinstance(a, int | float) or not 0 <= a <= 1:
            raise ValueError(f"accuracy[{name!r}] must be a fraction in [0, 1], got {a!r}")


def direct_metrics(
    models: Mapping[str, nn.Module],
    accuracy: Mapping[str, float],
    image_size: int = 32,
    batch_sizes: Sequence[int] = (1, 16),
    *,
    device: torch.device | str | None = None,
    threads: int | None = None,
    rounds: int = 3,
    min_run_time: float = 0.2,
) -> Table:
    """One row per model: accuracy, params, MAdds, MAC and latency per batch size; chapter 10.

    Latency is the median (and IQR) of interleaved rounds on ``device`` (default: the best one
    here), ``threads`` CPU threads (default: all). Columns ``b{N} (ms)`` and ``b{N} IQR (ms)``
    for each batch size ``N``. MAC counts elements, as the paper's definition does.
    """
    _check_models(models, accuracy)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an int >= 8, got {image_size!r}")
    if not batch_sizes or any(
        isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in batch_sizes
    ):
        raise ValueError(f"batch_sizes must be ints >= 1, got {batch_sizes!r}")
    device = pick_device() if device is None else torch.device(device)
    rows: dict[str, dict[str, Any]] = {
        name: {"model": name, "test accuracy": accuracy[name]} for name in models
    }
    for b in batch_sizes:
        timed = model_latency(
            models,
            (b, 3, image_size, image_size),
            device=device,
            threads=threads,
            rounds=rounds,
            min_run_time=min_run_time,
        )
        for r in timed:
            row = rows[r["model"]]
            row.setdefault("params (M)", r["params (M)"])
            row.setdefault("MAdds (M)", r["MAdds (M)"])
            row[f"b{b} (ms)"] = r["median (ms)"]
            row[f"b{b} IQR (ms)"] = r["IQR (ms)"]
    for name, m in models.items():
        rows[name]["MAC (M)"] = mac(m.to("cpu"), (1, 3, image_size, image_size)).elements / 1e6
        m.to(device)
    order = ["model", "test accuracy", "params (M)", "MAdds (M)", "MAC (M)"]
    table = [
        {k: row[k] for k in order} | {k: row[k] for k in row if k not in order}
        for row in rows.values()
    ]
    title = f"direct metrics at {image_size}x{image_size}, {device}"
    if threads is not None:
        title += f", {threads} thread(s)"
    return Table(table, title=title, note=timed.note)


def _column(table: Table, name: str) -> list[Any]:
    if not isinstance(table, Table):
        raise TypeError(f"table must be a shufflelib Table, got {type(table).__name__}")
    if name not in table.columns:
        raise ValueError(f"no column {name!r} in the table; it has {table.columns}")
    return table.column(name)


def pareto_front(
    table: Table, cost: str, quality: str = "test accuracy", label: str = "model"
) -> list[str]:
    """The rows no other row beats: none is at most as costly and at least as good, and better
    on one of the two. Sorted by ``cost``; chapter 10."""
    names, c, q = _column(table, label), _column(table, cost), _column(table, quality)
    front = []
    for i in range(len(names)):
        dominated = any(
            c[j] <= c[i] and q[j] >= q[i] and (c[j] < c[i] or q[j] > q[i])
            for j in range(len(names))
            if j != i
        )
        if not dominated:
            front.append(i)
    return [names[i] for i in sorted(front, key=lambda i: c[i])]


def disagreements(
    table: Table, predicted: str = "MAdds (M)", measured: str = "b1 (ms)", label: str = "model"
) -> Table:
    """Pairs of models that ``predicted`` cost and ``measured`` time put in opposite orders.

    A row says: by ``predicted`` model ``cheaper`` costs less, yet by ``measured`` it is the
    slower one. ``times`` is the measured ratio slower/faster; chapter 10.
    """
    names = _column(table, label)
    p, m = _column(table, predicted), _column(table, measured)
    rows = []
    for i, j in combinations(range(len(names)), 2):
        if p[i] == p[j] or m[i] == m[j]:
            continue
        if (p[i] < p[j]) != (m[i] < m[j]):
            cheap, dear = (i, j) if p[i] < p[j] else (j, i)
            rows.append(
                {
                    "cheaper by " + predicted: names[cheap],
                    "than": names[dear],
                    predicted + " ratio": p[cheap] / p[dear],
                    "yet slower: " + measured + " ratio": m[cheap] / m[dear],
                }
            )
    return Table(rows, title=f"where {predicted} and {measured} disagree")


def verdict(table: Table, predicted: str = "MAdds (M)", measured: str = "b1 (ms)") -> str:
    """Sentences, computed from ``table``, on whether ``predicted`` ranked the models as the
    clock did; chapter 10."""
    names = _column(table, "model")
    by_p = [names[i] for i in sorted(range(len(names)), key=lambda i: table[i][predicted])]
    by_m = [names[i] for i in sorted(range(len(names)), key=lambda i: table[i][measured])]
    lines = [
        f"Cheapest to dearest by {predicted}: {', '.join(by_p)}.",
        f"Fastest to slowest by {measured}: {', '.join(by_m)}.",
    ]
    pairs = disagreements(table, predicted, measured)
    if not pairs:
        lines.append(f"Here {predicted} ranked every pair of models as the clock did.")
    for row in pairs:
        r = list(row.values())
        lines.append(
            f"{r[0]} needs {r[2]:.2f}x the {predicted} of {r[1]}, yet takes {r[3]:.2f}x its time."
        )
    return "\n".join(lines)


def published(max_mflops: float = 50.0) -> Table:
    """The ShuffleNet V2 paper's Table 8 rows up to ``max_mflops``, as accuracy and time; ch. 10.

    Quoted, not measured: ImageNet top-1 accuracy (100 - the paper's error), its FLOPs, and its
    speeds turned into times (ARM: ms per image at batch 1; GPU: ms per batch of 8), so that the
    Pareto front is found the same way as for our table.
    """
    from .reference import table

    if isinstance(max_mflops, bool) or not isinstance(max_mflops, int | float) or max_mflops <= 0:
        raise ValueError(f"max_mflops must be a number > 0, got {max_mflops!r}")
    source = table("shufflenet_v2.table8")
    rows = [
        {
            "model": r["model"],
            "input": r["input"],
            "MFLOPs": r["MFLOPs"],
            "top-1 accuracy": round(1 - r["top-1 err (%)"] / 100, 3),
            "ARM (ms)": 1000 / r["ARM (images/s)"],
            "GPU (ms per batch of 8)": 1000 / r["GPU (batches/s)"],
        }
        for r in source
        if r["MFLOPs"] <= max_mflops and r["ARM (images/s)"] and r["GPU (batches/s)"]
    ]
    return Table(
        rows,
        title=f"ShuffleNet V2 paper, Table 8, up to {max_mflops:g} MFLOPs (ImageNet, published)",
        note=source.note,
    )
