"""The small bricks every model in the book shares: ConvBNAct, SqueezeExcite, DropPath.

Chapter 5 (ShuffleNet V1) introduces :class:`ConvBNAct`, chapter 6 (MobileNetV2)
:func:`make_divisible`, chapter 8 (EfficientNetV2) :class:`SqueezeExcite` and :class:`DropPath`;
chapter 7 (ShuffleNet V2) uses them too. Their attribute names follow torchvision's, so
torchvision's ImageNet weights load into the models built from them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn

from . import validate

__all__ = [
    "ConvBNAct",
    "SqueezeExcite",
    "DropPath",
    "make_activation",
    "make_divisible",
    "drop_path_probabilities",
    "init_weights",
    "randomise_batchnorm",
]

ModuleFactory = Callable[..., nn.Module]


def make_activation(activation_layer: ModuleFactory, inplace: bool = True) -> nn.Module:
    """``activation_layer(inplace=inplace)`` if it takes ``inplace``, else ``activation_layer()``.

    ReLU, ReLU6 and SiLU take ``inplace``; GELU, Identity or a reader's own class may not. The
    activation every block of chapters 5-8 makes goes through here, so any of them can be
    swapped in (chapter 4's G4 experiment removes the ReLUs).
    """
    validate.function("activation_layer", activation_layer)
    validate.flag("inplace", inplace)
    try:
        takes_inplace = "inplace" in inspect.signature(activation_layer).parameters
    except (TypeError, ValueError):  # some builtins have no signature
        takes_inplace = False
    return activation_layer(inplace=inplace) if takes_inplace else activation_layer()


class ConvBNAct(nn.Sequential):
    """Convolution, normalisation, optional activation: the unit every CNN here is made of.

    An ``nn.Sequential`` on purpose: the convolution is child ``0``, the norm child ``1`` and the
    activation child ``2``, exactly as torchvision's ``Conv2dNormActivation``, so state_dict keys
    such as ``features.0.0.weight`` and ``features.0.1.running_mean`` match torchvision's. Where
    torchvision's layout is flat (``branch2.0 .. branch2.7`` in ShuffleNet V2), unpack it:
    ``nn.Sequential(*ConvBNAct(...), *ConvBNAct(...))``.

    ``padding`` defaults to ``kernel_size // 2`` ("same" size at stride 1). The convolution has a
    bias only when there is no norm layer (a bias before BatchNorm is cancelled by its mean).
    ``groups=in_channels`` gives a depthwise convolution. ``activation_layer=None`` leaves the
    output linear, as the projection of a MobileNetV2 block (Sandler et al., 2018; chapter 6)
    and the depthwise convolution of a ShuffleNet unit (Zhang et al., 2018; chapter 5) need.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        *,
        padding: int | None = None,
        norm_layer: ModuleFactory | None = nn.BatchNorm2d,
        activation_layer: ModuleFactory | None = nn.ReLU,
        inplace: bool = True,
    ) -> None:
        validate.integer("in_channels", in_channels, minimum=1)
        validate.integer("out_channels", out_channels, minimum=1)
        validate.integer("kernel_size", kernel_size, minimum=1)
        validate.integer("stride", stride, minimum=1)
        validate.integer("groups", groups, minimum=1)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups={groups} must divide both in_channels={in_channels} and "
                f"out_channels={out_channels} (remainders {in_channels % groups} and "
                f"{out_channels % groups})"
            )
        if padding is None:
            padding = kernel_size // 2
        validate.integer("padding", padding, minimum=0)
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
                groups=groups,
                bias=norm_layer is None,
            )
        ]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation_layer is not None:
            layers.append(make_activation(activation_layer, inplace))
        super().__init__(*layers)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.groups = groups


