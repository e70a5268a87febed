"""What a network costs on paper: parameters and multiply-adds (the papers' "FLOPs").

Chapter 1 checks these counts against the group-convolution formulas; chapter 3 adds the
memory access cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_params", "madds"]


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those that require grad); chapter 1."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _check_size(input_size: Sequence[int]) -> tuple[int, ...]:
    size = tuple(input_size) if isinstance(input_size, Sequence) else ()
    if not size or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
        raise ValueError(
            f"input_size must be a sequence of positive ints such as (1, 3, 224, 224), "
            f"got {input_size!r}"
        )
    return size


def madds(model: nn.Module, input_size: Sequence[int]) -> int:
    """Multiply-adds of one forward pass on a zero input of ``input_size``; chapter 1.

    Counted by ``torch.utils.flop_counter``, which reports 2 FLOPs per multiply-add for
    convolutions and matrix products; the papers' "FLOPs" are multiply-adds, so we halve it.
    Element-wise work (ReLU, BatchNorm, additions) is not counted, as in the papers.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    size = _check_size(input_size)
    try:
        param = next(model.parameters())
        device, dtype = param.device, param.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.get_default_dtype()
    x = torch.zeros(size, device=device, dtype=dtype)
    modes = {m: m.training for m in model.modules()}  # restored one by one: they may differ
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        for m, training in modes.items():
            m.training = training
    return counter.get_total_flops() // 2
