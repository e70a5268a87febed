"""RepVGG (Ding et al., CVPR 2021, arXiv:2101.03697): a VGG-style net trained with branches; ch. 13.

At training time each block sums three branches, 3x3 conv+BN, 1x1 conv+BN and (when the block
keeps its shape) BatchNorm alone as the identity, then applies ReLU. After training,
:func:`shufflelib.models.reparameterize` folds each block into one 3x3 convolution with bias,
leaving a plain stack of 3x3 convolutions and ReLUs. The state_dict has timm's layout
(``stem.conv_kxk.conv.weight``, ``stages.0.1.identity.running_var``, ``head.fc.weight``), so
``repvgg_a0`` takes timm's weights and computes the same function.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .. import validate
from .reparameterize import ConvBN, RepBlock, RepNet, check_layout

__all__ = ["REPVGG_CONFIGS", "RepVGGBlock", "RepVGG", "repvgg"]

# Variant: (stem width, stage widths, blocks per stage). The paper's design: RepVGG-A has 1,
# 2, 4, 14, 1 layers in its five stages, widths min(64, 64a), 64a, 128a, 256a, 512b with a = 0.75,
# b = 2.5 for A0. The first stage of the paper is our stem; every stage starts at stride 2.
REPVGG_CONFIGS: dict[str, tuple[int, tuple[int, ...], tuple[int, ...]]] = {
    "a0": (48, (48, 96, 192, 1280), (2, 4, 14, 1)),
}


class RepVGGBlock(RepBlock):
    """The RepVGG block: 3x3 conv+BN + 1x1 conv+BN (+ identity BN), then ReLU; chapter 13.

    Children as timm's ``RepVggBlock``: ``identity`` (``nn.BatchNorm2d``, or None when the
    stride is 2 or the width changes), ``conv_kxk``, ``conv_1x1`` and ``act``. They are summed
    as ``(conv_1x1 + conv_kxk) + identity``, timm's order, so float rounding matches too.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, 3, stride, 1)
        self.identity = nn.BatchNorm2d(out_channels) if self.has_identity else None
        self.conv_kxk = ConvBN(in_channels, out_channels, 3, stride, 1)
        self.conv_1x1 = ConvBN(in_channels, out_channels, 1, stride, 1)
        self.act = nn.ReLU(inplace=True)

    def branches(self) -> list[nn.Module]:
        found = [self.conv_1x1, self.conv_kxk, self.identity]
        return [b for b in found if b is not None]


class RepVGG(RepNet):
    """RepVGG: a RepVGG-block stem, four stages of RepVGG blocks, pool, FC; chapter 13.

    ``stem_channels`` is the stem's width; stage ``i`` has ``depths[i]`` blocks of
    ``widths[i]`` channels, the first at stride 2. ``small_input=True`` runs the stem at stride
    1 (no parameter changes): a 32x32 image reaches the last stage at 2x2 instead of 1x1.
    """

    def __init__(
        self,
        stem_channels: int,
        widths: tuple[int, ...],
        depths: tuple[int, ...],
        num_classes: int = 1000,
        *,
        small_input: bool = False,
    ) -> None:
        check_layout(stem_channels, widths, depths, num_classes, small_input)
        stem = RepVGGBlock(3, stem_channels, 1 if small_input else 2)
        stages, channels = [], stem_channels
        for width, depth in zip(widths, depths):
            blocks = [RepVGGBlock(channels, width, 2)]
            blocks += [RepVGGBlock(width, width, 1) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            channels = width
        super().__init__(stem, stages, channels, num_classes, small_input)


def repvgg(
    variant: str = "a0", num_classes: int = 1000, *, small_input: bool = False, **kwargs: Any
) -> RepVGG:
    """RepVGG-A0 (the paper's smallest network, timm's ``repvgg_a0``) by name; chapter 13."""
    validate.choice("variant", variant, tuple(REPVGG_CONFIGS))
    stem, widths, depths = REPVGG_CONFIGS[variant]
    return RepVGG(stem, widths, depths, num_classes, small_input=small_input, **kwargs)
