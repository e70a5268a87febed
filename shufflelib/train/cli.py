"""``python -m shufflelib.train``: the trainer on the command line; chapter 9.

Every check runs before any work (the arguments, the device, the data spec, the checkpoint folder
and the checkpoint in it), through the same path as :func:`shufflelib.train.run`
(:func:`.runs.train_named`). A mistake ends in one line, ``error: ...``, naming the value and what
to do. Exit codes: 0 done; 1 the data could not be had (offline, say); 2 a usage mistake (an
argument, a device, a folder, a checkpoint of another run); 130 interrupted (Ctrl-C): the
checkpoint of the last finished epoch is whole, and the same command with ``--resume`` goes on.
``--processes K`` runs DistributedDataParallel on K processes (gloo on CPU, nccl on CUDA), started
by torchrun's launcher (``torch.distributed.run``) inside this process, so that Ctrl-C ends with the
same one line and 130 as one process does; ``torchrun --nproc_per_node=K -m shufflelib.train`` works
too, but on Ctrl-C torchrun's own launcher adds its traceback. Only rank 0 prints.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .. import models, net
from ..env import machine_info, pick_device
from .checkpoint import CHECKPOINT
from .config import OPTIMIZERS
from .recipe import Progressive
from .runs import train_named

__all__ = ["main", "USAGE", "UNAVAILABLE", "INTERRUPTED"]

USAGE, UNAVAILABLE, INTERRUPTED = 2, 1, 130
# A user's mistake: a value, a device, a folder or a checkpoint that does not fit.
_MISTAKES = (
    TypeError,
    ValueError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    PermissionError,
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m shufflelib.train",
        description=(
            "Train a shufflebook zoo model with the book's recipe (chapter 9). With --processes K "
            "(or under torchrun --nproc_per_node=K) it runs DistributedDataParallel (gloo on CPU, "
            "nccl on CUDA)."
        ),
        epilog=(
            "examples:\n"
            "  python -m shufflelib.train --model shufflenet_v2_x0_5 --epochs 2\n"
            "  python -m shufflelib.train --model mobilenet_v2 --width-mult 0.5 "
            "--checkpoint-dir runs/mnv2 --resume\n"
            "  python -m shufflelib.train --processes 4 --model shufflenet_v2_x1_0 "
            "--data cifar10:data --epochs 30 --checkpoint-dir runs/snv2"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _what_to_train(p)
    _the_recipe(p)
    _how_to_run(p)
    return p


def _what_to_train(p: argparse.ArgumentParser) -> None:
    """The model and the data."""
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
        "--image-size",
        type=int,
        default=None,
        help="training crop for folder data (default 224; folder data only)",
    )
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the training augmentation (default: on; --no-augment for the embedded data only)",
    )


def _the_recipe(p: argparse.ArgumentParser) -> None:
    """The recipe (the defaults are fit's)."""
    p.add_argument("--epochs", type=int, default=2, help="epochs to train (default 2)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=128,
        help="global batch size, split over the processes (default 128)",
    )
    p.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
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
        "--progressive",
        action="store_true",
        help="EfficientNetV2 progressive learning: image size 24->32, dropout "
        "0.1->0.3, mixup 0->0.1 over 4 stages (32x32 data)",
    )


def _how_to_run(p: argparse.ArgumentParser) -> None:
    """Checkpoints, quick runs and the machine."""
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
        default=None,
        help="cpu, cuda, cuda:N or mps (default: CUDA, then MPS, then CPU; under torchrun: "
        "cuda:LOCAL_RANK)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="DataLoader workers per process (default: from the CPU count, at most 2)",
    )
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="K",
        help="train on K processes with DistributedDataParallel, started by torchrun's launcher",
    )
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar, one line per epoch")


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """``train_named``'s arguments from the command line's."""
    if args.width_mult is not None and args.model != "mobilenet_v2":
        raise ValueError(f"--width-mult applies to mobilenet_v2 only, not {args.model!r}")
    if args.resume and args.checkpoint_dir is None:
        raise ValueError("--resume needs --checkpoint-dir (the run to continue)")
    return {
        "data": args.data,
        "epochs": args.epochs,
        "small_input": args.small_input,
        "model_kwargs": {} if args.width_mult is None else {"width_mult": args.width_mult},
        "seed": args.seed,
        "download": args.download,
        "image_size": args.image_size,
        "augment": args.augment,
        "checkpoint_dir": args.checkpoint_dir,
        "resume": args.resume,
        "require_checkpoint": args.resume,
        "batch_size": args.batch_size,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "label_smoothing": args.label_smoothing,
        "warmup_epochs": args.warmup_epochs,
        "progressive": Progressive() if args.progressive else None,
        "limit_train": args.limit_train,
        "limit_test": args.limit_test,
        "workers": args.workers,
        "progress": not args.no_progress and sys.stderr.isatty(),
    }


def _device(name: str | None) -> tuple[torch.device, int]:
    """The device and the number of processes; under torchrun, the process group is started."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(name)
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, world


def _interrupted(where: str | None) -> str:
    if where is not None and (Path(where) / CHECKPOINT).exists():
        return (
            f"interrupted; the checkpoint of the last finished epoch is in {where}: run the same "
            "command with --resume to continue"
        )
    return "interrupted before any checkpoint was written" + (
        "" if where else " (--checkpoint-dir keeps one every epoch)"
    )


def _to_launch(processes: int) -> int:
    """How many workers this process should launch: 0 when it is one (or the only one)."""
    world = os.environ.get("WORLD_SIZE")
    if processes < 1 or (world is not None and processes not in (1, int(world))):
        allowed = "at least 1" if world is None else f"1 or torchrun's {world}"
        raise ValueError(f"--processes must be {allowed}, got {processes}")
    return processes if processes > 1 and world is None else 0


def _launch(processes: int, argv: Sequence[str]) -> int:
    """Run this command on ``processes`` workers with torchrun's launcher, in this process: the
    launcher's own logging and its traceback on Ctrl-C are silenced (each worker prints its own
    error, rank 0 its one line); the exit code is the workers'."""
    import logging

    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    launcher = ["--standalone", f"--nproc-per-node={processes}", "--module", "shufflelib.train"]
    try:
        torchrun.run(torchrun.parse_args([*launcher, *argv]))
    except SignalException:  # Ctrl-C: the workers were interrupted and rank 0 said so
        return INTERRUPTED
    except ChildFailedError as e:
        return max(f.exitcode for f in e.failures.values()) if e.failures else 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Train, checkpoint, print ``test accuracy: X.XXXX`` last; return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)  # argparse's own mistakes exit with 2 too
    try:
        launch = _to_launch(args.processes)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return USAGE
    if launch:
        return _launch(launch, argv)
    rank = int(os.environ.get("RANK", "0"))
    say = print if rank == 0 else (lambda *a, **k: None)
    try:
        settings = _settings(args)
        device, world = _device(args.device)
        say(str(machine_info(device)) + (f" | {world} processes" if world > 1 else ""))
        _, history, _ = train_named(args.model, device=device, **settings)
        say(f"test accuracy: {history[-1]['test accuracy']:.4f}")
        return 0
    except _MISTAKES as e:
        say(f"error: {e}", file=sys.stderr)
        return USAGE
    except net.Unavailable as e:  # offline, say: the message says how to get the data
        say(f"error: {e}", file=sys.stderr)
        return UNAVAILABLE
    except KeyboardInterrupt:  # Ctrl-C: the last finished epoch's checkpoint is whole
        say("\n" + _interrupted(args.checkpoint_dir), file=sys.stderr)
        return INTERRUPTED
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
