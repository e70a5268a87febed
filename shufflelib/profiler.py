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
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from . import validate
from .env import machine_info
from .tables import Table

__all__ = ["profile_by_operator", "operator_kind", "KINDS"]

_COPIES = "copies (layout, concat, shuffle)"
KINDS = (  # (part of the operator's name, kind), first match wins
    ("qconv", "int8 convolution (oneDNN)"),
    ("qlinear", "int8 linear (oneDNN)"),
    ("pool", "pooling"),
    ("quantize", "int8 conversions"),
    ("conv", "convolution"),
    ("batch_norm", "BatchNorm"),
    ("addmm", "linear (classifier)"),
    ("linear", "linear (classifier)"),
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
    ("mean", "global pooling"),
    ("sum", "global pooling"),
)
OTHER = "framework (dispatch, views, allocation)"


def operator_kind(op: str) -> str:
    """The kind of work an operator named ``op`` does, from :data:`KINDS` (else :data:`OTHER`)."""
    validate.instance("op", op, str)
    return next((kind for key, kind in KINDS if key in op), OTHER)


def _row(operator: str, kind: str, events: Sequence[Any], runs: int, total: float):
    self_time = sum(e.self_cpu_time_total for e in events)
    return {
        "operator": operator,
        "kind": kind,
        "calls": sum(e.count for e in events) // runs,
        "self time (ms)": self_time / runs / 1e3,
        "share": self_time / total,
    }


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
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    rows = [_row(e.key, operator_kind(e.key), [e], runs, total) for e in events[:top]]
    if events[top:]:
        rows.append(_row(f"({len(events) - top} others)", "", events[top:], runs, total))
    title = f"profile of {label or 'one forward pass'}, input {tuple(x.shape)}, by self time"
    return Table(rows, title=title, note=str(machine_info(x.device)))
