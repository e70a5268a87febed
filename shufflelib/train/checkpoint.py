"""Checkpoints that lose nothing and resume only the run they belong to; chapter 9.

Every epoch ends by writing ``last.pt`` atomically (:func:`shufflelib.files.atomic_save`): the
model, optimiser, scheduler, gradient scaler, every random generator's state, the epoch, the
history and the run's :class:`~shufflelib.train.config.TrainConfig`. ``history.json`` is written
from the checkpoint after it, and rewritten from it whenever the two disagree (a process killed
between the two writes), so they never disagree for long. Before a run does any work,
:func:`prepare` checks the folder (it can be created and written), removes the temporary files a
killed run left, and loads an existing checkpoint to check that it is this run's: a resumed run
must have the same settings, and every difference is named. Checkpoints load with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import validate
from ..files import atomic_save, remove_leftovers
from .config import TrainConfig

__all__ = [
    "CHECKPOINT",
    "HISTORY",
    "FORMAT",
    "rng_state",
    "set_rng_state",
    "signature",
    "load_checkpoint",
    "precheck",
    "prepare",
    "save",
    "sync_history",
]

CHECKPOINT = "last.pt"
HISTORY = "history.json"
FORMAT = "shufflebook-checkpoint-2"


def rng_state() -> dict[str, Any]:
    """Python's, torch's (CPU and CUDA) and NumPy's generator states, as plain containers."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    import numpy as np

    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    state["numpy"] = (kind, keys.tolist(), int(pos), int(has_gauss), float(cached))
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Put back the generator states :func:`rng_state` saved."""
    import numpy as np

    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))  # noqa: NPY002


def signature(model: nn.Module) -> list[list[Any]]:
    """The state_dict's names and shapes: what a checkpoint's weights must fit."""
    return [[k, list(v.shape)] for k, v in model.state_dict().items()]


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint written by ``fit`` (``last.pt`` or its folder) with weights_only=True.

    A missing file is a FileNotFoundError; a damaged or foreign file a ValueError naming it.
    """
    p = Path(validate.path("path", path))
    if p.is_dir():
        p = p / CHECKPOINT
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(p)!r}")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated zip, random bytes, a pickle with foreign objects
        raise ValueError(
            f"{str(p)!r} is damaged or is not a shufflebook checkpoint ({type(e).__name__}); "
            "move it away to start again, or choose another checkpoint_dir"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(
            f"{str(p)!r} is not a shufflebook checkpoint of this version (format {FORMAT!r}); "
            "move it away to start again, or choose another checkpoint_dir"
        )
    return ckpt


def _model_difference(ckpt: Mapping[str, Any], model: nn.Module) -> str | None:
    ours, theirs = signature(model), ckpt["signature"]
    if ckpt["model_class"] == type(model).__name__ and ours == theirs:
        return None
    if ckpt["model_class"] != type(model).__name__:
        return f"a {ckpt['model_class']} then, a {type(model).__name__} now"
    first = next(
        (f"{a[0]} {a[1]} then, {b[0]} {b[1]} now" for a, b in zip(theirs, ours) if a != b),
        f"{len(theirs)} tensors then, {len(ours)} now",
    )
    return f"its weights have other shapes ({first})"


def check_resumable(
    ckpt: Mapping[str, Any],
    model: nn.Module | None,
    config: TrainConfig,
    path: Path,
    unknown: tuple[str, ...] = (),
) -> None:
    """A ValueError naming every difference between the checkpoint's run and this one (but
    the settings in ``unknown``, not known yet; the model's weights when ``model`` is None)."""
    differences = config.differences(ckpt["config"])
    changed = [
        f"{k}: {a!r} then, {b!r} now" for k, (a, b) in differences.items() if k not in unknown
    ]
    model_change = _model_difference(ckpt, model) if model is not None else None
    if model_change:
        changed.insert(0, f"model: {model_change}")
    if changed:
        raise ValueError(
            f"cannot resume from {str(path)!r}: the run differs ({'; '.join(changed)}); resume "
            "with the same settings, or choose another checkpoint_dir"
        )


def _writable(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(
            f"checkpoint_dir {str(folder)!r} is a file, not a folder: choose a folder "
            "(fit writes last.pt and history.json inside it)"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-check.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise PermissionError(
            f"cannot write to checkpoint_dir {str(folder)!r} ({e.strerror or e}): choose a "
            "folder you can write to"
        ) from None


def precheck(
    folder: str | os.PathLike,
    resume: bool,
    config: TrainConfig,
    *,
    require: bool = False,
    unknown: tuple[str, ...] = ("train_images",),
) -> dict[str, Any] | None:
    """Check ``folder`` before any data is made; return the checkpoint to resume (or None).

    The folder must be creatable and writable; leftovers of a killed save are removed. A folder
    that holds a checkpoint is never overwritten: without ``resume`` that is a FileExistsError,
    with it the checkpoint must load and its settings match ``config`` (but ``unknown``). With
    ``require`` (the CLI's ``--resume``) a folder without a checkpoint is a FileNotFoundError.
    """
    folder = Path(validate.path("checkpoint_dir", folder))
    validate.flag("resume", resume)
    _writable(folder)
    for name in (CHECKPOINT, HISTORY):
        remove_leftovers(folder, name)
    path = folder / CHECKPOINT
    if not path.exists():
        if require:
            raise FileNotFoundError(
                f"nothing to resume: {str(folder)!r} holds no {CHECKPOINT}; run without "
                "--resume to start a new run there"
            )
        return None
    if not resume:
        raise FileExistsError(
            f"{str(path)!r} already holds a checkpoint; pass resume=True (--resume) to "
            "continue it, or choose another checkpoint_dir (nothing was overwritten)"
        )
    ckpt = load_checkpoint(path)
    check_resumable(ckpt, None, config, path, unknown)
    return ckpt


def prepare(
    folder: str | os.PathLike, resume: bool, config: TrainConfig, model: nn.Module
) -> dict[str, Any] | None:
    """:func:`precheck` with every setting known, and the model's weights checked too: the
    checkpoint ``fit`` resumes (or None). ``history.json`` is brought in line with it."""
    ckpt = precheck(folder, resume, config, unknown=())
    if ckpt is not None:
        check_resumable(ckpt, model, config, Path(folder) / CHECKPOINT)
        sync_history(Path(folder), ckpt)
    return ckpt


def save(folder: Path, state: Mapping[str, Any]) -> None:
    """Write ``last.pt`` (everything) atomically, then ``history.json`` from it."""
    atomic_save(dict(state), folder / CHECKPOINT)
    atomic_save({"config": state["config"], "history": state["history"]}, folder / HISTORY)


def sync_history(folder: Path, ckpt: Mapping[str, Any]) -> None:
    """Rewrite ``history.json`` from the checkpoint when it is missing or disagrees with it."""
    want = {"config": ckpt["config"], "history": ckpt["history"]}
    path = folder / HISTORY
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()) == want:
            return
    atomic_save(want, path)
