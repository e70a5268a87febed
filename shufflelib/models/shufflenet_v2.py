"""ShuffleNet V2 (Ma, Zhang, Zheng and Sun, ECCV 2018, arXiv:1807.11164); chapter 7.

The unit and the network of the paper's Figure 3 and Table 5, with torchvision's state_dict
layout (``conv1``, ``stage2`` .. ``stage4``, ``conv5``, ``fc``; ``branch1`` / ``branch2`` with the
same indices), so ``load_state_dict(torchvision_model.state_dict())`` works and gives the same
outputs. Two implementation choices make it faster than torchvision's on the CPU, with the
same numbers: each unit writes its shuffled output with one copy instead of two (see
:func:`concat_shuffle`), and the stem runs in channels-last memory (see
:meth:`ShuffleNetV2.forward_features`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from .. import validate
from ..layers import ConvBNAct, init_weights
from ..ops import channel_shuffle, channel_split

__all__ = [
    "STAGES_REPEATS",
    "STAGES_OUT_CHANNELS",
    "concat_shuffle",
    "ShuffleV2Unit",
    "ShuffleNetV2",
    "shufflenet_v2",
]

# Table 5 of the paper, column "Repeat": Stage2 has 1 + 3 units, Stage3 1 + 7, Stage4 1 + 3
# (the first unit of each stage has stride 2).
STAGES_REPEATS = [4, 8, 4]

# Table 5 of the paper, one column per width: output channels of
# [Conv1, Stage2, Stage3, Stage4, Conv5] (torchvision's `stages_out_channels`).
STAGES_OUT_CHANNELS = {
    0.5: [24, 48, 96, 192, 1024],
    1.0: [24, 116, 232, 464, 1024],
    1.5: [24, 176, 352, 704, 1024],
    2.0: [24, 244, 488, 976, 2048],
}


def concat_shuffle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``channel_shuffle(torch.cat((a, b), 1), 2)`` written with one copy instead of two; ch. 7.

    After the concatenation and a shuffle with two groups, output channel ``2j`` is ``a[:, j]``
    and channel ``2j + 1`` is ``b[:, j]``. Stacking ``a`` and ``b`` on a new axis right after the
    channels gives a ``(N, C/2, 2, H, W)`` tensor whose memory is already in that order, and
    flattening the two axes is a free view. So the unit's output is written once, where the
    literal form writes the concatenation and then copies it again to shuffle.
    """
    return torch.stack((a, b), dim=2).flatten(1, 2)


