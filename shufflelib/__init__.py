"""shufflelib: the code behind shufflebook, runnable tutorials on efficient CNN design.

Every notebook of the book starts with ``device = shufflelib.setup(seed=0)``.
"""

from __future__ import annotations

import random

import torch

from .bench import machine_info, measure, pick_device
from .cost import count_params, madds
from .ops import channel_shuffle, channel_split, group_connectivity, shuffle_split
from .tables import Table

__version__ = "0.1.0"

__all__ = [
    "setup",
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
]


def seed_everything(seed: int = 0) -> None:
    """Seed Python's, NumPy's (when installed) and torch's generators on every device."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA and MPS
    try:
        import numpy as np
    except ImportError:  # numpy is optional for shufflelib
        return
    np.random.seed(seed)  # noqa: NPY002 - the legacy global generator is the one to seed


def setup(seed: int = 0, device: str | None = None, quiet: bool = False) -> torch.device:
    """The first cell of every chapter: seed everything, pick the device, describe the machine.

    Returns the device (CUDA, then MPS, then CPU unless ``device`` names one) and prints one line:
    CPU model, cores and torch threads, device, torch and Python versions.
    """
    seed_everything(seed)
    dev = pick_device(device)
    if not quiet:
        print(machine_info(dev))
    return dev
