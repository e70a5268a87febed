"""Pass/fail checks for the coding exercises: one line that says PASS, or FAIL and what is wrong.

A coding exercise in the book gives a stub to complete and ends with one call, for example::

    from shufflelib import check

    check.close(my_group_conv(x, conv.weight, 3), conv(x), "your group convolution")

When the answer is right the call prints ``PASS: ...``. When it is wrong it raises
:class:`CheckFailed` (an ``AssertionError``, so a notebook cell turns red and a test fails) whose
message starts with ``FAIL:`` and names the wrong value: the number you gave and the one expected,
or for tensors the shape, the largest difference and where it is. Every chapter's exercises use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from . import validate

__all__ = ["CheckFailed", "equal", "close", "shape", "params", "same_function"]


class CheckFailed(AssertionError):
    """An exercise check that did not pass; the message says what was wrong."""


# ---------------------------------------------------------------------------------------------
# argument checks (bad calls of the checks themselves, as opposed to wrong answers)


def _check_what(what: object) -> str:
    return validate.text("what", what)


def _check_tolerance(name: str, value: object) -> float:
    return validate.number(name, value, minimum=0)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fmt(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return repr(value)


def _passed(message: str) -> None:
    print(f"PASS: {message}")


def _failed(message: str) -> CheckFailed:
    return CheckFailed(f"FAIL: {message}")


# ---------------------------------------------------------------------------------------------
# the checks


def equal(actual: Any, expected: Any, what: str = "your answer") -> None:
    """Exact equality: numbers, strings, tuples and lists of them, or tensors (same shape, values).

    ``expected`` may be a tensor, or a number or nested list compared with a tensor ``actual``.
    """
    _check_what(what)
    if isinstance(actual, torch.Tensor) or isinstance(expected, torch.Tensor):
        a, e = _as_tensors(actual, expected, what)
        if tuple(a.shape) != tuple(e.shape):
            raise _failed(f"{what} has shape {tuple(a.shape)}, expected {tuple(e.shape)}")
        wrong = a != e
        if wrong.any():
            index = _first_index(wrong)
            raise _failed(
                f"{what} differs at {int(wrong.sum()):,} of {a.numel():,} positions; "
                f"first at index {index}: yours {_item(a, index)}, expected {_item(e, index)}"
            )
        _passed(f"{what} equals the expected tensor of shape {tuple(e.shape)}")
        return
    if isinstance(actual, list | tuple) and isinstance(expected, list | tuple):
        if len(actual) != len(expected):
            raise _failed(f"{what} has {len(actual)} items, expected {len(expected)}: {expected!r}")
        for i, (a, e) in enumerate(zip(actual, expected)):
            if a != e:
                raise _failed(f"{what} differs at item {i}: yours {a!r}, expected {e!r}")
        _passed(f"{what} equals {_short(expected)}")
        return
    if actual != expected:
        raise _failed(f"{what} is {_fmt(actual)}, expected {_fmt(expected)}")
    _passed(f"{what} is {_fmt(expected)}, as expected")


def close(
    actual: Any,
    expected: Any,
    what: str = "your answer",
    *,
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> None:
    """Equality within ``|actual - expected| <= atol + rtol * |expected|``, for numbers or tensors.

    Tensors must have the same shape; a failure reports the largest difference and its index.
    """
    _check_what(what)
    rtol = _check_tolerance("rtol", rtol)
    atol = _check_tolerance("atol", atol)
    if _is_number(actual) and _is_number(expected):
        diff = abs(actual - expected)
        if not diff <= atol + rtol * abs(expected):  # also catches NaN
            raise _failed(
                f"{what} is {_fmt(actual)}, expected {_fmt(expected)} "
                f"(difference {diff:.3g}; allowed {atol + rtol * abs(expected):.3g})"
            )
        _passed(f"{what} is {_fmt(actual)}, within {atol + rtol * abs(expected):.3g} of expected")
        return
    a, e = _as_tensors(actual, expected, what)
    if tuple(a.shape) != tuple(e.shape):
        raise _failed(f"{what} has shape {tuple(a.shape)}, expected {tuple(e.shape)}")
    a, e = a.detach().double().cpu(), e.detach().double().cpu()
    if a.numel() == 0:
        _passed(f"{what} is empty, as expected (shape {tuple(e.shape)})")
        return
    diff = (a - e).abs()
    bad = ~(diff <= atol + rtol * e.abs())  # NaN counts as bad
    worst = torch.where(torch.isnan(diff), torch.full_like(diff, math.inf), diff)
    index = tuple(int(i) for i in torch.unravel_index(worst.argmax(), worst.shape))
    if bad.any():
        raise _failed(
            f"{what} differs from the expected tensor of shape {tuple(e.shape)}: "
            f"{int(bad.sum()):,} of {a.numel():,} values are off by more than "
            f"atol + rtol*|expected| (atol {atol:g}, rtol {rtol:g}); the largest difference is "
            f"{float(diff[index]):.3g} at index {index} (yours {float(a[index]):.6g}, expected "
            f"{float(e[index]):.6g})"
        )
    _passed(
        f"{what} matches the expected tensor of shape {tuple(e.shape)} "
        f"(largest difference {float(diff[index]):.2g})"
    )


def shape(tensor: torch.Tensor, expected: Sequence[int | None], what: str = "your tensor") -> None:
    """The tensor's shape; ``None`` in ``expected`` accepts any size in that dimension."""
    _check_what(what)
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor to check its shape, got {_fmt(tensor)}")
    if isinstance(expected, str | bytes) or not isinstance(expected, Sequence | torch.Size):
        raise ValueError(f"expected must be a shape such as (1, 24, 56, 56), got {expected!r}")
    if not all(
        d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 0) for d in expected
    ):
        raise ValueError(f"expected must hold ints >= 0 or None, got {tuple(expected)!r}")
    got = tuple(tensor.shape)
    want = tuple(expected)
    if len(got) != len(want) or any(w is not None and g != w for g, w in zip(got, want)):
        shown = "(" + ", ".join("any" if w is None else str(w) for w in want) + ")"
        raise _failed(f"{what} has shape {got}, expected {shown}")
    _passed(f"{what} has shape {got}")


