"""The environment a chapter runs in: the seed, the device and the one-line machine description.

``shufflelib.setup`` (the first cell of every chapter) calls all three. Ground floor: imports only
:mod:`shufflelib.validate` and :mod:`shufflelib.tables` (for plural nouns).
"""

from __future__ import annotations

import os
import platform
import random
import subprocess
from dataclasses import dataclass
from functools import cache

import torch

from . import validate
from .tables import count

__all__ = [
    "setup",
    "seed_everything",
    "pick_device",
    "MachineInfo",
    "machine_info",
    "machine_part",
    "instruction_sets",
    "INSTRUCTION_SETS",
    "DEVICE_KINDS",
]

DEVICE_KINDS = ("cpu", "cuda", "mps")


def seed_everything(seed: int = 0) -> None:
    """Seed Python's, NumPy's (when installed) and torch's generators on every device."""
    validate.integer("seed", seed, minimum=0)
    random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA and MPS
    try:
        import numpy as np
    except ImportError:  # numpy is optional for shufflelib
        return
    np.random.seed(seed)  # noqa: NPY002 - the legacy global generator is the one to seed


def _available(kind: str) -> bool:
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        return mps is not None and mps.is_available()
    return True


def _named_device(device: str | torch.device) -> torch.device:
    allowed = "'cpu', 'cuda', 'cuda:N', 'mps' or a torch.device"
    if not isinstance(device, str | torch.device):
        raise TypeError(f"device must be {allowed}, got {validate.show(device)}")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device must be {allowed}, got {device!r}") from None
    validate.choice("device", dev.type, DEVICE_KINDS)
    if not _available(dev.type):
        raise ValueError(f"device {str(dev)!r} was asked for but is not available on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(
            f"device {str(dev)!r} was asked for but this machine has "
            f"{count(torch.cuda.device_count(), 'CUDA device')} (cuda:0 ...)"
        )
    return dev


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` when given (checked to exist), else CUDA, then Apple's MPS, then the CPU."""
    if device is not None:
        return _named_device(device)
    for kind in ("cuda", "mps"):
        if _available(kind):
            return torch.device(kind)
    return torch.device("cpu")


@cache
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if platform.system() == "Darwin":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=5,
            )
            if out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown CPU"


INSTRUCTION_SETS = (  # (name in the machine line, any of these /proc/cpuinfo flags)
    ("AVX2", ("avx2",)),
    ("AVX-512", ("avx512f",)),
    ("VNNI", ("avx512_vnni", "avx_vnni")),
    ("bf16", ("avx512_bf16", "amx_bf16")),
    ("AMX", ("amx_tile",)),
)


@cache
def instruction_sets() -> tuple[str, ...]:
    """The CPU's vector instruction sets that decide which inference paths can win; chapter 11.

    AVX2, AVX-512, VNNI (int8 dot products), bf16 (bfloat16 arithmetic) and AMX (matrix tiles),
    as the kernel reports them in /proc/cpuinfo's flags; empty where that file is not there
    (macOS, Windows) or lists none of them (ARM).
    """
    try:
        with open("/proc/cpuinfo") as f:
            line = next((ln for ln in f if ln.startswith(("flags", "Features"))), "")
    except OSError:
        return ()
    flags = set(line.partition(":")[2].split())
    return tuple(name for name, keys in INSTRUCTION_SETS if flags & set(keys))


@dataclass(frozen=True)
class MachineInfo:
    """What a measurement was taken on. ``str()`` gives the one line printed under every table."""

    cpu: str
    cores: int
    threads: int
    device: str
    torch: str
    python: str
    instruction_sets: tuple[str, ...] = ()

    def __str__(self) -> str:
        line = (
            f"{self.cpu} ({count(self.cores, 'core')}, {count(self.threads, 'thread')}) "
            f"| device {self.device}"
            f" | torch {self.torch} | Python {self.python}"
        )
        return f"{line} | {' '.join(self.instruction_sets)}" if self.instruction_sets else line


def machine_info(device: torch.device | str | None = None) -> MachineInfo:
    """CPU model, core and thread counts, device, torch and Python versions, and the CPU's
    instruction sets (:func:`instruction_sets`); chapter 1.

    ``device`` names the device measured on (default: :func:`pick_device`'s choice); it must exist.
    """
    dev = pick_device(device)
    name = dev.type
    if dev.type == "cuda":
        name = f"cuda ({torch.cuda.get_device_name(dev)})"
    return MachineInfo(
        cpu=_cpu_model(),
        cores=os.cpu_count() or 1,
        threads=torch.get_num_threads(),
        device=name,
        torch=torch.__version__,
        python=platform.python_version(),
        instruction_sets=instruction_sets(),
    )


def machine_part(note: str) -> str:
    """The machine line at the start of a timing table's note, without the sampling details
    :func:`shufflelib.bench.compare` appends ("| 6 interleaved rounds ..."); for titles."""
    parts = str(note).split(" | ")
    cut = next((i for i, p in enumerate(parts) if "interleaved round" in p), len(parts))
    return " | ".join(parts[:cut])


def setup(seed: int = 0, device: str | torch.device | None = None, quiet: bool = False):
    """The first cell of every chapter: seed everything, pick the device, describe the machine.

    Returns the device (CUDA, then MPS, then CPU unless ``device`` names one) and prints one line:
    CPU model, cores and torch threads, device, torch and Python versions.
    """
    validate.integer("seed", seed, minimum=0)
    validate.flag("quiet", quiet)
    dev = pick_device(device)
    seed_everything(seed)
    if not quiet:
        print(machine_info(dev))
    return dev
