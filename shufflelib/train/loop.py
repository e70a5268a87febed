"""``fit`` and ``evaluate``: the training loop around the recipe; chapter 9.

``fit`` checks everything (:class:`~.config.TrainConfig`, the checkpoint folder) before any work,
builds the recipe's pieces (:mod:`.recipe`), resumes a checkpoint (:mod:`.checkpoint`) or seeds a
new run, and trains epoch by epoch, writing a checkpoint after each. A resumed run ends with the
same weights and history, bit for bit on the CPU, as one that never stopped, because the data
order and the augmentation are functions of ``(seed, epoch)`` and every generator's state is in
the checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from .. import data as _data
from .. import validate
from ..env import pick_device
from ..tables import Table
from . import checkpoint, distributed, recipe
from .config import TrainConfig

__all__ = [
    "fit",
    "evaluate",
    "make_config",
    "derive_seed",
    "resolve_device",
    "CHANNELS_LAST_DEVICES",
]

# Devices where fit and evaluate default to channels-last tensors. On a 2-core CPU (torch 2.14)
# it trained MobileNetV2 and EfficientNetV2 faster (1.4x in a bare loop) and the ShuffleNets even.
CHANNELS_LAST_DEVICES = ("cuda", "cpu")


def derive_seed(*parts: object) -> int:
    """A seed drawn from ``parts`` (e.g. ("fit", seed)): independent streams from one seed."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") % 2**62


# ---------------------------------------------------------------------------------------------
# data plumbing


def _dataset(name: str, value: object) -> Dataset:
    if not isinstance(value, Dataset) or not hasattr(value, "__len__"):
        raise TypeError(f"{name} must be a torch Dataset with a length, got {validate.show(value)}")
    if len(value) == 0:
        raise ValueError(f"{name} must hold at least one sample, got an empty dataset")
    return value


def _base(dataset: Dataset) -> Dataset:
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


def _limit(dataset: Dataset, n: int | None) -> Dataset:
    return dataset if n is None or n >= len(dataset) else Subset(dataset, range(n))


def _train_loader(
    dataset: Dataset, batch_size: int, seed: int, epoch: int, workers: int | None
) -> DataLoader:
    rank, world = distributed.rank_and_world()
    if hasattr(_base(dataset), "set_epoch"):
        _base(dataset).set_epoch(epoch)
    if world == 1:
        return _data.loader(
            dataset, batch_size, train=True, seed=seed, epoch=epoch, workers=workers
        )
    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(dataset, world, rank, shuffle=True, seed=seed, drop_last=True)
    sampler.set_epoch(epoch)
    return DataLoader(
        dataset,
        batch_size=batch_size // world,
        sampler=sampler,
        drop_last=True,
        num_workers=_data.default_workers() if workers is None else workers,
        pin_memory=torch.cuda.is_available(),
    )


def _eval_loader(dataset: Dataset, batch_size: int, workers: int | None) -> DataLoader:
    rank, world = distributed.rank_and_world()
    if world > 1:  # each rank takes every world-th sample; the sums are all-reduced
        dataset = Subset(dataset, range(rank, len(dataset), world))
    return _data.loader(dataset, batch_size, train=False, workers=workers)


def _autocast(device: torch.device, amp: bool):
    if not amp:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def resolve_device(model: nn.Module, device: torch.device | str | None) -> torch.device:
    """``device`` checked (:func:`shufflelib.env.pick_device`), or the model's own device."""
    if device is None:
        p = next(iter(model.parameters()), None)
        return p.device if p is not None else torch.device("cpu")
    return pick_device(device)


