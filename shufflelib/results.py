"""The results store: converged training runs over several seeds, kept in the repository; ch. 9-11.

Training the book's four networks until they stop improving, three seeds each, takes one and a
half to two hours on a 2-core CPU: too long for every build. ``make results``
(``python -m shufflelib.results make``) does it once with the library's own training command
line, ``python -m shufflelib.train``, and
keeps for every run its final weights (``weights.pt``, a float32 ``state_dict``) and its
per-epoch history (``history.json``) in ``shufflelib/store/<run>-seed<k>/``, and a manifest: the
exact command of each run, a hash of the training code and one of the data generator
(:func:`shufflelib.train.source_digest`), the machine, torch and Python versions and the
seconds it took. The chapters load the store, evaluate every stored network again on the test
set, live, and check that it scores what the manifest recorded; ``tests/test_results.py`` fails
when the training code or the data generator changed since the store was made.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import data as _data
from . import validate
from .cost import count_params
from .env import machine_info, pick_device
from .files import atomic_save, shared
from .stats import spread
from .tables import Table
from .train import (
    BOOK_MODELS,
    CHECKPOINT,
    TRAINING_CODE,
    Run,
    book_settings,
    evaluate,
    load_checkpoint,
    source_digest,
)

__all__ = [
    "RUNS",
    "RECIPES",
    "settings",
    "SEEDS",
    "BOOK",
    "MANIFEST",
    "REFRESH",
    "StoredRun",
    "Store",
    "default_store",
    "command",
    "make",
    "load",
    "reevaluate",
    "RESCORED_FILE",
    "accuracy",
    "seed_accuracies",
    "plateau_summary",
    "train_seconds",
    "summary",
    "main",
]

MANIFEST = "manifest.json"
FORMAT = "shufflebook-results-1"
REFRESH = "make results"  # the command that (re)makes the store, named in every stale message
SEEDS = (0, 1, 2)
# How each stored run departs from the book's settings (``train.book_settings``). At the book's
# peak learning rate of 0.05, MobileNetV2 0.5x and EfficientNetV2-T were unstable in their first
# epochs (a training loss above ln 10, the loss of guessing) and ended below 0.90 (MobileNetV2
# 0.25-0.49 over three seeds, EfficientNetV2-T 0.86 with seed 0). At the trainer's own default for
# batch 32, 0.1 * 32 / 128 = 0.025, they learn from the first epoch but more slowly (MobileNetV2
# 0.83-0.84 after 4 epochs, still rising by 0.04 an epoch). After 4 epochs the ShuffleNets were
# above 0.95 but still moving (their last epoch changed test accuracy by 0.005 and 0.016, more than
# the spread over seeds). So every network trains 8 epochs. Trained again on an Intel Xeon, whose
# arithmetic rounds differently (0.97-0.98 on the AMD EPYC before), MobileNetV2 with a tenth of an
# epoch of warm-up was at guessing after its first epoch for two seeds of three, and ended at
# 0.93, 0.79 and 0.96: its start was fragile. With a whole epoch (625 steps) of warm-up instead,
# the same machine gave 0.991, 0.987 and 0.984, every seed above 0.56 after two epochs.
RECIPES: dict[str, dict[str, Any]] = {
    "shufflenet_v1_g3_x0_5": {"epochs": 8},
    "shufflenet_v2_x0_5": {"epochs": 8},
    "mobilenet_v2": {"lr": 0.025, "epochs": 8, "warmup_epochs": 1.0},
    "efficientnet_v2_t": {"lr": 0.025, "epochs": 8},
}
# Each run the store can hold: a label -> the zoo model, its builder's keywords, the CLI's extra
# options and the recipe above. ``make`` trains the ``BOOK`` runs unless told otherwise; the
# progressive variant is there for chapter 9's exercise
# (``python -m shufflelib.results make --runs "efficientnet_v2_t progressive"``).
RUNS: dict[str, dict[str, Any]] = {
    name: {"model": name, "model_kwargs": kw, "options": [], **RECIPES.get(name, {})}
    for name, kw in BOOK_MODELS.items()
}
RUNS["efficientnet_v2_t progressive"] = {**RUNS["efficientnet_v2_t"], "options": ["--progressive"]}
BOOK = tuple(BOOK_MODELS)
_DATA_CODE = ("data.py",)
_CODE = tuple(p for p in TRAINING_CODE if p not in _DATA_CODE)


def default_store() -> Path:
    """``$SHUFFLEBOOK_RESULTS`` when set, else the store shipped inside the package.

    The store is package data (``shufflelib/store``), so ``pip install`` from the repository, as
    the first cell of every chapter does in Colab, brings it along with no further download.
    """
    if os.environ.get("SHUFFLEBOOK_RESULTS"):
        return Path(os.environ["SHUFFLEBOOK_RESULTS"])
    return Path(__file__).resolve().parent / "store"


def _folder(label: str, seed: int) -> str:
    return f"{label.replace(' ', '-')}-seed{seed}"


def settings(
    label: str, full: bool = False, data: str = "embedded", download: bool = False
) -> dict[str, Any]:
    """``train.run``'s settings for the stored run ``label``: the book's, with its recipe.

    Chapter 9 trains its live run with these, so that it is the same recipe as the stored seeds.
    ``full=True`` keeps the book's 30 epochs (and the run's learning rate).
    """
    validate.choice("label", label, RUNS)
    validate.flag("full", full)
    book = book_settings(full=full, data=data, download=download)
    recipe = {k: v for k, v in RUNS[label].items() if k in book}  # RECIPES' part of the run
    if full:
        recipe.pop("epochs", None)
    return {**book, **recipe}


def command(label: str, seed: int, checkpoint_dir: str | os.PathLike) -> list[str]:
    """The training command line of one stored run: ``python -m shufflelib.train`` and options."""
    validate.integer("seed", seed, minimum=0)
    s = settings(label)
    spec, lr, epochs = RUNS[label], s["lr"], s["epochs"]
    argv = ["--model", spec["model"], "--seed", str(seed), "--epochs", str(epochs)]
    argv += ["--batch-size", str(s["batch_size"]), "--lr", str(lr)]
    argv += ["--label-smoothing", str(s["label_smoothing"])]
    argv += ["--warmup-epochs", str(s["warmup_epochs"]), "--data", s["data"]]
    for key, value in spec["model_kwargs"].items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    argv += spec["options"] + ["--checkpoint-dir", str(checkpoint_dir)]
    return [sys.executable, "-m", "shufflelib.train", *argv, "--no-progress", "--workers", "0"]


def _recipe(label_or_command: str, seed: int | None = None) -> str:
    """The training options of a run, without where it writes: from a stored command string, or
    the current one for ``(label, seed)``. A stored run whose recipe changed is trained again."""
    if seed is None:
        text = label_or_command
    else:
        text = " ".join(command(label_or_command, seed, "-"))
    return "--model" + text.split("--model", 1)[1].split(" --checkpoint-dir")[0]


def _option(command_text: str, flag: str) -> float:
    """The value of ``flag`` (e.g. ``--lr``) in a stored run's command."""
    return float(command_text.split(f"{flag} ", 1)[1].split()[0])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest_head(jobs: int) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "command": f"{REFRESH} (python -m shufflelib.results make --jobs {jobs})",
        "code": source_digest(_CODE),
        "data": source_digest(_DATA_CODE),
        "machine": str(machine_info("cpu")),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "runs": {},
    }


