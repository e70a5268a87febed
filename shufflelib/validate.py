"""Argument checks for every public function of shufflelib: one order, one exception policy.

Every check takes ``(name, value, ...)``: the name the caller used for the argument, then the value.
It returns the value (converted where that is the point, e.g. a shape to a tuple) or raises:

- ``TypeError`` when the value is the wrong kind of thing (a str where an int belongs, a bool where
  a count belongs, a list where a model belongs);
- ``ValueError`` when it is the right kind but not an allowed value (a negative count, an unknown
  name, a shape of the wrong length).

The message always names the argument, shows the value it got and says what is allowed, e.g.
``channels must be an int >= 1, got 0``. Checks run before any work, so a bad call costs nothing.
This is the ground floor of the package: it imports nothing from shufflelib.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping, Sequence
from typing import Any, TypeVar

import torch
from torch import nn

__all__ = [
    "integer",
    "number",
    "flag",
    "choice",
    "choices",
    "shape",
    "text",
    "module",
    "tensor",
    "function",
    "instance",
    "mapping",
    "path",
    "show",
]

T = TypeVar("T")


def show(value: object) -> str:
    """``repr(value)`` cut to 80 characters for messages; a tensor or a model by its kind."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, nn.Module):
        return f"a {type(value).__name__} module"
    text_ = repr(value)
    if "\n" in text_:  # a table, say: its kind, not its rows
        return f"a {type(value).__name__}"
    return text_ if len(text_) <= 80 else text_[:77] + "..."


def _bounds(
    minimum: float | None, maximum: float | None, above: float | None, below: float | None
) -> str:
    parts = []
    for sign, bound in ((">", above), (">=", minimum), ("<", below), ("<=", maximum)):
        if bound is not None:
            parts.append(f"{sign} {bound}")
    return " and ".join(parts)


def integer(
    name: str, value: object, minimum: int | None = None, maximum: int | None = None
) -> int:
    """``value`` as an int within ``[minimum, maximum]``; bool and float are refused (TypeError)."""
    allowed = " ".join(p for p in ("an int", _bounds(minimum, maximum, None, None)) if p)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be {allowed}, got {show(value)} ({type(value).__name__})")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return value


def number(
    name: str,
    value: object,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    above: float | None = None,
    below: float | None = None,
) -> float:
    """``value`` as a finite float within the bounds (``above`` and ``below`` are strict)."""
    bounds = _bounds(minimum, maximum, above, below)
    allowed = " ".join(p for p in ("a finite number", bounds) if p)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be {allowed}, got {show(value)} ({type(value).__name__})")
    v = float(value)
    if (
        not math.isfinite(v)
        or (minimum is not None and v < minimum)
        or (maximum is not None and v > maximum)
        or (above is not None and v <= above)
        or (below is not None and v >= below)
    ):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return v


def flag(name: str, value: object) -> bool:
    """``value`` if it is True or False (1, 0 and "yes" are refused: TypeError)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {show(value)}")
    return value


def choice(name: str, value: T, allowed: Collection[Any]) -> T:
    """``value`` if it is one of ``allowed`` (ValueError otherwise, listing them)."""
    try:
        ok = value in allowed
    except TypeError:  # an unhashable value asked of a set
        ok = False
    if not ok:
        listed = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {listed}; got {show(value)}")
    return value


def choices(name: str, value: object, allowed: Collection[Any]) -> tuple[Any, ...]:
    """``value`` as a non-empty tuple of distinct entries, each one of ``allowed``."""
    listed = ", ".join(repr(a) for a in allowed)
    what = f"a non-empty sequence of distinct names from {listed}"
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be {what}, got {show(value)}")
    if not value or len(set(map(repr, value))) != len(value):
        raise ValueError(f"{name} must be {what}, got {show(value)}")
    for k, v in enumerate(value):
        choice(f"{name}[{k}]", v, allowed)
    return tuple(value)


def shape(name: str, value: object, length: int | Collection[int] | None = None) -> tuple[int, ...]:
    """``value`` as a non-empty tuple of ints >= 1, of ``length`` entries (one or several)."""
    lengths = (length,) if isinstance(length, int) else length
    what = "a sequence of ints >= 1"
    if lengths is not None:
        what += f" of length {' or '.join(str(n) for n in sorted(lengths))}"
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | torch.Size):
        raise TypeError(f"{name} must be {what}, got {show(value)}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must be {what}, got {show(value)}")
    wrong_length = len(value) not in lengths if lengths is not None else not value
    if any(v < 1 for v in value) or wrong_length:
        raise ValueError(f"{name} must be {what}, got {show(value)}")
    return tuple(value)


def text(name: str, value: object) -> str:
    """``value`` if it is a non-empty str."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a non-empty str, got {show(value)}")
    if not value.strip():
        raise ValueError(f"{name} must be a non-empty str, got {value!r}")
    return value


