"""results: the store of converged runs (fresh, complete, scored again), and `make results`."""

import hashlib
import json

import pytest
import torch

from shufflelib import results, train

TINY = ["--limit-train", "64", "--limit-test", "64", "--epochs", "1"]


@pytest.fixture(autouse=True)
def _no_build_file(monkeypatch):
    """`make test` names the build's file of live scores: these tests' stores stay out of it."""
    monkeypatch.delenv(results.RESCORED_FILE, raising=False)


@pytest.fixture(scope="module")
def store():
    return results.load()


def test_the_committed_store_was_made_with_the_current_code(store):
    # Fails after a change to the networks, layers, trainer or data generator: the message says
    # to run `make results`, which trains the store again.
    store.check_fresh()


def test_the_committed_store_is_complete_and_intact(store):
    done = {(r.label, r.seed) for r in store.runs}
    assert done >= {(label, seed) for label in results.BOOK for seed in results.SEEDS}
    for r in store.runs:
        entry = store.manifest["runs"][r.weights.parent.name]
        assert hashlib.sha256(r.weights.read_bytes()).hexdigest() == entry["weights sha256"]
        epochs = int(r.command.split("--epochs ")[1].split()[0])
        assert len(r.history) == epochs and r.history[-1]["test accuracy"] == r.accuracy
        assert "python -m shufflelib.train" in r.command and f"--seed {r.seed}" in r.command
    for key in ("code", "data", "machine", "torch", "python", "command"):
        assert store.manifest[key]


def test_make_trains_keeps_and_skips(tmp_path, capsys):
    where = results.make(tmp_path, runs=["shufflenet_v2_x0_5"], seeds=[0], jobs=1, extra=TINY)
    manifest = json.loads((where / results.MANIFEST).read_text())
    entry = manifest["runs"]["shufflenet_v2_x0_5-seed0"]
    assert entry["seed"] == 0 and entry["seconds"] > 0 and "--seed 0" in entry["command"]
    weights = where / "shufflenet_v2_x0_5-seed0" / "weights.pt"
    stamp = weights.stat().st_mtime_ns
    results.make(tmp_path, runs=["shufflenet_v2_x0_5"], seeds=[0], jobs=1, extra=TINY)
    assert weights.stat().st_mtime_ns == stamp  # a stored run is never trained again
    store = results.load(tmp_path)
    assert store.stale() == []
    scored = results.reevaluate(store, limit=64)
    assert scored[0]["now"] == scored[0]["recorded"] and scored[0]["images apart"] == 0
    table = results.accuracy(store)
    assert table[0]["model"] == "shufflenet_v2_x0_5" and table[0]["seeds"] == 1
    assert table[0]["warm-up"] == 0.1 and table.unit("warm-up") == "epochs"
    assert "make results" in store.provenance()


def test_make_goes_on_from_an_interrupted_runs_checkpoint(tmp_path):
    """A run whose checkpoint is in .work (make was interrupted) is resumed, not started again:
    here it had finished its one epoch, so make only reloads it and stores it."""
    work = tmp_path / ".work" / "shufflenet_v2_x0_5-seed0"
    argv = results.command("shufflenet_v2_x0_5", 0, work) + TINY
    assert train.main(argv[3:]) == 0  # the run, trained before make was interrupted
    trained = train.load_checkpoint(work)["model"]
    results.make(tmp_path, runs=["shufflenet_v2_x0_5"], seeds=[0], jobs=1, extra=TINY)
    log = (work / "log.txt").read_text()
    assert "error" not in log and "epoch 1/1" not in log, log  # reloaded, not trained again
    kept = torch.load(tmp_path / "shufflenet_v2_x0_5-seed0" / "weights.pt", weights_only=True)
    assert all(torch.equal(kept[k], trained[k]) for k in trained)


def test_a_store_from_other_code_is_stale_and_says_how_to_refresh(tmp_path):
    results.make(tmp_path, runs=["shufflenet_v2_x0_5"], seeds=[1], jobs=1, extra=TINY)
    path = tmp_path / results.MANIFEST
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "data": "0" * 12}))
    store = results.load(tmp_path)
    assert store.stale() == ["data generator"]
    with pytest.raises(RuntimeError, match="data generator: run `make results`"):
        store.check_fresh()


def test_missing_store_and_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="make results"):
        results.load(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="runs must be one of 'shufflenet.*; got 'resnet'"):
        results.make(tmp_path, runs=["resnet"])
    with pytest.raises(ValueError, match="jobs must be an int >= 1, got 0"):
        results.make(tmp_path, jobs=0)
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        results.command("shufflenet_v2_x0_5", -1, tmp_path)
    with pytest.raises(TypeError, match="results.Store"):
        results.accuracy([])
    assert results.main(["check", "--store", str(tmp_path / "nowhere")]) == 2


