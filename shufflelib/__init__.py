"""shufflelib: the code behind shufflebook, runnable tutorials on efficient CNN design.

Every notebook of the book starts with ``device = shufflelib.setup(seed=0)``. After
``import shufflelib`` every module is reachable as an attribute (``shufflelib.models``,
``shufflelib.bench``, ...; imported on first use), and the handful of names the chapters use
most are here: :func:`setup`, :func:`build`, the channel operations, the cost counters,
:func:`measure` and :class:`Table`. CONTRIBUTING.md draws the layers these modules form.
"""

from __future__ import annotations

import importlib
from typing import Any

from .bench import measure
from .cost import count_params, madds
from .env import machine_info, pick_device, seed_everything, setup
from .models import build, names
from .ops import channel_shuffle, channel_split, group_connectivity, shuffle_split
from .tables import Table

__version__ = "0.1.0"

# Every module of the package, importable as an attribute of shufflelib (PEP 562).
MODULES = (
    "validate",
    "env",
    "files",
    "net",
    "tables",
    "stats",
    "reference",
    "check",
    "data",
    "prefetch",
    "ops",
    "layers",
    "models",
    "cost",
    "bench",
    "profiler",
    "deploy",
    "guidelines",
    "sweeps",
    "ladder",
    "metrics",
    "achieved",
    "train",
    "results",
    "plot",
)

__all__ = [
    "setup",
    "build",
    "names",
    "seed_everything",
    "pick_device",
    "machine_info",
    "measure",
    "count_params",
    "madds",
    "channel_shuffle",
    "channel_split",
    "shuffle_split",
    "group_connectivity",
    "Table",
    *MODULES,
]


def __getattr__(name: str) -> Any:
    if name in MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'shufflelib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(MODULES))
