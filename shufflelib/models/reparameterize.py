"""Structural re-parameterisation (RepVGG, MobileOne): train with branches, infer with one conv.

A re-parameterisable block sums several linear branches, each a convolution followed by
BatchNorm (kxk, 1x1, and an identity branch that is BatchNorm alone), then applies its
activation. In eval mode every branch is an affine map of the input, and a sum of affine maps
with the same stride is again one: :func:`reparameterize` folds each block into a single kxk
convolution with bias. Our own implementation, not timm's, because chapter 13 derives this
algebra step by step and the code should read like the derivation:

1. BatchNorm into its convolution (:func:`fuse_conv_bn`, with PyTorch's own fusion
   arithmetic): ``W' = W * gamma / sigma``,
   ``b' = beta - mu * gamma / sigma`` with ``sigma = sqrt(running_var + eps)``;
2. the 1x1 kernel zero-padded to kxk (:func:`pad_kernel`): the centre tap carries it;
3. the identity as a kxk kernel with a 1 at the centre of each channel's own input
   (:func:`identity_kernel`; a grouped or depthwise convolution sees only its group's inputs);
4. the kernels and biases summed.

This module holds what RepVGG (:mod:`.repvgg`) and MobileOne (:mod:`.mobileone`) share: the
conv+BN branch in timm's layout (``conv``, ``bn``), the block base class, the network skeleton
(``stem``, ``stages``, ``head.fc``) and the fold. Chapter 13 uses it.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from .. import validate
from ..layers import init_weights
from ..tables import Table

__all__ = [
    "ConvBN",
    "RepBlock",
    "FoldedBlock",
    "RepNet",
    "check_layout",
    "fuse_conv_bn",
    "pad_kernel",
    "identity_kernel",
    "reparameterize",
    "structure",
]

SUPPORTED = "RepVGG and MobileOne (models built of RepBlock blocks)"


class ConvBN(nn.Module):
    """A bias-free kxk convolution then BatchNorm: one linear branch of a RepBlock; ch. 13.

    Padding ``kernel_size // 2`` keeps every branch of a block on the same output grid. The
    children are ``conv`` and ``bn``, as timm's ``ConvNormAct``, so timm's weights load.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int, groups: int
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            kernel_size // 2,
            groups=groups,
            bias=False,
        )
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class RepBlock(nn.Module):
    """Base of the re-parameterisable blocks: a sum of linear branches, then ReLU; chapter 13.

    A subclass builds its branches and lists them, in the order they are summed, in
    :meth:`branches`: :class:`ConvBN` modules and at most one ``nn.BatchNorm2d`` (the identity
    branch, present only when the block keeps its shape: stride 1 and equal widths). The
    geometry (``in_channels``, ``out_channels``, ``kernel_size``, ``stride``, ``groups``) is the
    one of the convolution the block folds into.
    """

    act: nn.Module

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int, groups: int
    ) -> None:
        super().__init__()
        validate.integer("in_channels", in_channels, minimum=1)
        validate.integer("out_channels", out_channels, minimum=1)
        validate.integer("kernel_size", kernel_size, minimum=1)
        validate.integer("stride", stride, 1, 2)
        validate.integer("groups", groups, minimum=1)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (for 'same' padding), got {kernel_size}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups must divide in_channels and out_channels, got groups={groups} for "
                f"{in_channels} -> {out_channels}"
            )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.groups = kernel_size, stride, groups
        self.has_identity = stride == 1 and in_channels == out_channels

    def branches(self) -> list[nn.Module]:
        """The linear branches in summation order (a subclass lists its own)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = self.branches()
        out = branches[0](x)
        for branch in branches[1:]:
            out = out + branch(x)
        return self.act(out)

    @torch.no_grad()
    def branch_kernel_bias(self, branch: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """The kxk kernel and bias of one of this block's branches, on its own; chapter 13.

        A :class:`ConvBN` branch: BatchNorm folded into its convolution (:func:`fuse_conv_bn`),
        the kernel zero-padded to the block's kxk (:func:`pad_kernel`). The identity branch
        (BatchNorm alone): BatchNorm folded into the kxk identity kernel
        (:func:`identity_kernel`). A convolution with the result (stride, padding ``k // 2``
        and groups of the block) computes what the branch computes in eval mode.
        """
        validate.module("branch", branch)
        if not any(branch is b for b in self.branches()):
            raise ValueError(
                f"branch must be one of this {type(self).__name__}'s branches (see .branches()), "
                f"got a {type(branch).__name__} that is not among them"
            )
        if isinstance(branch, ConvBN):
            k, b = fuse_conv_bn(branch.conv.weight, branch.bn)
            return pad_kernel(k, self.kernel_size), b
        # the identity branch: BatchNorm alone, i.e. BatchNorm after an identity convolution
        eye = identity_kernel(self.in_channels, self.groups, self.kernel_size, branch)
        return fuse_conv_bn(eye, branch)

    @torch.no_grad()
    def equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The kxk kernel and bias of the one convolution that equals the branches' sum.

        The sum, in :meth:`branches` order, of every branch's :meth:`branch_kernel_bias`.
        """
        kernel, bias = None, None
        for branch in self.branches():
            k, b = self.branch_kernel_bias(branch)
            kernel = k if kernel is None else kernel + k
            bias = b if bias is None else bias + b
        return kernel, bias

    def fold(self) -> FoldedBlock:
        """A :class:`FoldedBlock` computing what this block computes in eval mode."""
        conv = nn.Conv2d(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            self.stride,
            self.kernel_size // 2,
            groups=self.groups,
            bias=True,
        )
        kernel, bias = self.equivalent_kernel_bias()
        conv.to(device=kernel.device, dtype=kernel.dtype)
        with torch.no_grad():
            conv.weight.copy_(kernel)
            conv.bias.copy_(bias)
        return FoldedBlock(conv, copy.deepcopy(self.act)).train(self.training)  # keep the mode


