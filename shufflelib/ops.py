"""Channel operations of ShuffleNet: shuffle, split, their fused form, and group connectivity.

Chapter 1 (group convolution) and chapter 2 (channel shuffle) explain every function here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import validate

__all__ = [
    "channel_shuffle",
    "channel_split",
    "shuffle_split",
    "shuffle_permutation",
    "group_connectivity",
    "group_conv_dense_weight",
]


def _fresh(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # A reshape returns a view when the permutation is trivial (e.g. one channel per group); the
    # functions here promise new tensors, so that writing into the result never changes the input.
    if y.untyped_storage().data_ptr() == x.untyped_storage().data_ptr():
        return y.clone(memory_format=torch.contiguous_format)
    return y


def _divisible(channels: int, groups: int, what: str = "groups") -> None:
    # A domain rule, not an argument check: the channels must split evenly into the groups.
    if channels % groups != 0:
        raise ValueError(
            f"the channel count {channels} must be divisible by {what}={groups} "
            f"(channels % {what} == {channels % groups})"
        )


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` groups (ShuffleNet V1, Sec. 3.1); see chapter 2.

    Output channel ``k = j * groups + i`` is input channel ``i * (C // groups) + j``: the reshape
    to ``(N, groups, C // groups, H, W)``, swap of the two channel axes, and flatten back.
    The result has the memory format of ``x`` and is always a new tensor (one copy).
    """
    validate.tensor("x", x, dims=4)
    validate.integer("groups", groups, minimum=1)
    n, c, h, w = x.shape
    _divisible(c, groups)
    if groups in (1, c):  # one group, or one channel per group: the permutation is the identity
        return x.clone()
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        # In NHWC memory the channels are the innermost axis, and the reshape below would copy
        # with a strided inner loop (about 2x a plain copy, see chapter 2). PyTorch's own kernel
        # does the same permutation vectorised for this layout.
        return torch.channel_shuffle(x, groups)
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def channel_split(x: torch.Tensor, sections: int = 2) -> tuple[torch.Tensor, ...]:
    """Split the channels into ``sections`` equal parts, as views (ShuffleNet V2); chapter 2."""
    validate.tensor("x", x, dims=4)
    validate.integer("sections", sections, minimum=1)
    _divisible(x.shape[1], sections, "sections")
    return tuple(x.chunk(sections, dim=1))


def shuffle_split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two halves ``channel_split(channel_shuffle(x, 2))`` gives, with one copy instead of two.

    After a shuffle with two groups, the first half of the channels holds input channels
    ``0 .. C/4-1`` interleaved with ``C/2 .. 3C/4-1``, and the second half holds the other two
    quarters. Each half is one strided gather, so the data is read and written once and no
    full-size shuffled tensor is ever made. Both halves come back contiguous. See chapter 2.
    """
    validate.tensor("x", x, dims=4)
    n, c, h, w = x.shape
    _divisible(c, 4, "4 (two groups, then two halves)")
    # (N, group, half, C/4, H, W): group picks the input half, half picks the output half.
    q = x.reshape(n, 2, 2, c // 4, h, w)
    first = q[:, :, 0].transpose(1, 2).reshape(n, c // 2, h, w)
    second = q[:, :, 1].transpose(1, 2).reshape(n, c // 2, h, w)
    return _fresh(first, x), _fresh(second, x)


def shuffle_permutation(channels: int, groups: int) -> torch.Tensor:
    """Index ``p`` with ``channel_shuffle(x, groups)[:, k] == x[:, p[k]]`` (a gather); chapter 2."""
    validate.integer("channels", channels, minimum=1)
    validate.integer("groups", groups, minimum=1)
    _divisible(channels, groups)
    return torch.arange(channels).reshape(groups, channels // groups).t().reshape(-1)


def _block_diagonal(channels: int, groups: int) -> torch.Tensor:
    size = channels // groups
    return torch.block_diag(*[torch.ones(size, size, dtype=torch.bool)] * groups)


def group_connectivity(
    channels: int,
    groups: int | Sequence[int],
    shuffle: bool | Sequence[bool] = False,
) -> torch.Tensor:
    """Which input channels each output channel of stacked 1x1 group convolutions can see.

    ``groups`` gives one group count per layer (an int means a single layer). ``shuffle`` says
    whether a channel shuffle (with that layer's group count) follows each layer but the last;
    one bool applies to all of them. Returns a boolean ``(channels, channels)`` matrix ``M`` with
    ``M[o, i]`` true when output channel ``o`` depends on input channel ``i``. This is the
    information flow of ShuffleNet V1's Figure 1; chapters 1 and 2 draw it.
    """
    validate.integer("channels", channels, minimum=1)
    if isinstance(groups, int) and not isinstance(groups, bool):
        layers = [validate.integer("groups", groups, minimum=1)]
    else:
        layers = list(validate.shape("groups", groups))  # one group count per layer
    for g in layers:
        _divisible(channels, g)
    n_between = len(layers) - 1
    if isinstance(shuffle, bool):
        shuffles = [shuffle] * n_between
    else:
        shuffles = list(validate.instance("shuffle", shuffle, Sequence))
        if len(shuffles) != n_between:
            raise ValueError(
                f"shuffle must be a bool or {n_between} bools (one between each pair of layers), "
                f"got {shuffle!r}"
            )
    for i, s in enumerate(shuffles):
        validate.flag(f"shuffle[{i}]", s)
    seen = torch.eye(channels, dtype=torch.bool)
    for k, g in enumerate(layers):
        # A layer's output o sees input i if they share a group: a block-diagonal mask.
        seen = (_block_diagonal(channels, g).float() @ seen.float()) > 0
        if k < n_between and shuffles[k]:
            seen = seen[shuffle_permutation(channels, g)]
    return seen


def group_conv_dense_weight(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """The dense ``(C_out, C_in, kH, kW)`` weight that a group convolution's weight stands for.

    Block ``g`` of output channels connects only to block ``g`` of input channels; every other
    entry is zero, so the weight seen as a ``C_out x C_in`` matrix is block diagonal. A normal
    convolution with this weight gives the same result as the group convolution; chapter 1.
    """
    validate.tensor("weight", weight, dims=4)  # (C_out, C_in / groups, kH, kW)
    validate.integer("groups", groups, minimum=1)
    c_out, c_in_per_group, kh, kw = weight.shape
    _divisible(c_out, groups, "groups (output channels)")
    out_per_group = c_out // groups
    dense = weight.new_zeros(c_out, c_in_per_group * groups, kh, kw)
    for g in range(groups):
        rows = slice(g * out_per_group, (g + 1) * out_per_group)
        cols = slice(g * c_in_per_group, (g + 1) * c_in_per_group)
        dense[rows, cols] = weight[rows]
    return dense
