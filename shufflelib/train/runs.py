"""Runs of zoo models on named data, shared by ``run`` (chapters 9-10) and the command line.

:func:`train_named` is the one path from a zoo name and a data spec to a trained network: every
check before any work, the datasets, the model (seeded), then ``fit``. :func:`run` keeps the run
in a folder keyed by its whole configuration and the training code (:func:`source_digest`), so
chapter 10 finds chapter 9's runs; ``python -m shufflelib.train`` (:mod:`.cli`) trains into the
folder it is given.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from .. import data as _data
from .. import models, validate
from ..env import pick_device
from ..tables import Table
from . import checkpoint
from .config import UNKEYED
from .loop import derive_seed, fit, make_config
from .recipe import Progressive

__all__ = [
    "BOOK_MODELS",
    "book_settings",
    "DATA_KINDS",
    "parse_data",
    "datasets",
    "TRAINING_CODE",
    "source_digest",
    "Run",
    "train_named",
    "run",
]

# The networks chapter 9 trains and chapter 10 compares, at matched small widths: the zoo name and
# the builder's keyword arguments. All take small_input=True on 32x32 images.
BOOK_MODELS: dict[str, dict[str, Any]] = {
    "shufflenet_v1_g3_x0_5": {},
    "shufflenet_v2_x0_5": {},
    "mobilenet_v2": {"width_mult": 0.5},
    "efficientnet_v2_t": {},
}
DATA_KINDS = ("embedded", "cifar10", "folder")
FOLDER_IMAGE_SIZE = 224  # folder data's training crop unless image_size says otherwise


def book_settings(
    full: bool = False, data: str = "embedded", download: bool = False
) -> dict[str, Any]:
    """The ``run`` settings chapters 9-11 and the results store share; chapter 9.

    The default trains on the embedded data on a laptop CPU: all 20,000 augmented images at batch
    32 (625 steps an epoch; on this small task the number of steps, not of images, decides how far
    a network gets), learning rate 0.05 after a tenth of an epoch of warm-up, no label smoothing,
    for 4 epochs (the results store's recipes, :data:`shufflelib.results.RECIPES`, train 8, where
    every network has reached its plateau). ``full=True`` trains 30 epochs. ``data`` and
    ``download`` switch to CIFAR-10 (e.g. in Colab).
    """
    validate.flag("full", full)
    parse_data(data)
    validate.flag("download", download)
    return {
        "data": data,
        "download": download,
        "epochs": 30 if full else 4,
        "batch_size": 32,
        "lr": 0.05,
        "label_smoothing": 0.0,
        "warmup_epochs": 0.1,
        "runs_dir": "runs",
        "progress": False,  # True shows a live bar per epoch
    }


def parse_data(spec: str) -> tuple[str, str | None]:
    """``"embedded"``, ``"cifar10:ROOT"`` or ``"folder:ROOT"`` -> (kind, root)."""
    if not isinstance(spec, str):
        raise TypeError(f"data must be a string such as 'embedded', got {validate.show(spec)}")
    kind, _, root = spec.partition(":")
    if kind == "embedded" and not root:
        return "embedded", None
    if kind in ("cifar10", "folder") and root:
        return kind, root
    raise ValueError(
        f"data must be 'embedded' (the offline default), 'cifar10:ROOT' (CIFAR-10 under ROOT) "
        f"or 'folder:ROOT' (ROOT/train and ROOT/val, ImageNet-style), got {spec!r}"
    )


def _check_data(spec: str, augment: bool | None, image_size: int | None) -> str:
    kind, root = parse_data(spec)
    if augment is not None:
        validate.flag("augment", augment)
    if augment is False and kind != "embedded":
        raise ValueError(
            f"augment=False is for the embedded data only; {kind} always trains with its "
            "standard augmentation"
        )
    if image_size is not None:
        validate.integer("image_size", image_size, minimum=8)
        if kind != "folder":
            raise ValueError(
                f"image_size applies to folder data only ({kind} images are 32x32), "
                f"got {image_size}"
            )
    if kind == "folder":
        for split in ("train", "val"):
            if not os.path.isdir(os.path.join(root, split)):  # type: ignore[arg-type]
                raise FileNotFoundError(
                    f"folder data needs {os.path.join(root, split)!r}: ROOT must hold train/ and "
                    "val/, each with one sub-folder per class (Imagenette unpacks to that layout)"
                )
    return kind


def datasets(
    spec: str,
    seed: int = 0,
    download: bool = False,
    image_size: int | None = None,
    augment: bool | None = None,
) -> tuple[Dataset, Dataset, int]:
    """(train, test, classes) of a data spec (:func:`parse_data`); chapter 9."""
    kind = _check_data(spec, augment, image_size)
    validate.integer("seed", seed, minimum=0)
    validate.flag("download", download)
    root = parse_data(spec)[1]
    if kind == "embedded":
        train = _data.embedded("train", seed=seed, augment=augment is not False)
        return train, _data.embedded("test", seed=seed), 10
    if kind == "cifar10":
        train = _data.cifar10(root, train=True, download=download)
        return train, _data.cifar10(root, train=False, download=download), 10
    size = image_size or FOLDER_IMAGE_SIZE
    train = _data.image_folder(os.path.join(root, "train"), train=True, size=size)
    test = _data.image_folder(os.path.join(root, "val"), train=False, size=size)
    return train, test, len(train.classes)


# The code that decides a trained network's weights: the trainer, the data generator, the layers,
# the operations and the files of the four networks the book trains (not the other modules:
# validation, tables, timing or plotting cannot change a weight). Folders count with every .py
# file in them. The zoo's registry (models/__init__.py) is left out so that a new network does not
# call for a retrain: what it decides for the book's networks is pinned instead, by a test of
# their initial weights and outputs (tests/test_models.py, test_the_book_networks_are_unchanged).
TRAINING_CODE = (
    "train",
    "data.py",
    "layers.py",
    "ops.py",
    "models/shufflenet_v1.py",
    "models/shufflenet_v2.py",
    "models/mobilenet_v2.py",
    "models/efficientnet_v2.py",
)


@functools.cache
def source_digest(parts: tuple[str, ...] = TRAINING_CODE) -> str:
    """A hash of the library's files (or folders) named in ``parts``, as first imported.

    Keys ``run``'s folders (a changed network, dataset or recipe never reuses an older run's
    weights; edits to the other modules, or during a session, do not split one run in two) and
    the results store's manifest (:mod:`shufflelib.results`).
    """
    if not isinstance(parts, tuple) or not parts or not set(parts) <= set(TRAINING_CODE):
        raise ValueError(
            f"parts must be a non-empty tuple drawn from {TRAINING_CODE}, got {parts!r}"
        )
    here = Path(__file__).parent.parent
    files = set()
    for part in parts:
        files |= {here / part} if part.endswith(".py") else set((here / part).rglob("*.py"))
    h = hashlib.sha256()
    for p in sorted(files):
        h.update(p.relative_to(here).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


@dataclass
class Run:
    """A trained zoo model: its name, the model (on the CPU, eval mode), history and folder."""

    name: str
    model: nn.Module
    history: Table
    checkpoint_dir: Path
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def test_accuracy(self) -> float:
        return self.history[-1]["test accuracy"]


def _identity(name, data, small_input, model_kwargs, augment, image_size) -> dict[str, Any]:
    """What the model and data are: stored in the checkpoint, compared on resume."""
    if name not in models.names():
        raise ValueError(f"model must be one of shufflelib.models.names(), got {name!r}")
    kind = _check_data(data, augment, image_size)
    if small_input is None:
        small_input = kind in ("embedded", "cifar10")
    validate.flag("small_input", small_input)
    kw = dict(validate.mapping("model_kwargs", model_kwargs or {}, nonempty=False))
    return {
        "model": name,
        "model_kwargs": kw,
        "small_input": small_input,
        "data": data,
        "augment": augment is not False,
        "image_size": (image_size or FOLDER_IMAGE_SIZE) if kind == "folder" else None,
    }


def train_named(
    name: str,
    *,
    data: str = "embedded",
    epochs: int = 2,
    small_input: bool | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    seed: int = 0,
    download: bool = False,
    image_size: int | None = None,
    augment: bool | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    require_checkpoint: bool = False,
    **fit_kwargs: Any,
) -> tuple[nn.Module, Table, dict[str, Any]]:
    """Check everything, make the data, build zoo model ``name`` and ``fit`` it: (model, history,
    identity). Every check runs before the data is made (the recipe, the device, the data spec,
    the checkpoint folder and the checkpoint in it). ``fit_kwargs`` go to ``fit``."""
    identity = _identity(name, data, small_input, model_kwargs, augment, image_size)
    if fit_kwargs.get("workers") is not None:
        validate.integer("workers", fit_kwargs["workers"], minimum=0)
    device = pick_device(fit_kwargs.pop("device", None))
    recipe = {k: v for k, v in fit_kwargs.items() if k not in UNKEYED}
    config = make_config(device, 0, epochs=epochs, seed=seed, identity=identity, **recipe)
    if checkpoint_dir is not None:
        checkpoint.precheck(checkpoint_dir, resume, config, require=require_checkpoint)
    train_set, test_set, classes = datasets(data, seed, download, image_size, augment)
    torch.manual_seed(derive_seed("init", name, seed))
    model = models.build(
        name, num_classes=classes, small_input=identity["small_input"], **identity["model_kwargs"]
    )
    history = fit(
        model,
        train_set,
        epochs,
        test_data=test_set,
        seed=seed,
        device=device,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        identity=identity,
        **fit_kwargs,
    )
    return model, history, identity


def run(
    name: str,
    *,
    data: str = "embedded",
    epochs: int = 2,
    small_input: bool | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    runs_dir: str | os.PathLike = "runs",
    seed: int = 0,
    download: bool = False,
    image_size: int | None = None,
    augment: bool | None = None,
    **fit_kwargs: Any,
) -> Run:
    """Train zoo model ``name`` on ``data``, or load the finished run; chapters 9, 10.

    The run lives in ``runs_dir/<name>-<hash>``, the hash taken over every setting and the
    training code (:func:`source_digest`): the same call again (chapter 10 after chapter 9)
    loads the finished run in a moment, an interrupted one resumes, and a different setting
    trains in a folder of its own. ``small_input`` defaults to True for the 32x32 datasets;
    ``augment=False`` trains the embedded data without its crop-and-flip augmentation;
    ``image_size`` is folder data's training crop (default 224). Other keyword arguments go to
    ``fit`` (``batch_size``, ``lr``, ``limit_train``, ``progressive``, ``progress``, ``log``...);
    ``device`` defaults to the best one here (CUDA, then MPS, then CPU). The model comes back on
    the CPU in eval mode.
    """
    validate.path("runs_dir", runs_dir)
    for bad in ("checkpoint_dir", "resume"):
        if bad in fit_kwargs:
            raise TypeError(f"run() chooses {bad} itself; got {bad}={fit_kwargs[bad]!r}")
    identity = _identity(name, data, small_input, model_kwargs, augment, image_size)
    key = {
        **identity,
        "epochs": epochs,
        "seed": seed,
        "fit": {
            k: (asdict(v) if isinstance(v, Progressive) else v)
            for k, v in fit_kwargs.items()
            if k not in UNKEYED
        },
        "code": source_digest(),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=repr).encode()).hexdigest()
    folder = Path(runs_dir) / f"{name}-{digest[:10]}"
    model, history, _ = train_named(
        name,
        data=data,
        epochs=epochs,
        small_input=small_input,
        model_kwargs=model_kwargs,
        seed=seed,
        download=download,
        image_size=image_size,
        augment=augment,
        checkpoint_dir=folder,
        resume=True,
        **fit_kwargs,
    )
    model.to("cpu").eval()
    return Run(name, model, history, folder, key)
