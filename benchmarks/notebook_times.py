"""Execute every chapter top to bottom in a fresh kernel and print its wall-clock time.

These are the run times in the chapter map of ``book/intro.md``. Run with ``make execute``.
Nothing is written back: the notebooks stay without outputs.

    python benchmarks/notebook_times.py [book/01_group_convolution.ipynb ...]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from shufflelib.env import machine_info

ROOT = Path(__file__).resolve().parents[1]


def main(paths: list[str]) -> int:
    notebooks = [Path(p) for p in paths] or sorted((ROOT / "book").glob("*.ipynb"))
    print(machine_info("cpu"))
    total = 0.0
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(
            nb, timeout=1800, resources={"metadata": {"path": str(path.parent)}}
        ).execute()
        seconds = time.perf_counter() - start
        total += seconds
        print(f"{path.name:40s} {seconds:7.1f} s")
    print(f"{'total':40s} {total:7.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