class FoldedBlock(nn.Module):
    """A folded RepBlock: one convolution with bias, then the activation; chapter 13.

    The convolution is called ``reparam_conv``, as in timm's re-parameterised blocks, so a
    folded network's state_dict has the layout of timm's after ``reparameterize_model``.
    """

    def __init__(self, reparam_conv: nn.Conv2d, act: nn.Module) -> None:
        super().__init__()
        self.reparam_conv = validate.instance("reparam_conv", reparam_conv, nn.Conv2d)
        self.act = validate.module("act", act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.reparam_conv(x))


class PoolLinear(nn.Module):
    """Global average pool, then the classifier ``fc`` (timm's ``head.fc``); chapter 13."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class RepNet(nn.Module):
    """The skeleton RepVGG and MobileOne share: ``stem``, ``stages``, ``head``; chapter 13.

    ``stem`` is one block at stride 2 (stride 1 with ``small_input``: a 32x32 image then reaches
    the last stage at 2x2 instead of 1x1; strides have no parameters, so the state_dict is the
    same); ``stages`` is a ``nn.Sequential`` of ``nn.Sequential`` stages; ``head`` pools and
    classifies (``head.fc``). A subclass passes the stem and stages it built.
    """

    def __init__(
        self,
        stem: nn.Module,
        stages: list[nn.Sequential],
        last_channels: int,
        num_classes: int,
        small_input: bool,
    ) -> None:
        super().__init__()
        self.num_classes, self.small_input = num_classes, small_input
        self.stem = stem
        self.stages = nn.Sequential(*stages)
        self.head = PoolLinear(last_channels, num_classes)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image to the last stage's feature map."""
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map to logits: global average pool, the FC layer."""
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def check_layout(
    stem_channels: int,
    widths: tuple[int, ...],
    depths: tuple[int, ...],
    num_classes: int,
    small_input: bool,
) -> None:
    """The argument checks RepVGG and MobileOne share (before they build anything); ch. 13."""
    validate.integer("stem_channels", stem_channels, minimum=1)
    validate.shape("widths", widths)
    validate.shape("depths", depths, len(widths))
    validate.integer("num_classes", num_classes, minimum=1)
    validate.flag("small_input", small_input)


def fuse_conv_bn(weight: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel and bias of ``bn(conv(x))`` for a bias-free conv of ``weight``; chapter 13.

    In eval mode BatchNorm is ``gamma * (y - mu) / sigma + beta`` per channel, so scaling each
    output channel's kernel by ``gamma / sigma`` and adding ``beta - mu * gamma / sigma`` is the
    same map. PyTorch's ``torch.nn.utils.fusion.fuse_conv_bn_weights`` computes it (the same
    arithmetic as :func:`shufflelib.deploy.fold_bn`, chapter 11); this names the step.
    """
    validate.tensor("weight", weight, 4, floating=True)
    validate.instance("bn", bn, nn.BatchNorm2d)
    w, b = fuse_conv_bn_weights(
        weight, None, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
    )
    return w.detach(), b.detach()


