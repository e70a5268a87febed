"""Where a forward pass spends its time, operator by operator (``torch.profiler``); chapter 11.

Same layer as :mod:`shufflelib.bench`: it times, it does not transform models.

The profiler's tracing library (Kineto) writes its own start and stop lines to the process's
standard error, and on a CUDA build of PyTorch without a GPU an error line about the missing
device. They come from C++ and cannot be filtered from Python: only redirecting the process's
file descriptor 2 hides them, which would also swallow anything else written meanwhile, from
any thread. So :func:`profile_by_operator` does it only when asked (``quiet_stderr=True``, as
chapter 11 asks, to keep the page clean), and never otherwise.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping

import torch
from torch.profiler import ProfilerActivity, profile

from . import validate
from .env import machine_info
from .tables import Table

__all__ = [
    "profile_by_operator",
    "operator_table",
    "operator_kind",
    "kind_table",
    "where_saved",
    "KINDS",
    "OTHER",
    "OUTSIDE",
    "GROUPS",
]

_COPIES = "copies (layout, concat, shuffle)"
_INT8_CONV, _INT8_LINEAR = "int8 convolution", "int8 linear"
_LINEAR, _GLOBAL = "linear (classifier)", "global pooling"
KINDS = (  # (part of the operator's name, kind), first match wins; case matters
    # torch.profiler's names (aten::..., quantized::..., Inductor's graph)
    ("qconv", "int8 convolution (oneDNN)"),
    ("qlinear", "int8 linear (oneDNN)"),
    ("pool", "pooling"),
    ("quantize", "int8 conversions"),
    ("conv", "convolution"),
    ("batch_norm", "BatchNorm"),
    ("addmm", _LINEAR),
    ("linear", _LINEAR),
    ("CompiledFxGraph", "Inductor's generated kernels (fused element-wise, copies)"),
    ("clamp", "element-wise (ReLU)"),
    ("relu", "element-wise (ReLU)"),
    ("hardtanh", "element-wise (ReLU6)"),
    ("add", "element-wise (add)"),
    ("copy", _COPIES),
    ("clone", _COPIES),
    ("cat", _COPIES),
    ("stack", _COPIES),
    ("contiguous", _COPIES),
    ("mean", _GLOBAL),
    ("sum", _GLOBAL),
    # ONNX operators (ONNX Runtime) and OpenVINO's node types, both capitalised
    ("QLinearConv", _INT8_CONV),
    ("QGemm", _INT8_LINEAR),
    ("FullyConnected", _LINEAR),
    ("Gemm", _LINEAR),
    ("MatMul", _LINEAR),
    ("GlobalAveragePool", _GLOBAL),
    ("Reduce", _GLOBAL),
    ("Pool", "pooling"),
    ("QuantizeLinear", "int8 conversions"),
    ("FakeQuantize", "int8 conversions"),
    ("Conv", "convolution"),
    ("Subgraph", "OpenVINO's generated kernels (fused element-wise)"),
    ("Eltwise", "element-wise"),
    ("Relu", "element-wise (ReLU)"),
    ("Clip", "element-wise (ReLU6)"),
    ("Add", "element-wise (add)"),
    ("Reorder", _COPIES),
    ("Transpose", _COPIES),
    ("ShuffleChannels", _COPIES),
    ("Concat", _COPIES),
    ("Split", _COPIES),
    ("Slice", _COPIES),
    ("Gather", _COPIES),
)
OTHER = "framework (dispatch, views, allocation)"
OUTSIDE = "(outside the operators)"  # the row of a runtime's time between its operators

_CONV_WORK = "convolution kernels"
_MOVING = "data movement, fused element-wise"
GROUPS = {  # kind -> the coarser kind of work that compares across profilers
    "convolution": _CONV_WORK,
    "int8 convolution (oneDNN)": _CONV_WORK,
    _INT8_CONV: _CONV_WORK,
    _COPIES: _MOVING,
    "Inductor's generated kernels (fused element-wise, copies)": _MOVING,
    "OpenVINO's generated kernels (fused element-wise)": _MOVING,
    "element-wise": _MOVING,
    "element-wise (ReLU)": _MOVING,
    "element-wise (ReLU6)": _MOVING,
    "element-wise (add)": _MOVING,
    "BatchNorm": _MOVING,
    "pooling": "pooling",
    _GLOBAL: "pooling",
    _LINEAR: "classifier",
    "int8 linear (oneDNN)": "classifier",
    _INT8_LINEAR: "classifier",
    "int8 conversions": "int8 conversions",
    OTHER: "framework (around the kernels)",
}


def operator_kind(op: str) -> str:
    """The kind of work an operator named ``op`` does, from :data:`KINDS` (else :data:`OTHER`)."""
    validate.instance("op", op, str)
    return next((kind for key, kind in KINDS if key in op), OTHER)


def _row(operator: str, kind: str, seconds: float, calls: int, runs: int, total: float):
    return {
        "operator": operator,
        "kind": kind,
        "calls": calls // runs,
        "self time": seconds / runs * 1e3,
        "share": seconds / total,
    }


def _kinds(events: list[tuple[str, float, int]], outside: float, runs: int) -> dict[str, float]:
    """Seconds per run by kind of work, every operator counted; the time outside is OTHER's."""
    kinds: dict[str, float] = {}
    for op, seconds, _ in events:
        kind = operator_kind(op)
        kinds[kind] = kinds.get(kind, 0.0) + seconds / runs
    if outside > 0:
        kinds[OTHER] = kinds.get(OTHER, 0.0) + outside / runs
    return kinds


