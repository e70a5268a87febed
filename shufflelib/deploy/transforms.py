"""The float steps of chapter 11: fold BatchNorm, store channels-last, and the two together.

Each returns a new model with the original's outputs (up to float rounding) and leaves the
original as it was: same weights, same memory format, same train/eval mode.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .. import validate
from ..models.reparameterize import RepBlock, reparameterize
from ..models.shufflenet_v2 import ShuffleNetV2
from .fast_shufflenet import as_fast_shufflenet

__all__ = [
    "steps",
    "STEP_NAMES",
    "fold_bn",
    "folded",
    "reparameterisable",
    "for_export",
    "count_batchnorm",
    "to_channels_last",
]

# The names of the float steps of chapter 11, in order (:func:`steps` gives one of the second
# and third, as the network is re-parameterisable or not).
STEP_NAMES = ("ours eager", "+ BN folding", "+ re-parameterised", "+ channels-last")


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (
        type(conv) is nn.Conv2d
        and type(bn) is nn.BatchNorm2d
        and bn.track_running_stats
        and bn.num_features == conv.out_channels
    )


def fold_bn(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every BatchNorm folded into the convolution before it; ch. 11.

    In eval mode a BatchNorm is an affine map per channel, ``y = g (x - mu) / sqrt(var + eps) + b``,
    so it folds into the convolution that feeds it: scale the convolution's output filters by
    ``g / sqrt(var + eps)`` and give it the bias ``b - g mu / sqrt(var + eps)``. The folded
    network does the same arithmetic with one pass over memory less per BatchNorm.

    Written here because no supported PyTorch utility does it for any module tree:
    ``torch.fx.experimental.optimization.fuse`` needs a model ``torch.fx`` can trace, and returns a
    ``GraphModule`` without the model's class and methods. We walk every ``nn.Sequential``, fold
    each ``Conv2d`` directly followed by a ``BatchNorm2d`` with
    ``torch.nn.utils.fusion.fuse_conv_bn_eval`` (the arithmetic above) and put an ``nn.Identity``
    where the BatchNorm was. That covers every model of the zoo and torchvision's; a BatchNorm
    anywhere else is left in place (still correct). ``model`` must be in eval mode (its
    BatchNorms then use their running statistics) and is not touched.
    """
    validate.module("model", model, eval_mode=True)
    folded = copy.deepcopy(model)
    with torch.no_grad():
        for module in folded.modules():
            if not isinstance(module, nn.Sequential):
                continue
            items = list(module._modules.items())
            for (conv_name, conv), (bn_name, bn) in zip(items, items[1:]):
                if _foldable(conv, bn):
                    module._modules[conv_name] = fuse_conv_bn_eval(conv, bn)
                    module._modules[bn_name] = nn.Identity()
    return folded.eval()  # the copy: its new Identity layers join the rest in eval mode


def count_batchnorm(model: nn.Module) -> int:
    """How many BatchNorm layers ``model`` has (0 after :func:`fold_bn` on the zoo); chapter 11."""
    validate.module("model", model)
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def to_channels_last(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with its 4-D weights in channels-last (NHWC) memory; chapter 11.

    A convolution whose weight is channels-last returns a channels-last output, so after the
    first layer every activation stays NHWC, the layout of oneDNN's vectorised CPU kernels
    (``torch.Tensor.contiguous(memory_format=torch.channels_last)``; the values do not change).
    Our :class:`~shufflelib.models.shufflenet_v2.ShuffleNetV2` runs only its stem channels-last by
    default and returns to NCHW for the units; here the whole network runs NHWC.
    """
    validate.module("model", model)
    out = copy.deepcopy(model).to(memory_format=torch.channels_last)
    for m in out.modules():
        if isinstance(m, ShuffleNetV2):
            m.channels_last_stem = False  # the whole network is NHWC: no switch back after the stem
    return out


def steps(model: nn.Module) -> dict[str, nn.Module]:
    """The float steps of chapter 11 on ``model``, each on top of the last, as new models.

    ``"ours eager"`` (``model`` itself), ``"+ BN folding"`` (:func:`fold_bn`) and
    ``"+ channels-last"`` (:func:`to_channels_last` of the folded model, built from the fast
    units of :func:`~shufflelib.deploy.fast_shufflenet_v2` when ``model`` is a ShuffleNet V2).
    A RepVGG or MobileOne folds its training branches with its BatchNorms instead, in the step
    ``"+ re-parameterised"`` (:func:`~shufflelib.models.reparameterize`, chapter 13). All give
    ``model``'s outputs; :func:`~shufflelib.deploy.compile` and
    :func:`~shufflelib.deploy.quantize_int8` take the last one.
    """
    validate.module("model", model, eval_mode=True)
    eager, bn, rep, layout = STEP_NAMES
    if reparameterisable(model):
        deployed = folded(model)
        return {eager: model, rep: deployed, layout: to_channels_last(deployed)}
    folded_bn = fold_bn(model)
    fast = as_fast_shufflenet(model)
    last = to_channels_last(fold_bn(fast) if fast is not None else folded_bn)
    return {eager: model, bn: folded_bn, layout: last}


def folded(model: nn.Module) -> nn.Module:
    """``model`` as deployed: its BatchNorms folded (:func:`fold_bn`), and a RepVGG's or
    MobileOne's training branches too (:func:`~shufflelib.models.reparameterize`, chapter 13).
    The network whose work and memory traffic a deployment's bound counts; chapter 11."""
    validate.module("model", model, eval_mode=True)
    if reparameterisable(model):
        return fold_bn(reparameterize(model))  # fold_bn: any BatchNorm outside the blocks
    return fold_bn(model)


def for_export(model: nn.Module) -> nn.Module:
    """``model`` as chapter 11 exports it to ONNX: a RepVGG's or MobileOne's branches folded
    (:func:`folded`; no exporter folds them), any other model as it is (the runtimes fold its
    BatchNorms themselves when they load the file)."""
    return folded(model) if reparameterisable(model) else model


def reparameterisable(model: nn.Module) -> bool:
    """Whether ``model`` trains with branches that :func:`folded` re-parameterises (RepVGG,
    MobileOne; chapter 13): every step, exporter and bound of chapter 11 asks this once."""
    return any(isinstance(m, RepBlock) for m in model.modules())
