"""The book's training recipe, piece by piece; chapter 9.

SGD with Nesterov momentum (or AdamW) over two parameter groups (:func:`param_groups`: weight
decay on weights, never on norms and biases), a linear warm-up into a cosine schedule stepped
every iteration (:func:`lr_at`), cross-entropy with label smoothing, mixup (:func:`mixup`), and
EfficientNetV2's progressive learning (:class:`Progressive`). ``fit`` (:mod:`.loop`) assembles
them with :func:`optimizer`, :func:`schedule` and :func:`criterion`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .. import validate
from ..tables import Table

__all__ = [
    "param_groups",
    "lr_at",
    "optimizer",
    "schedule",
    "criterion",
    "mixup",
    "set_dropout",
    "Progressive",
]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two optimiser groups: weights decay, norms' scales and every bias (1-d tensors) do not."""
    validate.module("model", model)
    validate.number("weight_decay", weight_decay, minimum=0)
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def lr_at(step: int, total: int, warmup: int) -> float:
    """The learning-rate factor at ``step`` of ``total``: linear warm-up, then cosine to zero."""
    validate.integer("total", total, minimum=1)
    validate.integer("step", step, minimum=0)
    validate.integer("warmup", warmup, minimum=0, maximum=total)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def optimizer(model: nn.Module, config: Any) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov) or AdamW over :func:`param_groups`, at ``config.lr``."""
    groups = param_groups(model, config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov
        )
    return torch.optim.AdamW(groups, lr=config.lr)


def schedule(
    opt: torch.optim.Optimizer, config: Any, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Warm-up then cosine (:func:`lr_at`) over the run, stepped every iteration."""
    validate.integer("steps_per_epoch", steps_per_epoch, minimum=1)
    total = steps_per_epoch * config.epochs
    warmup = round(config.warmup_epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, total, warmup))


def criterion(config: Any) -> nn.Module:
    """Cross-entropy with ``config.label_smoothing``."""
    return nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)


def mixup(
    x: torch.Tensor, y: torch.Tensor, alpha: float, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Mix each image with another: ``lam * x + (1 - lam) * x[perm]``; returns the mixed batch,
    both targets and ``lam``. The weight comes from torch's global generator (saved in every
    checkpoint), the pairing from ``g`` (the epoch's own generator); ``alpha`` 0 mixes nothing."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample().item()) if alpha > 0 else 1.0
    perm = torch.randperm(x.shape[0], generator=g).to(x.device)
    return lam * x + (1 - lam) * x[perm], y, y[perm], lam


def set_dropout(model: nn.Module, p: float) -> None:
    """Every dropout layer of ``model`` drops with probability ``p`` (progressive learning)."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = p


@dataclass(frozen=True)
class Progressive:
    """EfficientNetV2's progressive learning (the paper's Algorithm 1), scaled to small images.

    Training is cut into ``stages`` equal runs of epochs. Stage ``i`` of ``M`` trains at the image
    size and regularisation interpolated linearly from the first value of each pair to the
    second: ``S_i = S_0 + (S_e - S_0) * i / (M - 1)``, and the same for the dropout rate and the
    mixup strength (the alpha of the Beta distribution that mixes pairs of images; 0 is off).
    Sizes are rounded to a multiple of ``multiple``. The paper also grows RandAugment's magnitude;
    our embedded data already has its own crop-and-flip augmentation, so mixup stands in as the
    augmentation whose magnitude grows. Chapter 9 trains EfficientNetV2-T with it.
    """

    stages: int = 4
    image_size: tuple[int, int] = (24, 32)
    dropout: tuple[float, float] = (0.1, 0.3)
    mixup: tuple[float, float] = (0.0, 0.1)
    multiple: int = 4

    def __post_init__(self) -> None:
        validate.integer("stages", self.stages, minimum=2)
        validate.integer("multiple", self.multiple, minimum=1)
        for name in ("image_size", "dropout", "mixup"):
            pair = getattr(self, name)
            if not isinstance(pair, tuple | list):
                raise TypeError(f"{name} must be a pair (first, last), got {pair!r}")
            if len(pair) != 2:
                raise ValueError(f"{name} must be a pair (first, last), got {pair!r}")
        for s in self.image_size:
            validate.integer("image_size", s, minimum=8)
        for p in self.dropout:
            validate.number("dropout", p, minimum=0, maximum=0.99)
        for a in self.mixup:
            validate.number("mixup", a, minimum=0)

    def stage(self, epoch: int, epochs: int) -> int:
        """The stage (0-based) that ``epoch`` (0-based) of ``epochs`` falls in."""
        validate.integer("epochs", epochs, minimum=self.stages)
        validate.integer("epoch", epoch, minimum=0, maximum=epochs - 1)
        return epoch * self.stages // epochs

    def at(self, epoch: int, epochs: int) -> dict[str, Any]:
        """The settings of ``epoch`` (0-based): stage, image size, dropout and mixup."""
        i = self.stage(epoch, epochs)
        t = i / (self.stages - 1)

        def lerp(pair: Sequence[float]) -> float:
            return pair[0] + (pair[1] - pair[0]) * t

        size = int(round(lerp(self.image_size) / self.multiple) * self.multiple)
        return {
            "stage": i + 1,
            "image size": max(self.multiple, size),
            "dropout": round(lerp(self.dropout), 4),
            "mixup": round(lerp(self.mixup), 4),
        }

    def table(self, epochs: int) -> Table:
        """One row per epoch: the schedule ``fit`` follows over ``epochs`` epochs."""
        rows = [{"epoch": e + 1, **self.at(e, epochs)} for e in range(epochs)]
        return Table(rows, title=f"progressive learning over {epochs} epochs, {self.stages} stages")
