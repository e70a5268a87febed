"""MobileOne (Vasu et al., CVPR 2023, arXiv:2206.04040): re-parameterised depthwise-separable
convolutions with over-parameterised branches; chapter 13.

A MobileOne block is RepVGG's idea applied to MobileNet's factorisation: a 3x3 depthwise block
then a 1x1 pointwise block, each a sum of ``k`` parallel conv+BN branches of its own kernel
size (``k = 4`` for S0: the over-parameterisation), a 1x1 "scale" conv+BN branch (depthwise
block only) and an identity BatchNorm when the shape allows, then ReLU. After training,
:func:`shufflelib.models.reparameterize` folds each block into one convolution (3x3 depthwise or
1x1) with bias. The state_dict has timm's layout (``stages.0.0.conv_kxk.3.bn.weight``,
``stages.0.0.conv_scale.conv.weight``, ``head.fc.weight``), so ``mobileone_s0`` takes timm's
weights and computes the same function.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .. import validate
from .reparameterize import ConvBN, RepBlock, RepNet, check_layout

__all__ = ["MOBILEONE_CONFIGS", "MobileOneBlock", "MobileOne", "mobileone"]

# Variant: (stem width, stage widths, blocks per stage, branches k). The paper's design:
# stages of 2, 8, 10 and 1 blocks of widths 64a, 128b, 256c, 512d with (a, b, c, d) =
# (0.75, 1, 1, 2)
# for S0; the stem (the paper's first stage, one 3x3 block at stride 2) has min(64, 64a)
# channels and a single branch. Every stage starts at stride 2.
MOBILEONE_CONFIGS: dict[str, tuple[int, tuple[int, ...], tuple[int, ...], int]] = {
    "s0": (48, (48, 128, 256, 1024), (2, 8, 10, 1), 4),
}


class MobileOneBlock(RepBlock):
    """One MobileOne block: ``k`` kxk conv+BN branches (+ 1x1 scale, + identity BN), ReLU; ch. 13.

    With ``groups == in_channels`` it is the depthwise half of a MobileOne unit, with
    ``kernel_size == 1`` the pointwise half. Children as timm's ``MobileOneBlock``:
    ``identity`` (or None), ``conv_kxk`` (a ``nn.ModuleList`` of ``num_branches`` ConvBN),
    ``conv_scale`` (a 1x1 ConvBN, None when the kernel is already 1x1) and ``act``; they are
    summed as ``conv_scale + conv_kxk[0] + ... + identity``, timm's order.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        num_branches: int = 1,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, groups)
        validate.integer("num_branches", num_branches, minimum=1)
        self.num_branches = num_branches
        self.identity = nn.BatchNorm2d(out_channels) if self.has_identity else None
        self.conv_kxk = nn.ModuleList(
            ConvBN(in_channels, out_channels, kernel_size, stride, groups)
            for _ in range(num_branches)
        )
        self.conv_scale = (
            ConvBN(in_channels, out_channels, 1, stride, groups) if kernel_size > 1 else None
        )
        self.act = nn.ReLU(inplace=True)

    def branches(self) -> list[nn.Module]:
        found = [self.conv_scale, *self.conv_kxk, self.identity]
        return [b for b in found if b is not None]


class MobileOne(RepNet):
    """MobileOne: a one-branch 3x3 stem, stages of depthwise + pointwise blocks, pool, FC; ch. 13.

    Stage ``i`` has ``depths[i]`` units of a 3x3 depthwise block (the first at stride 2) and a
    1x1 block to ``widths[i]`` channels, each with ``num_branches`` branches. ``small_input=True``
    runs the stem at stride 1 (no parameter changes): a 32x32 image reaches the last stage at
    2x2 instead of 1x1.
    """

    def __init__(
        self,
        stem_channels: int,
        widths: tuple[int, ...],
        depths: tuple[int, ...],
        num_branches: int = 4,
        num_classes: int = 1000,
        *,
        small_input: bool = False,
    ) -> None:
        check_layout(stem_channels, widths, depths, num_classes, small_input)
        stem = MobileOneBlock(3, stem_channels, 3, 1 if small_input else 2)
        stages, c = [], stem_channels
        for width, depth in zip(widths, depths):
            blocks: list[nn.Module] = []
            for i in range(depth):
                stride = 2 if i == 0 else 1
                blocks.append(MobileOneBlock(c, c, 3, stride, c, num_branches))  # depthwise
                blocks.append(MobileOneBlock(c, width, 1, 1, 1, num_branches))  # pointwise
                c = width
            stages.append(nn.Sequential(*blocks))
        super().__init__(stem, stages, c, num_classes, small_input)


def mobileone(
    variant: str = "s0", num_classes: int = 1000, *, small_input: bool = False, **kwargs: Any
) -> MobileOne:
    """MobileOne-S0 (the paper's smallest network, timm's ``mobileone_s0``) by name; ch. 13."""
    validate.choice("variant", variant, tuple(MOBILEONE_CONFIGS))
    stem, widths, depths, branches = MOBILEONE_CONFIGS[variant]
    return MobileOne(stem, widths, depths, branches, num_classes, small_input=small_input, **kwargs)
