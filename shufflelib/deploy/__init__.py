"""Deployment: from the paper's network to the fastest honest inference on this machine; ch. 11.

Each step keeps the outputs (float steps within rounding, int8 within a measured agreement) and
leaves the model it is given as it was (weights, memory format, device, train/eval mode):

- :func:`fold_bn` folds every BatchNorm into the convolution before it (eval mode only), and
  :func:`to_channels_last` stores activations and weights channels-last (NHWC), the layout the
  CPU's vectorised convolution kernels (oneDNN) use (``transforms``);
- :func:`fast_shufflenet_v2` builds a ShuffleNet V2 whose units keep that layout and hand the next
  unit its two halves already split (:class:`FastShuffleV2Unit`); torchvision's weights load
  (``fast_shufflenet``);
- :func:`compile` runs ``torch.compile`` (Inductor, with weight freezing for inference) and says
  how long it took; :func:`export_roundtrip` checks that ``torch.export`` saves and reloads the
  network unchanged (``compiled``);
- :func:`quantize_int8` quantises to int8 after training with PyTorch's x86 path (PT2E with
  ``X86InductorQuantizer``, now in ``torchao``) and reports top-1 agreement with the float model
  (``quantize``);
- :func:`export_onnx` exports any zoo model to ONNX with ``torch.onnx`` and checks the file,
  :func:`quantize_onnx` quantises it to int8 with ONNX Runtime's own tooling (QDQ, calibrated)
  (``onnx_export``);
- :func:`runtime_model` runs it in ONNX Runtime or OpenVINO, threads and precision stated
  (float32, OpenVINO's bfloat16, int8), with nothing per call but the runtime's own call;
  :func:`profile_runtime` reads the runtime's own profiler; :func:`runtime_agreement` measures
  every path against float32 (``runtimes``);
- :func:`optimize` times the PyTorch steps and the installed runtimes side by side and returns
  the fastest at the precision asked for, as one callable (``optimized``).

:mod:`shufflelib.ladder` times them all side by side and against this machine's roofline;
:mod:`shufflelib.profiler` says where the remaining time goes.
"""

from __future__ import annotations

from .compiled import Compiled, compile, export_roundtrip
from .fast_shufflenet import (
    FastShuffleNetV2,
    FastShuffleV2Unit,
    as_fast_shufflenet,
    fast_shufflenet_v2,
    shuffled_halves,
)
from .onnx_export import OnnxModel, export_onnx, installed, quantize_onnx, require
from .optimized import TOLERANCE, Optimized, challenger, choose, optimize
from .quantize import (
    Int8Model,
    flips,
    quantize_int8,
    reduced_range,
    relative_error,
    top1_agreement,
)
from .runtimes import (
    PATHS,
    PRECISIONS,
    RUNTIMES,
    OnnxRuntimeModel,
    OpenVINOModel,
    RuntimeModel,
    available_runtimes,
    bfloat16_supported,
    chosen_runtimes,
    onnx_models,
    profile_runtime,
    runtime_agreement,
    runtime_model,
    runtime_models,
)
from .transforms import (
    STEP_NAMES,
    count_batchnorm,
    fold_bn,
    folded,
    for_export,
    reparameterisable,
    steps,
    to_channels_last,
)

__all__ = [
    "fold_bn",
    "folded",
    "reparameterisable",
    "for_export",
    "count_batchnorm",
    "to_channels_last",
    "steps",
    "STEP_NAMES",
    "shuffled_halves",
    "FastShuffleV2Unit",
    "FastShuffleNetV2",
    "fast_shufflenet_v2",
    "as_fast_shufflenet",
    "Compiled",
    "compile",
    "export_roundtrip",
    "Int8Model",
    "quantize_int8",
    "top1_agreement",
    "flips",
    "relative_error",
    "reduced_range",
    "OnnxModel",
    "export_onnx",
    "quantize_onnx",
    "require",
    "installed",
    "RUNTIMES",
    "PRECISIONS",
    "PATHS",
    "RuntimeModel",
    "OnnxRuntimeModel",
    "OpenVINOModel",
    "runtime_model",
    "runtime_models",
    "onnx_models",
    "available_runtimes",
    "chosen_runtimes",
    "bfloat16_supported",
    "profile_runtime",
    "runtime_agreement",
    "TOLERANCE",
    "Optimized",
    "optimize",
    "choose",
    "challenger",
]
