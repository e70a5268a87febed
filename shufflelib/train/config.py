"""A training run's settings, checked once, frozen, and stored in its checkpoint; chapter 9.

:class:`TrainConfig` holds everything that decides the weights a run ends with: the recipe
(optimiser, learning rate and its schedule, regularisation), the seed, the data (how many images,
which ones) and the run's identity (the model, its variant, the input adaptation, the
augmentation, the data spec), the number of processes and torch's version. ``fit`` builds one
from its arguments before any work, every checkpoint stores it, and a resumed run must present
the same one: :meth:`TrainConfig.differences` names every setting that changed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from .. import validate
from .recipe import Progressive

__all__ = ["TrainConfig", "OPTIMIZERS", "DEFAULT_LR", "DEFAULT_WEIGHT_DECAY", "UNKEYED"]

OPTIMIZERS = ("sgd", "adamw")
DEFAULT_LR = {"sgd": 0.1, "adamw": 2e-3}  # for a batch of 128; scaled linearly with the batch
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adamw": 0.05}
UNKEYED = ("workers", "progress", "log", "device", "stop_after")  # how, not what, a run trains


@dataclass(frozen=True)
class TrainConfig:
    """The settings of one training run, with the book's defaults resolved; see ``fit``."""

    epochs: int
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup_epochs: float = 0.0
    seed: int = 0
    amp: bool = False
    channels_last: bool = False
    progressive: dict[str, Any] | None = None
    limit_train: int | None = None
    limit_test: int | None = None
    train_images: int = 0
    world_size: int = 1
    identity: dict[str, Any] = field(default_factory=dict)
    torch: str = torch.__version__

    @classmethod
    def resolve(
        cls,
        epochs: int,
        *,
        batch_size: int = 128,
        optimizer: str = "sgd",
        lr: float | None = None,
        weight_decay: float | None = None,
        warmup_epochs: float | None = None,
        progressive: Progressive | None = None,
        **settings: Any,
    ) -> TrainConfig:
        """The config of a run: the defaults that depend on other settings filled in, every
        value checked (a TypeError or ValueError naming it, before any work)."""
        validate.integer("epochs", epochs, minimum=1)
        validate.integer("batch_size", batch_size, minimum=1)
        validate.choice("optimizer", optimizer, OPTIMIZERS)
        if lr is None:
            lr = DEFAULT_LR[optimizer] * batch_size / 128
        if weight_decay is None:
            weight_decay = DEFAULT_WEIGHT_DECAY[optimizer]
        if warmup_epochs is None:
            warmup_epochs = min(5.0, epochs / 10)
        if progressive is not None:
            validate.instance("progressive", progressive, Progressive)
            if epochs < progressive.stages:
                raise ValueError(
                    f"epochs must be >= the progressive schedule's stages ({progressive.stages}), "
                    f"got {epochs}"
                )
        config = cls(
            epochs=epochs,
            batch_size=batch_size,
            optimizer=optimizer,
            lr=lr,
            weight_decay=weight_decay,
            warmup_epochs=warmup_epochs,
            progressive=asdict(progressive) if progressive else None,
            **settings,
        )
        config.check()
        return config

    def check(self) -> None:
        """Every field's type and range (the rules of ``fit``'s arguments)."""
        validate.number("lr", self.lr, above=0)
        validate.number("momentum", self.momentum, minimum=0, maximum=1)
        validate.flag("nesterov", self.nesterov)
        validate.number("weight_decay", self.weight_decay, minimum=0)
        validate.number("label_smoothing", self.label_smoothing, minimum=0, maximum=1)
        validate.number("warmup_epochs", self.warmup_epochs, minimum=0, maximum=self.epochs)
        validate.integer("seed", self.seed, minimum=0)
        validate.flag("amp", self.amp)
        validate.flag("channels_last", self.channels_last)
        for name in ("limit_train", "limit_test"):
            if getattr(self, name) is not None:
                validate.integer(name, getattr(self, name), minimum=1)
        validate.integer("world_size", self.world_size, minimum=1)
        validate.mapping("identity", self.identity, nonempty=False)
        if self.batch_size % self.world_size:
            raise ValueError(
                f"batch_size must be divisible by the number of processes ({self.world_size}), "
                f"got {self.batch_size}"
            )

    @property
    def schedule(self) -> Progressive | None:
        """The progressive-learning schedule, or None."""
        return Progressive(**self.progressive) if self.progressive else None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values, as a checkpoint gives them back (lists, not tuples)."""
        return json.loads(json.dumps(asdict(self)))

    def differences(self, stored: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
        """Every setting that differs from a checkpoint's ``stored`` config: name -> (then, now).

        A setting the checkpoint did not record counts as a difference (then: None).
        """
        validate.mapping("stored", stored, nonempty=False)
        now = self.as_dict()
        out = {}
        for f in fields(self):
            if f.name == "identity":
                then = stored.get("identity") or {}
                keys = sorted(set(then) | set(now["identity"]))
                out |= {
                    k: (then.get(k), now["identity"].get(k))
                    for k in keys
                    if then.get(k) != now["identity"].get(k)
                }
            elif stored.get(f.name) != now[f.name]:
                out[f.name] = (stored.get(f.name), now[f.name])
        return out
