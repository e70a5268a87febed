"""The Colab path: the setup cell installs shufflelib where it is missing, offline.

Every notebook's first code cell is the one standard setup cell (``test_book.py`` checks that,
for each notebook), so the cell is run once here, in a fresh IPython kernel whose Python cannot
import shufflelib: a new virtual environment that sees this environment's packages (torch,
ipykernel, ...) through symlinks, all except shufflelib. The cell's ``git+<repository>`` URL is
replaced by a wheel of shufflelib built here from the working tree, and pip may use no index
(``PIP_NO_INDEX=1``), so the install must succeed from that wheel alone. The test then checks:

- shufflelib was imported from the new environment (the wheel), not from the working tree;
- pip added exactly shufflelib and nothing else: the wheel's dependencies were all already
  satisfied, so the cell needs no ``--no-deps`` and never reinstalls torch (any other package to
  install would have failed without an index, and every other entry is left untouched);
- ``device`` is a ``torch.device``; and the cell mounts no drive.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from test_book import REPO_URL, SETUP_CELL

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(sysconfig.get_paths()["purelib"])

PROBE_BEFORE = """\
import importlib.util, sys
assert importlib.util.find_spec("shufflelib") is None, "shufflelib must not be importable yet"
print(sys.executable)"""

PROBE_AFTER = """\
import json, sys
import torch
print(json.dumps({
    "shufflelib": shufflelib.__file__,
    "torch": torch.__file__,
    "device": str(device),
    "is_device": isinstance(device, torch.device),
    "prefix": sys.prefix,
}))"""


def _is_shufflelib(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith(("shufflelib", "__editable__.shufflelib", "__editable___shufflelib"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """One wheel of shufflelib from the working tree, built offline in a scratch copy."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "shufflelib", src / "shufflelib", ignore=shutil.ignore_patterns("__pycache__")
    )
    out = tmp_path_factory.mktemp("wheels")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--quiet", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("shufflelib-*.whl")
    return built


def _environment(where: Path) -> tuple[Path, set[str]]:
    """A venv whose site-packages links to every package of this one except shufflelib."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120
    )
    python = where / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    for entry in SITE.iterdir():
        if not _is_shufflelib(entry.name) and not (site / entry.name).exists():
            (site / entry.name).symlink_to(entry)
    return python, site


def _kernelspec(where: Path, python: Path) -> Path:
    spec = where / "share" / "jupyter" / "kernels" / "setup-cell-test"
    spec.mkdir(parents=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "setup cell test", "language": "python"})
    )
    return where / "share" / "jupyter"


def test_setup_cell_installs_shufflelib_offline_from_a_wheel(wheel, tmp_path, monkeypatch):
    setup = SETUP_CELL
    assert "mount" not in setup and "google.colab" not in setup, "the setup cell mounts nothing"
    git = f"git+{REPO_URL}"
    assert setup.count(git) == 1
    cell = setup.replace(git, wheel.as_uri())

    python, site = _environment(tmp_path / "env")
    before = {p.name: os.readlink(p) for p in site.iterdir() if p.is_symlink()}
    monkeypatch.setenv("JUPYTER_PATH", str(_kernelspec(tmp_path, python)))
    for name, value in {
        "PIP_NO_INDEX": "1",  # no index: an install that needs more than the wheel fails
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_CACHE_DIR": "1",
        "PYTHONNOUSERSITE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    work = tmp_path / "work"  # not the repository: its shufflelib/ folder must not be on the path
    work.mkdir()
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(s) for s in (PROBE_BEFORE, cell, PROBE_AFTER)]
    )
    client = NotebookClient(
        nb,
        kernel_name="setup-cell-test",
        timeout=300,
        startup_timeout=120,
        resources={"metadata": {"path": str(work)}},
    )
    client.execute()

    stdout = [
        "".join(o.get("text", "") for o in c.outputs if o.get("name") == "stdout") for c in nb.cells
    ]
    assert Path(stdout[0].strip()).parent == python.parent, stdout[0]
    facts = json.loads(stdout[2].strip().splitlines()[-1])
    assert Path(facts["shufflelib"]).is_relative_to(site), f"shufflelib came from {facts}"
    assert Path(facts["torch"]).resolve().is_relative_to(SITE.resolve()), "torch is this env's"
    assert facts["is_device"] and facts["device"] in ("cpu", "cuda", "mps", "cuda:0"), facts

    after = {p.name for p in site.iterdir()}
    added = sorted(after - set(before))
    assert [a for a in added if a != "__pycache__"] == [
        "shufflelib",
        f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info",
    ], f"pip installed more than shufflelib: {added}"
    still = {p.name: os.readlink(p) for p in site.iterdir() if p.is_symlink()}
    assert still == before, "pip removed or replaced an installed package (torch?)"
