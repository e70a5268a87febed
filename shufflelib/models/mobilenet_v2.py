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

from ..layers import ConvBNAct, check_positive_int, check_stride, init_weights, make_divisible

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
        in_channels = check_positive_int(in_channels, "in_channels")
        out_channels = check_positive_int(out_channels, "out_channels")
        check_stride(stride)
        if isinstance(expand_ratio, bool) or not isinstance(expand_ratio, (int, float)):
            raise ValueError(f"expand_ratio must be a number >= 1, got {expand_ratio!r}")
        if expand_ratio < 1:
            raise ValueError(f"expand_ratio must be a number >= 1, got {expand_ratio!r}")
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
        num_classes = check_positive_int(num_classes, "num_classes")
        round_nearest = check_positive_int(round_nearest, "round_nearest")
        if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)):
            raise ValueError(f"width_mult must be a positive number, got {width_mult!r}")
        if width_mult <= 0:
            raise ValueError(f"width_mult must be a positive number, got {width_mult!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
            raise ValueError(f"dropout must be a number in [0, 1], got {dropout!r}")
        if not 0 <= dropout <= 1:
            raise ValueError(f"dropout must be a number in [0, 1], got {dropout!r}")
        if not isinstance(small_input, bool):
            raise TypeError(f"small_input must be a bool, got {small_input!r}")
        setting = (
            INVERTED_RESIDUAL_SETTING
            if inverted_residual_setting is None
            else inverted_residual_setting
        )
        if len(setting) == 0 or any(len(row) != 4 for row in setting):
            raise ValueError(
                f"inverted_residual_setting must be a non-empty list of [t, c, n, s] rows, "
                f"got {setting!r}"
            )
        for t, c, n, s in setting:
            if s not in (1, 2) or min(t, c, n) < 1:
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
    num_classes: int = 1000, *, width_mult: float = 1.0, small_input: bool = False, **kwargs: Any
) -> MobileNetV2:
    """MobileNetV2 with a width multiplier (1.0 is the paper's 300M-MAdd network); chapter 6."""
    return MobileNetV2(num_classes, width_mult, small_input=small_input, **kwargs)