# ---------------------------------------------------------------------------------------------
# evaluate


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Dataset,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    limit: int | None = None,
    workers: int | None = 0,
    channels_last: bool | None = None,
) -> dict[str, float]:
    """Top-1 ``accuracy`` and mean cross-entropy ``loss`` of ``model`` on ``data``; chapter 9.

    Runs in eval mode (and restores the mode after). Images go in channels-last on the CPU and
    CUDA unless ``channels_last=False``. Under torchrun every process scores its share and the
    sums are combined, so each rank returns the same numbers.
    """
    validate.module("model", model)
    _dataset("data", data)
    validate.integer("batch_size", batch_size, minimum=1)
    if limit is not None:
        validate.integer("limit", limit, minimum=1)
    if channels_last is not None:
        validate.flag("channels_last", channels_last)
    device = resolve_device(model, device)
    if channels_last is None:
        channels_last = device.type in CHANNELS_LAST_DEVICES
    was_training = model.training
    model.eval()
    loss_sum = correct = count = 0.0
    try:
        for x, y in _started(_eval_loader(_limit(data, limit), batch_size, workers)):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(device, device.type == "cuda"):
                logits = model(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            count += y.numel()
    finally:
        model.train(was_training)
    loss_sum, correct, count = distributed.all_sum([loss_sum, correct, count], device)
    return {"accuracy": correct / count, "loss": loss_sum / count, "images": int(count)}


# ---------------------------------------------------------------------------------------------
# one epoch


@dataclass
class Trainer:
    """The recipe's pieces for one run on one device, and an epoch of steps with them."""

    model: nn.Module
    config: TrainConfig
    device: torch.device
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    net: nn.Module  # the model, or its DistributedDataParallel wrapper (after start)

    @classmethod
    def build(
        cls, model: nn.Module, config: TrainConfig, device: torch.device, steps: int
    ) -> Trainer:
        """Move the model; build the optimiser, schedule, scaler and loss (``steps`` an epoch)."""
        model.to(device)
        if config.channels_last:
            model.to(memory_format=torch.channels_last)
        opt = recipe.optimizer(model, config)
        sched = recipe.schedule(opt, config, steps)
        use_scaler = config.amp and not torch.cuda.is_bf16_supported()
        scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
        return cls(model, config, device, opt, sched, scaler, recipe.criterion(config), model)

    def start(self, ckpt: Mapping[str, Any] | None) -> tuple[list[dict[str, Any]], int]:
        """Seed a new run, or restore a checkpoint; return the history so far and its length."""
        if ckpt is None:  # dropout, stochastic depth and mixup draw from here: a function of seed
            torch.manual_seed(derive_seed("fit", self.config.seed))
            random.seed(derive_seed("fit", self.config.seed))
            history: list[dict[str, Any]] = []
        else:
            self.model.load_state_dict(ckpt["model"])
            self.opt.load_state_dict(ckpt["optimizer"])
            self.sched.load_state_dict(ckpt["scheduler"])
            self.scaler.load_state_dict(ckpt["scaler"])
            checkpoint.set_rng_state(ckpt["rng"])
            history = [dict(r) for r in ckpt["history"]]
        self.net = distributed.wrap(self.model, self.device)
        return history, len(history)

    def epoch(self, train_set: Dataset, epoch: int, workers: int | None, bar: bool):
        """Train one epoch; return its row (epoch, lr, train loss and accuracy, schedule) and
        the images trained on, and the seconds it took."""
        cfg = self.config
        setting = cfg.schedule.at(epoch, cfg.epochs) if cfg.schedule else None
        if setting:
            recipe.set_dropout(self.model, setting["dropout"])
        mix_gen = torch.Generator().manual_seed(derive_seed("mixup", cfg.seed, epoch))
        batches = _train_loader(train_set, cfg.batch_size, cfg.seed, epoch, workers)
        sums, count, seconds = self._steps(_bar(batches, epoch, cfg.epochs, bar), setting, mix_gen)
        distributed.sync_buffers(self.model)  # every rank keeps rank 0's batch-norm statistics
        loss_sum, correct, count = distributed.all_sum([*sums, count], self.device)
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "lr": self.opt.param_groups[0]["lr"],
            "train loss": loss_sum / count,
            "train accuracy": correct / count,
        }
        if setting:
            row.update({k: setting[k] for k in ("image size", "dropout", "mixup")})
        return row, count, seconds

    def _steps(self, batches: Iterator, setting: Mapping[str, Any] | None, mix_gen):
        """Every batch's step: (loss sum, correct) over the images, their count, seconds.

        The sums stay on the device and are read once per epoch (and every 20 steps for a
        progress bar), so a GPU is not made to wait at every step.
        """
        self.net.train()
        sums = torch.zeros(2, dtype=torch.float64, device=self.device)
        count, t0, world = 0, time.perf_counter(), distributed.rank_and_world()[1]
        for x, y in batches:
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            if setting and setting["image size"] != x.shape[-1]:
                size = setting["image size"]
                x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
            if self.config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            loss, logits = self.step(x, y, setting["mixup"] if setting else 0.0, mix_gen)
            n = y.numel()
            sums[0] += loss.detach().double() * n
            sums[1] += (logits.argmax(1) == y).sum()
            count += n
            if hasattr(batches, "set_postfix") and (count // n) % 20 == 1:
                loss_sum, correct = sums.tolist()
                batches.set_postfix(
                    loss=f"{loss_sum / count:.3f}",
                    acc=f"{correct / count:.3f}",
                    img_s=f"{count * world / (time.perf_counter() - t0):.0f}",
                )
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return sums.tolist(), count, time.perf_counter() - t0

    def step(self, x, y, alpha: float, mix_gen) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimisation step (with mixup when ``alpha`` > 0); returns the loss and logits."""
        with _autocast(self.device, self.config.amp):
            if alpha > 0:
                xm, ya, yb, lam = recipe.mixup(x, y, alpha, mix_gen)
                logits = self.net(xm)
                loss = lam * self.criterion(logits, ya) + (1 - lam) * self.criterion(logits, yb)
            else:
                logits = self.net(x)
                loss = self.criterion(logits, y)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        return loss, logits

    def state(self, epoch: int, history: list) -> dict[str, Any]:
        """Everything a resumed run needs, as plain containers and tensors (weights_only)."""
        return {
            "format": checkpoint.FORMAT,
            "model_class": type(self.model).__name__,
            "signature": checkpoint.signature(self.model),
            "config": self.config.as_dict(),
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": checkpoint.rng_state(),
            "history": history,
        }


def _started(batches: DataLoader) -> Iterator:
    """``iter(batches)``, with Ctrl-C (SIGINT) held back in this thread while the DataLoader forks
    its workers. A worker inherits the mask, so a Ctrl-C sent to the process group at the instant
    of the fork cannot print a worker's traceback; this process still gets it (another thread
    takes it, or this one once the mask is restored). The workers end with the loader."""
    if batches.num_workers == 0 or not hasattr(signal, "pthread_sigmask"):
        return iter(batches)
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return iter(batches)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _bar(batches: DataLoader, epoch: int, epochs: int, enabled: bool) -> Iterator:
    if not enabled:
        return _started(batches)
    from tqdm.auto import tqdm

    return tqdm(
        _started(batches),
        total=len(batches),
        desc=f"epoch {epoch + 1}/{epochs}",
        leave=False,
        unit="batch",
    )


def _log_line(row: Mapping[str, Any], epochs: int) -> str:
    parts = [
        f"epoch {row['epoch']}/{epochs}",
        f"train loss {row['train loss']:.4f}",
        f"train acc {row['train accuracy']:.4f}",
    ]
    if "test accuracy" in row:
        parts += [f"test loss {row['test loss']:.4f}", f"test acc {row['test accuracy']:.4f}"]
    parts += [f"{row['images/s']:.0f} img/s", f"lr {row['lr']:.4g}"]
    if "image size" in row:
        parts.append(f"size {row['image size']}")
    return " | ".join(parts)


# ---------------------------------------------------------------------------------------------
# fit


def _check_call(model, train_data, test_data, resume, stop_after, workers, progress, log) -> None:
    validate.module("model", model)
    _dataset("train_data", train_data)
    if test_data is not None:
        _dataset("test_data", test_data)
    validate.flag("resume", resume)
    if stop_after is not None:
        validate.integer("stop_after", stop_after, minimum=1)
    if workers is not None:
        validate.integer("workers", workers, minimum=0)
    validate.flag("progress", progress)
    if log is not None:
        validate.function("log", log)


def make_config(
    device: torch.device,
    train_images: int,
    *,
    amp: bool | None = None,
    channels_last: bool | None = None,
    identity: Mapping[str, Any] | None = None,
    **settings: Any,
) -> TrainConfig:
    """A run's TrainConfig: ``fit``'s settings with the device's defaults (AMP on CUDA,
    channels-last on CUDA and the CPU) and this process group's size, all checked."""
    config = TrainConfig.resolve(
        amp=device.type == "cuda" if amp is None else amp,
        channels_last=device.type in CHANNELS_LAST_DEVICES
        if channels_last is None
        else channels_last,
        train_images=train_images,
        world_size=distributed.rank_and_world()[1],
        identity=dict(validate.mapping("identity", identity or {}, nonempty=False)),
        **settings,
    )
    if config.amp and device.type != "cuda":
        raise ValueError(f"amp=True needs a CUDA device, got {device}")
    return config


