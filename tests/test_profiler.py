"""shufflelib.profiler: where a forward pass spends its time, and nothing else touched."""

import os

import pytest
import torch
from torch import nn

from shufflelib import profiler

pytestmark = pytest.mark.usefixtures("one_thread")


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1))


def test_profile_by_operator_shares_add_up():
    table = profiler.profile_by_operator(net().eval(), torch.randn(2, 3, 32, 32), runs=2, top=3)
    assert len(table) == 4  # three operators and the rest
    assert sum(table.column("share")) == pytest.approx(1.0)
    assert any("convolution" in k for k in table.column("kind"))
    assert "input (2, 3, 32, 32)" in table.title and "thread" in table.note
    assert table.unit("self time") == "ms" and table.header("self time") == "self time (ms)"


def test_operator_table_gives_self_time_per_pass_in_ms():
    table = profiler.operator_table({"aten::conv2d": (0.004, 4), "aten::relu": (0.001, 4)}, 2)
    assert table.column("operator") == ["aten::conv2d", "aten::relu"]
    assert table.column("self time") == pytest.approx([2.0, 0.5])  # seconds / runs, in ms
    assert table.column("calls") == [2, 2] and table.units == {"self time": "ms"}


def test_profile_leaves_the_process_streams_and_the_model_alone(monkeypatch):
    """No redirection of file descriptor 2 (or any other), and the model keeps its mode."""
    touched = []
    for name in ("dup", "dup2", "open", "close"):
        monkeypatch.setattr(os, name, lambda *a, _name=name: touched.append((_name, a)))
    model = net().train()
    modes = [m.training for m in model.modules()]
    profiler.profile_by_operator(model, torch.randn(2, 3, 16, 16), runs=1, top=2)
    assert touched == []
    assert [m.training for m in model.modules()] == modes


def test_quiet_stderr_hushes_file_descriptor_2_only_while_recording_and_restores_it():
    calls = []
    real_dup2 = os.dup2

    def dup2(fd, fd2):
        calls.append(fd2)
        return real_dup2(fd, fd2)

    before = os.fstat(2)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(os, "dup2", dup2)
        profiler.profile_by_operator(net(), torch.randn(2, 3, 16, 16), runs=1, quiet_stderr=True)
    assert calls == [2, 2], "redirected once, restored once"
    after = os.fstat(2)
    assert (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino)


def test_operator_kind_first_match_wins():
    assert profiler.operator_kind("aten::mkldnn_convolution") == "convolution"
    assert profiler.operator_kind("quantized::qconv2d_pointwise") == "int8 convolution (oneDNN)"
    assert profiler.operator_kind("aten::view") == profiler.OTHER


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (
            lambda: profiler.profile_by_operator(net(), torch.ones(1, 3, 8, 8), runs=0),
            ValueError,
            "runs must be an int >= 1, got 0",
        ),
        (
            lambda: profiler.profile_by_operator(net(), torch.ones(1, 3, 8, 8), top=True),
            TypeError,
            "top must be an int >= 1, got True",
        ),
        (
            lambda: profiler.profile_by_operator("net", torch.ones(1, 3, 8, 8)),
            TypeError,
            "fn must be callable, got 'net'",
        ),
        (
            lambda: profiler.profile_by_operator(net(), torch.ones(3, 8, 8)),
            ValueError,
            r"x must be a 4-d torch.Tensor, got shape \(3, 8, 8\)",
        ),
        (
            lambda: profiler.profile_by_operator(net(), torch.ones(1, 3, 8, 8), label=None),
            TypeError,
            "label must be a str, got None",
        ),
        (lambda: profiler.operator_kind(3), TypeError, "op must be a str, got 3"),
    ],
)
def test_bad_input(call, exc, words):
    with pytest.raises(exc, match=words):
        call()
