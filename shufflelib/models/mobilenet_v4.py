"""MobileNetV4 (Qin et al., ECCV 2024, arXiv:2404.10518): the universal inverted bottleneck;
chapters 10-11.

The universal inverted bottleneck (UIB) generalises MobileNetV2's inverted residual with two
optional depthwise convolutions: one before the 1x1 expansion ("start") and one after it
("mid"). Which of the two are present names the four variants the paper's architecture search
chooses from: both (ExtraDW), mid only (IB, MobileNetV2's block), start only (ConvNext-like) and
neither (FFN). MNv4-Conv-S, the small all-convolutional model, also uses plain conv+BN+ReLU
layers in its first two stages (3x3 at stride 2 then 1x1) and a 1x1 conv to 960 channels at the
end; its head pools first, then runs a 1x1 conv to 1280 channels, BN, ReLU and the FC.

The layer table follows timm's ``mobilenetv4_conv_small`` (from the official TensorFlow
models), and so does the state_dict (``conv_stem``, ``bn1``, ``blocks.2.0.dw_start.conv``,
``blocks.4.0.bn1``, ``conv_head``, ``norm_head``, ``classifier``), so timm's weights load and
compute the same function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from .. import validate
from ..layers import init_weights, make_divisible

__all__ = [
    "LayerConfig",
    "MOBILENETV4_CONV_SMALL",
    "MOBILENETV4_CONFIGS",
    "UniversalInvertedBottleneck",
    "MobileNetV4",
    "mobilenet_v4",
]


@dataclass(frozen=True)
class LayerConfig:
    """One row of a MobileNetV4 layer table; chapters 10-11.

    ``kind="conv"``: a ``kernel`` x ``kernel`` conv+BN+ReLU to ``out_channels`` at ``stride``.
    ``kind="uib"``: a universal inverted bottleneck; ``start`` and ``mid`` are the kernels of its
    depthwise convolutions before and after the expansion (0 for none), ``expand`` its ratio.
    """

    kind: Literal["conv", "uib"]
    out_channels: int
    stride: int = 1
    kernel: int = 0
    start: int = 0
    mid: int = 0
    expand: float = 1.0

    def __post_init__(self) -> None:
        validate.choice("kind", self.kind, ("conv", "uib"))
        validate.integer("out_channels", self.out_channels, minimum=1)
        validate.integer("stride", self.stride, 1, 2)
        for name in ("kernel", "start", "mid"):
            validate.integer(name, getattr(self, name), minimum=0)
        validate.number("expand", self.expand, above=0)
        if self.kind == "conv" and self.kernel == 0:
            raise ValueError("a conv row needs a kernel >= 1, got kernel=0")
        if self.kind == "uib" and self.stride == 2 and not (self.start or self.mid):
            raise ValueError("a stride-2 uib row needs a depthwise convolution (start or mid)")


def conv(out: int, kernel: int, stride: int = 1) -> LayerConfig:
    """A conv+BN+ReLU row."""
    return LayerConfig("conv", out, stride, kernel=kernel)


def uib(out: int, start: int, mid: int, stride: int, expand: float) -> LayerConfig:
    """A universal-inverted-bottleneck row."""
    return LayerConfig("uib", out, stride, start=start, mid=mid, expand=expand)


# MNv4-Conv-S: the paper's architecture of MNv4-Conv-S as the official code and timm
# write it. Stem: 3x3 conv to 32 at stride 2. One tuple per stage.
MOBILENETV4_CONV_SMALL: tuple[tuple[LayerConfig, ...], ...] = (
    (conv(32, 3, 2), conv(32, 1)),
    (conv(96, 3, 2), conv(64, 1)),
    (
        uib(96, 5, 5, 2, 3.0),  # ExtraDW
        *(uib(96, 0, 3, 1, 2.0) for _ in range(4)),  # IB
        uib(96, 3, 0, 1, 4.0),  # ConvNext-like
    ),
    (
        uib(128, 3, 3, 2, 6.0),  # ExtraDW
        uib(128, 5, 5, 1, 4.0),  # ExtraDW
        uib(128, 0, 5, 1, 4.0),  # IB
        uib(128, 0, 5, 1, 3.0),  # IB
        uib(128, 0, 3, 1, 4.0),  # IB
        uib(128, 0, 3, 1, 4.0),  # IB
    ),
    (conv(960, 1),),
)

# Variant: (stem width, layer table, head width).
MOBILENETV4_CONFIGS: dict[str, tuple[int, tuple[tuple[LayerConfig, ...], ...], int]] = {
    "conv_small": (32, MOBILENETV4_CONV_SMALL, 1280),
}


class ConvNorm(nn.Module):
    """Conv (no bias), BatchNorm, optional ReLU, with timm's child names; chapters 10-11.

    ``norm_name`` is ``"bn"`` inside a UIB (timm's ``ConvNormAct``) and ``"bn1"`` for the plain
    conv layers (timm's ``ConvBnAct``). Depthwise when ``groups`` equals the input width.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int = 1,
        groups: int = 1,
        relu: bool = True,
        norm_name: str = "bn",
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False
        )
        self.norm_name = norm_name
        setattr(self, norm_name, nn.BatchNorm2d(out_channels))
        self.act = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(getattr(self, self.norm_name)(self.conv(x)))


class UniversalInvertedBottleneck(nn.Module):
    """The UIB block of MobileNetV4 (the paper's Fig. 4); chapters 10-11.

    ``dw_start`` (optional kxk depthwise, linear), ``pw_exp`` (1x1 to ``make_divisible(in *
    expand)``, ReLU), ``dw_mid`` (optional kxk depthwise, ReLU), ``pw_proj`` (1x1, linear), and
    the input added back when the stride is 1 and the widths are equal. The stride sits on
    ``dw_mid`` when it exists, else on ``dw_start``. A missing depthwise convolution is an
    ``nn.Identity`` (no parameters, so the state_dict is timm's).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        start: int,
        mid: int,
        stride: int = 1,
        expand: float = 4.0,
    ) -> None:
        super().__init__()
        hidden = make_divisible(in_channels * expand, 8)
        self.has_skip = stride == 1 and in_channels == out_channels
        self.dw_start: nn.Module = nn.Identity()
        if start:
            start_stride = 1 if mid else stride
            self.dw_start = ConvNorm(
                in_channels, in_channels, start, start_stride, in_channels, relu=False
            )
        self.pw_exp = ConvNorm(in_channels, hidden, 1)
        self.dw_mid = ConvNorm(hidden, hidden, mid, stride, hidden) if mid else nn.Identity()
        self.pw_proj = ConvNorm(hidden, out_channels, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pw_proj(self.dw_mid(self.pw_exp(self.dw_start(x))))
        return out + x if self.has_skip else out


class MobileNetV4(nn.Module):
    """MobileNetV4 (convolutional): stem, stages of conv and UIB rows, pooled head; ch. 10-11.

    The head pools the last feature map, then 1x1 conv to ``head_channels``, BN, ReLU, dropout
    and the FC (``classifier``). ``small_input=True`` runs the stem at stride 1 instead of 2 (no
    parameter changes): a 32x32 image reaches the last stage at 2x2 instead of 1x1.
    """

    def __init__(
        self,
        stem_channels: int = 32,
        layers: tuple[tuple[LayerConfig, ...], ...] = MOBILENETV4_CONV_SMALL,
        head_channels: int = 1280,
        num_classes: int = 1000,
        dropout: float = 0.0,
        *,
        small_input: bool = False,
    ) -> None:
        super().__init__()
        validate.integer("stem_channels", stem_channels, minimum=1)
        validate.integer("head_channels", head_channels, minimum=1)
        validate.integer("num_classes", num_classes, minimum=1)
        validate.number("dropout", dropout, 0, 1)
        validate.flag("small_input", small_input)
        self.num_classes, self.small_input = num_classes, small_input
        stride = 1 if small_input else 2
        self.conv_stem = nn.Conv2d(3, stem_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.act1 = nn.ReLU(inplace=True)
        self.blocks, channels = _stages(stem_channels, layers)
        self.conv_head = nn.Conv2d(channels, head_channels, 1, bias=False)
        self.norm_head = nn.BatchNorm2d(head_channels)
        self.act2 = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(head_channels, num_classes)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image to the last stage's feature map (after the 1x1 conv to 960 channels)."""
        return self.blocks(self.act1(self.bn1(self.conv_stem(x))))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map to logits: pool, 1x1 conv, BN, ReLU, dropout, FC."""
        x = self.conv_head(nn.functional.adaptive_avg_pool2d(x, 1))
        x = torch.flatten(self.act2(self.norm_head(x)), 1)
        return self.classifier(self.dropout(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _stages(
    channels: int, layers: tuple[tuple[LayerConfig, ...], ...]
) -> tuple[nn.Sequential, int]:
    """The ``blocks`` of a MobileNetV4 (one ``nn.Sequential`` per stage) and their out width."""
    stages = []
    for i, stage in enumerate(layers):
        blocks: list[nn.Module] = []
        for j, row in enumerate(stage):
            validate.instance(f"layers[{i}][{j}]", row, LayerConfig)
            if row.kind == "conv":
                block = ConvNorm(
                    channels, row.out_channels, row.kernel, row.stride, norm_name="bn1"
                )
            else:
                block = UniversalInvertedBottleneck(
                    channels, row.out_channels, row.start, row.mid, row.stride, row.expand
                )
            blocks.append(block)
            channels = row.out_channels
        stages.append(nn.Sequential(*blocks))
    return nn.Sequential(*stages), channels


def mobilenet_v4(
    variant: str = "conv_small",
    num_classes: int = 1000,
    *,
    small_input: bool = False,
    **kwargs: Any,
) -> MobileNetV4:
    """MNv4-Conv-S (timm's ``mobilenetv4_conv_small``) by name; chapters 10-11."""
    validate.choice("variant", variant, tuple(MOBILENETV4_CONFIGS))
    stem, layers, head = MOBILENETV4_CONFIGS[variant]
    return MobileNetV4(stem, layers, head, num_classes, small_input=small_input, **kwargs)