def fit(
    model: nn.Module,
    train_data: Dataset,
    epochs: int,
    *,
    test_data: Dataset | None = None,
    device: torch.device | str | None = None,
    amp: bool | None = None,
    channels_last: bool | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    stop_after: int | None = None,
    limit_train: int | None = None,
    workers: int | None = None,
    progress: bool = True,
    log: Callable[[str], Any] | None = print,
    identity: Mapping[str, Any] | None = None,
    **recipe_settings: Any,
) -> Table:
    """Train ``model`` on ``train_data`` for ``epochs`` epochs; return the history; chapter 9.

    The recipe (``recipe_settings``, checked and stored as a :class:`TrainConfig`):
    ``optimizer`` "sgd" (``momentum`` 0.9, ``nesterov``) or "adamw"; ``lr`` (default 0.1 for
    SGD, 0.002 for AdamW, at a ``batch_size`` of 128, scaled linearly with it) warmed up
    linearly over ``warmup_epochs`` (default: a tenth of the run, at most 5 epochs) and then
    decayed with a cosine to zero, stepped every iteration; cross-entropy with
    ``label_smoothing`` (0.1); ``weight_decay`` (default 5e-4 for SGD, 0.05 for AdamW) on
    weights only; ``seed``; ``progressive`` (an EfficientNetV2 schedule); ``limit_test``.
    ``amp`` defaults to on for CUDA, ``channels_last`` for CUDA and the CPU. ``limit_train``
    trains on the first samples only. ``progress`` shows a tqdm bar per epoch; ``log`` gets one
    line per epoch (``None``: silence). ``identity`` names what the model is (the zoo name, its
    variant, the data): it is stored with the settings, and resuming under another one fails.

    The history is a Table with one row per epoch: epoch, lr, train loss and accuracy, test loss
    and accuracy (with ``test_data``), images/s and seconds of training. With ``checkpoint_dir``
    each epoch ends with an atomic ``last.pt`` and ``history.json`` (:mod:`.checkpoint`, checked
    before any work); ``resume=True`` continues a checkpoint there if there is one (a finished
    run just loads). ``stop_after=k`` stops after k epochs of this call. Under torchrun the model
    is wrapped in DistributedDataParallel, ``batch_size`` is the global batch, and only rank 0
    writes and logs.
    """
    _check_call(model, train_data, test_data, resume, stop_after, workers, progress, log)
    device = resolve_device(model, device)
    train_set = _limit(train_data, limit_train)
    settings = {"epochs": epochs, "limit_train": limit_train, **recipe_settings}
    config = make_config(
        device, len(train_set), amp=amp, channels_last=channels_last, identity=identity, **settings
    )
    if len(train_set) < config.batch_size:
        raise ValueError(
            f"batch_size ({config.batch_size}) must not exceed the training set "
            f"({len(train_set)} images)"
        )
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    ckpt = checkpoint.prepare(folder, resume, config, model) if folder else None
    trainer = Trainer.build(model, config, device, len(train_set) // config.batch_size)
    history, start = trainer.start(ckpt)
    rank = distributed.rank_and_world()[0]
    say = log if (log is not None and rank == 0) else None
    if ckpt is not None and say and start < epochs:
        say(f"resumed from {folder / checkpoint.CHECKPOINT} after epoch {start} of {epochs}")
    for epoch in range(start, epochs if stop_after is None else min(epochs, start + stop_after)):
        row, images, seconds = trainer.epoch(train_set, epoch, workers, progress and rank == 0)
        if test_data is not None:
            scores = evaluate(
                model,
                test_data,
                device=device,
                limit=config.limit_test,
                workers=0,
                channels_last=config.channels_last,
            )
            row["test loss"], row["test accuracy"] = scores["loss"], scores["accuracy"]
        row["images/s"], row["seconds"] = images / seconds, seconds
        history.append(row)
        if folder is not None and rank == 0:
            checkpoint.save(folder, trainer.state(epoch + 1, history))
        if say:  # after the checkpoint: an interruption here loses nothing
            say(_log_line(row, epochs))
    digest = distributed.agree(model)
    if digest and say:
        say(f"weights identical on all {distributed.rank_and_world()[1]} processes ({digest})")
    name = type(model).__name__
    return Table(history, title=f"training history: {name}, {len(history)} of {epochs} epochs")
