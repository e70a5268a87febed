"""MobileNetV2 (Sandler, Howard, Zhu, Zhmoginov and Chen, CVPR 2018, arXiv:1801.04381); ch. 6.

The inverted residual block with a linear bottleneck (the paper's Table 1) and the network of its
Table 2, with torchvision's state_dict layout (``features.N.conv...``, ``classifier.1``), so
torchvision's ImageNet weights load into it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .. import validate
from ..layers import ConvBNAct, init_weights, make_divisible

__all__ = ["INVERTED_RESIDUAL_SETTING", "InvertedResidual", "MobileNetV2", "mobilenet_v2"]

# MobileNetV2 paper, Table 2: expansion t, output channels c, repeats n, first stride s of each
# bottleneck sequence. The conv2d 3x3 stem (32 channels, stride 2) comes before it and the 1x1
# conv to 1280 channels after it (torchvision's `inverted_residual_setting`).
INVERTED_RESIDUAL_SETTING = [
    # t, c, n, s
    [1, 16, 1, 1],
    [6, 24, 2, 2],
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
]
STEM_CHANNELS = 32
LAST_CHANNELS = 1280


class InvertedResidual(nn.Module):
    """MobileNetV2's inverted residual with a linear bottleneck (often called MBConv); chapter 6.

    Expand with a 1x1 convolution (``t`` times the input width, ReLU6; left out when ``t == 1``),
    filter with a 3x3 depthwise convolution at stride ``s`` (ReLU6), project back with a 1x1
    convolution and no activation: the "linear bottleneck", since a ReLU in the narrow space
    destroys information (Sec. 3.2). The input is added back when ``has_skip``: stride 1 and as
    many output channels as input channels. The layout is torchvision's: ``conv.0`` expand,
    ``conv.1`` depthwise, ``conv.2`` / ``conv.3`` the projection's convolution and BatchNorm.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        expand_ratio: int,
        *,
        norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d,
        activation_layer: Callable[..., nn.Module] = nn.ReLU6,
    ) -> None:
        super().__init__()
        validate.integer("in_channels", in_channels, minimum=1)
        validate.integer("out_channels", out_channels, minimum=1)
        validate.integer("stride", stride, 1, 2)
        validate.number("expand_ratio", expand_ratio, minimum=1)
        hidden = int(round(in_channels * expand_ratio))
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.expand_ratio = expand_ratio
        self.has_skip = stride == 1 and in_channels == out_channels
        act = {"norm_layer": norm_layer, "activation_layer": activation_layer}
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(in_channels, hidden, 1, **act))  # expand
        layers.append(ConvBNAct(hidden, hidden, 3, stride, groups=hidden, **act))  # depthwise
        # Linear projection, unpacked: torchvision's keys are conv.N.weight, conv.N+1.* (flat).
        layers.extend(
            ConvBNAct(hidden, out_channels, 1, norm_layer=norm_layer, activation_layer=None)
        )
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.has_skip:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2: the stem, the bottleneck sequences of Table 2, a 1x1 conv, pool, FC; ch. 6.

    ``width_mult`` scales every width and rounds it to a multiple of ``round_nearest`` (8) with
    :func:`~shufflelib.layers.make_divisible`; the last 1x1 convolution keeps 1280 channels for
    multipliers below 1 (Sec. 6.1). ``small_input=True`` adapts the stem to 32x32 images: the
    stem convolution runs at stride 1 instead of 2, so the network downsamples 16x instead of
    32x and a 32x32 image reaches the last stage at 2x2 instead of 1x1. The stride has no
    parameter, so the state_dict (and ImageNet weights) stay the same.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        inverted_residual_setting: Sequence[Sequence[int]] | None = None,
        round_nearest: int = 8,
        dropout: float = 0.2,
        *,
        small_input: bool = False,
        block: Callable[..., nn.Module] = InvertedResidual,
        norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        validate.integer("num_classes", num_classes, minimum=1)
        validate.number("width_mult", width_mult, above=0)
        validate.integer("round_nearest", round_nearest, minimum=1)
        validate.number("dropout", dropout, 0, 1)
        validate.flag("small_input", small_input)
        setting = (
            INVERTED_RESIDUAL_SETTING
            if inverted_residual_setting is None
            else inverted_residual_setting
        )
        validate.instance("inverted_residual_setting", setting, Sequence)
        if len(setting) == 0:
            raise ValueError("inverted_residual_setting must hold at least one [t, c, n, s] row")
        for i, row in enumerate(setting):
            t, c, n, s = validate.shape(f"inverted_residual_setting[{i}]", row, 4)
            if s not in (1, 2):
                raise ValueError(
                    f"each [t, c, n, s] row needs t, c, n >= 1 and s in (1, 2), got {[t, c, n, s]}"
                )
        self.num_classes = num_classes
        self.width_mult = width_mult
        self.small_input = small_input

        in_channels = make_divisible(STEM_CHANNELS * width_mult, round_nearest)
        self.last_channel = make_divisible(LAST_CHANNELS * max(1.0, width_mult), round_nearest)
        act = {"norm_layer": norm_layer, "activation_layer": nn.ReLU6}
        features: list[nn.Module] = [ConvBNAct(3, in_channels, 3, 1 if small_input else 2, **act)]
        for t, c, n, s in setting:
            out_channels = make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(
                    block(in_channels, out_channels, s if i == 0 else 1, t, norm_layer=norm_layer)
                )
                in_channels = out_channels
        features.append(ConvBNAct(in_channels, self.last_channel, 1, **act))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes)
        )
        init_weights(self, linear="normal")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image to the last feature map (after the 1x1 conv to 1280 channels)."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map to logits: global average pool, dropout, the FC layer."""
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def mobilenet_v2(
    width_mult: float = 1.0, num_classes: int = 1000, *, small_input: bool = False, **kwargs: Any
) -> MobileNetV2:
    """MobileNetV2 with a width multiplier (1.0 is the paper's 300M-MAdd network); chapter 6."""
    return MobileNetV2(num_classes, width_mult, small_input=small_input, **kwargs)
