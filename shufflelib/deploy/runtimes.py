"""ONNX Runtime and OpenVINO: an exported model run by the runtimes people deploy with; ch. 11.

A runner (:class:`OnnxRuntimeModel`, :class:`OpenVINOModel`) is called like the torch model, a
float32 CPU tensor in and a tensor out, and its call is the runtime's own call and nothing more:
the input handed over as a NumPy view of the tensor's memory, one run, the output wrapped as a
tensor. Everything else (reading the file, the session or compiled model, its threads and
precision, the request and its buffers) is done once, when the runner is made. Each runner uses
torch's thread count at that moment (or ``threads``) and states its precision explicitly: float32
(for OpenVINO, whose default on a CPU with bfloat16 instructions is bfloat16, the precision hint
is set to f32), bfloat16 (OpenVINO, where the CPU has the instructions) or int8 (the QDQ model
of :func:`~shufflelib.deploy.quantize_onnx`, which both runtimes run with int8 kernels).
"""

from __future__ import annotations

import importlib
import json
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import validate
from ..env import machine_info
from ..profiler import operator_table
from ..tables import Table
from .onnx_export import INPUT, OUTPUT, OnnxModel, export_onnx, installed, quantize_onnx, require
from .quantize import image_batches, relative_error, top1_agreement

__all__ = [
    "RUNTIMES",
    "RuntimeModel",
    "PRECISIONS",
    "PATHS",
    "OnnxRuntimeModel",
    "OpenVINOModel",
    "runtime_model",
    "available_runtimes",
    "chosen_runtimes",
    "bfloat16_supported",
    "onnx_models",
    "runtime_models",
    "profile_runtime",
    "runtime_agreement",
]

RUNTIMES = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}  # package -> name
PRECISIONS = ("float32", "bfloat16", "int8")
PATHS = (  # (runtime, precision) in the order candidates are listed: simplest first
    ("onnxruntime", "float32"),
    ("openvino", "float32"),
    ("openvino", "bfloat16"),
    ("onnxruntime", "int8"),
    ("openvino", "int8"),
)
Model = Callable[[torch.Tensor], torch.Tensor]


def _threads(threads: int | None) -> int:
    return torch.get_num_threads() if threads is None else threads


class RuntimeModel:
    """What :func:`runtime_model` returns: a model run by a runtime outside PyTorch; chapter 11.

    ``runtime`` (a key of :data:`RUNTIMES`), ``name`` (e.g. ``"OpenVINO float32"``),
    ``precision``, ``threads``, and ``onnx_model``, the :class:`~shufflelib.deploy.OnnxModel` it
    runs. Called like the torch model.
    """

    runtime = ""
    name = ""
    precision = ""
    threads = 1
    load_seconds = 0.0  # reading the model and preparing it to run (session, compiling)
    onnx_model: OnnxModel

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class OnnxRuntimeModel(RuntimeModel):
    """An :class:`~shufflelib.deploy.OnnxModel` run by ONNX Runtime's CPU provider; chapter 11.

    ``session`` is the ``InferenceSession``: all graph optimisations on (ONNX Runtime folds
    BatchNorm and fuses activations into convolutions when it loads the model), ``threads``
    threads within an operator, one between operators, and idle threads that sleep rather than
    spin (ONNX Runtime's default is to spin, which keeps a core busy after every call and slows
    whatever runs next on it: measured on 2 cores, it made OpenVINO's batch-16 times erratic in
    an interleaved comparison; it can cost ONNX Runtime some latency at batch 1). The precision
    is the model's (float32, or int8 for a QDQ model). A call runs the session once.
    """

    runtime = "onnxruntime"

    def __init__(self, onnx_model: OnnxModel, threads: int, profile_prefix: str = "") -> None:
        ort = require("onnxruntime", "ONNX Runtime")
        start = time.perf_counter()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        # Idle worker threads sleep instead of spinning: a spinning thread takes a core from
        # whatever runs next (another path of a side-by-side timing, or the rest of a server).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        if profile_prefix:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        self.session = ort.InferenceSession(
            onnx_model.data, options, providers=["CPUExecutionProvider"]
        )
        self.onnx_model, self.threads = onnx_model, threads
        self.precision = onnx_model.precision
        self.name = f"{RUNTIMES[self.runtime]} {self.precision}"
        self.outputs = [OUTPUT]
        self.load_seconds = time.perf_counter() - start

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(self.outputs, {INPUT: x.numpy()})[0])


