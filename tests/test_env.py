import platform

import pytest
import torch

from shufflelib import env
from shufflelib.env import (
    MachineInfo,
    instruction_sets,
    machine_info,
    machine_part,
    pick_device,
)
from shufflelib.tables import count

FAST = {"min_run_time": 0.01}


@pytest.fixture
def no_accelerator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_machine_info_cpu():
    info = machine_info("cpu")
    assert isinstance(info, MachineInfo)
    assert info.device == "cpu"
    assert info.threads == torch.get_num_threads()
    assert info.torch == torch.__version__
    assert info.python == platform.python_version()
    assert isinstance(info.cores, int) and info.cores >= 1
    assert isinstance(info.cpu, str) and info.cpu
    text = str(info)
    assert torch.__version__ in text
    assert "cpu" in text
    assert platform.python_version() in text
    assert count(info.threads, "thread") in text and info.cpu in text  # "1 thread", "2 threads"
    assert "\n" not in text


def test_machine_info_default_device(no_accelerator):
    info = machine_info()
    assert info.device == "cpu"
    assert info == machine_info(torch.device("cpu"))


def test_pick_device_without_accelerator(no_accelerator):
    assert pick_device() == torch.device("cpu")


def test_pick_device_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device() == torch.device("cuda")


def test_pick_device_named_cpu():
    assert pick_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["cuda", "mps"])
def test_pick_device_named_but_unavailable(name, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match=f"'{name}'.*not available"):
        pick_device(name)


@pytest.mark.parametrize("name", ["cuda", "mps"])
def test_pick_device_named_and_available(name, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device(name) == torch.device(name)


@pytest.mark.parametrize("name", ["tpu", "CPU", "cuda:0", ""])
def test_pick_device_unknown(name):
    with pytest.raises(ValueError, match=repr(name)):
        pick_device(name)


def test_machine_part_drops_the_sampling_details():

    note = "CPU (2 cores, 1 thread) | device cpu | torch 2 | 6 interleaved rounds (cap); ratio: x"
    assert machine_part(note) == "CPU (2 cores, 1 thread) | device cpu | torch 2"
    assert machine_part("CPU | device cpu") == "CPU | device cpu"


def test_a_named_cuda_device_is_checked_by_index(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"'cuda:2' was asked for but this machine has 2 CUDA"):
        pick_device("cuda:2")


def test_setup_names_the_device_argument_it_was_given(no_accelerator, capsys):
    import shufflelib

    with pytest.raises(ValueError, match=r"device 'cuda:0' was asked for but is not available"):
        shufflelib.setup(device="cuda:0")
    with pytest.raises(ValueError, match="device must be one of 'cpu', 'cuda', 'mps'; got 'xla'"):
        shufflelib.setup(device="xla")
    with pytest.raises(TypeError, match="device must be .*got 3"):
        shufflelib.setup(device=3)
    assert capsys.readouterr().out == "", "nothing is printed before the arguments are checked"


def test_machine_info_refuses_an_unknown_device():
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda', 'cuda:N', 'mps'.*'gpu'"):
        machine_info("gpu")


def test_the_machine_line_ends_with_the_instruction_sets():
    info = MachineInfo("CPU", 2, 2, "cpu", "2.7", "3.11", ("AVX2", "AVX-512", "VNNI"))
    assert str(info).endswith("| torch 2.7 | Python 3.11 | AVX2 AVX-512 VNNI")
    bare = MachineInfo("CPU", 2, 2, "cpu", "2.7", "3.11")
    assert str(bare).endswith("| Python 3.11")  # none known (an ARM CPU, macOS): no part
    assert machine_info("cpu").instruction_sets == instruction_sets()


@pytest.mark.parametrize(
    "flags, found",
    [
        ("fpu sse avx2 avx512f avx512_vnni avx512_bf16", ("AVX2", "AVX-512", "VNNI", "bf16")),
        ("fpu avx2 avx_vnni", ("AVX2", "VNNI")),
        ("avx2 avx512f amx_bf16 amx_tile amx_int8", ("AVX2", "AVX-512", "bf16", "AMX")),
        ("fp asimd", ()),
    ],
)
def test_instruction_sets_are_read_from_the_cpu_flags(flags, found, monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: CPU\nflags\t\t: {flags}\n")
    real_open = open
    monkeypatch.setattr(env, "open", lambda *a, **k: real_open(cpuinfo), raising=False)
    instruction_sets.cache_clear()
    try:
        assert instruction_sets() == found
    finally:
        monkeypatch.undo()
        instruction_sets.cache_clear()


def test_instruction_sets_without_proc_cpuinfo(monkeypatch):
    def missing(*args, **kwargs):
        raise OSError("no such file")

    monkeypatch.setattr(env, "open", missing, raising=False)
    instruction_sets.cache_clear()
    try:
        assert instruction_sets() == ()
    finally:
        monkeypatch.undo()
        instruction_sets.cache_clear()