def _train_one(label: str, seed: int, store: Path, threads: int, extra: Sequence[str]) -> dict:
    """Train one run with the CLI in a subprocess, then keep its weights and history."""
    work = store / ".work" / _folder(label, seed)
    work.mkdir(parents=True, exist_ok=True)
    argv = command(label, seed, work) + list(extra)
    resume = ["--resume"] if (work / CHECKPOINT).is_file() else []  # an interrupted run goes on
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.time()
    with open(work / "log.txt", "a") as log:
        done = subprocess.run(
            argv + resume, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"{label} seed {seed} failed (exit {done.returncode}): see {work}")
    ckpt = load_checkpoint(work)
    out = store / _folder(label, seed)
    atomic_save(ckpt["model"], out / "weights.pt")
    atomic_save(ckpt["history"], out / "history.json")
    shown = ["python", *argv[1:]]
    return {
        "label": label,
        "model": RUNS[label]["model"],
        "model_kwargs": RUNS[label]["model_kwargs"],
        "seed": seed,
        "command": f"OMP_NUM_THREADS={threads} " + " ".join(shown),
        "seconds": round(time.time() - start, 1),
        "test accuracy": ckpt["history"][-1]["test accuracy"],
        "weights sha256": _sha256(out / "weights.pt"),
    }


