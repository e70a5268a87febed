"""ONNX: export any zoo model with ``torch.onnx``, check the file, quantise it to int8; ch. 11.

The runtimes that run the file (ONNX Runtime, OpenVINO) are in
:mod:`~shufflelib.deploy.runtimes`. ``onnx``, ``onnxscript`` (which ``torch.onnx``'s exporter
uses), ``onnxruntime`` and ``openvino`` are chapter 11's dependencies (requirements.txt), not
shufflelib's: importing this module needs none of them, and a function that needs a missing one
says how to install it (:func:`require`).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import tempfile
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from .. import validate
from .quantize import image_batches, reduced_range

__all__ = [
    "INSTALL",
    "require",
    "installed",
    "OnnxModel",
    "export_onnx",
    "quantize_onnx",
]

INSTALL = {  # package -> how to install it (pip's names; chapter 11's requirements.txt)
    "onnx": "pip install onnx onnxscript",
    "onnxscript": "pip install onnx onnxscript",
    "onnxruntime": "pip install onnxruntime",
    "openvino": "pip install openvino",
}
INPUT, OUTPUT = "images", "logits"  # the names of the exported graph's input and output
MAX_BATCH = 4096  # the largest batch an exported model with a dynamic batch accepts


def require(package: str, purpose: str) -> ModuleType:
    """``package`` imported, or an ImportError that says what needs it and how to install it."""
    validate.choice("package", package, INSTALL)
    validate.text("purpose", purpose)
    try:
        return importlib.import_module(package)
    except ImportError as e:
        raise ImportError(
            f"{purpose} needs the package {package!r}, which is not installed here: "
            f"{INSTALL[package]} (chapter 11's dependencies are in requirements.txt)"
        ) from e


def installed(package: str) -> bool:
    """Whether ``package`` (one of :data:`INSTALL`) can be imported, without importing it."""
    validate.choice("package", package, INSTALL)
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class OnnxModel:
    """An ONNX model in memory, as :func:`export_onnx` or :func:`quantize_onnx` made it; ch. 11.

    ``data``: the serialised file (weights included); ``precision``: ``"float32"``, or
    ``"int8"`` for a quantised one (QDQ: int8 weights and activations between quantise and
    dequantise nodes, which the runtimes fuse into int8 kernels); ``batch``: the batch size the
    model takes, None for any; ``seconds``: how long exporting (or quantising) took.
    """

    data: bytes
    precision: str
    batch: int | None
    seconds: float
    opset: int

    @property
    def megabytes(self) -> float:
        return len(self.data) / 1e6

    def save(self, path: str | Path) -> Path:
        """Write the file to ``path`` (Netron or any runtime opens it); returns the path."""
        out = Path(validate.path("path", path))
        out.write_bytes(self.data)
        return out


def _tracing_input(x: torch.Tensor, dynamic_batch: bool) -> torch.Tensor:
    """``x`` as the exporter traces it: contiguous, and with a dynamic batch at least 2 images
    (``torch.export`` makes a dimension of size 1 a constant)."""
    x = x.detach().contiguous()
    return x.expand(2, *x.shape[1:]).contiguous() if dynamic_batch and len(x) == 1 else x


def export_onnx(
    model: nn.Module, example_input: torch.Tensor, *, dynamic_batch: bool = True
) -> OnnxModel:
    """``model`` exported to ONNX with ``torch.onnx`` and checked with ``onnx``'s checker; ch. 11.

    The exporter is PyTorch's default one (``dynamo=True``): ``torch.export`` captures the
    network as one graph of ATen operators, which ``onnxscript`` translates to ONNX operators and
    simplifies. ``example_input`` fixes every dimension but the batch (any batch up to
    :data:`MAX_BATCH` with ``dynamic_batch``, else the example's). The file holds the weights as
    they are (BatchNorm unfolded: the runtimes fold it when they load it). The checker
    (``full_check``, with shape inference) must accept the file. ``model`` (in eval mode) is not
    changed.
    """
    validate.module("model", model, eval_mode=True)
    x = validate.tensor("example_input", example_input, dims=4, floating=True)
    validate.flag("dynamic_batch", dynamic_batch)
    onnx = require("onnx", "export_onnx")
    require("onnxscript", "export_onnx (torch.onnx's exporter)")
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    shapes = ({0: batch},) if dynamic_batch else None
    start = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # onnxscript's own deprecations
        program = torch.onnx.export(
            model,
            (_tracing_input(x, dynamic_batch),),
            dynamo=True,
            verbose=False,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_shapes=shapes,
        )
    proto = program.model_proto
    onnx.checker.check_model(proto, full_check=True)
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    seconds = time.perf_counter() - start
    return OnnxModel(
        proto.SerializeToString(), "float32", None if shapes else len(x), seconds, opset
    )


def _quantize_file(source: Path, target: Path, batches: list[torch.Tensor]) -> None:
    """ONNX Runtime's static QDQ quantisation of ``source`` into ``target``."""
    require("onnxruntime", "quantize_onnx")
    quantization = importlib.import_module("onnxruntime.quantization")
    shape_inference = importlib.import_module("onnxruntime.quantization.shape_inference")

    class Reader(quantization.CalibrationDataReader):
        """The calibration batches, one input feed at a time."""

        def __init__(self) -> None:
            self.feeds = iter([{INPUT: b.detach().contiguous().numpy()} for b in batches])

        def get_next(self) -> dict[str, Any] | None:
            return next(self.feeds, None)

    logger = logging.getLogger()  # the quantiser logs advice at INFO through the root logger
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        prepared = source.with_name("prepared.onnx")
        shape_inference.quant_pre_process(str(source), str(prepared))
        quantization.quantize_static(
            str(prepared),
            str(target),
            Reader(),
            quant_format=quantization.QuantFormat.QDQ,
            per_channel=True,
            activation_type=quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QInt8,
            reduce_range=reduced_range(),
            calibrate_method=quantization.CalibrationMethod.MinMax,
        )
    finally:
        logger.setLevel(level)


def quantize_onnx(
    onnx_model: OnnxModel,
    calibration_data: torch.Tensor | Iterable[Any],
    *,
    batch_size: int = 32,
) -> OnnxModel:
    """Post-training static int8 quantisation with ONNX Runtime's own tooling; chapter 11.

    The recipe ONNX Runtime documents for CPUs: ``quant_pre_process`` (shape inference and graph
    simplification), then ``quantize_static`` in the QDQ format (a quantise and a dequantise node
    around every quantised tensor, which a runtime fuses into int8 kernels), with int8 weights
    per output channel (7 bits on a CPU without VNNI: :func:`~shufflelib.deploy.reduced_range`),
    uint8 activations per tensor (the pairing x86's VNNI instructions multiply) and activation
    ranges from the minimum and maximum over ``calibration_data`` (an image tensor
    (N, C, H, W), or an iterable of tensors or (images, labels) batches, run in batches of
    ``batch_size``). ONNX Runtime and OpenVINO both run the result
    (:mod:`~shufflelib.deploy.runtimes`). Returns an :class:`OnnxModel` of precision ``"int8"``.
    """
    validate.instance("onnx_model", onnx_model, OnnxModel)
    if onnx_model.precision != "float32":
        raise ValueError(
            f"onnx_model must be a float32 OnnxModel (from export_onnx), got one of precision "
            f"{onnx_model.precision!r}"
        )
    validate.integer("batch_size", batch_size, minimum=1)
    batches = image_batches(calibration_data, "calibration_data", batch_size)
    if onnx_model.batch is not None:  # a model with a fixed batch takes only that batch
        batches = [b for b in batches if len(b) == onnx_model.batch]
        if not batches:
            raise ValueError(
                f"calibration_data must hold batches of {onnx_model.batch} images for a model "
                f"exported with dynamic_batch=False, got none of that size"
            )
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder, "float32.onnx"), Path(folder, "int8.onnx")
        source.write_bytes(onnx_model.data)
        _quantize_file(source, target, batches)
        data = target.read_bytes()
    seconds = time.perf_counter() - start
    return OnnxModel(data, "int8", onnx_model.batch, seconds, onnx_model.opset)
