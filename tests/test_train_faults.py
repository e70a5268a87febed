"""The trainer under faults and mistakes: checks before work, one clear line per failure, resume
that refuses any change, and kills at random moments that never cost a bit of the result."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from shufflelib import train
from shufflelib.train import checkpoint, runs

ROOT = Path(__file__).resolve().parents[1]
T = ["--model", "shufflenet_v2_x0_5", "--limit-train", "64", "--limit-test", "32"]
T += ["--batch-size", "32", "--workers", "0", "--no-progress"]


def no_data_at_all(*a, **k):
    raise AssertionError("the data was made before the failure was reported")


@pytest.fixture
def no_data(monkeypatch):
    """Making the data is work: a failure that could be known before it must come before it."""
    monkeypatch.setattr(runs, "datasets", no_data_at_all)


def one_line_error(capsys, *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for w in words:
        assert w in err, err
    return err


def trained(tmp_path: Path, *extra: str, epochs: int = 2) -> Path:
    folder = tmp_path / "run"
    assert train.main([*T, "--epochs", str(epochs), "--checkpoint-dir", str(folder), *extra]) == 0
    return folder


def test_resume_refuses_every_changed_setting_and_names_each(tmp_path, capsys, monkeypatch):
    folder = trained(tmp_path)
    capsys.readouterr()
    monkeypatch.setattr(runs, "datasets", no_data_at_all)
    again = [*T, "--epochs", "2", "--checkpoint-dir", str(folder), "--resume"]
    assert train.main([*again, "--no-augment", "--no-small-input", "--lr", "0.01"]) == 2
    one_line_error(
        capsys,
        "augment: True then, False now",
        "small_input: True then, False now",
        "lr: 0.025 then, 0.01 now",
    )
    other = [a if a != "shufflenet_v2_x0_5" else "shufflenet_v2_x1_0" for a in again]
    assert train.main(other) == 2
    one_line_error(capsys, "model: 'shufflenet_v2_x0_5' then, 'shufflenet_v2_x1_0' now")


def test_resume_needs_a_checkpoint_to_resume(tmp_path, capsys, no_data):
    for folder in (tmp_path / "missing", tmp_path):
        assert train.main([*T, "--checkpoint-dir", str(folder), "--resume"]) == 2
        one_line_error(capsys, "nothing to resume", str(folder), "without --resume")


def test_a_checkpoint_folder_that_is_a_file_is_refused_at_once(tmp_path, capsys, no_data):
    file = tmp_path / "last.pt"
    file.write_bytes(b"not a folder")
    for extra in ([], ["--resume"]):
        assert train.main([*T, "--checkpoint-dir", str(file), *extra]) == 2
        one_line_error(capsys, f"checkpoint_dir {str(file)!r} is a file, not a folder")


def test_a_folder_that_cannot_be_written_is_refused_at_once(tmp_path, capsys, no_data, monkeypatch):
    def read_only(*a, **k):  # (the tests may run as root, whom chmod does not stop)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(checkpoint.tempfile, "mkstemp", read_only)
    assert train.main([*T, "--checkpoint-dir", str(tmp_path / "ro")]) == 2
    one_line_error(capsys, "cannot write to checkpoint_dir", "Permission denied")


@pytest.mark.parametrize("damage", ["random", "truncated", "foreign"])
def test_a_damaged_or_foreign_checkpoint_is_named(tmp_path, capsys, damage, no_data):
    folder = tmp_path / "run"
    folder.mkdir()
    path = folder / "last.pt"
    if damage == "random":
        path.write_bytes(random.Random(0).randbytes(300_000))
    elif damage == "truncated":
        torch.save({"format": checkpoint.FORMAT, "weights": torch.zeros(10_000)}, path)
        path.write_bytes(path.read_bytes()[:5_000])
    else:
        torch.save({"something": "else"}, path)
    assert train.main([*T, "--checkpoint-dir", str(folder), "--resume"]) == 2
    err = one_line_error(capsys, str(path), "move it away to start again")
    assert "weights_only=False" not in err


def test_ordinary_mistakes_end_in_one_line(tmp_path, capsys, no_data, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert train.main([*T, "--device", "cuda"]) == 2
    one_line_error(capsys, "device 'cuda' was asked for but is not available")
    assert train.main([*T, "--data", "folder:/nonexistent"]) == 2
    one_line_error(capsys, "folder data needs '/nonexistent/train'")
    assert train.main([*T, "--processes", "0"]) == 2
    one_line_error(capsys, "--processes must be at least 1, got 0")
    monkeypatch.setenv("WORLD_SIZE", "2")  # under torchrun with two workers
    assert train.main([*T, "--processes", "3"]) == 2
    one_line_error(capsys, "--processes must be 1 or torchrun's 2, got 3")


def test_leftovers_are_removed_and_the_history_follows_the_checkpoint(tmp_path, capsys):
    folder = trained(tmp_path)
    stale = folder / ".last.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    (folder / "history.json").unlink()  # killed between the two writes
    again = [*T, "--epochs", "2", "--checkpoint-dir", str(folder), "--resume"]
    assert train.main(again) == 0
    assert not stale.exists()
    kept = json.loads((folder / "history.json").read_text())
    assert kept["history"] == train.load_checkpoint(folder)["history"]
    assert len(kept["history"]) == 2


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return train.load_checkpoint(folder)["model"]


def _history(folder: Path) -> list[dict]:
    timing = ("images/s", "seconds")
    rows = train.load_checkpoint(folder)["history"]
    return [{k: v for k, v in r.items() if k not in timing} for r in rows]


def _cli(*args: str, processes: int = 1) -> list[str]:
    return [sys.executable, "-m", "shufflelib.train", *T, "--processes", str(processes), *args]


def _tree(pid: int) -> list[int]:
    """``pid`` and every process below it (torchrun's workers run in sessions of their own)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    return found


def _kill_all(pid: int) -> None:
    for p in _tree(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _killed_and_resumed(folder: Path, args: list[str], processes: int, seed: int) -> int:
    """Run until done, killing the run (-9, its whole process group) at moments drawn from a
    seeded generator and resuming each time; return the number of kills."""
    rng, kills = random.Random(seed), 0
    deadline = time.monotonic() + 240  # bounded: never more than four minutes
    while time.monotonic() < deadline:
        resume = ["--resume"] if (folder / "last.pt").exists() else []
        p = subprocess.Popen(
            _cli(*args, "--checkpoint-dir", str(folder), *resume, processes=processes),
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            code = p.wait(timeout=rng.uniform(2.0, 9.0) if kills < 4 else 300)
        except subprocess.TimeoutExpired:
            _kill_all(p.pid)
            p.wait()
            kills += 1
            continue
        assert code == 0
        return kills
    raise AssertionError("the run did not finish in four minutes")


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the workers in /proc")
@pytest.mark.parametrize("processes", [1, 2])
def test_kills_at_random_moments_never_cost_a_bit(tmp_path, processes):
    """kill -9 of every process of the run (the launcher and torchrun's workers) at moments drawn
    from a seeded generator (some fall during the atomic writes), then resume until done: the
    weights and history equal an uninterrupted run's."""
    whole, killed, args = tmp_path / "whole", tmp_path / "killed", ["--epochs", "3"]
    subprocess.run(
        _cli(*args, "--checkpoint-dir", str(whole), processes=processes),
        env=ENV,
        check=True,
        timeout=300,
        capture_output=True,
    )
    kills = _killed_and_resumed(killed, args, processes, seed=7 + processes)
    assert kills >= 1, "no kill fell inside a run: the test proved nothing"
    a, b = _weights(whole), _weights(killed)
    assert all(torch.equal(a[k], b[k]) for k in a), "a killed and resumed run must match exactly"
    assert _history(killed) == _history(whole)
    assert (
        json.loads((killed / "history.json").read_text())["history"]
        == (train.load_checkpoint(killed)["history"])
    ), "history.json agrees with the checkpoint"


def test_data_that_cannot_be_had_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    from shufflelib import net

    def offline(*a, **k):
        raise net.Unavailable("cannot reach www.cs.toronto.edu:443 (no network). To get it ...")

    monkeypatch.setattr(runs, "datasets", offline)
    assert train.main([*T, "--data", f"cifar10:{tmp_path}", "--download"]) == 1
    one_line_error(capsys, "cannot reach www.cs.toronto.edu:443")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a process is POSIX")
def test_ctrl_c_under_two_processes_is_one_line_and_130(tmp_path):
    """Ctrl-C reaches the launcher (torchrun's workers run in sessions of their own): rank 0 says
    it once, no launcher traceback, exit 130, and the checkpoint is kept for --resume."""
    folder = tmp_path / "run"
    p = subprocess.Popen(
        _cli("--epochs", "200", "--checkpoint-dir", str(folder), processes=2),
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (folder / "last.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted;"), err
    assert str(folder) in lines[0] and "--resume" in lines[0]
    assert train.load_checkpoint(folder)["epoch"] >= 1
