"""FasterNet (Chen et al., CVPR 2023, arXiv:2303.03667, "Run, Don't Walk: Chasing Higher
FLOPS for Faster Neural Networks"): partial convolution; chapter 12.

The paper's point is FLOPS, not FLOPs: a depthwise convolution does little arithmetic per byte
it moves, so a network of them runs far below the hardware's peak. Its partial convolution
(PConv) applies a dense 3x3 convolution to a quarter of the channels and passes the other three
quarters through untouched; two 1x1 convolutions (the "PWConv" MLP, 2x expansion, BN and an
activation between them) then mix all channels, with a residual around the three. Stages are
joined by 2x2 stride-2 "merging" convolutions; the stem is a 4x4 stride-4 "embedding"
convolution; the head pools first, then runs a 1x1 convolution to 1280 channels and the FC.

T0, T1 and T2 differ in width (40, 64, 96 stem channels, doubling per stage) and activation
(GELU, GELU, ReLU); all have 1, 2, 8, 2 blocks. The state_dict has the layout of timm's
``fasternet_t*`` (which follows the official code, github.com/JierunChen/FasterNet), so timm's
weights load and compute the same function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .. import validate
from ..layers import DropPath, init_weights, make_activation

__all__ = [
    "FASTERNET_CONFIGS",
    "PartialConv",
    "FasterNetBlock",
    "FasterNetStage",
    "FasterNet",
    "fasternet",
]

# Variant: (embedding width, blocks per stage, activation, stochastic-depth rate), as the
# paper and its official configuration files give them. The drop rates are training recipe
# (the official cfg files, as timm), unused in eval mode.
FASTERNET_CONFIGS: dict[str, tuple[int, tuple[int, ...], Callable[..., nn.Module], float]] = {
    "t0": (40, (1, 2, 8, 2), nn.GELU, 0.0),
    "t1": (64, (1, 2, 8, 2), nn.GELU, 0.02),
    "t2": (96, (1, 2, 8, 2), nn.ReLU, 0.05),
}


class PartialConv(nn.Module):
    """PConv: a 3x3 convolution over the first ``channels // n_div`` channels only; chapter 12.

    The other channels pass through unchanged (they are concatenated back after the convolved
    part). FLOPs are ``1 / n_div**2`` of a full 3x3 convolution's (1/16 for ``n_div = 4``), and
    memory access about ``1 / n_div``. timm's name for the convolution: ``partial_conv3``.
    """

    def __init__(self, channels: int, n_div: int = 4) -> None:
        super().__init__()
        validate.integer("channels", channels, minimum=1)
        validate.integer("n_div", n_div, 1, channels)
        self.conv_channels = channels // n_div
        self.untouched_channels = channels - self.conv_channels
        self.partial_conv3 = nn.Conv2d(self.conv_channels, self.conv_channels, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        part, rest = torch.split(x, [self.conv_channels, self.untouched_channels], dim=1)
        return torch.cat((self.partial_conv3(part), rest), 1)


class FasterNetBlock(nn.Module):
    """A FasterNet block: ``x + mlp(pconv(x))``, the MLP 1x1 -> BN -> act -> 1x1; chapter 12.

    The 1x1 convolutions expand to ``mlp_ratio * channels`` and project back; there is no norm
    or activation after the projection (the paper keeps them only in the middle, for speed).
    Children as timm's ``MLPBlock``: ``spatial_mixing`` and ``mlp`` (``0`` conv, ``1`` BN,
    ``2`` activation, ``3`` conv).
    """

    def __init__(
        self,
        channels: int,
        activation: Callable[..., nn.Module],
        mlp_ratio: float = 2.0,
        drop_path: float = 0.0,
        n_div: int = 4,
    ) -> None:
        super().__init__()
        validate.number("mlp_ratio", mlp_ratio, above=0)
        hidden = int(channels * mlp_ratio)
        self.spatial_mixing = PartialConv(channels, n_div)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            make_activation(activation),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.mlp(self.spatial_mixing(x)))


class Embedding(nn.Module):
    """A strided conv (no bias) then BatchNorm: the stem ("embedding") and the "merging"
    layers between stages; chapter 12. ``name`` is timm's child name for the conv."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int, name: str
    ) -> None:
        super().__init__()
        setattr(self, name, nn.Conv2d(in_channels, out_channels, kernel, stride, bias=False))
        self.conv_name = name
        self.norm = nn.BatchNorm2d(out_channels)
        # At stride 1 (small_input's stem) pad to keep the map's size: an even kernel needs one
        # more row and column after than before, which Conv2d's symmetric padding cannot do.
        extra = kernel - 1 if stride == 1 else 0
        self.padding = (extra // 2, extra - extra // 2) * 2  # left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.padding):
            x = nn.functional.pad(x, self.padding)
        return self.norm(getattr(self, self.conv_name)(x))


class FasterNetStage(nn.Module):
    """One FasterNet stage: optional 2x2 merging (halves the map, doubles the width), blocks.

    Children as timm's: ``downsample`` (an :class:`Embedding` with a ``reduction`` conv; an
    ``nn.Identity`` in the first stage) and ``blocks``.
    """

    def __init__(
        self,
        channels: int,
        depth: int,
        activation: Callable[..., nn.Module],
        drop_paths: list[float],
        merge: bool,
    ) -> None:
        super().__init__()
        validate.integer("depth", depth, minimum=1)
        self.downsample = (
            Embedding(channels // 2, channels, 2, 2, "reduction") if merge else nn.Identity()
        )
        self.blocks = nn.Sequential(
            *(FasterNetBlock(channels, activation, drop_path=p) for p in drop_paths)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class FasterNet(nn.Module):
    """FasterNet: 4x4 embedding, four stages, pool, 1x1 conv to 1280, activation, FC; ch. 12.

    Stage ``i`` has ``depths[i]`` blocks of ``embed_dim * 2**i`` channels. The stochastic-depth
    rate of block ``j`` (counting over all stages) rises linearly from 0 to ``drop_path_rate``.
    ``small_input=True`` runs the embedding at stride 1 instead of 4 ("same" padding; no
    parameter changes), so a 32x32 image reaches the last stage at 4x4 instead of 1x1: the
    network downsamples 8x instead of 32x.
    """

    def __init__(
        self,
        embed_dim: int = 40,
        depths: tuple[int, ...] = (1, 2, 8, 2),
        activation: Callable[..., nn.Module] = nn.GELU,
        num_classes: int = 1000,
        drop_path_rate: float = 0.0,
        feature_dim: int = 1280,
        *,
        small_input: bool = False,
    ) -> None:
        super().__init__()
        validate.integer("embed_dim", embed_dim, minimum=1)
        validate.integer("num_classes", num_classes, minimum=1)
        validate.number("drop_path_rate", drop_path_rate, 0, 1)
        validate.integer("feature_dim", feature_dim, minimum=1)
        validate.flag("small_input", small_input)
        if not depths:
            raise ValueError(f"depths must name at least one stage, got {depths!r}")
        self.num_classes, self.small_input = num_classes, small_input
        self.patch_embed = Embedding(3, embed_dim, 4, 1 if small_input else 4, "proj")
        total = sum(depths)
        rates = [drop_path_rate * j / max(total - 1, 1) for j in range(total)]
        stages, start = [], 0
        for i, depth in enumerate(depths):
            dim = embed_dim * 2**i
            stages.append(
                FasterNetStage(dim, depth, activation, rates[start : start + depth], i > 0)
            )
            start += depth
        self.stages = nn.Sequential(*stages)
        self.conv_head = nn.Conv2d(embed_dim * 2 ** (len(depths) - 1), feature_dim, 1, bias=False)
        self.act = make_activation(activation)
        self.classifier = nn.Linear(feature_dim, num_classes)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image to the last stage's feature map."""
        return self.stages(self.patch_embed(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map to logits: pool, 1x1 conv to 1280 channels, activation, FC."""
        x = self.act(self.conv_head(nn.functional.adaptive_avg_pool2d(x, 1)))
        return self.classifier(torch.flatten(x, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def fasternet(
    variant: str = "t0", num_classes: int = 1000, *, small_input: bool = False, **kwargs: Any
) -> FasterNet:
    """FasterNet-T0, -T1 or -T2 (timm's ``fasternet_t0`` ...) by name; chapter 12."""
    validate.choice("variant", variant, tuple(FASTERNET_CONFIGS))
    embed_dim, depths, activation, drop_path_rate = FASTERNET_CONFIGS[variant]
    kwargs.setdefault("drop_path_rate", drop_path_rate)
    return FasterNet(embed_dim, depths, activation, num_classes, small_input=small_input, **kwargs)