def params(model: nn.Module, expected: int, what: str = "your model") -> None:
    """The number of parameters of ``model``; a failure lists them by top-level child."""
    _check_what(what)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
        raise ValueError(f"expected must be an int >= 0 (a parameter count), got {expected!r}")
    count = sum(p.numel() for p in model.parameters())
    if count != expected:
        parts = ", ".join(
            f"{name}: {sum(p.numel() for p in child.parameters()):,}"
            for name, child in model.named_children()
        )
        detail = f" (by child: {parts})" if parts else ""
        raise _failed(f"{what} has {count:,} parameters, expected {expected:,}{detail}")
    _passed(f"{what} has {count:,} parameters, as expected")


def same_function(
    candidate: Callable[..., Any],
    reference: Callable[..., Any],
    *inputs: Any,
    what: str = "your function",
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> None:
    """``candidate(*inputs)`` equals ``reference(*inputs)`` within the tolerances (see ``close``).

    Both run without gradients; modules run in eval mode and get their previous mode back.
    Outputs may be tensors or tuples/lists of tensors.
    """
    _check_what(what)
    for name, fn in (("candidate", candidate), ("reference", reference)):
        if not callable(fn):
            raise TypeError(f"{name} must be callable (a function or a module), got {fn!r}")
    if not inputs:
        raise ValueError("same_function needs at least one input to call both functions with")
    with _eval_mode(candidate, reference), torch.no_grad():
        got, want = candidate(*inputs), reference(*inputs)
    if isinstance(want, list | tuple):
        if not isinstance(got, list | tuple) or len(got) != len(want):
            raise _failed(f"{what} returned {_fmt(got)}, expected {len(want)} outputs")
        for i, (g, w) in enumerate(zip(got, want)):
            close(g, w, f"{what}, output {i}", rtol=rtol, atol=atol)
        return
    close(got, want, what, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------------------------
# helpers


class _eval_mode:
    """Put the modules among ``fns`` in eval mode, restoring each one's mode on exit."""

    def __init__(self, *fns: object) -> None:
        self.modules = [f for f in fns if isinstance(f, nn.Module)]
        self.modes: list[list[tuple[nn.Module, bool]]] = []

    def __enter__(self) -> None:
        for m in self.modules:
            self.modes.append([(sub, sub.training) for sub in m.modules()])
            m.eval()

    def __exit__(self, *exc: object) -> None:
        for modes in self.modes:
            for sub, training in modes:
                sub.training = training


def _as_tensors(actual: Any, expected: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(actual, torch.Tensor):
        if isinstance(expected, torch.Tensor):
            raise _failed(
                f"{what} is {_fmt(actual)}, expected a tensor of shape {tuple(expected.shape)}"
            )
        if not _is_number(actual):
            raise TypeError(f"{what} must be a number or a tensor to compare, got {actual!r}")
        actual = torch.tensor(actual)
    if not isinstance(expected, torch.Tensor):
        try:
            expected = torch.as_tensor(expected)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(
                f"expected must be a tensor, a number or a nested list of numbers, got {expected!r}"
            ) from e
    return actual, expected


def _first_index(mask: torch.Tensor) -> tuple[int, ...]:
    flat = int(mask.flatten().nonzero()[0])
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), mask.shape))


def _item(t: torch.Tensor, index: tuple[int, ...]) -> str:
    return _fmt(t[index].item()) if t.ndim else _fmt(t.item())


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