class SqueezeExcite(nn.Module):
    """Squeeze-and-Excitation (Hu et al., 2018): reweight channels by a gate from their means.

    ``x * gate(fc2(act(fc1(mean_hw(x)))))`` with 1x1 convolutions ``fc1`` (``in_channels ->
    squeeze_channels``) and ``fc2`` (back). The attribute names are those of torchvision's
    ``SqueezeExcitation``, so EfficientNetV2's ImageNet weights load (``block.2.fc1.weight``).
    EfficientNetV2 (Tan and Le, 2021) puts one in every MBConv block; chapter 8.
    """

    def __init__(
        self,
        in_channels: int,
        squeeze_channels: int,
        activation_layer: ModuleFactory = nn.ReLU,
        scale_activation: ModuleFactory = nn.Sigmoid,
    ) -> None:
        super().__init__()
        validate.integer("in_channels", in_channels, minimum=1)
        validate.integer("squeeze_channels", squeeze_channels, minimum=1)
        validate.function("scale_activation", scale_activation)
        self.fc1 = nn.Conv2d(in_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, in_channels, 1)
        self.activation = make_activation(activation_layer, inplace=True)
        self.scale_activation = scale_activation()
        self.in_channels = in_channels
        self.squeeze_channels = squeeze_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)  # squeeze: one number per channel
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(scale))))  # excite
        return x * scale


class DropPath(nn.Module):
    """Stochastic depth (Huang et al., 2016): drop a residual branch for whole samples.

    In training, each sample's branch output is zeroed with probability ``p`` and the survivors
    are multiplied by ``1 / (1 - p)``, so the expected output equals the input; in eval mode, or
    when ``p == 0``, it is the identity. Applied to the residual branch only, it makes a block the
    identity for that sample. torchvision calls it ``StochasticDepth(p, "row")``; EfficientNetV2
    raises ``p`` linearly with the block index, up to 0.2 (chapter 8).
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = validate.number("p", p, 0.0, 1.0)  # the drop probability

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        # One Bernoulli draw per sample, broadcast over channels and positions.
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        if keep > 0.0:
            mask.div_(keep)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p:.4g}"


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """``value`` rounded to the nearest multiple of ``divisor``, never 10% below it; chapter 6.

    The rounding of MobileNetV2's width multiplier (and of torchvision's EfficientNets): halves
    round up, the result is at least ``min_value`` (default ``divisor``), and if rounding down
    lost more than 10% of ``value`` one more ``divisor`` is added.
    """
    validate.number("value", value, above=0)
    validate.integer("divisor", divisor, minimum=1)
    if min_value is None:
        min_value = divisor
    validate.integer("min_value", min_value, minimum=1)
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def drop_path_probabilities(model: nn.Module) -> list[float]:
    """The drop probability of every :class:`DropPath` in ``model``, in forward order; ch. 8."""
    validate.module("model", model)
    return [m.p for m in model.modules() if isinstance(m, DropPath)]


def init_weights(model: nn.Module, linear: str = "normal") -> nn.Module:
    """torchvision's initialisation for the model zoo; chapters 5-8.

    Convolutions: Kaiming normal (fan_out), bias zero. Norm layers: weight one, bias zero. Linear
    layers: ``"normal"`` draws N(0, 0.01) (ShuffleNet, MobileNetV2), ``"uniform"`` draws from
    +-1/sqrt(out_features) (EfficientNet); bias zero.
    """
    validate.module("model", model)
    validate.choice("linear", linear, ("normal", "uniform"))
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
        elif isinstance(m, nn.Linear):
            if linear == "normal":
                nn.init.normal_(m.weight, 0, 0.01)
            else:
                bound = 1.0 / m.out_features**0.5
                nn.init.uniform_(m.weight, -bound, bound)
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.GroupNorm, nn.Linear)):
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def randomise_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random affine parameters and running statistics in every BatchNorm; chapters 6-8.

    Fresh BatchNorm layers compute (almost) the identity in eval mode, so two implementations can
    agree on fresh weights and still differ on trained ones. Checks of our models against
    torchvision's randomise the statistics first, so every layer does something.
    """
    validate.module("model", model)
    validate.integer("seed", seed, minimum=0)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model