def pad_kernel(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """``kernel`` zero-padded on all four sides to ``size`` x ``size``; chapter 13.

    With padding ``size // 2`` a kxk convolution of the padded kernel equals the smaller
    convolution at its own padding: the extra taps are zero (a 1x1 kernel sits at the centre).
    """
    validate.tensor("kernel", kernel, 4)
    validate.integer("size", size, minimum=kernel.shape[-1])
    if (size - kernel.shape[-1]) % 2:
        raise ValueError(f"size must differ from the kernel's {kernel.shape[-1]} by an even number")
    pad = (size - kernel.shape[-1]) // 2
    return F.pad(kernel, [pad, pad, pad, pad])


def identity_kernel(
    channels: int, groups: int, size: int, like: nn.Module | None = None
) -> torch.Tensor:
    """The ``size`` x ``size`` kernel of a convolution that returns its input; chapter 13.

    Shape ``(channels, channels // groups, size, size)``, zero but for a 1 at the centre tap of
    each output channel's own input: input ``i % (channels // groups)`` of its group (for a
    depthwise convolution the single input, for a dense one input ``i``). ``like`` gives the
    device and dtype (of its first parameter).
    """
    validate.integer("channels", channels, minimum=1)
    validate.integer("groups", groups, minimum=1)
    validate.integer("size", size, minimum=1)
    if channels % groups:
        raise ValueError(f"groups must divide channels, got groups={groups}, channels={channels}")
    param = next(like.parameters(), None) if like is not None else None
    options = {} if param is None else {"device": param.device, "dtype": param.dtype}
    per_group = channels // groups
    kernel = torch.zeros(channels, per_group, size, size, **options)
    index = torch.arange(channels, device=kernel.device)
    kernel[index, index % per_group, size // 2, size // 2] = 1
    return kernel


def reparameterize(model: nn.Module) -> nn.Module:
    """A new inference-time network: each RepBlock folded into one convolution; chapter 13.

    Works on RepVGG and MobileOne (``repvgg_a0``, ``mobileone_s0``): every
    :class:`RepBlock` becomes a :class:`FoldedBlock` (one kxk or kxk-depthwise convolution with
    bias, then ReLU), so the result has no BatchNorm and one convolution per block. Its output
    equals ``model``'s in eval mode (the fold uses BatchNorm's running statistics) to float
    rounding. ``model`` itself is not changed: the fold works on a deep copy. Any other model
    is a ValueError naming its class.
    """
    validate.module("model", model)
    if isinstance(model, RepBlock):  # a lone block
        return model.fold()
    names = [name for name, m in model.named_modules() if isinstance(m, RepBlock)]
    if not names:
        raise ValueError(
            f"reparameterize folds {SUPPORTED}; model is a {type(model).__name__}, which has "
            "no such block"
        )
    folded = copy.deepcopy(model)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = folded.get_submodule(parent_name)
        setattr(parent, child, getattr(parent, child).fold())
    return folded


def _deployed_params(block: RepBlock) -> int:
    """The parameters of ``block`` folded: one kxk kernel (of its groups) and a bias."""
    per_group = block.in_channels // block.groups
    return block.out_channels * per_group * block.kernel_size**2 + block.out_channels


def structure(model: nn.Module) -> Table:
    """RepVGG's or MobileOne's parts before and after folding, one row per part; chapter 13.

    A part is the ``stem`` or one of the ``stages``. Columns: the RepBlocks in it, their
    output width, the linear branches they sum at training time, the convolutions and
    BatchNorms they run at training time, the convolutions left after :func:`reparameterize`
    (one per block), and the parameters of the part in both forms (thousands; the head, a
    pooled linear classifier, is the same in both and is left out). Counted from the modules,
    nothing is run.
    """
    validate.instance("model", model, RepNet)
    parts = [("stem", model.stem)] + [(f"stages.{i}", s) for i, s in enumerate(model.stages)]
    rows = []
    for name, part in parts:
        blocks = [m for m in part.modules() if isinstance(m, RepBlock)]
        modules = list(part.modules())
        rows.append(
            {
                "part": name,
                "blocks": len(blocks),
                "width": blocks[-1].out_channels,
                "branches": sum(len(b.branches()) for b in blocks),
                "convs (train)": sum(isinstance(m, nn.Conv2d) for m in modules),
                "BNs (train)": sum(isinstance(m, nn.BatchNorm2d) for m in modules),
                "convs (deployed)": len(blocks),
                "params train": sum(p.numel() for p in part.parameters()) / 1e3,
                "params deployed": sum(_deployed_params(b) for b in blocks) / 1e3,
            }
        )
    return Table(
        rows,
        title=f"{type(model).__name__}: training-time branches against the deployed convolutions",
        note="params: the stem and stages (the classifier head is the same in both forms)",
        units={"params train": "k", "params deployed": "k"},
    )
