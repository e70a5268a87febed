"""Training: ``fit``, ``evaluate``, atomic checkpoints and resume, DDP under torchrun; ch. 9, 10.

``fit(model, train_data, epochs)`` trains with one recipe for every network of the book: SGD with
Nesterov momentum (or AdamW), a linear warm-up into a cosine schedule stepped every iteration,
label smoothing, weight decay on weights only (never on norms and biases), and on CUDA automatic
mixed precision and channels-last. It returns the history, one row of metrics per epoch.

Nothing is lost: with ``checkpoint_dir`` every epoch ends by writing ``last.pt`` atomically (the
model, optimiser, scheduler, gradient scaler, every random generator's state, the epoch and the
history) and ``history.json``; ``resume=True`` continues from it, and a resumed run ends with the
same weights and history, bit for bit on the CPU, as one that never stopped, because the data
order and the augmentation are functions of ``(seed, epoch)``. Checkpoints load with
``torch.load(path, weights_only=True)``.

``python -m shufflelib.train --model NAME ...`` is the same trainer on the command line, and under
``torchrun --nproc_per_node=K`` it runs DistributedDataParallel (gloo on CPU, nccl on CUDA).
``run(name, ...)`` trains a zoo model on a named dataset and keeps the run in a folder keyed by
its whole configuration: chapter 9 trains, chapter 10 finds the finished runs and reuses them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from . import data as _data
from .data import _check_bool, _check_int  # one set of argument checks
from .tables import Table

__all__ = [
    "BOOK_MODELS",
    "book_settings",
    "Progressive",
    "Run",
    "fit",
    "evaluate",
    "load_checkpoint",
    "param_groups",
    "lr_at",
    "parse_data",
    "run",
    "summary",
    "source_digest",
    "TRAINING_CODE",
    "atomic_save",
    "main",
]

CHECKPOINT = "last.pt"
HISTORY = "history.json"
FORMAT = "shufflebook-checkpoint-1"

# The networks chapter 9 trains and chapter 10 compares, at matched small widths: the zoo name and
# the builder's keyword arguments. All take small_input=True on 32x32 images.
BOOK_MODELS: dict[str, dict[str, Any]] = {
    "shufflenet_v1_g3_x0_5": {},
    "shufflenet_v2_x0_5": {},
    "mobilenet_v2": {"width_mult": 0.5},
    "efficientnet_v2_t": {},
}


def book_settings(
    full: bool = False, data: str = "embedded", download: bool = False
) -> dict[str, Any]:
    """The ``run`` settings chapters 9-11 and the results store share; chapter 9.

    The default trains to a plateau on the embedded data on a laptop CPU: 4 epochs of all 20,000
    augmented images at batch 32 (625 steps an epoch; on this small task the number of steps,
    not of images, decides how far a network gets), learning rate 0.05 after a tenth of an
    epoch of warm-up, no label smoothing. ``full=True`` trains 30 epochs. ``data`` and
    ``download`` switch to CIFAR-10 (e.g. in Colab).
    """
    _check_bool("full", full)
    parse_data(data)
    _check_bool("download", download)
    return {
        "data": data,
        "download": download,
        "epochs": 30 if full else 4,
        "batch_size": 32,
        "lr": 0.05,
        "label_smoothing": 0.0,
        "warmup_epochs": 0.1,
        "runs_dir": "runs",
        "progress": False,  # True shows a live bar per epoch
    }


_OPTIMIZERS = ("sgd", "adamw")
# Devices where fit and evaluate default to channels-last tensors. On a 2-core CPU (torch 2.14)
# it trained MobileNetV2 and EfficientNetV2 faster (1.4x in a bare loop) and the ShuffleNets even.
_CHANNELS_LAST_DEVICES = ("cuda", "cpu")
_DEFAULT_LR = {"sgd": 0.1, "adamw": 2e-3}  # for a batch of 128; scaled linearly with the batch
_DEFAULT_WD = {"sgd": 5e-4, "adamw": 0.05}


# ---------------------------------------------------------------------------------------------
# argument checks


def _check_float(name: str, value: object, lo: float, hi: float | None = None) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < lo or (hi is not None and value > hi):
        allowed = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be a number {allowed}, got {value!r}")
    return float(value)


def _check_dataset(name: str, value: object) -> Dataset:
    if not isinstance(value, Dataset) or not hasattr(value, "__len__") or len(value) == 0:
        raise TypeError(f"{name} must be a non-empty torch Dataset with a length, got {value!r}")
    return value


def _derive_seed(*parts: object) -> int:
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") % 2**62


# ---------------------------------------------------------------------------------------------
# the recipe's pieces


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two optimiser groups: weights decay, norms' scales and every bias (1-d tensors) do not."""
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
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


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
        _check_int("stages", self.stages, 2)
        _check_int("multiple", self.multiple, 1)
        for name in ("image_size", "dropout", "mixup"):
            pair = getattr(self, name)
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise ValueError(f"{name} must be a pair (first, last), got {pair!r}")
        for s in self.image_size:
            _check_int("image_size", s, 8)
        for p in self.dropout:
            _check_float("dropout", p, 0.0, 0.99)
        for a in self.mixup:
            _check_float("mixup", a, 0.0)

    def stage(self, epoch: int, epochs: int) -> int:
        """The stage (0-based) that ``epoch`` (0-based) of ``epochs`` falls in."""
        _check_int("epochs", epochs, self.stages)
        _check_int("epoch", epoch, 0)
        if epoch >= epochs:
            raise ValueError(f"epoch must be < epochs ({epochs}), got {epoch!r}")
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


