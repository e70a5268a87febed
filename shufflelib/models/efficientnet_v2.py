"""EfficientNetV2 (Tan and Le, ICML 2021, arXiv:2104.00298); chapter 8.

MBConv and Fused-MBConv blocks, the stage tables of EfficientNetV2-S (the paper's Table 4), M and
L (the official configuration), a tiny variant for CPU training, and torchvision's state_dict
layout (``features.N.M.block...``, ``classifier.1``), so torchvision's ImageNet weights load.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import torch
from torch import nn

from .. import validate
from ..layers import ConvBNAct, DropPath, SqueezeExcite, init_weights, make_divisible
from ..tables import Table

__all__ = [
    "StageConfig",
    "EFFICIENTNET_V2_S",
    "EFFICIENTNET_V2_M",
    "EFFICIENTNET_V2_L",
    "EFFICIENTNET_V2_T",
    "CONFIGS",
    "MBConv",
    "FusedMBConv",
    "EfficientNetV2",
    "efficientnet_v2",
    "stage_table",
]


@dataclass(frozen=True)
class StageConfig:
    """One row of an EfficientNetV2 stage table: ``num_layers`` blocks of one kind.

    The first block of the stage has stride ``stride`` and maps ``in_channels`` to
    ``out_channels``; the others have stride 1 and keep ``out_channels``. ``se_ratio`` sizes the
    squeeze-and-excitation of MBConv (squeeze width = ``se_ratio`` x the block's input width).
    """

    block: Literal["fused", "mbconv"]
    expand_ratio: int
    kernel: int
    stride: int
    in_channels: int
    out_channels: int
    num_layers: int
    se_ratio: float = 0.0

    def __post_init__(self) -> None:
        validate.choice("block", self.block, ("fused", "mbconv"))
        validate.integer("stride", self.stride, 1, 2)
        for name in ("expand_ratio", "kernel", "in_channels", "out_channels", "num_layers"):
            validate.integer(name, getattr(self, name), minimum=1)
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd (for 'same' padding), got {self.kernel}")
        validate.number("se_ratio", self.se_ratio, 0.0, 1.0)


S = StageConfig  # short name, so that each table row reads like the paper's

# EfficientNetV2 paper, Table 4 (EfficientNetV2-S), identical to google/automl's `v2_s_block`
# and torchvision's `_efficientnet_conf("efficientnet_v2_s")`. Stage 0 (Conv3x3, 24 channels,
# stride 2) is the stem and stage 7 (Conv1x1 to 1280, pooling, FC) the head.
EFFICIENTNET_V2_S = (
    #  block     e  k  s   in  out  layers  SE
    S("fused",  1, 3, 1,  24,  24,  2),
    S("fused",  4, 3, 2,  24,  48,  4),
    S("fused",  4, 3, 2,  48,  64,  4),
    S("mbconv", 4, 3, 2,  64, 128,  6, 0.25),
    S("mbconv", 6, 3, 1, 128, 160,  9, 0.25),
    S("mbconv", 6, 3, 2, 160, 256, 15, 0.25),
)  # fmt: skip

# EfficientNetV2-M: the paper has no table for M and L (Sec. 4 scales S up); these rows are the
# official configuration, google/automl efficientnetv2/effnetv2_configs.py `v2_m_block`, which
# torchvision copies.
EFFICIENTNET_V2_M = (
    #  block     e  k  s   in  out  layers  SE
    S("fused",  1, 3, 1,  24,  24,  3),
    S("fused",  4, 3, 2,  24,  48,  5),
    S("fused",  4, 3, 2,  48,  80,  5),
    S("mbconv", 4, 3, 2,  80, 160,  7, 0.25),
    S("mbconv", 6, 3, 1, 160, 176, 14, 0.25),
    S("mbconv", 6, 3, 2, 176, 304, 18, 0.25),
    S("mbconv", 6, 3, 1, 304, 512,  5, 0.25),
)  # fmt: skip

# EfficientNetV2-L: official configuration, google/automl `v2_l_block` (as torchvision).
EFFICIENTNET_V2_L = (
    #  block     e  k  s   in  out  layers  SE
    S("fused",  1, 3, 1,  32,  32,  4),
    S("fused",  4, 3, 2,  32,  64,  7),
    S("fused",  4, 3, 2,  64,  96,  7),
    S("mbconv", 4, 3, 2,  96, 192, 10, 0.25),
    S("mbconv", 6, 3, 1, 192, 224, 19, 0.25),
    S("mbconv", 6, 3, 2, 224, 384, 25, 0.25),
    S("mbconv", 6, 3, 1, 384, 640,  7, 0.25),
)  # fmt: skip

# EfficientNetV2-T: ours, not from the paper. The official base network (google/automl
# `v2_base_block`, "B0": r1 e1 32->16, r2 e4 ->32, r2 e4 ->48, r3 e4 ->96, r5 e6 ->112, r8 e6 ->192)
# with a 16-channel stem, one block in each fused stage, 2, 2 and 3 MBConv blocks and a
# 512-channel head: about 2M parameters and 21M MAdds on a 32x32 image with `small_input=True`
# (256M at 224x224), small enough to train on 32x32 images on two CPU cores in minutes (ch. 9).
EFFICIENTNET_V2_T = (
    #  block     e  k  s   in  out  layers  SE
    S("fused",  1, 3, 1,  16,  16,  1),
    S("fused",  4, 3, 2,  16,  32,  1),
    S("fused",  4, 3, 2,  32,  48,  1),
    S("mbconv", 4, 3, 2,  48,  96,  2, 0.25),
    S("mbconv", 6, 3, 1,  96, 112,  2, 0.25),
    S("mbconv", 6, 3, 2, 112, 192,  3, 0.25),
)  # fmt: skip

# Variant: (stage table, head channels, dropout before the classifier). Dropout as torchvision.
CONFIGS: dict[str, tuple[Sequence[StageConfig], int, float]] = {
    "s": (EFFICIENTNET_V2_S, 1280, 0.2),
    "m": (EFFICIENTNET_V2_M, 1280, 0.3),
    "l": (EFFICIENTNET_V2_L, 1280, 0.4),
    "t": (EFFICIENTNET_V2_T, 512, 0.1),
}


class _Residual(nn.Module):
    """What MBConv and Fused-MBConv share: checked arguments, the expanded width, the skip.

    A subclass builds ``block`` (the residual branch) and ``stochastic_depth``; with
    ``has_skip`` (stride 1, equal widths) the output is ``x + drop_path(block(x))``.
    """

    block: nn.Sequential
    stochastic_depth: DropPath

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        expand_ratio: int,
        kernel_size: int,
        stride: int,
        drop_path: float,
        se_ratio: float = 0.0,
    ) -> None:
        super().__init__()
        validate.integer("in_channels", in_channels, minimum=1)
        validate.integer("out_channels", out_channels, minimum=1)
        validate.integer("expand_ratio", expand_ratio, minimum=1)
        validate.integer("kernel_size", kernel_size, minimum=1)
        validate.integer("stride", stride, 1, 2)
        validate.number("drop_path", drop_path, 0, 1)
        validate.number("se_ratio", se_ratio, 0, 1)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.has_skip = stride == 1 and in_channels == out_channels
        self.hidden_channels = make_divisible(in_channels * expand_ratio, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.has_skip:
            out = self.stochastic_depth(out)
            out += x  # in place, as torchvision: one tensor less
        return out


class MBConv(_Residual):
    """The MBConv block of EfficientNet (MobileNetV2's inverted residual plus SE); chapter 8.

    1x1 expansion (SiLU), kxk depthwise convolution at ``stride`` (SiLU), squeeze-and-excitation,
    linear 1x1 projection. With ``has_skip`` (stride 1, equal widths) the block output is
    ``x + drop_path(block(x))``. Also called InvertedResidual (timm). Layout as torchvision:
    ``block.0`` expand, ``block.1`` depthwise, ``block.2`` SE (``fc1``, ``fc2``), ``block.3``
    project.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        expand_ratio: int = 4,
        kernel_size: int = 3,
        stride: int = 1,
        se_ratio: float = 0.25,
        drop_path: float = 0.0,
        norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d,
        activation_layer: Callable[..., nn.Module] = nn.SiLU,
    ) -> None:
        super().__init__(
            in_channels, out_channels, expand_ratio, kernel_size, stride, drop_path, se_ratio
        )
        hidden = self.hidden_channels
        conv = partial(ConvBNAct, norm_layer=norm_layer, activation_layer=activation_layer)
        layers: list[nn.Module] = []
        if hidden != in_channels:
            layers.append(conv(in_channels, hidden, 1))  # expand
        layers.append(conv(hidden, hidden, kernel_size, stride, groups=hidden))  # depthwise
        if se_ratio > 0:
            # The squeeze width follows the block's input width, as in the official code.
            squeeze = max(1, int(in_channels * se_ratio))
            layers.append(SqueezeExcite(hidden, squeeze, activation_layer=activation_layer))
        layers.append(conv(hidden, out_channels, 1, activation_layer=None))  # project (linear)
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = DropPath(drop_path)


class FusedMBConv(_Residual):
    """Fused-MBConv (EfficientNetV2, Figure 2): MBConv with expand + depthwise fused; chapter 8.

    One kxk convolution at ``stride`` does the expansion (SiLU), then a linear 1x1 projection;
    with ``expand_ratio == 1`` a single kxk convolution (SiLU) maps input to output. No SE, as in
    the paper. Skip and stochastic depth as :class:`MBConv`. timm calls it EdgeResidual.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        expand_ratio: int = 4,
        kernel_size: int = 3,
        stride: int = 1,
        drop_path: float = 0.0,
        norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d,
        activation_layer: Callable[..., nn.Module] = nn.SiLU,
    ) -> None:
        super().__init__(in_channels, out_channels, expand_ratio, kernel_size, stride, drop_path)
        hidden = self.hidden_channels
        conv = partial(ConvBNAct, norm_layer=norm_layer, activation_layer=activation_layer)
        if hidden != in_channels:
            layers = [
                conv(in_channels, hidden, kernel_size, stride),  # fused expand
                conv(hidden, out_channels, 1, activation_layer=None),  # project (linear)
            ]
        else:
            layers = [conv(in_channels, out_channels, kernel_size, stride)]
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = DropPath(drop_path)


class EfficientNetV2(nn.Module):
    """EfficientNetV2: stem, one ``nn.Sequential`` per stage row, 1x1 head, pool, FC; chapter 8.

    The stochastic-depth probability of block ``i`` (counting from 0 over all stages) is
    ``stochastic_depth_prob * i / total_blocks``, rising linearly to just under 0.2 as in
    torchvision (the paper trains with survival probability 0.8). BatchNorm uses ``eps=1e-3``
    like torchvision's EfficientNetV2. ``small_input=True`` runs the stem convolution at stride 1
    instead of 2 (no parameter changes), so a 32x32 image reaches the last stage at 2x2
    instead of 1x1: the network downsamples 16x instead of 32x.
    """

    def __init__(
        self,
        stages: Sequence[StageConfig],
        last_channel: int = 1280,
        num_classes: int = 1000,
        dropout: float = 0.2,
        stochastic_depth_prob: float = 0.2,
        *,
        small_input: bool = False,
        norm_layer: Callable[..., nn.Module] | None = None,
    ) -> None:
        super().__init__()
        validate.instance("stages", stages, Sequence)
        for i, stage in enumerate(stages):
            validate.instance(f"stages[{i}]", stage, StageConfig)
        if len(stages) == 0:
            raise ValueError("stages must hold at least one StageConfig, got none")
        for prev, nxt in zip(stages, stages[1:]):
            if prev.out_channels != nxt.in_channels:
                raise ValueError(
                    f"stage widths must chain: a stage ends with {prev.out_channels} channels "
                    f"but the next starts with {nxt.in_channels}"
                )
        validate.integer("last_channel", last_channel, minimum=1)
        validate.integer("num_classes", num_classes, minimum=1)
        validate.number("dropout", dropout, 0, 1)
        validate.number("stochastic_depth_prob", stochastic_depth_prob, 0, 1)
        validate.flag("small_input", small_input)
        norm_layer = partial(nn.BatchNorm2d, eps=1e-3) if norm_layer is None else norm_layer
        self.stages = tuple(stages)
        self.num_classes = num_classes
        self.small_input = small_input

        conv = partial(ConvBNAct, norm_layer=norm_layer, activation_layer=nn.SiLU)
        layers: list[nn.Module] = [conv(3, stages[0].in_channels, 3, 1 if small_input else 2)]
        total = sum(s.num_layers for s in stages)
        index = 0
        for cfg in stages:
            blocks: list[nn.Module] = []
            for i in range(cfg.num_layers):
                kw = {
                    "expand_ratio": cfg.expand_ratio,
                    "kernel_size": cfg.kernel,
                    "stride": cfg.stride if i == 0 else 1,
                    "drop_path": stochastic_depth_prob * index / total,
                    "norm_layer": norm_layer,
                }
                in_channels = cfg.in_channels if i == 0 else cfg.out_channels
                if cfg.block == "fused":
                    blocks.append(FusedMBConv(in_channels, cfg.out_channels, **kw))
                else:
                    blocks.append(
                        MBConv(in_channels, cfg.out_channels, se_ratio=cfg.se_ratio, **kw)
                    )
                index += 1
            layers.append(nn.Sequential(*blocks))
        layers.append(conv(stages[-1].out_channels, last_channel, 1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout, inplace=True), nn.Linear(last_channel, num_classes)
        )
        init_weights(self, linear="uniform")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image to the last feature map (after the 1x1 head convolution)."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map to logits: global average pool, dropout, the FC layer."""
        return self.classifier(torch.flatten(self.avgpool(x), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def efficientnet_v2(
    variant: str = "s", num_classes: int = 1000, *, small_input: bool = False, **kwargs: Any
) -> EfficientNetV2:
    """EfficientNetV2-S, -M, -L (torchvision's) or our tiny -T, by letter; chapter 8."""
    validate.choice("variant", variant, tuple(CONFIGS))
    stages, last_channel, dropout = CONFIGS[variant]
    kwargs.setdefault("dropout", dropout)
    return EfficientNetV2(stages, last_channel, num_classes, small_input=small_input, **kwargs)


def stage_table(variants: Sequence[str] = ("s", "m", "l")) -> Table:
    """The stage rows of several variants side by side, one compact cell per stage; chapter 8.

    Each cell reads ``F4 24->48 s2 x4``: block kind (F Fused-MBConv, MB MBConv) with its expansion,
    widths, stride of the first block and number of blocks; "-" where a variant has fewer stages.
    """
    validate.instance("variants", variants, Sequence)
    if not variants:
        raise ValueError(f"variants must name at least one of {sorted(CONFIGS)}, got {variants!r}")
    for i, v in enumerate(variants):
        validate.choice(f"variants[{i}]", v, tuple(CONFIGS))
    depth = max(len(CONFIGS[v][0]) for v in variants)
    rows = []
    for i in range(depth):
        row: dict[str, str | int] = {"stage": i + 1}
        for v in variants:
            stages = CONFIGS[v][0]
            if i >= len(stages):
                row[v.upper()] = "-"
                continue
            st = stages[i]
            kind = f"{'F' if st.block == 'fused' else 'MB'}{st.expand_ratio}"
            row[v.upper()] = (
                f"{kind} {st.in_channels}->{st.out_channels} s{st.stride} x{st.num_layers}"
            )
        rows.append(row)
    return Table(rows, title=f"EfficientNetV2 stage rows: {', '.join(v.upper() for v in variants)}")
