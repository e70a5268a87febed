"""shufflelib.train: the recipe, determinism, atomic checkpoints, bit-identical resume, the CLI
and DistributedDataParallel under torchrun, on tiny models and data so the file runs in seconds."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from shufflelib import data, results, train
from shufflelib.tables import Table
from shufflelib.train import runs
from shufflelib.train.loop import Trainer

ROOT = Path(__file__).resolve().parents[1]
N_TRAIN, N_TEST = 192, 96
TIMING = ("images/s", "seconds")


class Tiny(nn.Module):
    """A small network with every kind of state fit must carry: conv, BN, dropout, bias."""

    def __init__(self, width: int = 8, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(2 * width, classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def tiny(seed: int = 0, width: int = 8) -> Tiny:
    torch.manual_seed(seed)
    return Tiny(width)


@pytest.fixture(scope="module")
def sets():
    return data.embedded("train", n=N_TRAIN), data.embedded("test", n=N_TEST)


def fit(model, sets, epochs=3, **kw):
    tr, te = sets
    kw = {"batch_size": 32, "progress": False, "log": None, "workers": 0, **kw}
    return train.fit(model, tr, epochs, test_data=te, **kw)


def strip(history):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history]


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------------------------------------
# the recipe's pieces


def test_param_groups_never_decay_norms_and_biases():
    m = tiny()
    decay, no_decay = train.param_groups(m, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in m.named_parameters()}
    assert sorted(names[id(p)] for p in decay["params"]) == [
        "classifier.1.weight",
        "features.0.weight",
        "features.4.weight",
    ]
    assert sorted(names[id(p)] for p in no_decay["params"]) == [
        "classifier.1.bias",
        "features.1.bias",
        "features.1.weight",
        "features.4.bias",
    ]


def test_lr_warms_up_linearly_then_follows_a_cosine_to_zero():
    total, warmup = 100, 10
    f = [train.lr_at(s, total, warmup) for s in range(total)]
    assert f[0] == pytest.approx(0.1) and f[4] == pytest.approx(0.5) and f[9] == 1.0
    assert f[10] == 1.0 and f[55] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in zip(f[9:], f[10:]))  # never rises after the warm-up
    assert train.lr_at(total, total, warmup) == pytest.approx(0.0)
    assert train.lr_at(0, 10, 0) == 1.0  # no warm-up


def test_progressive_schedule_interpolates_per_stage_as_algorithm_1():
    p = train.Progressive(stages=4, image_size=(16, 32), dropout=(0.1, 0.3), mixup=(0.0, 0.3))
    t = p.table(8)
    assert isinstance(t, Table) and len(t) == 8
    assert t.column("stage") == [1, 1, 2, 2, 3, 3, 4, 4]
    assert t.column("image size") == [
        16,
        16,
        20,
        20,
        28,
        28,
        32,
        32,
    ]  # 21.3, 26.7 -> multiples of 4
    assert t.column("dropout")[0] == 0.1 and t.column("dropout")[-1] == 0.3
    assert t.column("dropout")[2] == pytest.approx(0.1 + 0.2 / 3, abs=1e-4)
    assert t.column("mixup")[0] == 0.0 and t.column("mixup")[-1] == 0.3
    assert [p.stage(e, 10) for e in range(10)] == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"stages": 1}, "stages"),
        ({"image_size": (16,)}, "image_size"),
        ({"image_size": (4, 32)}, "image_size"),
        ({"dropout": (0.1, 1.5)}, "dropout"),
        ({"mixup": (-1.0, 0.2)}, "mixup"),
    ],
)
def test_progressive_rejects_bad_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        train.Progressive(**kw)


def test_progressive_needs_an_epoch_per_stage():
    with pytest.raises(ValueError, match="epochs must be an int >= 4, got 3"):
        train.Progressive().at(0, 3)


# ---------------------------------------------------------------------------------------------
# fit and evaluate


def easy(n: int, seed: int) -> torch.utils.data.TensorDataset:
    """Noise images whose class shifts one colour channel: a problem any network learns fast."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    x = torch.randn(n, 3, 32, 32, generator=g)
    x[:, 0] += (y.float() - 4.5)[:, None, None] / 2
    return torch.utils.data.TensorDataset(x, y)


# ---------------------------------------------------------------------------------------------
# the recipe as fit builds and applies it (each test fails if its piece leaves the recipe)


