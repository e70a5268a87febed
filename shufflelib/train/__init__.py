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

The package, bottom up: :mod:`.recipe` (the optimiser, schedule, loss, mixup, progressive
learning), :mod:`.config` (:class:`TrainConfig`, the settings checked and frozen),
:mod:`.distributed` (DDP helpers), :mod:`.checkpoint` (atomic checkpoints, resume checks),
:mod:`.loop` (``fit``, ``evaluate``), :mod:`.runs` (zoo models on named data, ``run``) and
:mod:`.cli` (the command line).
"""

from __future__ import annotations

from .checkpoint import CHECKPOINT, FORMAT, HISTORY, load_checkpoint
from .cli import main
from .config import TrainConfig
from .loop import evaluate, fit
from .recipe import Progressive, lr_at, mixup, param_groups
from .runs import (
    BOOK_MODELS,
    TRAINING_CODE,
    Run,
    book_settings,
    datasets,
    parse_data,
    run,
    source_digest,
    train_named,
)

__all__ = [
    "BOOK_MODELS",
    "book_settings",
    "TrainConfig",
    "Progressive",
    "Run",
    "fit",
    "evaluate",
    "load_checkpoint",
    "param_groups",
    "lr_at",
    "mixup",
    "parse_data",
    "datasets",
    "train_named",
    "run",
    "source_digest",
    "TRAINING_CODE",
    "CHECKPOINT",
    "HISTORY",
    "FORMAT",
    "main",
]