@cache
def _cpu_capabilities() -> tuple[str, ...]:
    """OpenVINO's list of what its CPU plugin can do on this CPU (asked once per process)."""
    ov = importlib.import_module("openvino")
    return tuple(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def bfloat16_supported() -> bool:
    """Whether OpenVINO can compute in bfloat16 on this CPU (its capabilities list BF16)."""
    require("openvino", "bfloat16_supported")
    return "BF16" in _cpu_capabilities()


def _openvino_config(ov: Any, threads: int, bfloat16: bool, profile: bool) -> dict[str, Any]:
    """Compile settings: the precision and threads stated, one stream for latency."""
    hints = importlib.import_module("openvino.properties.hint")
    props = importlib.import_module("openvino.properties")
    return {
        hints.inference_precision: ov.Type.bf16 if bfloat16 else ov.Type.f32,
        props.inference_num_threads: threads,
        hints.performance_mode: hints.PerformanceMode.LATENCY,
        props.enable_profiling: profile,
    }


class OpenVINOModel(RuntimeModel):
    """An :class:`~shufflelib.deploy.OnnxModel` compiled by OpenVINO for the CPU; chapter 11.

    ``compiled`` is OpenVINO's compiled model: its CPU plugin folds BatchNorm, fuses
    activations, recognises the channel shuffle and picks a blocked memory layout for the whole
    graph. Settings: ``threads`` inference threads, the latency hint (one stream), and the
    precision hint stated: f32, or bf16 with ``bfloat16`` (where the CPU has the instructions).
    An int8 (QDQ) model runs with int8 kernels, the rest of it in the hinted precision.
    ``input_size`` fixes the input shape (the batch included), which lets OpenVINO plan every
    buffer once; None keeps the batch dynamic. ``request`` is the one infer request a call
    runs.
    """

    runtime = "openvino"

    def __init__(
        self,
        onnx_model: OnnxModel,
        threads: int,
        bfloat16: bool = False,
        input_size: tuple[int, ...] | None = None,
        profile: bool = False,
    ) -> None:
        ov = require("openvino", "OpenVINO")
        if bfloat16 and not bfloat16_supported():
            raise RuntimeError(
                "OpenVINO cannot compute in bfloat16 on this CPU (no bfloat16 instructions: "
                "its CPU capabilities do not list BF16); use float32"
            )
        start = time.perf_counter()
        core = ov.Core()
        model = core.read_model(model=onnx_model.data)
        if input_size is not None:
            model.reshape(list(input_size))
        config = _openvino_config(ov, threads, bfloat16, profile)
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.onnx_model, self.threads, self.input_size = onnx_model, threads, input_size
        self.precision = "bfloat16" if bfloat16 else onnx_model.precision
        self.name = f"{RUNTIMES[self.runtime]} {self.precision}"
        self.load_seconds = time.perf_counter() - start

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.request.infer(x.numpy(), share_inputs=True)[0])


def runtime_model(
    onnx_model: OnnxModel,
    runtime: str,
    *,
    bfloat16: bool = False,
    threads: int | None = None,
    input_size: Sequence[int] | None = None,
) -> RuntimeModel:
    """``onnx_model`` loaded into ``runtime`` (``"onnxruntime"`` or ``"openvino"``); ch. 11.

    On ``threads`` threads (default: torch's count now), in the model's precision, or in
    bfloat16 with ``bfloat16`` (OpenVINO only, on a CPU with bfloat16 instructions).
    ``input_size`` fixes OpenVINO's input shape (default: the batch stays dynamic); ONNX Runtime
    takes any batch. Returns a runner called like the torch model.
    """
    validate.instance("onnx_model", onnx_model, OnnxModel)
    validate.choice("runtime", runtime, RUNTIMES)
    validate.flag("bfloat16", bfloat16)
    if threads is not None:
        validate.integer("threads", threads, minimum=1)
    size = None if input_size is None else validate.shape("input_size", input_size, length=4)
    if bfloat16 and (runtime != "openvino" or onnx_model.precision != "float32"):
        raise ValueError(
            f"bfloat16=True needs runtime 'openvino' and a float32 model, got runtime "
            f"{runtime!r} and a model of precision {onnx_model.precision!r}"
        )
    if runtime == "onnxruntime":
        return OnnxRuntimeModel(onnx_model, _threads(threads))
    return OpenVINOModel(onnx_model, _threads(threads), bfloat16, size)


