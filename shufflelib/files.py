"""Files written so that a reader never sees half of one: atomic saves, and their leftovers.

A checkpoint, a run's history, the results store's manifest and a build's roofline are written
to a temporary file beside the target, flushed to disk and renamed over it, so the file is
either the old one or the whole new one, even if the process is killed in the middle. A process
killed before its rename leaves its temporary file behind; :func:`remove_leftovers` clears them.
Ground floor: imports only :mod:`shufflelib.validate`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from . import validate

__all__ = ["atomic_save", "remove_leftovers", "shared", "TEMPORARY"]

TEMPORARY = ".tmp"  # the suffix of atomic_save's temporary files: ".<name>.<random>.tmp"


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` to ``path`` (JSON for ``.json``, else ``torch.save``) atomically.

    A temporary file beside ``path``, fsync, rename: the file is the old one or the whole new
    one, never a torn write. The temporary file is removed if anything fails.
    """
    path = Path(validate.path("path", path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY)
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


def shared(path: str | os.PathLike | None, key: str, compute: Callable[[], Any]) -> Any:
    """``compute()``, kept under ``key`` in the JSON file ``path`` for the processes after this one.

    How one build's chapters share a measurement (the roofline, the live scores of the stored
    networks): the first caller computes and writes the value (under a lock, so a chapter
    running side by side waits for it instead of computing it again; atomically, so a reader
    never sees half a file); a later caller with the same ``key`` reads it. The key names
    everything the value depends on (the machine line, the sizes, the weights). With no
    ``path`` (None or empty: an unset environment variable, a notebook run on its own in Colab),
    it simply computes. Written here because
    the standard library has no keyed file cache that processes share safely.
    """
    validate.text("key", key)
    validate.function("compute", compute)
    if path is None or path == "":
        return compute()
    import fcntl  # a build runs on Linux or macOS

    path = Path(validate.path("path", path))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        kept = json.loads(path.read_text()) if path.is_file() else {}
        if key not in kept:
            kept[key] = compute()
            atomic_save(kept, path)
        return kept[key]


def remove_leftovers(folder: str | os.PathLike, name: str) -> list[Path]:
    """Remove what a killed :func:`atomic_save` of ``folder/name`` left behind; return it."""
    folder = Path(validate.path("folder", folder))
    validate.text("name", name)
    if not folder.is_dir():
        return []
    stale = sorted(folder.glob(f".{name}.*{TEMPORARY}"))
    for p in stale:
        with contextlib.suppress(OSError):
            p.unlink()
    return stale