def module(name: str, value: object, *, eval_mode: bool = False) -> nn.Module:
    """``value`` if it is a torch.nn.Module; with ``eval_mode``, one whose every submodule is in
    eval mode (else ValueError naming one in training mode: we refuse, never flip, the mode)."""
    what = "a torch.nn.Module in eval mode" if eval_mode else "a torch.nn.Module"
    if not isinstance(value, nn.Module):
        raise TypeError(f"{name} must be {what}, got {show(value)}")
    if eval_mode:
        training = [n or "(the model itself)" for n, m in value.named_modules() if m.training]
        if training:
            raise ValueError(
                f"{name} must be {what}, got {show(value)} with {len(training)} submodule(s) in "
                f"training mode, e.g. {training[0]!r}; call {name}.eval() first"
            )
    return value


def tensor(
    name: str, value: object, dims: int | None = None, *, floating: bool = False
) -> torch.Tensor:
    """``value`` if it is a torch.Tensor (with ``dims`` dimensions when given; of a floating-point
    dtype with ``floating``, as a model's input must be)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {show(value)}")
    if dims is not None and value.dim() != dims:
        raise ValueError(f"{name} must be a {dims}-d torch.Tensor, got shape {tuple(value.shape)}")
    if floating and not value.is_floating_point():
        raise ValueError(f"{name} must be a floating-point torch.Tensor, got dtype {value.dtype}")
    return value


def fits(name: str, value: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """``value`` if ``model`` takes it as input: one forward pass without gradients, to run before
    costly work (a compile, an export), so that an input of the wrong shape is a ValueError that
    names it instead of an error from deep inside a compiler."""
    try:
        with torch.no_grad():
            model(value)
    except RuntimeError as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"{name} of shape {tuple(value.shape)} does not fit {type(model).__name__}: {reason}"
        ) from e
    return value


def mapping(name: str, value: object, nonempty: bool = True) -> Mapping[Any, Any]:
    """``value`` if it is a mapping (a dict), with at least one entry when ``nonempty``."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping (a dict), got {show(value)}")
    if nonempty and not value:
        raise ValueError(f"{name} must have at least one entry, got {value!r}")
    return value


def path(name: str, value: object) -> str:
    """``value`` as a str path, if it is a str or os.PathLike."""
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"{name} must be a str or os.PathLike path, got {show(value)}")
    return os.fspath(value)  # type: ignore[return-value]


def function(name: str, value: T) -> T:
    """``value`` if it is callable (a function, a model, a compiled model ...)."""
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {show(value)}")
    return value


def instance(name: str, value: object, kind: type[T]) -> T:
    """``value`` if it is an instance of the class ``kind`` (named in full in the message)."""
    if not isinstance(value, kind):
        where = "" if kind.__module__ == "builtins" else f"{kind.__module__}."
        raise TypeError(f"{name} must be a {where}{kind.__qualname__}, got {show(value)}")
    return value