def available_runtimes() -> list[str]:
    """The runtimes of :data:`RUNTIMES` installed here, when ``torch.onnx`` can export too."""
    if not (installed("onnx") and installed("onnxscript")):
        return []
    return [r for r in RUNTIMES if installed(r)]


def chosen_runtimes(runtimes: Sequence[str] | None) -> tuple[str, ...]:
    """The runtimes to use: ``runtimes`` checked, or every one installed for None (``()``:
    none). A runtime named but not installed (or without the exporter) is an ImportError that
    says how to install it."""
    if runtimes is None:
        return tuple(available_runtimes())
    if isinstance(runtimes, Sequence) and not isinstance(runtimes, str) and not runtimes:
        return ()
    chosen = validate.choices("runtimes", runtimes, RUNTIMES)
    for package in (*chosen, "onnx", "onnxscript"):
        require(package, f"runtimes={list(chosen)!r}")
    return chosen


def onnx_models(
    model: nn.Module,
    example_input: torch.Tensor,
    calibration_data: torch.Tensor | Iterable[Any] | None = None,
) -> dict[str, OnnxModel]:
    """``model`` exported (dynamic batch), and with ``calibration_data`` quantised; chapter 11.

    Returns ``{"float32": ...}`` from :func:`~shufflelib.deploy.export_onnx`, and ``"int8"``
    from :func:`~shufflelib.deploy.quantize_onnx` when calibration images are given.
    """
    exported = {"float32": export_onnx(model, example_input)}
    if calibration_data is not None:
        exported["int8"] = quantize_onnx(exported["float32"], calibration_data)
    return exported


def runtime_models(
    exported: Mapping[str, OnnxModel],
    *,
    runtimes: Sequence[str] | None = None,
    precisions: Sequence[str] = ("float32",),
    input_size: Sequence[int] | None = None,
    threads: int | None = None,
) -> dict[str, RuntimeModel]:
    """Every runtime path of :data:`PATHS` for ``exported`` (from :func:`onnx_models`); ch. 11.

    One runner per installed runtime of ``runtimes`` (None: every one) and precision of
    ``precisions``, named like ``"OpenVINO float32"``, simplest first. bfloat16 is OpenVINO's,
    left out where the CPU lacks the instructions; int8 needs ``exported["int8"]``.
    ``input_size`` and ``threads`` go to :func:`runtime_model`.
    """
    validate.mapping("exported", exported)
    for key, value in exported.items():
        validate.choice("exported's keys", key, ("float32", "int8"))
        validate.instance(f"exported[{key!r}]", value, OnnxModel)
    chosen = chosen_runtimes(runtimes)
    wanted = validate.choices("precisions", precisions, PRECISIONS)
    if "int8" in wanted and "int8" not in exported:
        raise ValueError("precisions asks for int8: exported must hold an 'int8' model, got none")
    runners: dict[str, RuntimeModel] = {}
    for runtime, precision in PATHS:
        if runtime not in chosen or precision not in wanted:
            continue
        if precision == "bfloat16" and not bfloat16_supported():
            continue
        source = exported["int8" if precision == "int8" else "float32"]
        runner = runtime_model(
            source,
            runtime,
            bfloat16=precision == "bfloat16",
            threads=threads,
            input_size=input_size if runtime == "openvino" else None,
        )
        runners[runner.name] = runner
    return runners


def _onnxruntime_events(runner: OnnxRuntimeModel, x: torch.Tensor, runs: int):
    """ONNX Runtime's own profile: operator -> (seconds, calls) over ``runs``, and wall seconds."""
    with tempfile.TemporaryDirectory() as folder:
        profiled = OnnxRuntimeModel(runner.onnx_model, runner.threads, str(Path(folder, "ort")))
        for _ in range(runs + 1):  # the first run warms up and is left out
            profiled(x)
        events = json.loads(Path(profiled.session.end_profiling()).read_text())
    starts = sorted(e["ts"] for e in events if e.get("name") == "model_run")
    kept = [e for e in events if len(starts) > 1 and e["ts"] >= starts[1]]
    wall = sum(e["dur"] for e in kept if e.get("name") == "model_run") * 1e-6
    times: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    for e in kept:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            op = e.get("args", {}).get("op_name", "?")
            times[op] += e["dur"] * 1e-6
            calls[op] += 1
    return {op: (times[op], calls[op]) for op in times}, wall