def test_command_is_the_book_recipe(tmp_path):
    argv = results.command("efficientnet_v2_t progressive", 2, tmp_path)
    s = train.book_settings()
    assert argv[1:3] == ["-m", "shufflelib.train"] and "--progressive" in argv
    for flag, value in (("--epochs", 8), ("--lr", 0.025), ("--seed", 2)):
        assert argv[argv.index(flag) + 1] == str(value)
    snv2 = results.command("shufflenet_v2_x0_5", 0, tmp_path)
    for flag, value in (("--epochs", 8), ("--lr", s["lr"]), ("--batch-size", s["batch_size"])):
        assert snv2[snv2.index(flag) + 1] == str(value)  # the book's settings, 8 epochs
    for label, spec in results.RUNS.items():  # every run: the book's settings unless its recipe
        argv = results.command(label, 0, tmp_path)
        for key in ("epochs", "lr", "warmup_epochs"):
            want, flag = spec.get(key, s[key]), f"--{key.replace('_', '-')}"
            assert argv[argv.index(flag) + 1] == str(want), (label, key)
    mnv2 = results.command("mobilenet_v2", 0, tmp_path)
    assert mnv2[mnv2.index("--width-mult") + 1] == "0.5"


def test_settings_are_the_books_with_the_runs_recipe():
    s = train.book_settings()
    mnv2 = results.settings("mobilenet_v2")
    assert mnv2 == {**s, "lr": 0.025, "epochs": 8, "warmup_epochs": 1.0}
    full = results.settings("mobilenet_v2", full=True, data="cifar10:data")
    assert full["epochs"] == 30 and full["lr"] == 0.025 and full["data"] == "cifar10:data"
    assert results.settings("shufflenet_v2_x0_5")["lr"] == s["lr"]
    with pytest.raises(ValueError, match="label must be one of 'shufflenet.*; got 'resnet'"):
        results.settings("resnet")


def test_plateau_summary_names_who_still_moved():
    from shufflelib.tables import Table

    table = Table(
        [
            {"model": "a", "test accuracy sd": 0.004, "last change": 0.001, "plateau": "yes"},
            {"model": "b", "test accuracy sd": 0.002, "last change": 0.009, "plateau": "no"},
        ]
    )
    text = results.plateau_summary(table)
    assert "At a plateau" in text and ": a." in text
    assert "b (0.009 against a spread of 0.002)" in text
    with pytest.raises(TypeError, match="results.accuracy"):
        results.plateau_summary(Table([{"model": "a"}]))


def test_train_seconds_sums_each_runs_epochs_over_seeds(store):
    label = results.BOOK[0]
    t = results.train_seconds(store, [label])
    runs = store.by_label()[label]
    seconds = [sum(row["seconds"] for row in r.history) for r in runs]
    assert t.column("model") == [label]
    assert t[0]["train time"] == pytest.approx(sum(seconds) / len(seconds))
    assert t.units == {"train time": "s", "time sd": "s"}
    assert t.header("train time") == "train time (s)" and t.unit("images/s") == ""
    with pytest.raises(ValueError, match="no run 'resnet' in the store"):
        results.train_seconds(store, ["resnet"])


def test_one_build_scores_the_stored_networks_once(store, tmp_path, monkeypatch):
    """With SHUFFLEBOOK_RESCORED set (a build), chapter 10 reads the scores chapter 9 measured on
    this machine; other weights or another limit are scored anew, and without it always."""
    kept = tmp_path / "rescored.json"
    monkeypatch.setenv(results.RESCORED_FILE, str(kept))
    calls = []
    real = results.evaluate
    monkeypatch.setattr(results, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = results.reevaluate(store, limit=16)
    assert len(calls) == len(store.runs) and kept.is_file()
    again = results.reevaluate(store, limit=16)  # the next chapter of the same build
    assert list(again) == list(first) and len(calls) == len(store.runs)
    assert again.note == store.provenance() and [r["now"] for r in again] == [
        r["now"] for r in first
    ]
    results.reevaluate(store, limit=32)  # another limit: another key
    assert len(calls) == 2 * len(store.runs)
    monkeypatch.delenv(results.RESCORED_FILE)
    results.reevaluate(store, limit=16)  # no file named: always measures
    assert len(calls) == 3 * len(store.runs)
    (key,) = [k for k in json.loads(kept.read_text()) if "limit 16" in k]
    assert "device cpu" in key and "weights " in key and "data " in key