def operator_table(
    times: Mapping[str, tuple[float, int]],
    runs: int,
    *,
    top: int = 8,
    wall: float | None = None,
    title: str = "",
    note: str = "",
) -> Table:
    """A profile as a table, from any profiler's totals; chapters 11 (torch and the runtimes).

    ``times``: operator name -> (self seconds, calls), summed over ``runs`` forward passes. Rows:
    the ``top`` operators by self time per pass, with calls per pass, their kind
    (:func:`operator_kind`) and share of the total, one row for the rest, and with ``wall`` (the
    passes' wall-clock seconds, from the runtime's own clock) one for the time spent outside
    every operator (:data:`OUTSIDE`). The table's ``kinds`` maps each kind of work to its
    seconds per pass, all operators counted (the outside time as :data:`OTHER`).
    """
    validate.mapping("times", times, nonempty=False)
    validate.integer("runs", runs, minimum=1)
    validate.integer("top", top, minimum=1)
    if wall is not None:
        validate.number("wall", wall, minimum=0)
    events = sorted(((op, t, c) for op, (t, c) in times.items() if t > 0), key=lambda e: -e[1])
    inside = sum(t for _, t, _ in events)
    outside = max(0.0, wall - inside) if wall is not None else 0.0
    total = inside + outside or 1.0
    rows = [_row(op, operator_kind(op), t, c, runs, total) for op, t, c in events[:top]]
    if events[top:]:
        rest = events[top:]
        seconds, calls = sum(e[1] for e in rest), sum(e[2] for e in rest)
        rows.append(_row(f"({len(rest)} others)", "", seconds, calls, runs, total))
    if outside > 0:
        rows.append(_row(OUTSIDE, OTHER, outside, runs, runs, total))
    table = Table(rows, title=title, note=note, units={"self time": "ms"})
    table.kinds = _kinds(events, outside, runs)
    return table