def make(
    store: str | os.PathLike | None = None,
    *,
    runs: Sequence[str] | None = None,
    seeds: Sequence[int] = SEEDS,
    jobs: int = 2,
    extra: Sequence[str] = (),
) -> Path:
    """Train every (run, seed) missing from the store, ``jobs`` at a time; ``make results``.

    ``runs`` defaults to :data:`BOOK`, the four networks chapters 9-11 compare.

    Each job trains on ``cpu count / jobs`` threads. Runs already stored with the current code
    are kept; an interrupted run resumes from its checkpoint in ``store/.work``. The manifest is
    rewritten (atomically) after every finished run, so nothing finished is ever lost. ``extra``
    adds CLI options to every run (the tests use it for tiny runs).
    """
    store = Path(store) if store is not None else default_store()
    labels = list(BOOK) if runs is None else list(runs)
    for label in labels:
        validate.choice("runs", label, RUNS)
    validate.integer("jobs", jobs, minimum=1)
    head = _manifest_head(jobs)
    old = _read_manifest(store) if (store / MANIFEST).is_file() else {}
    fresh = old.get("code") == head["code"] and old.get("data") == head["data"]
    manifest = {**head, "runs": dict(old.get("runs", {})) if fresh else {}}
    done = manifest["runs"]
    todo = [
        (lb, s)
        for lb in labels
        for s in seeds
        if _folder(lb, s) not in done or _recipe(done[_folder(lb, s)]["command"]) != _recipe(lb, s)
    ]
    threads = max(1, (os.cpu_count() or 1) // jobs)

    def one(job: tuple[str, int]) -> None:
        entry = _train_one(*job, store, threads, extra)
        manifest["runs"][_folder(*job)] = entry
        atomic_save(manifest, store / MANIFEST)
        print(f"{entry['label']} seed {entry['seed']}: {entry['test accuracy']:.4f}", flush=True)

    store.mkdir(parents=True, exist_ok=True)
    atomic_save(manifest, store / MANIFEST)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(one, todo))
    return store


def _read_manifest(store: Path) -> dict[str, Any]:
    path = store / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"no results store at {str(store)!r} (no {MANIFEST}): run `{REFRESH}` in a clone of "
            "the repository, or set SHUFFLEBOOK_RESULTS to a store's folder"
        )
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not a shufflebook results manifest ({FORMAT})")
    return manifest