class ShuffleV2Unit(nn.Module):
    """The ShuffleNet V2 unit (Figure 3 (c) and (d) of the paper); chapter 7.

    Stride 1: split the channels in two halves; the first passes unchanged, the second goes
    through ``branch2`` (1x1 conv-BN-ReLU, 3x3 depthwise conv-BN, 1x1 conv-BN-ReLU, all of the same
    width, following guideline G1); concatenate and shuffle with two groups. Stride 2: no split;
    ``branch1`` (3x3 depthwise stride 2-BN, 1x1 conv-BN-ReLU) and ``branch2`` (as above with
    the depthwise convolution at stride 2) both see the whole input, and the output has twice
    ``branch2``'s width. torchvision calls this class ``InvertedResidual``; the attribute names
    and Sequential indices are its own.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        *,
        norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d,
        activation_layer: Callable[..., nn.Module] | None = nn.ReLU,
    ) -> None:
        super().__init__()
        validate.integer("in_channels", in_channels, minimum=1)
        validate.integer("out_channels", out_channels, minimum=1)
        validate.integer("stride", stride, 1, 2)
        if out_channels % 2:
            raise ValueError(
                f"out_channels must be even (two branches of equal width), got {out_channels}"
            )
        if stride == 1 and in_channels != out_channels:
            raise ValueError(
                f"a stride-1 unit keeps the width (the split halves are concatenated back): "
                f"in_channels={in_channels} must equal out_channels={out_channels}"
            )
        self.stride = stride
        self.in_channels = in_channels
        self.out_channels = out_channels
        branch = out_channels // 2
        conv = partial(ConvBNAct, norm_layer=norm_layer)
        act = activation_layer
        if stride == 2:
            # Unpacked ConvBNAct keep torchvision's flat indices: 0 dw, 1 BN, 2 conv, 3 BN, 4 ReLU.
            self.branch1 = nn.Sequential(
                *conv(in_channels, in_channels, 3, 2, groups=in_channels, activation_layer=None),
                *conv(in_channels, branch, 1, activation_layer=act),
            )
        else:
            self.branch1 = nn.Sequential()  # no parameters, kept for torchvision's layout
        # 0 conv, 1 BN, 2 ReLU, 3 dw, 4 BN (no ReLU after the depthwise conv), 5 conv, 6 BN, 7 ReLU.
        self.branch2 = nn.Sequential(
            *conv(in_channels if stride == 2 else branch, branch, 1, activation_layer=act),
            *conv(branch, branch, 3, stride, groups=branch, activation_layer=None),
            *conv(branch, branch, 1, activation_layer=act),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The same as forward_literal with one full copy less per unit: concatenation and
        # shuffle are one stack (see concat_shuffle). The split stays a free chunk into views;
        # shufflelib.ops.shuffle_split would help only if units passed on unshuffled outputs,
        # and then it would make the copy we save here.
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)  # channel split: two views, no copy
            return concat_shuffle(x1, self.branch2(x2))
        return concat_shuffle(self.branch1(x), self.branch2(x))

    def forward_literal(self, x: torch.Tensor) -> torch.Tensor:
        """The paper's order, step by step: split, branches, concatenate, shuffle (for checks)."""
        if self.stride == 1:
            x1, x2 = channel_split(x, 2)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    """The ShuffleNet V2 network of Table 5: Conv1, MaxPool, Stage2-4, Conv5, pool, FC; ch. 7.

    ``stages_out_channels`` gives ``[Conv1, Stage2, Stage3, Stage4, Conv5]`` output channels and
    ``stages_repeats`` the units per stage. ``small_input=True`` adapts the stem to 32x32 images:
    Conv1 at stride 1 and no max-pool, so the network downsamples 8x instead of 32x and a 32x32
    image reaches Stage4 at 4x4 instead of 1x1. Neither change touches a parameter, so the
    state_dict (and ImageNet weights) stay the same.

    ``channels_last_stem=True`` runs the stem (Conv1, BN, ReLU, MaxPool) in channels-last memory
    and hands the pooled map to Stage2 in the usual layout. The numbers are the same; only where
    they sit in memory changes. On the CPU it saves about a fifth of the network's time: the
    max-pool does no multiply-add, yet PyTorch's kernel for the usual (NCHW) layout is scalar
    code that takes a sixth of the time at batch 1, while the channels-last kernels of the
    convolution and the pool are vectorised over channels (a direct metric FLOPs do not see).
    """

    def __init__(
        self,
        stages_repeats: Sequence[int] = STAGES_REPEATS,
        stages_out_channels: Sequence[int] = STAGES_OUT_CHANNELS[1.0],
        num_classes: int = 1000,
        *,
        small_input: bool = False,
        channels_last_stem: bool = True,
        unit: Callable[..., nn.Module] = ShuffleV2Unit,
        activation_layer: Callable[..., nn.Module] | None = nn.ReLU,
    ) -> None:
        super().__init__()
        validate.shape("stages_repeats", stages_repeats, 3)  # Stage2-4
        validate.shape("stages_out_channels", stages_out_channels, 5)  # Conv1, Stage2-4, Conv5
        for c in stages_out_channels[1:4]:
            if c % 2:
                raise ValueError(
                    f"stage widths must be even (two branches), got {list(stages_out_channels)}"
                )
        validate.integer("num_classes", num_classes, minimum=1)
        validate.flag("small_input", small_input)
        validate.flag("channels_last_stem", channels_last_stem)
        validate.function("unit", unit)
        self.channels_last_stem = channels_last_stem
        self.stages_repeats = list(stages_repeats)
        self.stages_out_channels = list(stages_out_channels)
        self.num_classes = num_classes
        self.small_input = small_input

        stem = stages_out_channels[0]
        act = {"activation_layer": activation_layer}
        self.conv1 = ConvBNAct(3, stem, 3, 1 if small_input else 2, **act)
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, 2, 1)
        self.stage2: nn.Sequential
        self.stage3: nn.Sequential
        self.stage4: nn.Sequential
        in_channels = stem
        for i, (repeats, out_channels) in enumerate(zip(stages_repeats, stages_out_channels[1:4])):
            units = [unit(in_channels, out_channels, 2, **act)]
            units += [unit(out_channels, out_channels, 1, **act) for _ in range(repeats - 1)]
            setattr(self, f"stage{i + 2}", nn.Sequential(*units))
            in_channels = out_channels
        self.conv5 = ConvBNAct(in_channels, stages_out_channels[4], 1, **act)
        self.fc = nn.Linear(stages_out_channels[4], num_classes)
        init_weights(self, linear="normal")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image to the last feature map (after Conv5)."""
        if self.channels_last_stem:  # same values, faster kernels (see the class docstring)
            x = self.conv1(x.contiguous(memory_format=torch.channels_last))
            x = self.maxpool(x).contiguous()  # back to NCHW for the units' channel split
        else:
            x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        return self.conv5(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map to logits: global average pool, then the FC layer."""
        return self.fc(x.mean((2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def shufflenet_v2(
    width_mult: float = 1.0, num_classes: int = 1000, *, small_input: bool = False, **kwargs: Any
) -> ShuffleNetV2:
    """ShuffleNet V2 at one of the widths of Table 5 (0.5, 1.0, 1.5 or 2.0); chapter 7."""
    validate.number("width_mult", width_mult)
    validate.choice("width_mult", width_mult, tuple(STAGES_OUT_CHANNELS))  # Table 5
    return ShuffleNetV2(
        STAGES_REPEATS,
        STAGES_OUT_CHANNELS[width_mult],
        num_classes,
        small_input=small_input,
        **kwargs,
    )
