import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import shufflelib
from shufflelib.tables import count

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_accelerator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_setup_returns_cpu_quietly(no_accelerator, capsys):
    assert shufflelib.setup(seed=0, quiet=True) == torch.device("cpu")
    assert capsys.readouterr().out == ""


def test_setup_named_device(capsys):
    assert shufflelib.setup(seed=0, device="cpu", quiet=True) == torch.device("cpu")
    assert capsys.readouterr().out == ""


def test_setup_prints_one_line(no_accelerator, capsys):
    shufflelib.setup(seed=0)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 1
    assert "torch" in lines[0]
    assert torch.__version__ in lines[0]
    assert shufflelib.env.machine_info("cpu").cpu in lines[0]  # the CPU model
    assert count(torch.get_num_threads(), "thread") in lines[0]  # "1 thread", "2 threads"
    assert "device cpu" in lines[0]


def draws():
    return torch.randn(5), random.random(), torch.rand(3)


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_setup_seeds_everything(seed):
    shufflelib.setup(seed=seed, device="cpu", quiet=True)
    first = draws()
    shufflelib.setup(seed=seed, device="cpu", quiet=True)
    second = draws()
    assert torch.equal(first[0], second[0])
    assert first[1] == second[1]
    assert torch.equal(first[2], second[2])


def test_seed_everything_matches_reference_generators():
    shufflelib.seed_everything(7)
    got_torch, got_random = torch.randn(4), random.random()
    assert torch.equal(got_torch, torch.randn(4, generator=torch.Generator().manual_seed(7)))
    assert got_random == random.Random(7).random()


def test_seed_everything_seeds_numpy():
    np = pytest.importorskip("numpy")
    shufflelib.seed_everything(3)
    first = np.random.rand(3)
    shufflelib.seed_everything(3)
    assert (np.random.rand(3) == first).all()


def test_different_seeds_give_different_draws():
    shufflelib.seed_everything(0)
    a = torch.randn(8)
    shufflelib.seed_everything(1)
    assert not torch.equal(a, torch.randn(8))


@pytest.mark.parametrize(
    ("seed", "error"),
    [(-1, ValueError), (1.5, TypeError), (True, TypeError), ("0", TypeError), (None, TypeError)],
)
def test_bad_seed(seed, error):
    with pytest.raises(error, match=f"seed must be an int >= 0, got {seed!r}"):
        shufflelib.setup(seed=seed, quiet=True)
    with pytest.raises(error, match=f"seed must be an int >= 0, got {seed!r}"):
        shufflelib.seed_everything(seed)


def test_public_names():
    for name in shufflelib.__all__:
        assert hasattr(shufflelib, name), name


def declared_version(pyproject: Path) -> str:
    """The version pyproject.toml declares in its [project] table."""
    text = pyproject.read_text(encoding="utf-8")
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib.loads(text)["project"]["version"]
    project = re.search(r"^\[project\]$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    return re.search(r'^version\s*=\s*"([^"]+)"', project.group(1), re.M).group(1)


def test_version_is_the_one_pyproject_declares():
    version = declared_version(REPO / "pyproject.toml")
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", version), version
    assert shufflelib.__version__ == version


IMPORT_CHECK = """
import random, sys, torch
random.seed(1)
torch.manual_seed(1)
py_state, torch_state, threads = random.getstate(), torch.get_rng_state(), torch.get_num_threads()
import shufflelib
assert "matplotlib" not in sys.modules, "matplotlib imported"
assert random.getstate() == py_state, "random state changed"
assert torch.equal(torch.get_rng_state(), torch_state), "torch RNG state changed"
assert torch.get_num_threads() == threads, "thread count changed"
"""


def test_import_has_no_side_effects():
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_CHECK],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == ""


def test_plain_import_prints_nothing():
    result = subprocess.run(
        [sys.executable, "-c", "import shufflelib"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0
    assert result.stdout == ""
    assert result.stderr == ""