@contextlib.contextmanager
def _stderr_to_devnull() -> Iterator[None]:
    """The process's file descriptor 2 sent to /dev/null for the block, then restored."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def profile_by_operator(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    runs: int = 5,
    top: int = 8,
    label: str = "",
    quiet_stderr: bool = False,
) -> Table:
    """Where a forward pass spends its time, by operator, from ``torch.profiler``; chapter 11.

    Runs ``fn(x)`` once to warm up, then ``runs`` times under the profiler (CPU activities), all
    in inference mode, and returns the ``top`` operators by self time (time in the operator
    itself, not in the ones it calls) per forward pass, with their share of the total, the kind
    of work they do (:func:`operator_kind`), and one row for the rest. The profiler adds a
    little overhead to every operator call. ``fn`` (a model, say) is only called: its mode,
    device and weights stay as they are. ``quiet_stderr=True`` silences the profiler's own C++
    lines by sending the whole process's standard error to /dev/null while it records (see the
    module's docstring); by default nothing is redirected.
    """
    validate.function("fn", fn)
    validate.tensor("x", x, dims=4, floating=True)
    validate.integer("runs", runs, minimum=1)
    validate.integer("top", top, minimum=1)
    validate.instance("label", label, str)
    validate.flag("quiet_stderr", quiet_stderr)
    hush = _stderr_to_devnull() if quiet_stderr else contextlib.nullcontext()
    with torch.inference_mode():
        fn(x)
        with hush, profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(runs):
                fn(x)
    times = {e.key: (e.self_cpu_time_total * 1e-6, e.count) for e in prof.key_averages()}
    title = f"profile of {label or 'one forward pass'}, input {tuple(x.shape)}, by self time"
    return operator_table(times, runs, top=top, title=title, note=str(machine_info(x.device)))


def _profiles(profiles: object) -> Mapping[str, Table]:
    """``profiles`` checked: a mapping of label to a profile table that carries ``kinds``."""
    validate.mapping("profiles", profiles)
    for label, table in profiles.items():  # type: ignore[union-attr]
        validate.instance(f"profiles[{label!r}]", table, Table)
        if not isinstance(getattr(table, "kinds", None), dict):
            raise ValueError(
                f"profiles[{label!r}] must be a profile table (profile_by_operator, "
                "operator_table), got a table without kinds"
            )
    return profiles  # type: ignore[return-value]


def _grouped(kinds: Mapping[str, float]) -> dict[str, float]:
    """Seconds per kind of work summed into the coarser groups of :data:`GROUPS`."""
    groups: dict[str, float] = {}
    for kind, seconds in kinds.items():
        group = GROUPS.get(kind, GROUPS[OTHER])
        groups[group] = groups.get(group, 0.0) + seconds
    return groups


def kind_table(profiles: Mapping[str, Table]) -> Table:
    """Several profiles side by side by kind of work: ms per forward pass; chapter 11.

    ``profiles``: label -> a table of :func:`profile_by_operator` or :func:`operator_table`
    (any profiler: torch's, ONNX Runtime's, OpenVINO's). One row per kind of work, largest
    first, and a total. Each profiler adds its own overhead and names its operators its own
    way (Inductor's generated kernels do the copies that OpenVINO does in reorders and concats),
    so the kinds of :func:`operator_kind` are summed into coarser ones that compare across
    profilers (:data:`GROUPS`): convolution kernels, data movement and fused element-wise work
    (copies, layout conversions, the shuffle, generated kernels), pooling, the classifier, int8
    conversions and the framework around the kernels (dispatch, allocation, scheduling).
    """
    _profiles(profiles)
    grouped = {label: _grouped(t.kinds) for label, t in profiles.items()}
    kinds = list(dict.fromkeys(k for g in grouped.values() for k in g))
    kinds.sort(key=lambda k: -max(g.get(k, 0.0) for g in grouped.values()))
    rows = [{"kind": k, **{lb: g.get(k, 0.0) * 1e3 for lb, g in grouped.items()}} for k in kinds]
    rows.append(
        {
            "kind": "total",
            **{lb: sum(t.kinds.values()) * 1e3 for lb, t in profiles.items()},
        }
    )
    title = "where the time goes, by kind of work (ms per forward pass)"
    return Table(rows, title=title, units=dict.fromkeys(profiles, "ms"))


def where_saved(profiles: Mapping[str, Table], faster: str, slower: str, *, top: int = 3) -> str:
    """The sentence that says where ``faster`` spends less time than ``slower``; chapter 11.

    From the ``kinds`` of two profiles of ``profiles``, in the coarse kinds of work of
    :func:`kind_table`: their totals per forward pass, the ``top`` kinds of work on which
    ``faster`` spends the most less, and the one on which it spends the most more, if any.
    Composed from the measurement, so that a chapter never writes the outcome in its prose.
    """
    _profiles(profiles)
    validate.choice("faster", faster, list(profiles))
    validate.choice("slower", slower, list(profiles))
    validate.integer("top", top, minimum=1)
    if faster == slower:
        raise ValueError(f"slower must be another profile than faster, got {slower!r} twice")
    a, b = _grouped(profiles[faster].kinds), _grouped(profiles[slower].kinds)
    diff = {k: b.get(k, 0.0) - a.get(k, 0.0) for k in {**a, **b}}  # > 0: faster spends less
    less = sorted((k for k in diff if diff[k] > 0), key=lambda k: -diff[k])[:top]
    more = sorted((k for k in diff if diff[k] < 0), key=lambda k: diff[k])[:1]
    total_a, total_b = sum(a.values()) * 1e3, sum(b.values()) * 1e3
    words = [
        f"Under the profilers, {faster} takes {total_a:.2f} ms per forward pass and {slower} "
        f"{total_b:.2f} ms."
    ]
    if less:
        listed = "; ".join(f"{k}, {diff[k] * 1e3:.2f} ms less" for k in less)
        words.append(f"{faster} spends less than {slower} on: {listed}.")
    if more:
        k = more[0]
        words.append(f"It spends more on {k}: {-diff[k] * 1e3:.2f} ms.")
    return " ".join(words)
