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
from pathlib import Path
from typing import Any

import torch

from . import validate

__all__ = ["atomic_save", "remove_leftovers", "TEMPORARY"]

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