@dataclass(frozen=True)
class StoredRun:
    """One stored run: its label, seed, recorded accuracy, history and weights file."""

    label: str
    model_name: str
    model_kwargs: dict[str, Any]
    seed: int
    accuracy: float
    history: Table
    weights: Path
    command: str
    seconds: float

    def model(self) -> nn.Module:
        """The stored network, built from the zoo and loaded strictly, on the CPU in eval mode."""
        from . import models

        net = models.build(self.model_name, num_classes=10, small_input=True, **self.model_kwargs)
        state = torch.load(self.weights, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
        return net.eval()


@dataclass(frozen=True)
class Store:
    """A loaded results store: its folder, manifest and runs (see :func:`load`)."""

    path: Path
    manifest: dict[str, Any]
    runs: tuple[StoredRun, ...]

    def stale(self) -> list[str]:
        """What changed since the store was made: the training code, the data generator, or the
        recipe (command line) of some runs; an empty list when nothing did."""
        changed = []
        if self.manifest.get("code") != source_digest(_CODE):
            changed.append("training code")
        if self.manifest.get("data") != source_digest(_DATA_CODE):
            changed.append("data generator")
        moved = sorted(
            {
                r.label
                for r in self.runs
                if r.label in RUNS and _recipe(r.command) != _recipe(r.label, r.seed)
            }
        )
        if moved:
            changed.append(f"recipe ({', '.join(moved)})")
        return changed

    def check_fresh(self) -> None:
        """Raise RuntimeError naming what changed and the command that refreshes the store."""
        changed = self.stale()
        if changed:
            raise RuntimeError(
                f"the results store {str(self.path)!r} was made with another "
                f"{' and '.join(changed)}: run `{REFRESH}` to train it again"
            )

    def by_label(self) -> dict[str, list[StoredRun]]:
        """The runs grouped by label, seeds in order."""
        groups: dict[str, list[StoredRun]] = {}
        for r in sorted(self.runs, key=lambda r: (list(RUNS).index(r.label), r.seed)):
            groups.setdefault(r.label, []).append(r)
        return groups

    def models(self, labels: Sequence[str] | None = None, seed: int = 0) -> dict[str, nn.Module]:
        """One stored network per label (all labels by default), of the given seed; ch. 10-11."""
        groups = self.by_label()
        labels = list(groups) if labels is None else list(labels)
        out = {}
        for label in labels:
            runs = [r for r in groups.get(label, []) if r.seed == seed]
            if not runs:
                raise ValueError(f"no stored run {label!r} with seed {seed}; see store.runs")
            out[label] = runs[0].model()
        return out

    def provenance(self) -> str:
        """The lines printed under every table built from the store."""
        m = self.manifest
        seconds = sum(r.seconds for r in self.runs)
        commands = sorted({r.command.split(" --checkpoint-dir")[0] for r in self.runs})
        return (
            f"stored runs: {len(self.runs)} made by `{m['command']}`, "
            f"{seconds / 60:.0f} min of training summed over the runs | training code "
            f"{m['code']}, data generator {m['data']} | {m['machine']}\n"
            f"for example: {commands[0]}"
        )


def load(store: str | os.PathLike | None = None) -> Store:
    """Load the store's manifest, histories and weight paths (weights load per run); ch. 9-11."""
    path = Path(store) if store is not None else default_store()
    manifest = _read_manifest(path)
    runs = []
    for folder, e in manifest["runs"].items():
        history = json.loads((path / folder / "history.json").read_text())
        runs.append(
            StoredRun(
                label=e["label"],
                model_name=e["model"],
                model_kwargs=dict(e["model_kwargs"]),
                seed=e["seed"],
                accuracy=e["test accuracy"],
                history=Table(history, title=f"{e['label']}, seed {e['seed']}"),
                weights=path / folder / "weights.pt",
                command=e["command"],
                seconds=e["seconds"],
            )
        )
    if not runs:
        raise ValueError(f"the results store {str(path)!r} holds no runs yet: run `{REFRESH}`")
    return Store(path, manifest, tuple(runs))


RESCORED_FILE = "SHUFFLEBOOK_RESCORED"  # env: a JSON file where one build keeps the live scores


def reevaluate(store: Store, device: torch.device | str = "cpu", limit: int | None = None) -> Table:
    """Score every stored network again, live, on its seed's test set; chapters 9-10.

    One row per run: the accuracy the manifest recorded, the one measured now, and the number
    of test images on which they differ. (Another CPU may round differently and change a few
    borderline predictions: the chapters allow a handful of images, no more.)

    When the environment variable ``SHUFFLEBOOK_RESCORED`` names a file (the Makefile sets it
    for a build), the first chapter to score writes the rows there and a later chapter of the
    same build, on the same machine and the same stored weights, reads them
    (:func:`~shufflelib.files.shared`): chapter 10 shows the scores chapter 9 measured minutes
    before, instead of spending a minute and a half measuring them again.
    """
    if not isinstance(store, Store):
        raise TypeError(f"store must be a results.Store from results.load(), got {store!r}")
    if limit is not None:
        validate.integer("limit", limit, minimum=1)
    device = pick_device(device)
    weights = hashlib.sha256(
        "".join(sorted(r["weights sha256"] for r in store.manifest["runs"].values())).encode()
    ).hexdigest()[:12]
    data = source_digest(_DATA_CODE)  # the generator of the test sets scored
    key = f"{machine_info(device)} | weights {weights} | data {data} | limit {limit}"
    rows = shared(os.environ.get(RESCORED_FILE), key, lambda: _scores(store, device, limit))
    return Table(rows, title="every stored network scored again, live", note=store.provenance())


def _scores(store: Store, device: torch.device, limit: int | None) -> list[dict[str, Any]]:
    rows = []
    for r in (r for runs in store.by_label().values() for r in runs):
        test = _data.embedded("test", seed=r.seed)
        score = evaluate(r.model(), test, device=device, limit=limit)
        rows.append(
            {
                "run": r.label,
                "seed": r.seed,
                "recorded": r.accuracy,
                "now": score["accuracy"],
                "images apart": round(abs(score["accuracy"] - r.accuracy) * score["images"]),
            }
        )
    return rows


def seed_accuracies(rescored: Table) -> dict[str, list[float]]:
    """The live accuracies of :func:`reevaluate`'s table, grouped by run label, seeds in order."""
    if not isinstance(rescored, Table) or "now" not in rescored.columns:
        raise TypeError("rescored must be the Table that results.reevaluate returns")
    out: dict[str, list[float]] = {}
    for row in sorted(rescored, key=lambda r: r["seed"]):
        out.setdefault(row["run"], []).append(row["now"])
    return out


def accuracy(store: Store) -> Table:
    """Test accuracy per network: mean and standard deviation over seeds, and the plateau.

    ``last change`` is the mean over seeds of the test accuracy's change over the last epoch;
    the run has reached its plateau (``plateau``: yes) when that is smaller than the spread over
    seeds (or than 0.005, an accuracy step of 25 of the 5,000 test images, when the seeds agree
    more closely than that). Chapter 9.
    """
    if not isinstance(store, Store):
        raise TypeError(f"store must be a results.Store from results.load(), got {store!r}")
    rows = []
    for label, runs in store.by_label().items():
        finals = [r.accuracy for r in runs]
        mean, sd = spread(finals) if len(finals) > 1 else (finals[0], float("nan"))
        changes = [
            abs(r.history[-1]["test accuracy"] - r.history[-2]["test accuracy"])
            for r in runs
            if len(r.history) > 1
        ]
        last = sum(changes) / len(changes) if changes else float("nan")
        rows.append(
            {
                "model": label,
                "seeds": len(runs),
                "test accuracy": mean,
                "test accuracy sd": sd,
                "lowest": min(finals),
                "epochs": int(_option(runs[0].command, "--epochs")),
                "peak lr": _option(runs[0].command, "--lr"),
                "warm-up": _option(runs[0].command, "--warmup-epochs"),
                "last change": last,
                "plateau": "yes" if last < max(sd, 0.005) else "no",
            }
        )
    title = "test accuracy over seeds (stored runs)"
    return Table(rows, title=title, note=store.provenance(), units={"warm-up": "epochs"})


def plateau_summary(table: Table) -> str:
    """A sentence, computed from :func:`accuracy`'s table, on which networks reached a plateau."""
    if not isinstance(table, Table) or "plateau" not in table.columns:
        raise TypeError("table must be the Table that results.accuracy returns")
    flat = [r["model"] for r in table if r["plateau"] == "yes"]
    moving = [
        f"{r['model']} ({r['last change']:.3f} against a spread of {r['test accuracy sd']:.3f})"
        for r in table
        if r["plateau"] != "yes"
    ]
    words = []
    if flat:
        words.append(
            "At a plateau (the last epoch moved the test accuracy by less than the spread over "
            f"seeds): {', '.join(flat)}."
        )
    if moving:
        words.append(
            "Still moving in the last epoch by more than the spread over seeds, so a longer run "
            f"could change their accuracy by about that much: {', '.join(moving)}."
        )
    return " ".join(words)


def train_seconds(store: Store, labels: Sequence[str] | None = None) -> Table:
    """Training time per run (evaluation excluded) and throughput, mean and spread over seeds.

    Measured on the machine that made the store, as the manifest names it, while it trained
    ``--jobs`` runs side by side; chapter 9.
    """
    if not isinstance(store, Store):
        raise TypeError(f"store must be a results.Store from results.load(), got {store!r}")
    groups = store.by_label()
    labels = list(groups) if labels is None else list(labels)
    rows = []
    for label in labels:
        if label not in groups:
            raise ValueError(f"no run {label!r} in the store; it holds {list(groups)}")
        seconds = [sum(row["seconds"] for row in r.history) for r in groups[label]]
        speeds = [r.history[-1]["images/s"] for r in groups[label]]
        (s, s_sd), (v, v_sd) = spread(seconds), spread(speeds)
        rows.append(
            {
                "model": label,
                "train time": s,
                "time sd": s_sd,
                "images/s": v,
                "images/s sd": v_sd,
            }
        )
    title, units = "training time over seeds (stored runs)", {"train time": "s", "time sd": "s"}
    return Table(rows, title=title, note=store.provenance(), units=units)


def summary(runs: Sequence[Run] | Mapping[str, Run], title: str = "") -> Table:
    """One row per trained run: parameters, final test accuracy and loss, throughput, time.

    ``runs`` is a list of :class:`shufflelib.train.Run` (each row named after its model) or a
    mapping of a label to a run (to tell apart two runs of one model), as ``train.run`` returns
    them. ``images/s`` is the training throughput of the
    last epoch, ``train time`` the sum over the epochs (evaluation excluded), both measured on
    the machine that trained. Units are the table's (``params`` in millions, ``train time`` in s).
    """
    labelled = list(runs.items() if isinstance(runs, Mapping) else [(None, r) for r in runs])
    for _, r in labelled:  # every entry checked before any is counted
        validate.instance("runs' entries", r, Run)
    rows = []
    for label, r in labelled:
        last = r.history[-1]
        rows.append(
            {
                "model": r.name if label is None else label,
                "params": count_params(r.model) / 1e6,
                "epochs": last["epoch"],
                "test accuracy": last.get("test accuracy"),
                "test loss": last.get("test loss"),
                "images/s": last["images/s"],
                "train time": sum(row["seconds"] for row in r.history),
            }
        )
    units = {"params": "M", "train time": "s"}
    return Table(rows, title=title or "trained models", units=units)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m shufflelib.results make|check``: make the store, or check that it is fresh."""

    p = argparse.ArgumentParser(prog="python -m shufflelib.results", description=__doc__)
    p.add_argument("action", choices=("make", "check"))
    p.add_argument("--store", default=None, help="the store's folder (default: shufflelib/store)")
    p.add_argument("--jobs", type=int, default=2, help="runs trained at once (default 2)")
    p.add_argument("--runs", nargs="*", default=None, metavar="LABEL", help=f"of {list(RUNS)}")
    p.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS))
    args = p.parse_args(argv)
    try:
        if args.action == "make":
            where = make(args.store, runs=args.runs, seeds=args.seeds, jobs=args.jobs)
            print(f"results store written to {where}")
        else:
            load(args.store).check_fresh()
            print("the results store matches the training code and the data generator")
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