def _openvino_events(runner: OpenVINOModel, x: torch.Tensor, runs: int):
    """OpenVINO's performance counters: operator -> (seconds, calls) over ``runs``, wall."""
    profiled = OpenVINOModel(
        runner.onnx_model, runner.threads, runner.precision == "bfloat16", runner.input_size, True
    )
    profiled(x)  # warm up
    times: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    wall = 0.0
    for _ in range(runs):
        start = time.perf_counter()
        profiled(x)
        wall += time.perf_counter() - start
        for info in profiled.request.profiling_info:
            if info.status.name == "EXECUTED":
                op = f"{info.node_type} ({info.exec_type})"
                times[op] += info.real_time.total_seconds()
                calls[op] += 1
    return {op: (times[op], calls[op]) for op in times}, wall


def profile_runtime(
    runner: RuntimeModel, x: torch.Tensor, *, runs: int = 5, top: int = 8, label: str = ""
) -> Table:
    """Where a runtime spends a forward pass, from its own profiler; chapter 11.

    ONNX Runtime's session profiling (each node's kernel time) or OpenVINO's performance counters
    (each executed node's real time, with the kernel it chose, e.g. ``brgconv_avx512_1x1_f32``),
    over ``runs`` calls after one to warm up, on a fresh copy of ``runner`` with profiling on.
    Rows like :func:`shufflelib.profiler.profile_by_operator`'s (the ``top`` operators, the
    rest, and what the runtime spent outside its operators), and the table's ``kinds``: seconds
    per forward pass by kind of work (:func:`shufflelib.profiler.operator_kind`).
    """
    validate.instance("runner", runner, RuntimeModel)
    validate.tensor("x", x, dims=4, floating=True)
    validate.integer("runs", runs, minimum=1)
    validate.integer("top", top, minimum=1)
    validate.instance("label", label, str)
    if isinstance(runner, OnnxRuntimeModel):
        events, wall = _onnxruntime_events(runner, x, runs)
    else:
        events, wall = _openvino_events(runner, x, runs)
    title = f"profile of {label or runner.name}, input {tuple(x.shape)}, by the runtime's profiler"
    note = f"{machine_info('cpu')} | {runner.name} on {runner.threads} thread(s)"
    return operator_table(events, runs, top=top, wall=wall, title=title, note=note)


def _agreement_row(name: str, precision: str, fn: Model, model: Model, batches) -> dict:
    """One row of :func:`runtime_agreement`: error on the first batch, agreement on all."""
    with torch.inference_mode():
        error = relative_error(fn(batches[0]), model(batches[0]))
    size = max(len(b) for b in batches)
    return {
        "path": name,
        "precision": precision,
        "max error": error,
        "top-1 agreement": top1_agreement(model, fn, batches, batch_size=size),
        "images": sum(len(b) for b in batches),
    }


def runtime_agreement(
    model: nn.Module,
    calibration_data: torch.Tensor | Iterable[Any],
    eval_data: torch.Tensor | Iterable[Any],
    *,
    runtimes: Sequence[str] | None = None,
    others: Mapping[str, Model] | None = None,
    batch_size: int = 250,
) -> Table:
    """Every runtime path of a trained network against its float32 self; chapter 11.

    Exports ``model``, quantises it on ``calibration_data`` (:func:`onnx_models`) and runs every
    path of :data:`PATHS` installed here (:func:`runtime_models`, dynamic batch). One row per
    path, and per entry of ``others`` (name -> a callable, e.g. PyTorch's int8 model): its
    precision, its largest output difference to ``model`` on the first evaluation batch
    (relative to the largest output when that exceeds 1), and its top-1 agreement with
    ``model`` on ``eval_data`` (images, or an iterable of batches) in batches of
    ``batch_size``. ``model`` must be in eval mode and is not changed.
    """
    validate.module("model", model, eval_mode=True)
    validate.integer("batch_size", batch_size, minimum=1)
    batches = image_batches(eval_data, "eval_data", batch_size)
    others = {} if others is None else validate.mapping("others", others, nonempty=False)
    for name, fn in others.items():
        validate.function(f"others[{name!r}]", fn)
    exported = onnx_models(model, batches[0], calibration_data)
    runners = runtime_models(exported, runtimes=runtimes, precisions=PRECISIONS)
    rows = [_agreement_row(k, r.precision, r, model, batches) for k, r in runners.items()]
    rows += [_agreement_row(k, "", fn, model, batches) for k, fn in others.items()]
    title = "every path against float32 PyTorch: output error and top-1 agreement"
    return Table(rows, title=title, note=str(machine_info("cpu")))