class FixedLogits(nn.Module):
    """Gives the same logits for every image, whatever the training does (w gets no gradient)."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.register_buffer("logits", logits.clone())
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1) + 0 * self.w


def trained_optimizer(sets, tmp_path, **kw) -> tuple[dict, dict[int, torch.Size]]:
    """The optimiser fit built, from its checkpoint after one step: param groups and shapes."""
    kw = {"batch_size": 32, "limit_train": 32, "progress": False, "log": None, "workers": 0, **kw}
    train.fit(tiny(), sets[0], 1, checkpoint_dir=tmp_path, **kw)
    opt = train.load_checkpoint(tmp_path)["optimizer"]
    state = opt["state"]
    # every parameter's state tensor (momentum buffer, Adam's first moment) has its shape
    shapes = {i: next(v for v in s.values() if v.ndim > 0).shape for i, s in state.items()}
    return opt, shapes


DECAYED = {(8, 3, 3, 3), (16, 8, 3, 3), (10, 16)}  # Tiny's conv and linear weights
NOT_DECAYED = [(8,), (8,), (16,), (10,)]  # its BN scale and shift, conv and linear biases


def test_fit_decays_weights_and_never_norms_or_biases(sets, tmp_path, one_thread):
    opt, shapes = trained_optimizer(sets, tmp_path)
    groups = opt["param_groups"]
    assert [g["weight_decay"] for g in groups] == [5e-4, 0.0]  # the SGD default
    assert {tuple(shapes[i]) for i in groups[0]["params"]} == DECAYED
    assert len(groups[0]["params"]) == len(DECAYED)
    assert sorted(tuple(shapes[i]) for i in groups[1]["params"]) == sorted(NOT_DECAYED)
    opt, _ = trained_optimizer(sets, tmp_path / "wd", weight_decay=0.01)
    assert [g["weight_decay"] for g in opt["param_groups"]] == [0.01, 0.0]
    opt, shapes = trained_optimizer(sets, tmp_path / "adamw", optimizer="adamw")
    assert [g["weight_decay"] for g in opt["param_groups"]] == [0.05, 0.0]  # the AdamW default
    assert {tuple(shapes[i]) for i in opt["param_groups"][0]["params"]} == DECAYED


def test_fit_uses_sgd_with_nesterov_momentum(sets, tmp_path, one_thread):
    opt, shapes = trained_optimizer(sets, tmp_path)
    for g in opt["param_groups"]:
        assert g["momentum"] == 0.9 and g["nesterov"] is True and g["dampening"] == 0
        assert g["initial_lr"] == pytest.approx(0.1 * 32 / 128)  # 0.1 at batch 128, scaled
    assert len(shapes) == len(DECAYED) + len(NOT_DECAYED)  # a momentum buffer for every tensor
    assert all(s["momentum_buffer"] is not None for s in opt["state"].values())
    opt, _ = trained_optimizer(sets, tmp_path / "plain", momentum=0.5, nesterov=False)
    assert all(g["momentum"] == 0.5 and g["nesterov"] is False for g in opt["param_groups"])


def smoothed_cross_entropy(logits: list[float], label: int, eps: float) -> float:
    """Label-smoothed cross-entropy by hand: the target puts 1 - eps + eps/K on the label and
    eps/K on every class."""
    top = max(logits)
    log_z = top + math.log(sum(math.exp(z - top) for z in logits))
    log_p = [z - log_z for z in logits]
    k = len(logits)
    return -(1 - eps) * log_p[label] - eps / k * sum(log_p)


@pytest.mark.parametrize("smoothing", [None, 0.0, 0.3])
def test_fit_trains_on_label_smoothed_cross_entropy(smoothing, one_thread):
    z = [0.3 * k - 1.0 for k in range(10)]
    z[3] = 2.5  # class 3 is the model's answer
    tr = easy(64, 0)
    kw = {} if smoothing is None else {"label_smoothing": smoothing}
    h = train.fit(
        FixedLogits(torch.tensor(z)),
        tr,
        1,
        batch_size=32,
        progress=False,
        log=None,
        workers=0,
        **kw,
    )
    eps = 0.1 if smoothing is None else smoothing  # fit's default is 0.1
    labels = tr.tensors[1].tolist()
    expected = sum(smoothed_cross_entropy(z, y, eps) for y in labels) / len(labels)
    assert h[0]["train loss"] == pytest.approx(expected, rel=1e-5)
    assert h[0]["train accuracy"] == labels.count(3) / len(labels)


def test_fit_warms_the_learning_rate_up_then_decays_it(one_thread):
    # one step an epoch, so each epoch's lr is the schedule after that many steps: a warm-up
    # over 4 of the 8 steps (lr * (step + 1) / 4), then a cosine from lr to zero
    kw = {"batch_size": 32, "limit_train": 32, "progress": False, "log": None, "workers": 0}
    h = train.fit(FixedLogits(torch.zeros(10)), easy(32, 0), 8, lr=0.2, warmup_epochs=4, **kw)
    c = math.cos(math.pi / 4)
    expected = [0.5, 0.75, 1.0, 1.0, (1 + c) / 2, 0.5, (1 - c) / 2, 0.0]
    assert h.column("lr") == pytest.approx([0.2 * f for f in expected], abs=1e-12)
    # the default warm-up is a tenth of the run: 0.8 epochs, round(0.8) = 1 step
    h = train.fit(FixedLogits(torch.zeros(10)), easy(32, 0), 8, lr=0.2, **kw)
    cosine = [0.5 * (1 + math.cos(math.pi * (s - 1) / 7)) for s in range(1, 9)]
    assert h.column("lr") == pytest.approx([0.2 * f for f in cosine], abs=1e-12)


def test_mixup_mixes_images_and_targets_with_the_lambda_it_draws():
    x = torch.arange(8 * 3 * 2 * 2, dtype=torch.float32).reshape(8, 3, 2, 2)
    y = torch.arange(8)
    torch.manual_seed(16)
    lam = float(torch.distributions.Beta(0.4, 0.4).sample())  # from torch's global generator
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(2))  # from the epoch's
    assert 0.05 < lam < 0.95 and lam != pytest.approx(0.5, abs=0.05)
    assert not torch.equal(perm, torch.arange(8))
    torch.manual_seed(16)
    mixed, ya, yb, got = train.mixup(x, y, 0.4, torch.Generator().manual_seed(2))
    assert got == lam
    assert torch.allclose(mixed, lam * x + (1 - lam) * x[perm])
    assert torch.equal(ya, y) and torch.equal(yb, y[perm])
    torch.manual_seed(12)  # another draw, another lambda
    assert train.mixup(x, y, 0.4, torch.Generator().manual_seed(2))[3] != lam
    same, ya, yb, one = train.mixup(x, y, 0.0, torch.Generator())  # alpha 0: no mixing
    assert one == 1.0 and torch.equal(same, x) and torch.equal(ya, y)


def test_a_mixup_step_weighs_both_targets_by_lambda():
    torch.manual_seed(0)
    net = nn.Linear(6, 10)
    x, y = torch.randn(8, 6), torch.arange(8)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    ce = nn.CrossEntropyLoss(label_smoothing=0.1)
    cpu = torch.device("cpu")
    config = train.TrainConfig(epochs=1, label_smoothing=0.1)
    stepper = Trainer(net, config, cpu, opt, sched, scaler, ce, net)
    # the lambda and the pairing, drawn by hand from the generators the step draws from
    torch.manual_seed(9)
    lam = float(torch.distributions.Beta(0.4, 0.4).sample())
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits = net(lam * x + (1 - lam) * x[perm])
        expected = lam * ce(logits, y) + (1 - lam) * ce(logits, y[perm])
        alone = ce(logits, y), ce(logits, y[perm])
    torch.manual_seed(9)
    loss, got_logits = stepper.step(x, y, 0.4, torch.Generator().manual_seed(3))
    assert torch.allclose(got_logits, logits)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert 0.1 < lam < 0.9  # so the mix differs from either target alone:
    assert all(loss.item() != pytest.approx(a.item(), rel=1e-3) for a in alone)


def test_fit_returns_a_history_and_the_loss_goes_down(one_thread):
    kw = {"optimizer": "adamw", "lr": 1e-2, "weight_decay": 0.0, "label_smoothing": 0.0}
    h = fit(tiny(), (easy(320, 0), easy(160, 1)), epochs=6, **kw)
    assert isinstance(h, Table) and [r["epoch"] for r in h] == list(range(1, 7))
    expected = {"epoch", "lr", "train loss", "train accuracy", "test loss", "test accuracy"}
    assert expected | set(TIMING) == set(h.columns)
    losses = h.column("train loss")
    assert losses[-1] < 0.7 * losses[0], losses
    assert h[-1]["test accuracy"] > 0.5, h.column("test accuracy")  # chance is 0.1
    assert h[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # the cosine ends at zero
    assert all(r["images/s"] > 0 and r["seconds"] > 0 for r in h)


def test_evaluate_matches_a_hand_count(sets):
    _, te = sets
    m = tiny().eval()
    scores = train.evaluate(m, te, batch_size=40)
    x, y = te.batch(range(len(te)))
    with torch.no_grad():
        logits = m(x)
    assert scores["images"] == N_TEST
    assert scores["accuracy"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert scores["loss"] == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    m.train()
    train.evaluate(m, te, limit=10)
    assert m.training  # the mode is restored


def test_evaluate_scores_the_same_in_either_memory_layout(sets):
    _, te = sets
    m = tiny().eval()
    nchw = train.evaluate(m, te, channels_last=False)
    nhwc = train.evaluate(m, te, channels_last=True)
    assert nchw["accuracy"] == nhwc["accuracy"]
    assert nchw["loss"] == pytest.approx(nhwc["loss"], rel=1e-5)
    with pytest.raises(TypeError, match="channels_last must be True or False"):
        train.evaluate(m, te, channels_last="yes")


def test_fit_trains_channels_last_on_the_cpu_by_default(sets, one_thread, tmp_path):
    fit(tiny(), sets, epochs=1, checkpoint_dir=tmp_path)
    assert train.load_checkpoint(tmp_path)["config"]["channels_last"] is True


def test_same_seed_same_history_and_weights(sets, one_thread):
    a, b, c = tiny(), tiny(), tiny()
    ha, hb = fit(a, sets, seed=3), fit(b, sets, seed=3)
    assert strip(ha) == strip(hb) and same_weights(a, b)
    hc = fit(c, sets, seed=4)
    assert strip(hc) != strip(ha)  # the seed drives data order and augmentation


def test_resume_after_an_interruption_is_bit_identical(sets, one_thread, tmp_path):
    straight = tiny()
    h_straight = fit(straight, sets, epochs=4, checkpoint_dir=tmp_path / "a")

    first = tiny()
    h1 = fit(first, sets, epochs=4, checkpoint_dir=tmp_path / "b", stop_after=2)
    assert len(h1) == 2
    torch.manual_seed(1234)  # the resumed run must not depend on the state it is started in
    resumed = tiny(seed=99)  # other initial weights: they come from the checkpoint
    h2 = fit(resumed, sets, epochs=4, checkpoint_dir=tmp_path / "b", resume=True)
    assert [r["epoch"] for r in h2] == [1, 2, 3, 4]
    assert strip(h2) == strip(h_straight)
    assert same_weights(resumed, straight)


def test_an_interruption_after_the_checkpoint_loses_nothing(sets, one_thread, tmp_path):
    class Interrupt(Exception):
        pass

    def log(line):
        if line.startswith("epoch 2/"):
            raise Interrupt

    straight = tiny()
    fit(straight, sets, epochs=3)
    with pytest.raises(Interrupt):
        fit(tiny(), sets, epochs=3, checkpoint_dir=tmp_path, log=log)
    assert train.load_checkpoint(tmp_path)["epoch"] == 2
    resumed = tiny(seed=5)
    fit(resumed, sets, epochs=3, checkpoint_dir=tmp_path, resume=True)
    assert same_weights(resumed, straight)


def test_checkpoint_holds_everything_and_loads_weights_only(sets, tmp_path):
    m = tiny()
    fit(m, sets, epochs=2, checkpoint_dir=tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["history.json", "last.pt"]  # no temporary files left
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ckpt["format"] == train.FORMAT and ckpt["epoch"] == 2
    assert {"model", "optimizer", "scheduler", "scaler", "rng", "history", "config"} <= set(ckpt)
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in ckpt["model"].items())
    assert len(ckpt["history"]) == 2 and ckpt["config"]["epochs"] == 2
    assert {"torch", "python"} <= set(ckpt["rng"])
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["history"] == ckpt["history"]


def test_a_finished_run_resumes_as_a_load(sets, tmp_path):
    m = tiny()
    h = fit(m, sets, epochs=2, checkpoint_dir=tmp_path)
    again = tiny(seed=7)
    h2 = fit(again, sets, epochs=2, checkpoint_dir=tmp_path, resume=True)
    assert list(h2) == list(h) and same_weights(again, m)


def test_never_overwrites_a_checkpoint_without_resume(sets, tmp_path):
    fit(tiny(), sets, epochs=1, checkpoint_dir=tmp_path)
    before = (tmp_path / "last.pt").read_bytes()
    with pytest.raises(FileExistsError, match="resume=True"):
        fit(tiny(), sets, epochs=1, checkpoint_dir=tmp_path)
    assert (tmp_path / "last.pt").read_bytes() == before


def test_a_checkpoint_from_another_model_is_refused_before_training(sets, tmp_path):
    fit(tiny(), sets, epochs=1, checkpoint_dir=tmp_path)
    other = tiny(width=4)
    before = {k: v.clone() for k, v in other.state_dict().items()}
    match = r"the run differs \(model: its weights have other shapes \(features.0.weight \[8, 3"
    with pytest.raises(ValueError, match=match):
        fit(other, sets, epochs=1, checkpoint_dir=tmp_path, resume=True)
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())


def test_resume_with_other_settings_is_refused(sets, tmp_path):
    fit(tiny(), sets, epochs=2, checkpoint_dir=tmp_path, stop_after=1)
    with pytest.raises(ValueError, match="the run differs.*epochs: 2 then, 3 now"):
        fit(tiny(), sets, epochs=3, checkpoint_dir=tmp_path, resume=True)


def test_progressive_training_follows_the_schedule(sets, one_thread):
    p = train.Progressive(stages=2, image_size=(16, 32), dropout=(0.1, 0.3), mixup=(0.0, 0.2))
    m = tiny()
    h = fit(m, sets, epochs=2, progressive=p)
    assert h.column("image size") == [16, 32]
    assert h.column("dropout") == [0.1, 0.3] and h.column("mixup") == [0.0, 0.2]
    assert m.classifier[0].p == 0.3  # the last stage's dropout is set on the model


def test_load_checkpoint_rejects_other_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train.load_checkpoint(tmp_path)
    torch.save({"a": 1}, tmp_path / "last.pt")
    with pytest.raises(ValueError, match="not a shufflebook checkpoint"):
        train.load_checkpoint(tmp_path)


@pytest.mark.parametrize(
    "kw, error, match",
    [
        ({"epochs": 0}, ValueError, "epochs must be an int >= 1, got 0"),
        ({"epochs": 2.0}, TypeError, "epochs must be an int >= 1, got 2.0"),
        ({"optimizer": "adam"}, ValueError, "optimizer must be one of"),
        ({"lr": -1.0}, ValueError, "lr must be"),
        ({"lr": 0}, ValueError, "lr must be a finite number > 0, got 0"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": 500}, ValueError, "must not exceed the training set"),
        ({"label_smoothing": 2.0}, ValueError, "label_smoothing"),
        ({"warmup_epochs": 9.0}, ValueError, "warmup_epochs"),
        ({"amp": True}, ValueError, "amp=True needs a CUDA device"),
        ({"progressive": "yes"}, TypeError, "progressive must be"),
        ({"progressive": train.Progressive()}, ValueError, "stages"),
        ({"stop_after": 0}, ValueError, "stop_after"),
        ({"limit_train": 0}, ValueError, "limit_train"),
        ({"resume": 1}, TypeError, "resume must be True or False"),
        ({"log": "print"}, TypeError, "log must be callable, got .print."),
        ({"device": "tpu"}, ValueError, "device must be .*'tpu'"),
    ],
)
def test_fit_rejects_bad_input_before_any_work(sets, kw, error, match):
    m = tiny()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    kw = {"epochs": 2, **kw}
    with pytest.raises(error, match=match):
        fit(m, sets, **kw)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_fit_rejects_non_models_and_non_datasets(sets):
    tr, _ = sets
    with pytest.raises(TypeError, match="model must be"):
        train.fit("model", tr, 1)
    with pytest.raises(TypeError, match="train_data must be"):
        train.fit(tiny(), [1, 2, 3], 1)


# ---------------------------------------------------------------------------------------------
# runs of zoo models and the command line


def test_parse_data_specs():
    assert train.parse_data("embedded") == ("embedded", None)
    assert train.parse_data("cifar10:/data") == ("cifar10", "/data")
    assert train.parse_data("folder:imagenette2") == ("folder", "imagenette2")
    for bad in ("cifar", "cifar10", "folder:", "embedded:x", "imagenet:/x"):
        with pytest.raises(ValueError, match="data must be .*ImageNet-style\\), got"):
            train.parse_data(bad)


def test_run_keys_the_folder_by_settings_and_reloads_a_finished_run(tmp_path, one_thread):
    kw = {"epochs": 1, "limit_train": 64, "limit_test": 32, "batch_size": 32, "runs_dir": tmp_path}
    kw |= {"progress": False, "log": None, "workers": 0}
    a = train.run("shufflenet_v2_x0_5", **kw)
    assert a.checkpoint_dir.parent == tmp_path and a.checkpoint_dir.name.startswith(
        "shufflenet_v2_x0_5-"
    )
    assert 0.0 <= a.test_accuracy <= 1.0 and not a.model.training
    lines = []
    b = train.run("shufflenet_v2_x0_5", **(kw | {"log": lines.append}))
    assert lines == [] and list(b.history) == list(a.history) and same_weights(a.model, b.model)
    c = train.run("shufflenet_v2_x0_5", **(kw | {"lr": 0.05}))
    assert c.checkpoint_dir != a.checkpoint_dir  # another setting, another folder
    # an interrupted run (stop_after) is continued by the same call without it
    kw2 = kw | {"epochs": 2}
    d = train.run("shufflenet_v2_x0_5", **(kw2 | {"stop_after": 1}))
    assert len(d.history) == 1
    e = train.run("shufflenet_v2_x0_5", **kw2)
    assert e.checkpoint_dir == d.checkpoint_dir and len(e.history) == 2
    assert strip(e.history)[0] == strip(d.history)[0]
    t = results.summary([a, e])
    assert t.column("model") == ["shufflenet_v2_x0_5"] * 2 and t.column("epochs") == [1, 2]
    assert t[1]["test accuracy"] == e.test_accuracy and t[0]["params"] > 0.3
    assert t.unit("params") == "M" and t.unit("train time") == "s"
    assert t[1]["train time"] == pytest.approx(sum(e.history.column("seconds")))
    named = results.summary({"one epoch": a, "two epochs": e})
    assert named.column("model") == ["one epoch", "two epochs"] and named.column("epochs") == [1, 2]
    with pytest.raises(TypeError, match="runs' entries must be a .*Run, got a Table"):
        results.summary([a.history])
    with pytest.raises(TypeError, match="runs' entries must be a .*Run, got a Table"):
        results.summary({"a": a.history})


def test_run_rejects_unknown_models_and_own_settings(tmp_path):
    with pytest.raises(ValueError, match="model must be one of shufflelib.models.names"):
        train.run("resnet50", runs_dir=tmp_path)
    with pytest.raises(ValueError, match="data must be .*ImageNet-style\\), got"):
        train.run("mobilenet_v2", data="imagenet", runs_dir=tmp_path)
    with pytest.raises(TypeError, match="run\\(\\) chooses resume"):
        train.run("mobilenet_v2", resume=False, runs_dir=tmp_path)


def test_folder_data_needs_train_and_val(tmp_path):
    with pytest.raises(FileNotFoundError, match="train/ and val/"):
        train.run("mobilenet_v2", data=f"folder:{tmp_path}", runs_dir=tmp_path)


def cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    environ = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "shufflelib.train", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environ,
        cwd=ROOT,
    )


QUICK = ["--limit-train", "64", "--limit-test", "32", "--batch-size", "32", "--workers", "0"]


def test_cli_trains_interrupts_resumes_and_prints_the_accuracy_last(tmp_path, capsys):
    ckpt = str(tmp_path / "run")
    args = ["--model", "shufflenet_v2_x0_5", "--epochs", "2", "--checkpoint-dir", ckpt, *QUICK]
    assert train.main([*args[:3], "1", *args[4:]]) == 0  # --epochs 1 ... as a first run
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("test accuracy: ") and len(out[-1].split(": ")[1]) == 6
    # the folder now holds a 1-epoch run: a 2-epoch run must not overwrite it ...
    assert train.main(args) == 2
    assert "--resume" in capsys.readouterr().err
    # ... and resuming with other settings is refused with the reason
    assert train.main([*args, "--resume"]) == 2
    assert "epochs: 1 then, 2 now" in capsys.readouterr().err
    assert train.main([*args[:3], "1", *args[4:], "--resume"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == out[-1]  # a finished run reloads


def test_cli_ctrl_c_says_where_the_checkpoint_is(tmp_path, capsys, monkeypatch):
    ckpt = tmp_path / "run"
    args = ["--model", "shufflenet_v2_x0_5", "--epochs", "2", "--checkpoint-dir", str(ckpt), *QUICK]

    real_fit = train.fit

    def interrupted_after_one_epoch(*a, **kw):
        kw = {"batch_size": 32, "workers": 0, "progress": False, "log": None}
        real_fit(tiny(), data.embedded("train", n=64), 1, checkpoint_dir=ckpt, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "fit", interrupted_after_one_epoch)
    assert train.main(args) == 130
    err = capsys.readouterr().err
    assert f"checkpoint of the last finished epoch is in {ckpt}" in err and "--resume" in err
    assert "Traceback" not in err

    def interrupted_at_once(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "fit", interrupted_at_once)
    assert train.main(["--model", "shufflenet_v2_x0_5", *QUICK]) == 130
    assert "before any checkpoint was written (--checkpoint-dir" in capsys.readouterr().err


def test_cli_help_documents_every_option():
    r = cli("--help")
    assert r.returncode == 0
    for option in (
        "--model",
        "--data",
        "--epochs",
        "--batch-size",
        "--lr",
        "--seed",
        "--small-input",
        "--checkpoint-dir",
        "--resume",
        "--limit-train",
        "torchrun",
    ):
        assert option in r.stdout, option
    assert "shufflenet_v2_x1_0" in r.stdout and "cifar10:ROOT" in r.stdout


@pytest.mark.parametrize(
    "args, match",
    [
        (["--model", "resnet50"], "model must be one of shufflelib.models.names.*'resnet50'"),
        (["--model", "mobilenet_v2", "--data", "imagenet"], "data must be .*got 'imagenet'"),
        (["--model", "mobilenet_v2", "--epochs", "0"], "epochs must be an int >= 1, got 0"),
        (["--model", "mobilenet_v2", "--resume"], "--resume needs --checkpoint-dir"),
        (["--model", "shufflenet_v2_x0_5", "--width-mult", "0.5"], "mobilenet_v2 only"),
        (["--model", "mobilenet_v2", "--lr", "nan"], "lr must be a finite number > 0, got nan"),
        (["--model", "mobilenet_v2", "--workers", "-1"], "workers must be an int >= 0, got -1"),
        (["--model", "mobilenet_v2", "--limit-train", "0"], "limit_train must be an int >= 1"),
        (["--model", "mobilenet_v2", "--image-size", "7"], "image_size must be an int >= 8"),
        (["--model", "mobilenet_v2", "--image-size", "64"], "image_size applies to folder data"),
        (["--model", "mobilenet_v2", "--device", "tpu"], "device must be 'cpu', 'cuda'.*'tpu'"),
    ],
)
def test_cli_errors_are_one_line_and_come_before_any_work(args, match, capsys, monkeypatch):
    def no_data(*a, **k):
        raise AssertionError("the data was made before the arguments were checked")

    monkeypatch.setattr(runs, "datasets", no_data)
    assert train.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(f"error: .*{match}.*", err), err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_cli_missing_cifar10_says_how_to_get_it(tmp_path, capsys):
    assert train.main(["--model", "mobilenet_v2", "--data", f"cifar10:{tmp_path}"]) == 2
    assert "download=True" in capsys.readouterr().err


def test_torchrun_two_processes_end_with_identical_weights(tmp_path):
    """DistributedDataParallel on CPU (gloo): two processes, a shared checkpoint from rank 0."""
    ckpt = tmp_path / "ddp"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "shufflelib.train",
            "--model",
            "shufflenet_v2_x0_5",
            "--epochs",
            "2",
            "--checkpoint-dir",
            str(ckpt),
            *QUICK,
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.strip().splitlines()
    assert "2 processes" in lines[0]
    assert any(line.startswith("weights identical on all 2 processes") for line in lines), lines
    assert lines[-1].startswith("test accuracy: ")
    assert sum(line.startswith("test accuracy") for line in lines) == 1  # rank 0 alone reports
    ckpt_data = train.load_checkpoint(ckpt)
    assert ckpt_data["config"]["world_size"] == 2 and ckpt_data["epoch"] == 2
    assert ckpt_data["config"]["train_images"] == 64


def test_book_settings_are_shared_and_checked():
    quick, full = train.book_settings(), train.book_settings(full=True, data="cifar10:data")
    assert quick["epochs"] < full["epochs"] and "limit_train" not in quick
    assert full["data"] == "cifar10:data" and quick["data"] == "embedded"
    assert "augment" not in quick  # the default: augmented
    assert quick["batch_size"] == 32 and quick["lr"] == 0.05 and quick["label_smoothing"] == 0
    assert set(train.BOOK_MODELS) == {
        "shufflenet_v1_g3_x0_5",
        "shufflenet_v2_x0_5",
        "mobilenet_v2",
        "efficientnet_v2_t",
    }
    with pytest.raises(ValueError, match="data must be .*ImageNet-style\\), got"):
        train.book_settings(data="imagenet")
    with pytest.raises(TypeError, match="full must be True or False"):
        train.book_settings(full="yes")


def test_progress_bar_shows_loss_accuracy_and_throughput(sets, capsys):
    fit(tiny(), sets, epochs=1, progress=True, log=print)
    captured = capsys.readouterr()
    assert "epoch 1/1" in captured.err and "img_s=" in captured.err and "acc=" in captured.err
    assert captured.out.startswith("epoch 1/1 | train loss ")


def test_augmentation_can_be_left_out_for_the_embedded_data_only(tmp_path):
    tr, te, classes = train.datasets("embedded", 0, False, None, False)
    assert tr.augment is False and te.augment is False and classes == 10
    assert train.datasets("embedded", 0, False, None, None)[0].augment is True
    with pytest.raises(ValueError, match="augment=False is for the embedded data only"):
        train.datasets(f"cifar10:{tmp_path}", 0, False, None, False)
    with pytest.raises(TypeError, match="augment must be True or False"):
        train.datasets("embedded", 0, False, None, "no")


def test_the_code_key_changes_with_the_training_code_only(tmp_path, monkeypatch):
    """source_digest over a copy of the library's sources: an edit to a network, layer, op, the
    data or the trainer changes it; an edit anywhere else, or no edit, leaves it as it was."""
    package = Path(train.__file__).parent.parent
    copy = tmp_path / "shufflelib"
    for src in package.rglob("*.py"):
        dest = copy / src.relative_to(package)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(src.read_bytes())
    monkeypatch.setattr(runs, "__file__", str(copy / "train" / "runs.py"))  # hash the copy

    def digest() -> str:
        return train.source_digest.__wrapped__(train.TRAINING_CODE)  # past the cache

    first = digest()
    assert first == train.source_digest() and len(first) == 12  # the copy is the library
    assert digest() == first  # nothing changed, nothing moves
    files = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*.py"))
    training = ["data.py", "layers.py", "ops.py"]
    training += [f"models/{f}.py" for f in ("shufflenet_v1", "shufflenet_v2")]
    training += [f"models/{f}.py" for f in ("mobilenet_v2", "efficientnet_v2")]
    training += [f for f in files if f.startswith("train/")]
    others = [f for f in files if f not in training]
    assert len(training) > 12 and {"__init__.py", "plot.py", "results.py"} <= set(others)
    assert {"validate.py", "bench.py", "files.py", "models/__init__.py"} <= set(others)
    for rel in files:
        path = copy / rel
        original = path.read_bytes()
        path.write_bytes(original + b"\n# an edit\n")
        assert (digest() != first) == (rel in training), rel
        path.write_bytes(original)
        assert digest() == first, rel
    (copy / "models" / "new_net.py").write_text("# a network the book does not train\n")
    assert digest() == first
    (copy / "train" / "new_part.py").write_text("# a new part of the trainer\n")
    assert digest() != first


def test_a_run_folder_changes_with_every_setting_and_only_with_one(sets, tmp_path, monkeypatch):
    folders: list[Path] = []

    def record(model, train_set, epochs, **kw):  # no training: only the folder run chose
        folders.append(kw["checkpoint_dir"])
        return Table([{"epoch": epochs, "test accuracy": 0.0}])

    monkeypatch.setattr(runs, "fit", record)
    monkeypatch.setattr(runs, "datasets", lambda *a, **k: (*sets, 10))

    def folder(name="shufflenet_v2_x0_5", **kw) -> Path:
        train.run(name, **{"runs_dir": tmp_path, "device": "cpu", **kw})
        return folders[-1]

    base = folder()
    assert base.parent == tmp_path and base.name.startswith("shufflenet_v2_x0_5-")
    assert folder() == base  # the same call: the same run
    # what does not change the trained weights does not change the folder
    assert folder(progress=True, log=None, workers=1, device=torch.device("cpu")) == base
    changed = [
        folder(epochs=3),
        folder(seed=1),
        folder(lr=0.05),
        folder(batch_size=64),
        folder(label_smoothing=0.0),
        folder(warmup_epochs=0.5),
        folder(augment=False),
        folder(small_input=False),
        folder(data="cifar10:elsewhere"),
        folder("mobilenet_v2"),
        folder("mobilenet_v2", model_kwargs={"width_mult": 0.5}),
        folder(progressive=train.Progressive(), epochs=4),
    ]
    assert len({base, *changed}) == len(changed) + 1, changed
    monkeypatch.setattr(runs, "source_digest", lambda: "another-code")
    assert folder() != base  # other training code: another run
