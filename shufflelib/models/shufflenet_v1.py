"""ShuffleNet (V1) (Zhang, Zhou, Lin and Sun, CVPR 2018, arXiv:1707.01083); chapter 5.

The ShuffleNet unit of the paper's Figure 2 and the network of its Table 1, for the group counts
g = 1, 2, 3, 4, 8 and the widths 0.25x to 2x. torchvision has no ShuffleNet V1, so there are no
ImageNet weights to load and the layout is our own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from .. import validate
from ..layers import ConvBNAct, init_weights, make_activation, make_divisible
from ..ops import channel_shuffle

__all__ = [
    "STAGES_REPEATS",
    "STAGE_CHANNELS_1X",
    "STEM_CHANNELS",
    "GROUPS",
    "WIDTHS",
    "shufflenet_v1_channels",
    "ShuffleV1Unit",
    "ShuffleNetV1",
    "shufflenet_v1",
]

# ShuffleNet V1 paper, Table 1: output channels of Stage2, Stage3 and Stage4 of ShuffleNet 1x
# for each group count g (columns g = 1 .. 8). Each stage doubles the width of the one before.
STAGE_CHANNELS_1X = {
    # g: [Stage2, Stage3, Stage4]
    1: [144, 288, 576],
    2: [200, 400, 800],
    3: [240, 480, 960],
    4: [272, 544, 1088],
    8: [384, 768, 1536],
}
# Conv1 (3x3, stride 2, then a 3x3 stride-2 max-pool) of ShuffleNet "s x": 24 in Table 1. The
# paper scales every width by s; Megvii's released models (megvii-model/ShuffleNet-Series,
# ShuffleNetV1/network.py) scale Conv1 too but keep 24 at 1.5x, and their stems are the ones that
# reproduce the paper's complexities (292M at 1.5x with g = 3 needs 24, not 36). 0.25x was not
# released; 12 reproduces the paper's 13M for g = 3.
STEM_CHANNELS = {0.25: 12, 0.5: 12, 1.0: 24, 1.5: 24, 2.0: 48}
# Table 1, column "Repeat": 1 unit at stride 2, then 3, 7 and 3 units at stride 1.
STAGES_REPEATS = [4, 8, 4]
GROUPS = tuple(STAGE_CHANNELS_1X)
WIDTHS = tuple(STEM_CHANNELS)  # "ShuffleNet s x" (Sec. 4.1.1 and Table 2)


def shufflenet_v1_channels(width_mult: float = 1.0, *, groups: int = 3) -> list[int]:
    """``[Conv1, Stage2, Stage3, Stage4]`` output channels of ShuffleNet "s x" with g groups; ch. 5.

    Stage widths are Table 1's scaled by ``s`` (``width_mult``), rounded to the nearest multiple
    of ``4 g`` (halves up, :func:`~shufflelib.layers.make_divisible`): the bottleneck, a quarter
    of the width, must be divisible by ``g``. Conv1 comes from :data:`STEM_CHANNELS`, rounded to
    the nearest multiple of ``g`` (halves up), so that Stage2's first branch (``Stage2 - Conv1``
    channels) is divisible by ``g`` too. This gives exactly the widths of Megvii's released
    models (g = 3 and 8 at 0.5x to 2x, e.g. a 16-channel stem for g = 8 at 0.5x) and their MAdds.
    """
    validate.number("width_mult", width_mult)
    validate.choice("width_mult", width_mult, WIDTHS)  # ShuffleNet s x
    validate.integer("groups", groups)
    validate.choice("groups", groups, GROUPS)  # Table 1
    stem = make_divisible(STEM_CHANNELS[width_mult], groups)
    stages = [make_divisible(c * width_mult, 4 * groups) for c in STAGE_CHANNELS_1X[groups]]
    return [stem, *stages]


class ShuffleV1Unit(nn.Module):
    """The ShuffleNet unit (Figure 2 (b) stride 1, (c) stride 2); chapter 5.

    A 1x1 group convolution to the bottleneck width (``out_channels / 4``), BN, ReLU; a channel
    shuffle with ``groups`` groups; a 3x3 depthwise convolution at ``stride``, BN and no ReLU; a
    1x1 group convolution, BN. Stride 1 adds the input and applies ReLU. Stride 2 concatenates a
    3x3 average-pooled (stride 2) copy of the input and applies ReLU, so the branch only makes
    ``out_channels - in_channels`` channels. ``grouped_first=False`` makes the first 1x1
    convolution dense (Stage2's first unit, whose input is narrow), and there is nothing to
    shuffle then. ``shuffle=False`` removes the shuffle (the ablation of Table 3).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        groups: int,
        *,
        grouped_first: bool = True,
        shuffle: bool = True,
        norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d,
        activation_layer: Callable[..., nn.Module] | None = nn.ReLU,
    ) -> None:
        super().__init__()
        validate.integer("in_channels", in_channels, minimum=1)
        validate.integer("out_channels", out_channels, minimum=1)
        validate.integer("stride", stride, 1, 2)
        validate.integer("groups", groups, minimum=1)
        validate.flag("grouped_first", grouped_first)
        validate.flag("shuffle", shuffle)
        if out_channels % 4:
            raise ValueError(
                f"out_channels={out_channels} must be divisible by 4 (the bottleneck is a quarter "
                f"of the output width)"
            )
        mid = out_channels // 4
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        if stride == 1 and in_channels != out_channels:
            raise ValueError(
                f"a stride-1 unit adds its input back: in_channels={in_channels} must equal "
                f"out_channels={out_channels}"
            )
        if branch_out < 1:
            raise ValueError(
                f"a stride-2 unit concatenates its input: out_channels={out_channels} must exceed "
                f"in_channels={in_channels}"
            )
        first_groups = groups if grouped_first else 1
        for what, channels, g in (
            ("in_channels", in_channels, first_groups),
            (f"the bottleneck width out_channels/4 = {out_channels}/4", mid, groups),
            ("the branch output (out_channels - in_channels at stride 2)", branch_out, groups),
        ):
            if channels % g:
                raise ValueError(
                    f"{what} = {channels} is not divisible by groups={g} "
                    f"(in_channels={in_channels}, out_channels={out_channels}, stride={stride})"
                )
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.groups = groups
        self.shuffle = shuffle and grouped_first and groups > 1
        conv = partial(ConvBNAct, norm_layer=norm_layer)
        self.gconv1 = conv(
            in_channels, mid, 1, groups=first_groups, activation_layer=activation_layer
        )
        self.dwconv = conv(mid, mid, 3, stride, groups=mid, activation_layer=None)
        self.gconv2 = conv(mid, branch_out, 1, groups=groups, activation_layer=None)
        self.shortcut = nn.AvgPool2d(3, 2, 1) if stride == 2 else nn.Identity()
        self.act = make_activation(activation_layer) if activation_layer else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.gconv1(x)
        if self.shuffle:
            out = channel_shuffle(out, self.groups)
        out = self.gconv2(self.dwconv(out))
        if self.stride == 1:
            out = out + x
        else:
            out = torch.cat((self.shortcut(x), out), dim=1)
        return self.act(out)