def _set_dropout(model: nn.Module, p: float) -> None:
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = p


def _mixup(
    x: torch.Tensor, y: torch.Tensor, alpha: float, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    # the mixing weight comes from torch's global generator (saved in every checkpoint), the
    # pairing from the epoch's own generator
    lam = float(torch.distributions.Beta(alpha, alpha).sample().item()) if alpha > 0 else 1.0
    perm = torch.randperm(x.shape[0], generator=g).to(x.device)
    return lam * x + (1 - lam) * x[perm], y, y[perm], lam


# ---------------------------------------------------------------------------------------------
# distributed helpers (a no-op in one process)


def _dist() -> tuple[int, int]:
    """(rank, world size); (0, 1) when torch.distributed is not initialised."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _all_sum(values: Sequence[float], device: torch.device) -> list[float]:
    _, world = _dist()
    if world == 1:
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return t.tolist()


def _weights_digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# checkpoints


def atomic_save(obj: Any, path: Path) -> None:
    """Write ``obj`` to ``path`` (JSON for ``.json``, else ``torch.save``) so that the file is
    either the old one or the whole new one, never a torn write: a temporary file, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if path.suffix == ".json":
                f.write(json.dumps(obj, indent=1).encode())
            else:
                torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np

        kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
        state["numpy"] = (kind, keys.tolist(), int(pos), int(has_gauss), float(cached))
    except ImportError:
        pass
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        import numpy as np

        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))  # noqa: NPY002


