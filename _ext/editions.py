"""The book's two editions from one _config.yml: the teacher's and the student's.

The teacher's edition (``make book``, the published site) shows every exercise with its solution
in a dropdown. The student edition (``make book-student``) is built from the same sources with
sphinx-exercise's ``hide_solutions: True``, so the solutions are not in its HTML at all::

    python _ext/editions.py student _build/student/_config.yml   # what `make book-student` runs

Jupyter Book resolves ``sphinx.local_extensions`` relative to the config file, and keeps its
execution cache beside the output, so a config written elsewhere gets absolute paths for both:
the student build reuses the notebooks executed for ``make book`` (or by nbval in ``make test``).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
EDITIONS = ("teacher", "student")
EXECUTE = ("cache", "off", "force", "auto")


def config(edition: str, root: Path = ROOT, execute: str | None = None) -> dict:
    """The Jupyter Book config of ``edition``, usable from any folder (absolute paths)."""
    if edition not in EDITIONS:
        raise ValueError(f"edition must be one of {EDITIONS}, got {edition!r}")
    if execute is not None and execute not in EXECUTE:
        raise ValueError(f"execute must be one of {EXECUTE} or None, got {execute!r}")
    root = Path(root).resolve()
    cfg = copy.deepcopy(yaml.safe_load((root / "_config.yml").read_text()))
    sphinx = cfg.setdefault("sphinx", {})
    sphinx["local_extensions"] = {
        name: str((root / path).resolve()) + "/"
        for name, path in sphinx.get("local_extensions", {}).items()
    }
    sphinx.setdefault("config", {})["hide_solutions"] = edition == "student"
    cfg.setdefault("execute", {})["cache"] = str(root / "_build" / ".jupyter_cache")
    if execute is not None:
        cfg["execute"]["execute_notebooks"] = execute
    if execute == "off":  # no outputs, so no figure for the front page to paste (book/intro.md)
        quiet = sphinx["config"].setdefault("suppress_warnings", [])
        quiet += ["mystnb.glue", "mystnb.glue_ref"]
    if edition == "student":
        cfg["title"] = f"{cfg['title']} (student edition)"
    return cfg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("edition", choices=EDITIONS)
    parser.add_argument("out", type=Path, help="where to write the config file")
    parser.add_argument("--execute", choices=EXECUTE, help="override execute_notebooks")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(yaml.safe_dump(config(args.edition, ROOT, args.execute), sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