class ShuffleNetV1(nn.Module):
    """ShuffleNet of Table 1: Conv1, MaxPool, Stage2-4 of ShuffleNet units, pool, FC; ch. 5.

    ``stages_out_channels`` gives ``[Conv1, Stage2, Stage3, Stage4]``; every width is checked
    against ``groups`` before anything is built. ``small_input=True`` adapts the stem to 32x32
    images: Conv1 at stride 1 and no max-pool, so the network downsamples 8x instead of 32x and
    a 32x32 image reaches Stage4 at 4x4 instead of 1x1. ``channels_last_stem=True`` runs Conv1
    and the max-pool in channels-last memory: same numbers, faster CPU kernels (see
    :class:`~shufflelib.models.shufflenet_v2.ShuffleNetV2`).
    """

    def __init__(
        self,
        groups: int = 3,
        stages_out_channels: Sequence[int] | None = None,
        num_classes: int = 1000,
        stages_repeats: Sequence[int] = STAGES_REPEATS,
        *,
        small_input: bool = False,
        channels_last_stem: bool = True,
        shuffle: bool = True,
        activation_layer: Callable[..., nn.Module] | None = nn.ReLU,
    ) -> None:
        super().__init__()
        validate.integer("groups", groups, minimum=1)
        if stages_out_channels is None:
            stages_out_channels = shufflenet_v1_channels(1.0, groups=groups)
        channels = list(validate.shape("stages_out_channels", stages_out_channels, 4))
        validate.shape("stages_repeats", stages_repeats, 3)  # Stage2-4
        validate.integer("num_classes", num_classes, minimum=1)
        validate.flag("small_input", small_input)
        validate.flag("channels_last_stem", channels_last_stem)
        _check_channels(channels, groups)
        self.channels_last_stem = channels_last_stem
        self.groups = groups
        self.stages_out_channels = channels
        self.num_classes = num_classes
        self.small_input = small_input

        act = {"activation_layer": activation_layer}
        self.conv1 = ConvBNAct(3, channels[0], 3, 1 if small_input else 2, **act)
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, 2, 1)
        stages: list[nn.Module] = []
        in_channels = channels[0]
        for i, (repeats, out_channels) in enumerate(zip(stages_repeats, channels[1:])):
            unit = partial(ShuffleV1Unit, groups=groups, shuffle=shuffle, **act)
            # Sec. 3.3: no group convolution on Stage2's first pointwise layer (narrow input).
            units = [unit(in_channels, out_channels, 2, grouped_first=i > 0)]
            units += [unit(out_channels, out_channels, 1) for _ in range(repeats - 1)]
            stages.append(nn.Sequential(*units))
            in_channels = out_channels
        self.stage2, self.stage3, self.stage4 = stages
        # No bias, as Megvii's released models (the paper does not say).
        self.fc = nn.Linear(in_channels, num_classes, bias=False)
        init_weights(self, linear="normal")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image to the last feature map (after Stage4)."""
        if self.channels_last_stem:  # same values, faster kernels (see ShuffleNetV2)
            x = self.conv1(x.contiguous(memory_format=torch.channels_last))
            x = self.maxpool(x).contiguous()
        else:
            x = self.maxpool(self.conv1(x))
        return self.stage4(self.stage3(self.stage2(x)))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map to logits: global average pool, then the FC layer."""
        return self.fc(x.mean((2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _check_channels(channels: list[int], groups: int) -> None:
    # Every constraint the units check, for the whole table at once and before any work.
    stem, *stages = channels
    previous = stem
    for name, c in zip(("Stage2", "Stage3", "Stage4"), stages):
        if c % 4 or (c // 4) % groups:
            raise ValueError(
                f"{name} width {c} does not work with groups={groups}: its bottleneck {c}/4 "
                f"must be an integer divisible by {groups}, so the width must be a multiple of "
                f"{4 * groups} (widths {channels})"
            )
        if c <= previous or (c - previous) % groups:
            raise ValueError(
                f"{name}'s first unit concatenates its {previous} input channels with a branch "
                f"of {c} - {previous} = {c - previous} channels, which must be positive and "
                f"divisible by groups={groups} (widths {channels})"
            )
        previous = c


def shufflenet_v1(
    width_mult: float = 1.0,
    num_classes: int = 1000,
    *,
    groups: int = 3,
    small_input: bool = False,
    **kwargs: Any,
) -> ShuffleNetV1:
    """ShuffleNet "s x" with ``groups`` groups: Table 1's widths times ``width_mult``; chapter 5."""
    channels = shufflenet_v1_channels(width_mult, groups=groups)
    return ShuffleNetV1(groups, channels, num_classes, small_input=small_input, **kwargs)
