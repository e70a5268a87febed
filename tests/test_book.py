"""The book as a whole: notebooks committed clean, set up alike, listed, building without warnings.

nbval executes the notebooks themselves (`pytest book --nbval-lax`, run by `make test`); the build
here does not execute them again (execute_notebooks: off), so it checks only the Sphinx side.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPO_URL = CONFIG["repository"]["url"]

# The standard first code cell of every chapter (CONTRIBUTING.md shows it).
SETUP_CELL = f"""\
# Setup (the first cell of every chapter): install shufflelib if missing (Colab),
# seed everything, pick the device (CUDA > MPS > CPU), describe this machine.
try:
    import shufflelib
except ImportError:
    %pip install --quiet "shufflelib @ git+{REPO_URL}"
    import shufflelib

device = shufflelib.setup(seed=0)"""


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2, f"expected the chapters in {BOOK}, found {NOTEBOOKS}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_committed_without_outputs(path: Path):
    dirty = [
        i
        for i, c in enumerate(_cells(path))
        if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))
    ]
    assert not dirty, f"{path.name}: code cells {dirty} carry outputs; the build executes notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_the_standard_setup(path: Path):
    code = [c for c in _cells(path) if c["cell_type"] == "code"]
    assert code, f"{path.name} has no code cell"
    assert _source(code[0]) == SETUP_CELL, (
        f"{path.name}: the first code cell must be the standard setup cell (see CONTRIBUTING.md), "
        f"installing from the repository in _config.yml ({REPO_URL})"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_starts_with_a_title_and_ends_with_exercises(path: Path):
    cells = _cells(path)
    assert cells[0]["cell_type"] == "markdown" and _source(cells[0]).startswith("# ")
    text = "\n".join(_source(c) for c in cells if c["cell_type"] == "markdown")
    assert "## Summary" in text, f"{path.name}: no summary section"
    exercises = re.findall(r"```\{exercise\}", text)
    solutions = re.findall(r"```\{solution\} (\S+)", text)
    assert len(exercises) >= 3, f"{path.name}: {len(exercises)} exercises, want at least 3"
    assert len(solutions) == len(exercises), f"{path.name}: every exercise needs a solution"


def test_toc_lists_every_notebook_and_only_existing_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        files += [ch["file"] for ch in part["chapters"]]
    for f in files:
        assert any((ROOT / f"{f}{ext}").exists() for ext in (".md", ".ipynb")), f"{f} not found"
    listed = {f for f in files if (ROOT / f"{f}.ipynb").exists()}
    on_disk = {str(p.relative_to(ROOT).with_suffix("")) for p in NOTEBOOKS}
    assert on_disk == listed, f"notebooks not in _toc.yml: {sorted(on_disk - listed)}"


def test_config_has_what_readers_need():
    assert REPO_URL.startswith("https://github.com/")
    assert CONFIG["execute"]["execute_notebooks"] == "cache"
    assert CONFIG["execute"]["allow_errors"] is False
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert CONFIG["launch_buttons"]["binderhub_url"]
    extensions = CONFIG["sphinx"]["extra_extensions"]
    assert "sphinx_exercise" in extensions and "sphinx_togglebutton" in extensions
    bib = (ROOT / CONFIG["bibtex_bibfiles"][0]).read_text()
    for key in ("zhang2018shufflenet", "ma2018shufflenetv2", "sandler2018mobilenetv2"):
        assert f"{{{key}," in bib
    assert "tan2021efficientnetv2" in bib


def test_every_citation_is_in_the_bibliography():
    bib = (ROOT / CONFIG["bibtex_bibfiles"][0]).read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    sources = [p.read_text() for p in BOOK.glob("*.md")] + [
        _source(c) for p in NOTEBOOKS for c in _cells(p) if c["cell_type"] == "markdown"
    ]
    cited = {
        k.strip()
        for s in sources
        for m in re.findall(r"\{cite\}`([^`]+)`", s)
        for k in m.split(",")
    }
    assert cited, "the book cites nothing"
    assert cited <= keys, f"cited but missing from references.bib: {sorted(cited - keys)}"


def test_book_builds_without_warnings(tmp_path: Path):
    """A full Sphinx build with -W, notebooks not executed (nbval runs them in this same suite)."""
    jb = Path(sys.executable).with_name("jupyter-book")
    if not jb.exists():
        jb = shutil.which("jupyter-book")
    assert jb, "jupyter-book is not installed; run `make test`, which installs requirements.txt"
    config = dict(CONFIG)
    config["execute"] = dict(CONFIG["execute"], execute_notebooks="off")
    config_path = tmp_path / "_config.yml"
    config_path.write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    result = subprocess.run(
        [str(jb), "build", str(ROOT), "--config", str(config_path), "--path-output", str(out)]
        + ["-W", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"the book build failed or warned:\n{log[-6000:]}"
    html = out / "_build" / "html"
    for page in ["book/intro.html"] + [f"book/{p.stem}.html" for p in NOTEBOOKS]:
        assert (html / page).exists(), f"{page} was not built"
    chapter = (html / "book" / f"{NOTEBOOKS[0].stem}.html").read_text()
    colab = (
        f"https://colab.research.google.com/github/{REPO_URL.removeprefix('https://github.com/')}"
    )
    assert colab in chapter, "no Colab launch link to this repository on a chapter page"
    assert "download-notebook-button" in chapter or ".ipynb" in chapter
