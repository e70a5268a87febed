"""A ShuffleNet V2 arranged for inference speed, with chapter 7's weights and outputs; chapter 11.

The units keep the input's memory format (NHWC stays NHWC) and hand the next unit its two halves
already split (:func:`shuffled_halves`), so neither the shuffle nor the split copies more than
once. torchvision's and chapter 7's weights load with ``strict=True``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from .. import validate
from ..models.shufflenet_v2 import STAGES_OUT_CHANNELS, ShuffleNetV2, ShuffleV2Unit

__all__ = [
    "shuffled_halves",
    "FastShuffleV2Unit",
    "FastShuffleNetV2",
    "fast_shufflenet_v2",
    "as_fast_shufflenet",
]

Halves = tuple[torch.Tensor, torch.Tensor]


def _is_channels_last(x: torch.Tensor) -> bool:
    return (
        x.dim() == 4
        and x.is_contiguous(memory_format=torch.channels_last)
        and not (x.is_contiguous() and x.shape[1] > 1)
    )


def _interleave(a: torch.Tensor, b: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """Channels ``a0 b0 a1 b1 ...``: ``channel_shuffle(cat((a, b)), 2)`` written once."""
    if channels_last:  # interleave the innermost (channel) axis of the NHWC memory
        nhwc = torch.stack((a.permute(0, 2, 3, 1), b.permute(0, 2, 3, 1)), dim=-1)
        return nhwc.flatten(3).permute(0, 3, 1, 2)
    return torch.stack((a, b), dim=2).flatten(1, 2)


def _halves(a: torch.Tensor, b: torch.Tensor, split: bool) -> torch.Tensor | Halves:
    """:func:`shuffled_halves` without the checks, for the units' forward passes."""
    cl = _is_channels_last(a) or _is_channels_last(b)
    if not split:
        return _interleave(a, b, cl)
    h = a.shape[1] // 2
    return _interleave(a[:, :h], b[:, :h], cl), _interleave(a[:, h:], b[:, h:], cl)


def shuffled_halves(
    a: torch.Tensor, b: torch.Tensor, *, split: bool = True
) -> torch.Tensor | Halves:
    """The two halves of ``channel_shuffle(torch.cat((a, b), 1), 2)``, written once; chapter 11.

    After the concatenation and a shuffle with two groups, channel ``2j`` is ``a[:, j]`` and
    ``2j + 1`` is ``b[:, j]``; so the first half of the result interleaves the first halves of
    ``a`` and ``b``, and the second half their second halves. Writing each half as its own tensor
    costs the same one write as the whole, and the next unit's channel split is then free: both
    halves are contiguous (in ``a``'s memory format, NCHW or NHWC), so its convolution needs no
    copy of a strided view first. ``split=False`` returns the whole shuffled tensor instead.
    """
    validate.tensor("a", a, dims=4)
    validate.tensor("b", b, dims=4)
    validate.flag("split", split)
    if a.shape != b.shape:
        raise ValueError(f"b must have a's shape {tuple(a.shape)}, got {tuple(b.shape)}")
    if split and a.shape[1] % 2:
        raise ValueError(f"a must have an even number of channels to split, got {a.shape[1]}")
    return _halves(a, b, split)


class FastShuffleV2Unit(ShuffleV2Unit):
    """The ShuffleNet V2 unit of chapter 7 with the same weights, arranged for speed; chapter 11.

    Same parameters and state_dict as :class:`~shufflelib.models.shufflenet_v2.ShuffleV2Unit`,
    same outputs. Two differences in memory only: the shuffled concatenation is written in the
    input's memory format (NHWC stays NHWC, so no layout conversion between units), and unless
    ``merge_output`` is set the unit returns its output as the pair of halves the next unit
    splits it into (:func:`shuffled_halves`), so that split costs nothing. A stride-1 unit
    accepts such a pair or a tensor.
    """

    def __init__(self, *args: Any, merge_output: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.merge_output = validate.flag("merge_output", merge_output)

    def forward(self, x: torch.Tensor | Halves):  # type: ignore[override]
        if self.stride == 1:
            x1, x2 = x if isinstance(x, tuple) else x.chunk(2, dim=1)
            return _halves(x1, self.branch2(x2), not self.merge_output)
        if isinstance(x, tuple):
            x = torch.cat(x, dim=1)
        return _halves(self.branch1(x), self.branch2(x), not self.merge_output)


class FastShuffleNetV2(ShuffleNetV2):
    """ShuffleNet V2 of Table 5 built from :class:`FastShuffleV2Unit`; chapter 11.

    The state_dict is torchvision's (and chapter 7's), so ImageNet weights load with
    ``strict=True``. Within a stage the units pass each other pairs of halves; the last unit
    of each stage returns one tensor for the next stage's stride-2 unit and for Conv5. Whatever
    memory format the weights are in (see :func:`~shufflelib.deploy.to_channels_last`), the
    network keeps it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("channels_last_stem", False)
        kwargs["unit"] = FastShuffleV2Unit
        super().__init__(*args, **kwargs)
        for stage in (self.stage2, self.stage3, self.stage4):
            for k, unit in enumerate(stage):
                unit.merge_output = k == len(stage) - 1


def fast_shufflenet_v2(
    width: float = 1.0,
    num_classes: int = 1000,
    *,
    small_input: bool = False,
    channels_last: bool = True,
) -> FastShuffleNetV2:
    """ShuffleNet V2 at a width of Table 5, built for inference speed; chapter 11.

    ``channels_last=True`` (default) stores the weights NHWC, so the whole network runs
    channels-last. Load trained weights with ``load_state_dict`` (torchvision's layout).
    """
    validate.number("width", width)
    validate.choice("width", width, sorted(STAGES_OUT_CHANNELS))
    validate.integer("num_classes", num_classes, minimum=1)
    validate.flag("small_input", small_input)
    validate.flag("channels_last", channels_last)
    model = FastShuffleNetV2(
        [4, 8, 4], STAGES_OUT_CHANNELS[width], num_classes, small_input=small_input
    )
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _is_torchvision_shufflenet(model: nn.Module) -> bool:
    kind = type(model)
    return kind.__name__ == "ShuffleNetV2" and kind.__module__.startswith("torchvision.")


def as_fast_shufflenet(model: nn.Module) -> FastShuffleNetV2 | None:
    """A :class:`FastShuffleNetV2` with ``model``'s weights (a ShuffleNet V2), else None; ch. 11.

    ``model`` may be ours (chapter 7) or torchvision's; the copy is in eval mode, in contiguous
    (NCHW) memory, on ``model``'s device, and ``model`` is not touched.
    """
    validate.module("model", model)
    if isinstance(model, FastShuffleNetV2):
        return copy.deepcopy(model).to(memory_format=torch.contiguous_format).eval()
    if isinstance(model, ShuffleNetV2):
        repeats, channels = model.stages_repeats, model.stages_out_channels
        num_classes, small = model.num_classes, model.small_input
    elif _is_torchvision_shufflenet(model):
        repeats = [len(model.stage2), len(model.stage3), len(model.stage4)]
        channels = list(model._stage_out_channels)
        num_classes, small = model.fc.out_features, False
    else:
        return None
    fast = FastShuffleNetV2(repeats, channels, num_classes, small_input=small)
    fast.load_state_dict(model.state_dict(), strict=True)
    device = next(model.parameters()).device
    return fast.to(device).eval()