def _signature(model: nn.Module) -> list[list[Any]]:
    return [[k, list(v.shape)] for k, v in model.state_dict().items()]


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint written by ``fit`` (``last.pt`` or its folder) with weights_only=True."""
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(p)!r}")
    ckpt = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{str(p)!r} is not a shufflebook checkpoint (format {FORMAT!r})")
    return ckpt


def _check_resumable(ckpt: Mapping[str, Any], model: nn.Module, config: Mapping[str, Any], p: Path):
    if ckpt["model_class"] != type(model).__name__ or ckpt["signature"] != _signature(model):
        ours = type(model).__name__
        raise ValueError(
            f"the checkpoint {str(p)!r} is from another model ({ckpt['model_class']} with "
            f"{len(ckpt['signature'])} tensors; this model is {ours} with "
            f"{len(_signature(model))}): resume with the model it was trained with, or choose "
            "another checkpoint_dir"
        )
    changed = {
        k: (ckpt["config"].get(k), v)
        for k, v in config.items()
        if k not in ("workers", "progress") and ckpt["config"].get(k) != v
    }
    if changed:
        detail = ", ".join(f"{k}: {a!r} then, {b!r} now" for k, (a, b) in changed.items())
        raise ValueError(
            f"cannot resume from {str(p)!r}: the run's settings differ ({detail}); resume with the "
            "same settings, or choose another checkpoint_dir"
        )


# ---------------------------------------------------------------------------------------------
# data plumbing


def _base(dataset: Dataset) -> Dataset:
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


def _limit(dataset: Dataset, n: int | None) -> Dataset:
    return dataset if n is None or n >= len(dataset) else Subset(dataset, range(n))


def _train_loader(
    dataset: Dataset, batch_size: int, seed: int, epoch: int, workers: int | None
) -> DataLoader:
    rank, world = _dist()
    if world == 1:
        if hasattr(_base(dataset), "set_epoch"):
            _base(dataset).set_epoch(epoch)
        return _data.loader(
            dataset, batch_size, train=True, seed=seed, epoch=epoch, workers=workers
        )
    from torch.utils.data.distributed import DistributedSampler

    if hasattr(_base(dataset), "set_epoch"):
        _base(dataset).set_epoch(epoch)
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
    rank, world = _dist()
    if world > 1:  # each rank takes every world-th sample; the sums are all-reduced
        dataset = Subset(dataset, range(rank, len(dataset), world))
    return _data.loader(dataset, batch_size, train=False, workers=workers)


# ---------------------------------------------------------------------------------------------
# evaluate and fit


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _autocast(device: torch.device, amp: bool):
    if not amp:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device.type, dtype=dtype)


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
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {model!r}")
    _check_dataset("data", data)
    _check_int("batch_size", batch_size, 1)
    if limit is not None:
        _check_int("limit", limit, 1)
    if channels_last is not None:
        _check_bool("channels_last", channels_last)
    device = _resolve_device(model, device)
    if channels_last is None:
        channels_last = device.type in _CHANNELS_LAST_DEVICES
    was_training = model.training
    model.eval()
    loss_sum = correct = count = 0.0
    try:
        for x, y in _eval_loader(_limit(data, limit), batch_size, workers):
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
    loss_sum, correct, count = _all_sum([loss_sum, correct, count], device)
    return {"accuracy": correct / count, "loss": loss_sum / count, "images": int(count)}


def _resolve_device(model: nn.Module, device: torch.device | str | None) -> torch.device:
    if device is None:
        p = next(iter(model.parameters()), None)
        return p.device if p is not None else torch.device("cpu")
    if isinstance(device, str):
        from .bench import pick_device

        return pick_device(device)
    if not isinstance(device, torch.device):
        raise TypeError(f"device must be a torch.device, 'cpu', 'cuda', 'mps' or None: {device!r}")
    return device


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


def fit(
    model: nn.Module,
    train_data: Dataset,
    epochs: int,
    *,
    test_data: Dataset | None = None,
    batch_size: int = 128,
    optimizer: str = "sgd",
    lr: float | None = None,
    momentum: float = 0.9,
    nesterov: bool = True,
    weight_decay: float | None = None,
    label_smoothing: float = 0.1,
    warmup_epochs: float | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    amp: bool | None = None,
    channels_last: bool | None = None,
    progressive: Progressive | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    stop_after: int | None = None,
    limit_train: int | None = None,
    limit_test: int | None = None,
    workers: int | None = None,
    progress: bool = True,
    log: Callable[[str], Any] | None = print,
) -> Table:
    """Train ``model`` on ``train_data`` for ``epochs`` epochs; return the history; chapter 9.

    The recipe: ``optimizer`` "sgd" (momentum, Nesterov) or "adamw"; ``lr`` (default 0.1 for SGD,
    0.002 for AdamW, at a batch of 128, scaled linearly with ``batch_size``) warmed up linearly
    over ``warmup_epochs`` (default: a tenth of the run, at most 5 epochs) and then decayed with a
    cosine to zero, stepped every iteration; cross-entropy with ``label_smoothing``;
    ``weight_decay`` (default 5e-4 for SGD, 0.05 for AdamW) on weights only. ``amp``
    defaults to on for CUDA, ``channels_last`` for CUDA and the CPU. ``progressive`` follows an
    EfficientNetV2 progressive-learning schedule. ``limit_train``/``limit_test`` train and score
    on the first samples only (quick runs). ``progress`` shows a tqdm bar per epoch (loss,
    accuracy, images/s); ``log`` receives one line per epoch (``None`` for silence). A new run
    seeds torch's global generator from ``seed`` (dropout, stochastic depth and mixup draw from
    it), so the same model, data and seed give the same history.

    The history is a Table with one row per epoch: epoch, lr (at the epoch's end), train loss and
    accuracy, test loss and accuracy (with ``test_data``), images/s and seconds of training.

    With ``checkpoint_dir`` each epoch ends with an atomic ``last.pt`` and ``history.json``; a
    folder that already holds a checkpoint is never overwritten unless ``resume=True``, which
    continues from it (a finished run just loads). ``stop_after=k`` stops after k epochs of this
    call, as an interruption would. Under ``torch.distributed`` (``torchrun``) the model is wrapped
    in DistributedDataParallel, ``batch_size`` is the global batch split over the processes, and
    only rank 0 writes and logs.
    """
    # -- check everything before any work
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {model!r}")
    _check_dataset("train_data", train_data)
    if test_data is not None:
        _check_dataset("test_data", test_data)
    _check_int("epochs", epochs, 1)
    _check_int("batch_size", batch_size, 1)
    if optimizer not in _OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {optimizer!r}")
    lr = _DEFAULT_LR[optimizer] * batch_size / 128 if lr is None else _check_float("lr", lr, 0.0)
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    _check_float("momentum", momentum, 0.0, 1.0)
    _check_bool("nesterov", nesterov)
    wd = _DEFAULT_WD[optimizer] if weight_decay is None else weight_decay
    _check_float("weight_decay", wd, 0.0)
    _check_float("label_smoothing", label_smoothing, 0.0, 1.0)
    if warmup_epochs is None:
        warmup_epochs = min(5.0, epochs / 10)
    _check_float("warmup_epochs", warmup_epochs, 0.0, float(epochs))
    _check_int("seed", seed, 0)
    for name, v in (("amp", amp), ("channels_last", channels_last)):
        if v is not None:
            _check_bool(name, v)
    if progressive is not None:
        if not isinstance(progressive, Progressive):
            raise TypeError(f"progressive must be a Progressive schedule or None: {progressive!r}")
        if epochs < progressive.stages:
            raise ValueError(
                f"epochs must be >= the progressive schedule's stages ({progressive.stages}), "
                f"got {epochs!r}"
            )
    _check_bool("resume", resume)
    if stop_after is not None:
        _check_int("stop_after", stop_after, 1)
    for name, v in (("limit_train", limit_train), ("limit_test", limit_test)):
        if v is not None:
            _check_int(name, v, 1)
    _check_bool("progress", progress)
    if log is not None and not callable(log):
        raise TypeError(f"log must be a callable (such as print) or None, got {log!r}")
    rank, world = _dist()
    if batch_size % world:
        raise ValueError(
            f"batch_size must be divisible by the number of processes ({world}), got {batch_size}"
        )
    device = _resolve_device(model, device)
    amp = device.type == "cuda" if amp is None else amp
    if channels_last is None:
        channels_last = device.type in _CHANNELS_LAST_DEVICES
    if amp and device.type != "cuda":
        raise ValueError(f"amp=True needs a CUDA device, got {device}")
    train_set = _limit(train_data, limit_train)
    if len(train_set) < batch_size:
        raise ValueError(
            f"batch_size ({batch_size}) must not exceed the training set ({len(train_set)} images)"
        )
    config = {
        "epochs": epochs,
        "batch_size": batch_size,
        "optimizer": optimizer,
        "lr": lr,
        "momentum": momentum,
        "nesterov": nesterov,
        "weight_decay": wd,
        "label_smoothing": label_smoothing,
        "warmup_epochs": warmup_epochs,
        "seed": seed,
        "amp": amp,
        "channels_last": channels_last,
        "progressive": asdict(progressive) if progressive else None,
        "limit_train": limit_train,
        "limit_test": limit_test,
        "train_images": len(train_set),
        "world_size": world,
    }
    config = json.loads(json.dumps(config))  # as a checkpoint gives it back: lists, not tuples
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir is not None else None
    ckpt = None
    if ckpt_path is not None and ckpt_path.exists():
        if not resume:
            raise FileExistsError(
                f"{str(ckpt_path)!r} already holds a checkpoint; pass resume=True (--resume) to "
                "continue it, or choose another checkpoint_dir (nothing was overwritten)"
            )
        ckpt = load_checkpoint(ckpt_path)
        _check_resumable(ckpt, _unwrap(model), config, ckpt_path)

    # -- build the optimiser, schedule and scaler
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    params = param_groups(model, wd)
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov)
    else:
        opt = torch.optim.AdamW(params, lr=lr)
    steps_per_epoch = len(train_set) // batch_size
    total = steps_per_epoch * epochs
    warmup = round(warmup_epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, total, warmup))
    use_scaler = amp and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    history: list[dict[str, Any]] = []
    start = 0
    if ckpt is None:  # dropout, stochastic depth and mixup draw from here: a function of seed
        torch.manual_seed(_derive_seed("fit", seed))
        random.seed(_derive_seed("fit", seed))
    else:
        _unwrap(model).load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        _set_rng_state(ckpt["rng"])
        history = [dict(r) for r in ckpt["history"]]
        start = ckpt["epoch"]
    net = model
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    step = _Stepper(net, model, opt, sched, scaler, criterion, device, amp, channels_last)
    say = log if (log is not None and rank == 0) else None
    if ckpt is not None and say and start < epochs:
        say(f"resumed from {ckpt_path} after epoch {start} of {epochs}")

    stop = epochs if stop_after is None else min(epochs, start + stop_after)
    for epoch in range(start, stop):
        setting = progressive.at(epoch, epochs) if progressive else None
        if setting:
            _set_dropout(model, setting["dropout"])
        mix_gen = torch.Generator().manual_seed(_derive_seed("mixup", seed, epoch))
        batches = _train_loader(train_set, batch_size, seed, epoch, workers)
        bar = _bar(batches, epoch, epochs, progress and rank == 0)
        sums, count, seconds = step.epoch(bar, setting, mix_gen, world)
        if world > 1:  # every rank keeps rank 0's batch-norm statistics
            for b in model.buffers():
                torch.distributed.broadcast(b, 0)
        loss_sum, correct, count = _all_sum([*sums, count], device)
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "lr": opt.param_groups[0]["lr"],
            "train loss": loss_sum / count,
            "train accuracy": correct / count,
        }
        if setting:
            row.update({k: setting[k] for k in ("image size", "dropout", "mixup")})
        if test_data is not None:
            scores = evaluate(
                model,
                test_data,
                device=device,
                limit=limit_test,
                workers=0,
                channels_last=channels_last,
            )
            row["test loss"], row["test accuracy"] = scores["loss"], scores["accuracy"]
        row["images/s"] = count / seconds
        row["seconds"] = seconds
        history.append(row)
        if ckpt_path is not None and rank == 0:
            atomic_save(step.state(config, epoch + 1, history), ckpt_path)
            atomic_save({"config": config, "history": history}, ckpt_path.with_name(HISTORY))
        if say:  # after the checkpoint: an interruption here loses nothing
            say(_log_line(row, epochs))
    if world > 1:
        digests: list[Any] = [None] * world
        torch.distributed.all_gather_object(digests, _weights_digest(_unwrap(model)))
        if len(set(digests)) != 1:
            raise RuntimeError(f"the processes ended with different weights: {digests}")
        if say:
            say(f"weights identical on all {world} processes (sha256 {digests[0]})")
    name = type(_unwrap(model)).__name__
    return Table(history, title=f"training history: {name}, {len(history)} of {epochs} epochs")


@dataclass
class _Stepper:
    """What one optimisation step needs, and one epoch of them."""

    net: nn.Module  # the model, or its DistributedDataParallel wrapper
    model: nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    device: torch.device
    amp: bool
    channels_last: bool

    def epoch(
        self, batches: Iterator, setting: Mapping[str, Any] | None, mix_gen, world: int
    ) -> tuple[list[float], int, float]:
        """Train on every batch: (loss sum, correct) over the images, their count, seconds.

        The sums stay on the device and are read once per epoch (and every 20 steps for a
        progress bar), so a GPU is not made to wait at every step.
        """
        self.net.train()
        sums = torch.zeros(2, dtype=torch.float64, device=self.device)
        count, t0 = 0, time.perf_counter()
        for x, y in batches:
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            if setting and setting["image size"] != x.shape[-1]:
                size = setting["image size"]
                x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            loss, logits = self._step(x, y, setting["mixup"] if setting else 0.0, mix_gen)
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

    def _step(self, x, y, alpha: float, mix_gen) -> tuple[torch.Tensor, torch.Tensor]:
        with _autocast(self.device, self.amp):
            if alpha > 0:
                xm, ya, yb, lam = _mixup(x, y, alpha, mix_gen)
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

    def state(self, config: Mapping[str, Any], epoch: int, history: list) -> dict[str, Any]:
        """Everything a resumed run needs, as plain containers and tensors (weights_only)."""
        model = _unwrap(self.model)
        return {
            "format": FORMAT,
            "model_class": type(model).__name__,
            "signature": _signature(model),
            "config": dict(config),
            "epoch": epoch,
            "model": model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": _rng_state(),
            "history": history,
        }


def _bar(batches: DataLoader, epoch: int, epochs: int, enabled: bool) -> Iterator:
    if not enabled:
        return iter(batches)
    from tqdm.auto import tqdm

    return tqdm(batches, desc=f"epoch {epoch + 1}/{epochs}", leave=False, unit="batch")


# ---------------------------------------------------------------------------------------------
# runs of zoo models on named data


def parse_data(spec: str) -> tuple[str, str | None]:
    """``"embedded"``, ``"cifar10:ROOT"`` or ``"folder:ROOT"`` -> (kind, root)."""
    if not isinstance(spec, str):
        raise TypeError(f"data must be a string such as 'embedded', got {spec!r}")
    kind, _, root = spec.partition(":")
    if kind == "embedded" and not root:
        return "embedded", None
    if kind in ("cifar10", "folder") and root:
        return kind, root
    raise ValueError(
        f"unknown data spec {spec!r}: use 'embedded' (the offline default), 'cifar10:ROOT' "
        "(CIFAR-10 under ROOT) or 'folder:ROOT' (ROOT/train and ROOT/val, ImageNet-style)"
    )


def _datasets(
    spec: str, seed: int, download: bool, size: int, augment: bool | None = None
) -> tuple[Dataset, Dataset, int]:
    kind, root = parse_data(spec)
    if augment is not None:
        _check_bool("augment", augment)
    if kind == "embedded":
        train = _data.embedded("train", seed=seed, augment=augment is not False)
        return train, _data.embedded("test", seed=seed), 10
    if augment is False:
        raise ValueError(
            f"augment=False is for the embedded data only; {kind} always trains with its "
            "standard augmentation"
        )
    if kind == "cifar10":
        train = _data.cifar10(root, train=True, download=download)
        return train, _data.cifar10(root, train=False, download=download), 10
    for split in ("train", "val"):
        if not os.path.isdir(os.path.join(root, split)):
            raise FileNotFoundError(
                f"folder data needs {os.path.join(root, split)!r}: ROOT must hold train/ and val/, "
                "each with one sub-folder per class (Imagenette unpacks to that layout)"
            )
    train = _data.image_folder(os.path.join(root, "train"), train=True, size=size)
    test = _data.image_folder(os.path.join(root, "val"), train=False, size=size)
    return train, test, len(train.classes)


# The code a trained network depends on: the networks, their layers, the data and the trainer.
TRAINING_CODE = ("train.py", "data.py", "layers.py", "ops.py", "models")


@functools.cache
def source_digest(parts: tuple[str, ...] = TRAINING_CODE) -> str:
    """A hash of the library's files (or folders) named in ``parts``, as first imported.

    Keys ``run``'s folders (a changed network, dataset or recipe never reuses an older run's
    weights; edits to the other modules, or during a session, do not split one run in two) and
    the results store's manifest (:mod:`shufflelib.results`).
    """
    if not isinstance(parts, tuple) or not parts or not set(parts) <= set(TRAINING_CODE):
        raise ValueError(
            f"parts must be a non-empty tuple drawn from {TRAINING_CODE}, got {parts!r}"
        )
    here = Path(__file__).parent
    h = hashlib.sha256()
    for p in sorted(here.rglob("*.py")):
        rel = p.relative_to(here).as_posix()
        if rel.split("/")[0] in parts:
            h.update(rel.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


@dataclass
class Run:
    """A trained zoo model: its name, the model (on the CPU, eval mode), history and folder."""

    name: str
    model: nn.Module
    history: Table
    checkpoint_dir: Path
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def test_accuracy(self) -> float:
        return self.history[-1]["test accuracy"]


def run(
    name: str,
    *,
    data: str = "embedded",
    epochs: int = 2,
    small_input: bool | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    runs_dir: str | os.PathLike = "runs",
    seed: int = 0,
    download: bool = False,
    image_size: int = 224,
    augment: bool | None = None,
    **fit_kwargs: Any,
) -> Run:
    """Train zoo model ``name`` on ``data``, or load the finished run; chapters 9, 10, the CLI.

    The run lives in ``runs_dir/<name>-<hash>``, the hash taken over every setting and the
    library's code: the same call again (chapter 10 after chapter 9) loads the finished run in
    a moment, an interrupted one resumes, and a different setting trains in a folder of its own.
    ``small_input`` defaults to True for the 32x32 datasets; ``augment=False`` trains the
    embedded data without its crop-and-flip augmentation. Other keyword arguments go to
    ``fit`` (``batch_size``, ``lr``, ``limit_train``, ``progressive``, ``progress``, ``log``...);
    ``device`` defaults to the best one here (CUDA, then MPS, then CPU). The model comes back on
    the CPU in eval mode.
    """
    from . import models

    if name not in models.names():
        raise ValueError(f"unknown model {name!r}; choose one of shufflelib.models.names()")
    kind, _ = parse_data(data)
    if small_input is None:
        small_input = kind in ("embedded", "cifar10")
    _check_bool("small_input", small_input)
    _check_int("epochs", epochs, 1)
    _check_int("seed", seed, 0)
    kw = dict(model_kwargs or {})
    for bad in ("checkpoint_dir", "resume", "seed", "epochs"):
        if bad in fit_kwargs:
            raise TypeError(f"run() chooses {bad} itself; got {bad}={fit_kwargs[bad]!r}")
    if fit_kwargs.get("device") is None:  # train on the best device here (CUDA in Colab)
        from .bench import pick_device

        fit_kwargs["device"] = pick_device()
    train_set, test_set, classes = _datasets(data, seed, download, image_size, augment)
    torch.manual_seed(_derive_seed("init", name, seed))
    model = models.build(name, num_classes=classes, small_input=small_input, **kw)
    key = {
        "name": name,
        "data": data,
        "epochs": epochs,
        "small_input": small_input,
        "model_kwargs": kw,
        "seed": seed,
        "image_size": image_size if kind == "folder" else None,
        "augment": augment,
        "fit": {
            k: (asdict(v) if isinstance(v, Progressive) else v)
            for k, v in fit_kwargs.items()
            if k not in ("progress", "log", "workers", "device", "stop_after")
        },
        "code": source_digest(),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=repr).encode()).hexdigest()
    folder = Path(runs_dir) / f"{name}-{digest[:10]}"
    history = fit(
        model,
        train_set,
        epochs,
        test_data=test_set,
        seed=seed,
        checkpoint_dir=folder,
        resume=True,
        **fit_kwargs,
    )
    model.to("cpu").eval()
    return Run(name, model, history, folder, key)


def summary(runs: Sequence[Run] | Mapping[str, Run], title: str = "") -> Table:
    """One row per run: parameters, final test accuracy and loss, throughput, time; chapter 9.

    ``runs`` is a list of runs (each row named after its model) or a mapping of a label to a run
    (to tell apart two runs of one model). ``images/s`` is the training throughput of the last
    epoch, ``train time (s)`` the sum over the epochs (evaluation excluded), both measured on the
    machine that trained.
    """
    from .cost import count_params

    labelled = runs.items() if isinstance(runs, Mapping) else [(None, r) for r in runs]
    rows = []
    for label, r in labelled:
        if not isinstance(r, Run):
            raise TypeError(f"runs must hold Run objects from train.run, got {type(r).__name__}")
        last = r.history[-1]
        rows.append(
            {
                "model": r.name if label is None else label,
                "params (M)": count_params(r.model) / 1e6,
                "epochs": last["epoch"],
                "test accuracy": last.get("test accuracy"),
                "test loss": last.get("test loss"),
                "images/s": last["images/s"],
                "train time (s)": sum(row["seconds"] for row in r.history),
            }
        )
    return Table(rows, title=title or "trained models")


# ---------------------------------------------------------------------------------------------
# the command line


def _parser() -> argparse.ArgumentParser:
    from . import models

    p = argparse.ArgumentParser(
        prog="python -m shufflelib.train",
        description=(
            "Train a shufflebook zoo model with the book's recipe (chapter 9). Runs under "
            "torchrun --nproc_per_node=K as DistributedDataParallel (gloo on CPU, nccl on CUDA)."
        ),
        epilog=(
            "examples:\n"
            "  python -m shufflelib.train --model shufflenet_v2_x0_5 --epochs 2\n"
            "  python -m shufflelib.train --model mobilenet_v2 --width-mult 0.5 "
            "--checkpoint-dir runs/mnv2 --resume\n"
            "  torchrun --nproc_per_node=4 -m shufflelib.train --model shufflenet_v2_x1_0 "
            "--data cifar10:data --epochs 30 --checkpoint-dir runs/snv2"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        required=True,
        metavar="NAME",
        help="a zoo model, one of: " + ", ".join(models.names()),
    )
    p.add_argument(
        "--data",
        default="embedded",
        metavar="SPEC",
        help="'embedded' (default: the offline dataset, no download), 'cifar10:ROOT' "
        "(CIFAR-10 in ROOT; add --download to fetch it) or 'folder:ROOT' (ROOT/train "
        "and ROOT/val with one sub-folder per class, e.g. Imagenette)",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="download CIFAR-10 into ROOT when it is missing (needs the network)",
    )
    p.add_argument("--epochs", type=int, default=2, help="epochs to train (default 2)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=128,
        help="global batch size, split over the processes (default 128)",
    )
    p.add_argument(
        "--optimizer",
        choices=_OPTIMIZERS,
        default="sgd",
        help="sgd (momentum 0.9, Nesterov; default) or adamw",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="peak learning rate (default 0.1 for SGD, 0.002 for AdamW at batch 128, "
        "scaled linearly with the batch size)",
    )
    p.add_argument(
        "--weight-decay",
        type=float,
        default=None,
        help="weight decay on weights, never on norms or biases (default 5e-4 SGD, 0.05 AdamW)",
    )
    p.add_argument("--label-smoothing", type=float, default=0.1, help="default 0.1")
    p.add_argument(
        "--warmup-epochs",
        type=float,
        default=None,
        help="linear warm-up before the cosine decay (default: a tenth of the run)",
    )
    p.add_argument("--seed", type=int, default=0, help="seeds data order, augmentation, init")
    p.add_argument(
        "--small-input",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="adapt the stem to 32x32 images (default: on for embedded and cifar10)",
    )
    p.add_argument(
        "--width-mult",
        type=float,
        default=None,
        help="width multiplier for mobilenet_v2 (e.g. 0.5)",
    )
    p.add_argument(
        "--image-size", type=int, default=224, help="training crop for folder data (default 224)"
    )
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the training augmentation (default: on; --no-augment for the embedded data only)",
    )
    p.add_argument(
        "--progressive",
        action="store_true",
        help="EfficientNetV2 progressive learning: image size 24->32, dropout "
        "0.1->0.3, mixup 0->0.1 over 4 stages (32x32 data)",
    )
    p.add_argument(
        "--checkpoint-dir",
        default=None,
        metavar="DIR",
        help="write DIR/last.pt and DIR/history.json atomically after every epoch",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --checkpoint-dir (a finished run only reloads)",
    )
    p.add_argument(
        "--limit-train",
        type=int,
        default=None,
        metavar="N",
        help="train on the first N training images only (quick runs)",
    )
    p.add_argument(
        "--limit-test",
        type=int,
        default=None,
        metavar="N",
        help="score on the first N test images only",
    )
    p.add_argument(
        "--device",
        choices=("cpu", "cuda", "mps"),
        default=None,
        help="default: CUDA, then MPS, then CPU (under torchrun: cuda:LOCAL_RANK)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="DataLoader workers per process (default: from the CPU count, at most 2)",
    )
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar, one line per epoch")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m shufflelib.train``: train, checkpoint, print ``test accuracy: X.XXXX`` last."""
    from . import models
    from .bench import machine_info, pick_device

    args = _parser().parse_args(argv)
    # every check before any work (and before a process group is started)
    if args.model not in models.names():
        raise SystemExit(f"error: unknown model {args.model!r}; choose one of {models.names()}")
    try:
        parse_data(args.data)
        _check_int("epochs", args.epochs, 1)
        _check_int("batch_size", args.batch_size, 1)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    if args.width_mult is not None and args.model != "mobilenet_v2":
        raise SystemExit(f"error: --width-mult applies to mobilenet_v2 only, not {args.model!r}")
    if args.resume and args.checkpoint_dir is None:
        raise SystemExit("error: --resume needs --checkpoint-dir (the run to continue)")

    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(args.device)
    if world > 1:
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        torch.distributed.init_process_group(backend)
    rank = int(os.environ.get("RANK", "0"))
    try:
        if rank == 0:
            print(str(machine_info(device)) + (f" | {world} processes" if world > 1 else ""))
        kind, root = parse_data(args.data)
        small = args.small_input
        if small is None:
            small = kind in ("embedded", "cifar10")
        train_set, test_set, classes = _datasets(
            args.data, args.seed, args.download, args.image_size, args.augment
        )
        kw = {} if args.width_mult is None else {"width_mult": args.width_mult}
        torch.manual_seed(_derive_seed("init", args.model, args.seed))
        model = models.build(args.model, num_classes=classes, small_input=small, **kw)
        history = fit(
            model,
            train_set,
            args.epochs,
            test_data=test_set,
            batch_size=args.batch_size,
            optimizer=args.optimizer,
            lr=args.lr,
            weight_decay=args.weight_decay,
            label_smoothing=args.label_smoothing,
            warmup_epochs=args.warmup_epochs,
            seed=args.seed,
            device=device,
            progressive=Progressive() if args.progressive else None,
            checkpoint_dir=args.checkpoint_dir,
            resume=args.resume,
            limit_train=args.limit_train,
            limit_test=args.limit_test,
            workers=args.workers,
            progress=not args.no_progress and sys.stderr.isatty(),
        )
        if rank == 0:
            print(f"test accuracy: {history[-1]['test accuracy']:.4f}")
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as e:
        if rank == 0:
            print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: the last finished epoch's checkpoint is whole
        if rank == 0:
            where = args.checkpoint_dir
            if where is not None and (Path(where) / CHECKPOINT).exists():
                message = (
                    f"interrupted; the checkpoint of the last finished epoch is in {where}: "
                    "run the same command with --resume to continue"
                )
            else:
                message = "interrupted before any checkpoint was written" + (
                    "" if where else " (--checkpoint-dir keeps one every epoch)"
                )
            print("\n" + message, file=sys.stderr)
        return 130
    finally:
        if world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
