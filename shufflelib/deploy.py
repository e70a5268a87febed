"""Deployment: from the paper's network to the fastest honest inference on this machine; ch. 11.

Each step keeps the outputs (float steps within rounding, int8 within a measured agreement) and is
timed against torchvision's eager model in chapter 11 and ``benchmarks/bench_deploy.py``:

- :func:`fold_bn` folds every BatchNorm into the convolution before it (eval mode only);
- :func:`to_channels_last` stores activations and weights channels-last (NHWC), the layout the
  CPU's vectorised convolution kernels (oneDNN) use;
- :func:`fast_shufflenet_v2` builds a ShuffleNet V2 whose units keep that layout and hand the next
  unit its two halves already split (:class:`FastShuffleV2Unit`); torchvision's weights load;
- :func:`compile` runs ``torch.compile`` (Inductor, with weight freezing for inference) and says
  how long it took;
- :func:`quantize_int8` quantises to int8 after training with PyTorch's x86 path (PT2E with
  ``X86InductorQuantizer``, now in ``torchao``) and reports top-1 agreement with the float model;
- :func:`export_roundtrip` checks that ``torch.export`` saves and reloads the network unchanged;
- :func:`optimize` applies the steps that help here and returns one callable.

:func:`ladder` times them all side by side, :func:`roofline_bound` says how far the best is from
this machine's limit and :func:`profile_by_operator` where the remaining time goes.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from . import stats
from .bench import MIN_ROUNDS, Roofline, compare, machine_info, sampling_arguments
from .cost import mac, madds
from .models.shufflenet_v2 import STAGES_OUT_CHANNELS, ShuffleNetV2, ShuffleV2Unit
from .tables import Table

__all__ = [
    "fold_bn",
    "to_channels_last",
    "shuffled_halves",
    "FastShuffleV2Unit",
    "FastShuffleNetV2",
    "fast_shufflenet_v2",
    "as_fast_shufflenet",
    "steps",
    "count_batchnorm",
    "RooflineBound",
    "Compiled",
    "compile",
    "Int8Model",
    "quantize_int8",
    "top1_agreement",
    "flips",
    "export_roundtrip",
    "Optimized",
    "optimize",
    "choose",
    "ladder",
    "step_gains",
    "roofline_bound",
    "roofline_table",
    "roofline_points",
    "profile_by_operator",
]


# ---------------------------------------------------------------------------------------------
# input checks (before any work)


def _check_module(model: object, name: str = "model") -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _check_eval(model: nn.Module, what: str) -> None:
    training = [n or type(model).__name__ for n, m in model.named_modules() if m.training]
    if training:
        raise ValueError(
            f"{what} is for inference and needs the model in eval mode, but {len(training)} "
            f"module(s) are in training mode, e.g. {training[0]!r}; call model.eval() first"
        )


def _check_image_batch(x: object, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (N, C, H, W), got {type(x).__name__}")
    if x.dim() != 4 or not x.is_floating_point():
        raise ValueError(
            f"{name} must be a 4-D float tensor (N, C, H, W), got {x.dim()}-D {x.dtype} "
            f"with shape {tuple(x.shape)}"
        )
    return x


def _check_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return value


def _batches(data: object, name: str) -> list[torch.Tensor]:
    """A tensor (split later) or an iterable of tensors / (images, labels) pairs, as a list."""
    if isinstance(data, torch.Tensor):
        return [_check_image_batch(data, name)]
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        raise TypeError(
            f"{name} must be a tensor (N, C, H, W) or an iterable of such tensors or of "
            f"(images, labels) pairs, got {type(data).__name__}"
        )
    out = []
    for k, item in enumerate(data):
        if isinstance(item, (tuple, list)) and item:
            item = item[0]
        out.append(_check_image_batch(item, f"{name}[{k}]"))
    if not out:
        raise ValueError(f"{name} holds no batch")
    return out


# ---------------------------------------------------------------------------------------------
# BatchNorm folding and channels-last


def fold_bn(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every BatchNorm folded into the convolution before it; ch. 11.

    In eval mode a BatchNorm is an affine map per channel, ``y = g (x - mu) / sqrt(var + eps) + b``,
    so it folds into the convolution that feeds it: scale the convolution's output filters by
    ``g / sqrt(var + eps)`` and give it the bias ``b - g mu / sqrt(var + eps)``. The folded
    network does the same arithmetic with one pass over memory less per BatchNorm.

    Written here because no supported PyTorch utility does it for any module tree:
    ``torch.fx.experimental.optimization.fuse`` needs a model ``torch.fx`` can trace, and returns a
    ``GraphModule`` without the model's class and methods. We walk every ``nn.Sequential``, fold
    each ``Conv2d`` directly followed by a ``BatchNorm2d`` with
    ``torch.nn.utils.fusion.fuse_conv_bn_eval`` (the arithmetic above) and put an ``nn.Identity``
    where the BatchNorm was. That covers every model of the zoo and torchvision's; a BatchNorm
    anywhere else is left in place (still correct). The original model is not touched.
    """
    _check_module(model)
    _check_eval(model, "fold_bn")
    folded = copy.deepcopy(model)
    with torch.no_grad():
        for module in folded.modules():
            if not isinstance(module, nn.Sequential):
                continue
            items = list(module._modules.items())
            for (conv_name, conv), (bn_name, bn) in zip(items, items[1:]):
                if (
                    type(conv) is nn.Conv2d
                    and type(bn) is nn.BatchNorm2d
                    and bn.track_running_stats
                    and bn.num_features == conv.out_channels
                ):
                    module._modules[conv_name] = fuse_conv_bn_eval(conv, bn)
                    module._modules[bn_name] = nn.Identity()
    return folded.eval()


def count_batchnorm(model: nn.Module) -> int:
    """How many BatchNorm layers ``model`` has (0 after :func:`fold_bn` on the zoo); chapter 11."""
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def to_channels_last(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with its 4-D weights in channels-last (NHWC) memory; chapter 11.

    A convolution whose weight is channels-last returns a channels-last output, so after the
    first layer every activation stays NHWC, the layout of oneDNN's vectorised CPU kernels
    (``torch.Tensor.contiguous(memory_format=torch.channels_last)``; the values do not change).
    Our :class:`~shufflelib.models.shufflenet_v2.ShuffleNetV2` runs only its stem channels-last by
    default and returns to NCHW for the units; here the whole network runs NHWC.
    """
    _check_module(model)
    out = copy.deepcopy(model).to(memory_format=torch.channels_last)
    for m in out.modules():
        if isinstance(m, ShuffleNetV2):
            m.channels_last_stem = False  # the whole network is NHWC: no switch back after the stem
    return out


# ---------------------------------------------------------------------------------------------
# a ShuffleNet V2 for deployment


def _is_channels_last(x: torch.Tensor) -> bool:
    return (
        x.dim() == 4
        and x.is_contiguous(memory_format=torch.channels_last)
        and not (x.is_contiguous() and x.shape[1] > 1)
    )


def _interleave(a: torch.Tensor, b: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """Channels ``a0 b0 a1 b1 ...``: ``channel_shuffle(cat((a, b)), 2)`` written once."""
    if channels_last:  # interleave the innermost (channel) axis of the NHWC memory
        nhwc = torch.stack((a.permute(0, 2, 3, 1), b.permute(0, 2, 3, 1)), dim=-1)
        return nhwc.flatten(3).permute(0, 3, 1, 2)
    return torch.stack((a, b), dim=2).flatten(1, 2)


def shuffled_halves(
    a: torch.Tensor, b: torch.Tensor, *, split: bool = True
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The two halves of ``channel_shuffle(torch.cat((a, b), 1), 2)``, written once; chapter 11.

    After the concatenation and a shuffle with two groups, channel ``2j`` is ``a[:, j]`` and
    ``2j + 1`` is ``b[:, j]``; so the first half of the result interleaves the first halves of
    ``a`` and ``b``, and the second half their second halves. Writing each half as its own tensor
    costs the same one write as the whole, and the next unit's channel split is then free: both
    halves are contiguous (in ``a``'s memory format, NCHW or NHWC), so its convolution needs no
    copy of a strided view first. ``split=False`` returns the whole shuffled tensor instead.
    """
    cl = _is_channels_last(a) or _is_channels_last(b)
    if not split:
        return _interleave(a, b, cl)
    h = a.shape[1] // 2
    return (
        _interleave(a[:, :h], b[:, :h], cl),
        _interleave(a[:, h:], b[:, h:], cl),
    )


class FastShuffleV2Unit(ShuffleV2Unit):
    """The ShuffleNet V2 unit of chapter 7 with the same weights, arranged for speed; chapter 11.

    Same parameters and state_dict as :class:`~shufflelib.models.shufflenet_v2.ShuffleV2Unit`,
    same outputs. Two differences in memory only: the shuffled concatenation is written in the
    input's memory format (NHWC stays NHWC, so no layout conversion between units), and unless
    ``merge_output`` is set the unit returns its output as the pair of halves the next unit
    splits it into (:func:`shuffled_halves`), so that split costs nothing. A stride-1 unit
    accepts such a pair or a tensor.
    """

    def __init__(self, *args: Any, merge_output: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.merge_output = _check_bool(merge_output, "merge_output")

    def forward(self, x: torch.Tensor | tuple[torch.Tensor, torch.Tensor]):  # type: ignore[override]
        if self.stride == 1:
            x1, x2 = x if isinstance(x, tuple) else x.chunk(2, dim=1)
            return shuffled_halves(x1, self.branch2(x2), split=not self.merge_output)
        if isinstance(x, tuple):
            x = torch.cat(x, dim=1)
        return shuffled_halves(self.branch1(x), self.branch2(x), split=not self.merge_output)


class FastShuffleNetV2(ShuffleNetV2):
    """ShuffleNet V2 of Table 5 built from :class:`FastShuffleV2Unit`; chapter 11.

    The state_dict is torchvision's (and chapter 7's), so ImageNet weights load with
    ``strict=True``. Within a stage the units pass each other pairs of halves; the last unit
    of each stage returns one tensor for the next stage's stride-2 unit and for Conv5. Whatever
    memory format the weights are in (see :func:`to_channels_last`), the network keeps it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("channels_last_stem", False)
        kwargs["unit"] = FastShuffleV2Unit
        super().__init__(*args, **kwargs)
        for stage in (self.stage2, self.stage3, self.stage4):
            for k, unit in enumerate(stage):
                unit.merge_output = k == len(stage) - 1


def fast_shufflenet_v2(
    width: float = 1.0,
    num_classes: int = 1000,
    *,
    small_input: bool = False,
    channels_last: bool = True,
) -> FastShuffleNetV2:
    """ShuffleNet V2 at a width of Table 5, built for inference speed; chapter 11.

    ``channels_last=True`` (default) stores the weights NHWC, so the whole network runs
    channels-last. Load trained weights with ``load_state_dict`` (torchvision's layout).
    """
    if width not in STAGES_OUT_CHANNELS:
        raise ValueError(
            f"width must be one of {sorted(STAGES_OUT_CHANNELS)} (Table 5), got {width!r}"
        )
    _check_bool(channels_last, "channels_last")
    model = FastShuffleNetV2(
        [4, 8, 4], STAGES_OUT_CHANNELS[width], num_classes, small_input=small_input
    )
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def as_fast_shufflenet(model: nn.Module) -> FastShuffleNetV2 | None:
    """A :class:`FastShuffleNetV2` with ``model``'s weights (a ShuffleNet V2), else None; ch. 11.

    ``model`` may be ours (chapter 7) or torchvision's; the copy is in eval mode, in contiguous
    (NCHW) memory, and ``model`` is not touched.
    """
    _check_module(model)
    if isinstance(model, FastShuffleNetV2):
        return copy.deepcopy(model).to(memory_format=torch.contiguous_format).eval()
    if isinstance(model, ShuffleNetV2):
        repeats, channels = model.stages_repeats, model.stages_out_channels
        num_classes, small = model.num_classes, model.small_input
    elif type(model).__name__ == "ShuffleNetV2" and type(model).__module__.startswith(
        "torchvision."
    ):
        repeats = [len(model.stage2), len(model.stage3), len(model.stage4)]
        channels = list(model._stage_out_channels)
        num_classes, small = model.fc.out_features, False
    else:
        return None
    fast = FastShuffleNetV2(repeats, channels, num_classes, small_input=small)
    fast.load_state_dict(model.state_dict(), strict=True)
    return fast.eval()


# ---------------------------------------------------------------------------------------------
# torch.compile


@dataclass
class Compiled:
    """A compiled model, called like the model; ``compile_seconds``: its first call; ch. 11."""

    fn: Callable[[torch.Tensor], torch.Tensor]
    compile_seconds: float
    options: dict[str, Any] = field(default_factory=dict)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # Inductor reads some options (freezing) from its global config while compiling, which
        # happens again whenever a new input shape arrives: set them for every call.
        with _quiet_compiler(), torch._inductor.config.patch(self.options):
            with torch.inference_mode():
                return self.fn(x)


@contextlib.contextmanager
def _quiet_compiler() -> Iterator[None]:
    """Hush two messages of compiling that do not concern the reader, for the block only.

    Inductor logs a CUDA_HOME warning on machines with a CUDA toolkit and no GPU (it compiles C++
    for the CPU here), and its int8 lowering warns about its own use of ``torch.tensor``.
    """
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="To copy construct from a tensor")
            yield
    finally:
        logger.setLevel(level)


def compile(  # noqa: A001 - deploy.compile is the name the chapter teaches
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    example_input: torch.Tensor,
    *,
    freezing: bool = True,
    dynamic: bool = False,
    max_autotune: bool = False,
) -> Compiled:
    """``torch.compile`` for inference, compiled now on ``example_input``; chapter 11.

    Inductor (the default backend) with ``freezing``, the setting PyTorch recommends for CPU
    inference: the weights become constants, so BatchNorm folds away, convolutions get weights
    pre-packed for oneDNN, and element-wise work (ReLU, the shuffle's copies) fuses into a few
    generated C++ loops. The graph is specialised to the example's shape (``dynamic=True`` asks
    for one graph for all batch sizes, but batch 1 is always compiled apart); another shape
    compiles again on first use. ``max_autotune=True`` also times alternative kernels (minutes
    of compiling). Returns a :class:`Compiled` whose ``compile_seconds`` is the wall time of the
    first call, which is when compiling happens. Calls run in inference mode.
    """
    if not callable(model):
        raise TypeError(f"model must be an nn.Module or a callable, got {type(model).__name__}")
    if isinstance(model, nn.Module) and not isinstance(model, torch.fx.GraphModule):
        _check_eval(model, "compile (for inference)")  # exported graphs have no train/eval
    x = _check_image_batch(example_input, "example_input")
    _check_bool(freezing, "freezing")
    _check_bool(dynamic, "dynamic")
    _check_bool(max_autotune, "max_autotune")
    options: dict[str, Any] = {"freezing": freezing}
    if max_autotune:
        options["max_autotune"] = True
    with _quiet_compiler():
        importlib.import_module("torch._inductor.config")  # Compiled.__call__ patches it
    compiled = Compiled(torch.compile(model, dynamic=dynamic), 0.0, options)
    start = time.perf_counter()
    compiled(x)
    compiled.compile_seconds = time.perf_counter() - start
    return compiled


# ---------------------------------------------------------------------------------------------
# int8


def _pt2e():
    """torchao's PT2E entry points (PyTorch >= 2.10 moved them out of torch.ao.quantization)."""
    logger = logging.getLogger("torch.utils._pytree")  # torchao's import warns about an enum
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq
    except ImportError as e:
        raise ImportError(
            "quantize_int8 needs torchao (PyTorch's quantisation library, where the PT2E flow "
            "lives since PyTorch 2.10): pip install torchao"
        ) from e
    finally:
        logger.setLevel(level)
    return prepare_pt2e, convert_pt2e, xiq


@torch.no_grad()
def _top1(fn: Callable[[torch.Tensor], torch.Tensor], batches: Sequence[torch.Tensor]):
    return torch.cat([fn(x).argmax(1) for x in batches])


def top1_agreement(
    model_a: Callable[[torch.Tensor], torch.Tensor],
    model_b: Callable[[torch.Tensor], torch.Tensor],
    data: torch.Tensor | Iterable[Any],
    *,
    batch_size: int = 256,
) -> float:
    """Fraction of images on which two models predict the same class (top-1); chapter 11."""
    for name, m in (("model_a", model_a), ("model_b", model_b)):
        if not callable(m):
            raise TypeError(f"{name} must be callable, got {type(m).__name__}")
    batches = _split(_batches(data, "data"), batch_size)
    a, b = _top1(model_a, batches), _top1(model_b, batches)
    return (a == b).float().mean().item()


def flips(
    float_model: Callable[[torch.Tensor], torch.Tensor],
    int8_model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int = 256,
) -> Table:
    """Which predictions int8 changed, and how sure the float model was of them; chapter 11.

    Rows: all images, those whose top-1 class int8 changed (flipped) and the others (kept),
    each with its count, both models' accuracy against ``labels`` and the float model's median
    margin (probability of its first class minus its second). A group with no image is left out.
    """
    for name, m in (("float_model", float_model), ("int8_model", int8_model)):
        if not callable(m):
            raise TypeError(f"{name} must be callable, got {type(m).__name__}")
    x = _check_image_batch(images, "images")
    if not isinstance(labels, torch.Tensor) or labels.shape != (len(x),):
        raise ValueError(f"labels must be a tensor of {len(x)} class indices, one per image")
    batches = _split([x], batch_size)
    with torch.inference_mode():
        probs = torch.cat([float_model(b).softmax(1) for b in batches])
    int8_class = _top1(int8_model, batches)
    top2 = probs.topk(2, dim=1).values
    margin, float_class = top2[:, 0] - top2[:, 1], probs.argmax(1)
    flipped = float_class != int8_class
    rows = []
    for group, part in (
        ("all", torch.ones_like(flipped)),
        ("flipped", flipped),
        ("kept", ~flipped),
    ):
        if part.any():
            rows.append(
                {
                    "images": group,
                    "count": int(part.sum()),
                    "float32 accuracy": (float_class[part] == labels[part]).float().mean().item(),
                    "int8 accuracy": (int8_class[part] == labels[part]).float().mean().item(),
                    "median margin": margin[part].median().item(),
                }
            )
    return Table(rows, title="int8 against float32: the predictions int8 changed")


def _split(batches: list[torch.Tensor], batch_size: int) -> list[torch.Tensor]:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    return [part for x in batches for part in x.split(batch_size)]


@dataclass
class Int8Model:
    """A post-training int8 model: call it like the float one; chapter 11.

    ``reference`` is PT2E's converted graph (quantise/dequantise around float operators: the
    int8 arithmetic, simulated); ``fn`` runs it compiled by Inductor into int8 oneDNN kernels (or
    ``reference`` itself with ``compiled=False``). ``agreement`` is the top-1 agreement with the
    float model on ``agreement_images`` images.
    """

    fn: Callable[[torch.Tensor], torch.Tensor]
    reference: nn.Module
    agreement: float
    agreement_images: int
    quantize_seconds: float
    compile_seconds: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.fn(x)


def quantize_int8(
    model: nn.Module,
    calibration_data: torch.Tensor | Iterable[Any],
    *,
    example_input: torch.Tensor | None = None,
    eval_data: torch.Tensor | Iterable[Any] | None = None,
    compiled: bool = True,
    batch_size: int = 64,
) -> Int8Model:
    """Post-training static int8 quantisation for x86 CPUs, PyTorch's PT2E flow; chapter 11.

    The recipe PyTorch documents for x86 ("PyTorch 2 Export Quantization with X86 Backend
    through Inductor"; since PyTorch 2.10 in ``torchao.quantization.pt2e``): export the model
    with ``torch.export`` (the batch dimension left dynamic), insert observers with
    ``prepare_pt2e`` and ``X86InductorQuantizer``'s default configuration (int8 weights per
    output channel, int8 activations per tensor; max-pooling left in float32), run
    ``calibration_data`` through it to record activation ranges, ``convert_pt2e`` to a graph
    with quantise/dequantise nodes, and (with ``compiled``) let Inductor with freezing turn the
    patterns into int8 oneDNN convolutions, compiled on ``example_input`` (default: the first
    evaluation batch). Then the top-1
    agreement with the float model is measured on ``eval_data`` (default: the calibration
    data) in batches of ``batch_size``, by the compiled int8 model (each new batch shape
    compiles once more) or by the reference graph with ``compiled=False``.

    ``calibration_data`` and ``eval_data``: an image tensor (N, C, H, W) or an iterable of
    tensors or (images, labels) batches, normalised as the model expects.
    """
    _check_module(model)
    _check_eval(model, "quantize_int8")
    calib = _split(_batches(calibration_data, "calibration_data"), batch_size)
    evals = calib if eval_data is None else _split(_batches(eval_data, "eval_data"), batch_size)
    example = evals[0] if example_input is None else example_input
    _check_image_batch(example, "example_input")
    _check_bool(compiled, "compiled")
    prepare_pt2e, convert_pt2e, xiq = _pt2e()

    start = time.perf_counter()
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad():
        exported = torch.export.export(model, (calib[0],), dynamic_shapes=({0: batch},)).module()
        quantizer = xiq.X86InductorQuantizer()
        quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
        # Max-pooling compares and never multiplies, so int8 saves it no arithmetic; in float32
        # Inductor fuses it into the loop that converts the stem's output, where the int8 pool
        # is a kernel of its own. Measured on ShuffleNet V2 1x (2-core x86 CPU): int8 about 4%
        # faster at batch 1 and 12% at batch 16 with a float32 pool, the same predictions.
        quantizer.set_module_type_qconfig(nn.MaxPool2d, None)
        prepared = prepare_pt2e(exported, quantizer)
        for x in calib:
            prepared(x)
        reference = convert_pt2e(prepared)
    quantize_seconds = time.perf_counter() - start
    if compiled:
        c = compile(reference, example)
        fn, compile_seconds = c, c.compile_seconds
    else:
        fn, compile_seconds = reference, 0.0
    with torch.inference_mode():
        agreement = (_top1(model, evals) == _top1(fn, evals)).float().mean().item()
    n = sum(len(x) for x in evals)
    return Int8Model(fn, reference, agreement, n, quantize_seconds, compile_seconds)


# ---------------------------------------------------------------------------------------------
# torch.export


def export_roundtrip(model: nn.Module, example_input: torch.Tensor) -> float:
    """Export with ``torch.export``, save, load back, run: max |difference| to ``model``; ch. 11.

    ``torch.export`` captures the whole network as one graph of ATen operators (no Python left),
    the form that ahead-of-time compilers and other runtimes take. The saved program (a ``.pt2``
    archive, written here to memory) must reload and give the same outputs: this returns the
    largest absolute difference, 0.0 when the round trip is exact.
    """
    _check_module(model)
    _check_eval(model, "export_roundtrip")
    x = _check_image_batch(example_input, "example_input")
    with torch.no_grad(), warnings.catch_warnings():
        # torch.export.save warns that it found no "complete tensor" when weights share storage
        # with views; it saves them all the same (the check below would fail otherwise).
        warnings.filterwarnings("ignore", message="No complete tensor found")
        program = torch.export.export(model, (x,))
        buffer = io.BytesIO()
        torch.export.save(program, buffer)
        buffer.seek(0)
        loaded = torch.export.load(buffer).module()
        return (loaded(x) - model(x)).abs().max().item()


# ---------------------------------------------------------------------------------------------
# the steps together: optimize and the ladder of chapter 11


def steps(model: nn.Module) -> dict[str, nn.Module]:
    """The float steps of chapter 11 on ``model``, each on top of the last, as new models.

    ``"ours eager"`` (``model`` itself), ``"+ BN folding"`` (:func:`fold_bn`) and
    ``"+ channels-last"`` (:func:`to_channels_last` of the folded model, built from the fast
    units of :func:`fast_shufflenet_v2` when ``model`` is a ShuffleNet V2). All give ``model``'s
    outputs; :func:`compile` and :func:`quantize_int8` take the last one.
    """
    _check_module(model)
    _check_eval(model, "steps")
    folded = fold_bn(model)
    fast = as_fast_shufflenet(model)
    layout = to_channels_last(fold_bn(fast) if fast is not None else folded)
    return {"ours eager": model, "+ BN folding": folded, "+ channels-last": layout}


def _relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got - want| / max(1, max |want|): absolute for small outputs, relative for large."""
    return ((got - want).abs().max() / want.abs().max().clamp(min=1.0)).item()


def _inference(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor):
    def run() -> torch.Tensor:
        with torch.inference_mode():
            return fn(x)

    return run


@dataclass
class Optimized:
    """What :func:`optimize` returns: call it like the model; chapter 11.

    ``steps`` names the steps kept, ``timings`` the candidates timed on the example input,
    ``max_error`` the largest output difference to the original model on that input (relative
    to the largest output when that exceeds 1), ``agreement`` the int8 top-1 agreement (None for
    float), ``reason`` why this candidate was kept, with the deciding time-ratio intervals.
    """

    fn: Callable[[torch.Tensor], torch.Tensor]
    steps: list[str]
    timings: Table
    max_error: float
    compile_seconds: float = 0.0
    agreement: float | None = None
    reason: str = ""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.fn(x)


def optimize(
    model: nn.Module,
    example_input: torch.Tensor,
    int8: bool = False,
    calibration_data: torch.Tensor | Iterable[Any] | None = None,
    *,
    eval_data: torch.Tensor | Iterable[Any] | None = None,
    rounds: int = MIN_ROUNDS,
    min_run_time: float = 0.1,
    **sampling: Any,
) -> Optimized:
    """The fastest inference of ``model`` on this machine that keeps its outputs; chapter 11.

    Folds BatchNorm (:func:`fold_bn`; a ShuffleNet V2, ours or torchvision's, is rebuilt with
    the fast units of :func:`fast_shufflenet_v2`), times the folded model in NCHW and in
    channels-last memory, compiles it (:func:`compile`) and with ``int8`` also quantises
    (:func:`quantize_int8`, on ``calibration_data``, agreement on ``eval_data``). All candidates
    are timed on ``example_input`` here, in interleaved rounds (:func:`shufflelib.bench.compare`;
    ``sampling`` goes there), and a more complex candidate replaces a simpler one only when it is
    faster beyond noise: its paired time ratio to the simpler one has its whole interval below 1
    (:func:`choose`). ``reason`` says why. The float result must match ``model`` within 1e-4
    (relative to the largest output when that exceeds 1), or a RuntimeError says by how much.
    """
    _check_module(model)
    _check_eval(model, "optimize")
    x = _check_image_batch(example_input, "example_input")
    _check_bool(int8, "int8")
    if int8 and calibration_data is None:
        raise ValueError("int8=True needs calibration_data (images the model will see)")
    if not int8 and (calibration_data is not None or eval_data is not None):
        raise ValueError("calibration_data and eval_data are used only with int8=True")
    sampling = sampling_arguments(rounds, sampling)

    fast = as_fast_shufflenet(model)
    folded = fold_bn(fast if fast is not None else model)
    prefix = ["fast ShuffleNet V2 units"] if fast is not None else []
    layout = to_channels_last(folded)
    compiled = compile(layout, x)
    options: dict[str, tuple[list[str], Callable[[torch.Tensor], torch.Tensor]]] = {
        "eager, NCHW": (["BN folding"], folded),
        "eager, channels-last": (["BN folding", "channels-last"], layout),
        "compiled": (["BN folding", "channels-last", "torch.compile"], compiled),
    }
    quantized = None
    if int8:
        quantized = quantize_int8(layout, calibration_data, example_input=x, eval_data=eval_data)
        kept = ["BN folding", "channels-last", "int8 (PT2E)", "torch.compile"]
        options["int8"] = (kept, quantized)
    table = compare(
        {k: _inference(f, x) for k, (_, f) in options.items()},
        (),
        baseline="eager, NCHW",
        min_run_time=min_run_time,
        title=f"optimize: candidates on input {tuple(x.shape)}",
        **sampling,
    )
    with torch.inference_mode():
        want = model(x)
        errors = {k: _relative_error(f(x), want) for k, (_, f) in options.items() if k != "int8"}
    for row in table:
        row["max error"] = errors.get(row["name"], "")
    worst = max(errors.values())
    if worst > 1e-4:
        raise RuntimeError(
            f"optimize: a float candidate differs from the model by {worst:.2e} (> 1e-4): {errors}"
        )
    best, reason = choose(table.times, estimator=sampling["estimator"])
    kept, fn = options[best]
    return Optimized(
        fn,
        prefix + kept,
        table,
        max_error=errors.get(best, float("nan")),
        compile_seconds=quantized.compile_seconds if best == "int8" else compiled.compile_seconds,
        agreement=quantized.agreement if quantized is not None else None,
        reason=reason,
    )


def choose(times: Mapping[str, Sequence[float]], *, estimator: str = "median") -> tuple[str, str]:
    """The candidate to keep, from paired per-round times listed simplest first; chapter 11.

    Starting from the simplest, each more complex candidate replaces the one kept so far only
    when it is faster beyond noise: the interval of its paired time ratio to the kept one
    (:func:`shufflelib.stats.ratio_interval`) lies wholly below 1. Returns the name kept and the
    reason, with every interval that decided.
    """
    if not isinstance(times, Mapping) or not times:
        raise TypeError(f"times must be a non-empty mapping name -> per-round times, got {times!r}")
    names = list(times)
    kept, words = names[0], []
    for name in names[1:]:
        iv = stats.ratio_interval(times[name], times[kept], estimator=estimator)
        faster = iv.side(1.0) < 0
        words.append(
            f"{name} / {kept} time {iv}: "
            + ("faster, kept" if faster else "not faster beyond noise")
        )
        kept = name if faster else kept
    return kept, f"kept {kept}; " + "; ".join(words) if words else f"kept {kept}, the only one"


def ladder(
    model: nn.Module,
    reference: nn.Module,
    *,
    name: str = "",
    batches: Sequence[int] = (1, 16),
    image_size: int = 224,
    calibration_data: torch.Tensor | Iterable[Any] | None = None,
    eval_data: torch.Tensor | Iterable[Any] | None = None,
    roof: Roofline | None = None,
    rounds: int = MIN_ROUNDS,
    min_run_time: float = 0.1,
    threads: int | None = None,
    **sampling: Any,
) -> Table:
    """Chapter 11's table: each deployment step on top of the last, timed side by side.

    Rows: ``reference`` (torchvision's model, eager), ``model`` (ours, eager, same weights),
    + BN folding, + channels-last (with the fast units for ShuffleNet V2), + compiled
    (:func:`compile`, once per batch size), and with ``calibration_data`` + int8
    (:func:`quantize_int8`, calibrated once, compiled per batch size). Per batch size: median and
    IQR over the interleaved rounds of :func:`~shufflelib.bench.compare` (``rounds`` at least;
    ``sampling`` goes there), and the speed-up over torchvision eager (1 / the paired time ratio)
    with its interval (``b{N} low``, ``b{N} high``). The table carries ``times`` (batch ->
    variant -> per-round seconds) for any other paired ratio. Also the compile seconds (all
    batch sizes together), the largest output difference to ours eager on the timing input
    (relative to the largest output when that exceeds 1), and with ``eval_data`` the int8 top-1
    agreement with the float model (of PT2E's reference graph, which the compiled int8 kernels
    compute). With ``roof`` (:func:`~shufflelib.bench.roofline_probe`), the fraction of the
    roofline bound (:func:`roofline_bound`) each row reaches; int8 moves fewer bytes than the
    float32 bound assumes and can exceed 1.
    """
    for label, m in (("model", model), ("reference", reference)):
        _check_module(m, label)
        _check_eval(m, f"ladder ({label})")
    if not batches or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in batches):
        raise ValueError(f"batches must be a non-empty list of ints >= 1, got {batches!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an int >= 8, got {image_size!r}")
    if roof is not None and not isinstance(roof, Roofline):
        raise TypeError(f"roof must be a shufflelib.bench.Roofline, got {type(roof).__name__}")
    if eval_data is not None and calibration_data is None:
        raise ValueError("eval_data measures the int8 agreement: pass calibration_data too")
    sampling = sampling_arguments(rounds, sampling)

    variants = {"torchvision eager": reference, **steps(model)}
    layout = variants["+ channels-last"]
    quantized = None
    if calibration_data is not None:
        quantized = quantize_int8(layout, calibration_data, eval_data=eval_data, compiled=False)
    rows: dict[str, dict[str, Any]] = {k: {"model": name, "variant": k} for k in variants}
    compiled_rows = {"+ compiled": {"model": name, "variant": "+ compiled", "compile (s)": 0.0}}
    if quantized is not None:
        compiled_rows["+ int8"] = {
            "model": name,
            "variant": "+ int8",
            "compile (s)": quantized.quantize_seconds,
        }
    rows.update(compiled_rows)
    g = torch.Generator().manual_seed(0)
    times: dict[int, dict[str, list[float]]] = {}
    for b in batches:
        x = torch.randn(b, 3, image_size, image_size, generator=g)
        fns: dict[str, Callable[[torch.Tensor], torch.Tensor]] = dict(variants)
        c = compile(layout, x)
        fns["+ compiled"] = c
        rows["+ compiled"]["compile (s)"] += c.compile_seconds
        if quantized is not None:
            q = compile(quantized.reference, x)
            fns["+ int8"] = q
            rows["+ int8"]["compile (s)"] += q.compile_seconds
        with torch.inference_mode():
            want = model(x)
            for k, f in fns.items():
                err = _relative_error(f(x), want)
                rows[k]["max error"] = max(rows[k].get("max error", 0.0), err)
        timed = compare(
            {k: _inference(f, x) for k, f in fns.items()},
            (),
            baseline="torchvision eager",
            min_run_time=min_run_time,
            threads=threads,
            **sampling,
        )
        times[b] = timed.times
        bound = roofline_bound(model, (b, 3, image_size, image_size), roof) if roof else None
        for r in timed:
            row = rows[r["name"]]
            row[f"b{b} (ms)"] = r["median (ms)"]
            row[f"b{b} IQR (ms)"] = r["IQR (ms)"]
            row[f"speed-up b{b}"] = 1.0 / r["ratio"]
            row[f"b{b} low"] = 1.0 / r["ratio high"] if r["ratio high"] > 0 else float("inf")
            row[f"b{b} high"] = 1.0 / r["ratio low"] if r["ratio low"] > 0 else float("inf")
            if bound is not None:
                row[f"roofline b{b}"] = bound.seconds * 1e3 / r["median (ms)"]
        note = timed.note
    if quantized is not None and eval_data is not None:
        rows["+ int8"]["top-1 agreement"] = quantized.agreement
    order = [k for k in rows if k != "+ int8"] + (["+ int8"] if quantized is not None else [])
    title = f"{name}: deployment steps at {image_size}x{image_size}, eval, inference mode"
    table = Table([rows[k] for k in order], title=title, note=note)
    table.times = times
    return table


def step_gains(table: Table) -> Table:
    """Each step of a :func:`ladder` against the step before it, per batch size; chapter 11.

    One row per step and batch size: the speed-up over the previous row of the ladder (its time
    over this one's, the median of per-round ratios from the same interleaved rounds) with its
    95% interval, and whether "this step is faster" *holds*, *does not hold* or is *too close to
    call*. The int8 row is compared with the compiled float row, the step it replaces.
    """
    times = getattr(table, "times", None)
    if not isinstance(table, Table) or not isinstance(times, Mapping) or not times:
        raise TypeError("table must be the Table that deploy.ladder returns (with its times)")
    variants = table.column("variant")
    rows = []
    for b, per_variant in times.items():
        for prev, step in zip(variants, variants[1:]):
            if step == "+ int8":
                prev = "+ compiled"
            iv = stats.ratio_interval(per_variant[prev], per_variant[step])
            rows.append(
                {
                    "model": table[0]["model"],
                    "batch": b,
                    "step": step,
                    "over": prev,
                    "speed-up": iv.estimate,
                    "low": iv.low,
                    "high": iv.high,
                    "faster": stats.verdict(iv, 1.0, claim="above"),
                }
            )
    return Table(rows, title="each step against the one before it (speed-up = its time over ours)")


# ---------------------------------------------------------------------------------------------
# how far from the machine's limit, and where the time goes


@dataclass(frozen=True)
class RooflineBound:
    """The least time a network can take here: max(MAdds / peak, MAC bytes / bandwidth); ch. 11."""

    madds: int
    mac_bytes: int
    compute_seconds: float
    memory_seconds: float

    @property
    def seconds(self) -> float:
        return max(self.compute_seconds, self.memory_seconds)

    @property
    def bound_by(self) -> str:
        return "compute" if self.compute_seconds >= self.memory_seconds else "memory"


def roofline_bound(model: nn.Module, input_size: Sequence[int], roof: Roofline) -> RooflineBound:
    """The roofline bound of a whole network on this machine; chapter 11 (chapter 3's model).

    Multiply-adds from :func:`~shufflelib.cost.madds` at the measured peak rate, or the memory
    access cost (:func:`~shufflelib.cost.mac`, the ShuffleNet V2 paper's definition) of the
    BatchNorm-folded network at the measured DRAM bandwidth, whichever takes longer. Two
    caveats, both ways: MAC counts every operator's reads and writes, so a compiler that fuses
    operators moves fewer bytes; and small batches live in the caches, faster than DRAM.
    """
    _check_module(model)
    _check_eval(model, "roofline_bound")
    if not isinstance(roof, Roofline):
        raise TypeError(f"roof must be a shufflelib.bench.Roofline, got {type(roof).__name__}")
    work = madds(model, input_size)
    moved = mac(fold_bn(model), input_size).bytes
    return RooflineBound(work, moved, work / roof.peak_madds, moved / roof.bandwidth)


def roofline_table(
    models: Mapping[str, nn.Module],
    roof: Roofline,
    *,
    batches: Sequence[int] = (1, 16),
    image_size: int = 224,
) -> Table:
    """:func:`roofline_bound` of several networks at several batch sizes, one row each; ch. 11.

    Columns: MAdds and MAC (millions, megabytes), the compute and memory times (ms), the bound
    (the larger) and which of the two it is; the note names the machine's roofline.
    """
    if not isinstance(models, Mapping) or not models:
        raise TypeError(f"models must be a non-empty mapping of name to nn.Module, got {models!r}")
    if not batches or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in batches):
        raise ValueError(f"batches must be a non-empty list of ints >= 1, got {batches!r}")
    rows = []
    for name, model in models.items():
        for b in batches:
            bound = roofline_bound(model, (b, 3, image_size, image_size), roof)
            rows.append(
                {
                    "network": name,
                    "batch": b,
                    "MAdds (M)": bound.madds / 1e6,
                    "MAC (MB)": bound.mac_bytes / 1e6,
                    "compute (ms)": bound.compute_seconds * 1e3,
                    "memory (ms)": bound.memory_seconds * 1e3,
                    "bound (ms)": bound.seconds * 1e3,
                    "bound by": bound.bound_by,
                }
            )
    return Table(
        rows,
        title="Roofline bound: max(MAdds / peak, MAC bytes / bandwidth)",
        note=str(roof).replace("\n", "; "),
    )


def roofline_points(
    tables: Sequence[Table],
    models: Mapping[str, nn.Module],
    *,
    image_size: int = 224,
    variants: Sequence[str] | None = None,
) -> Table:
    """Rows of :func:`ladder` tables as points for :func:`shufflelib.plot.roofline`; chapter 11.

    One point per network, batch size and variant: the network's arithmetic intensity (MAdds per
    MAC byte of the BatchNorm-folded network, the same for every variant) and the multiply-adds
    per second each variant reaches (MAdds / median time). ``models`` maps each table's
    ``model`` column to the float network; ``variants`` keeps only those rows.
    """
    rows = []
    for table in tables:
        if not isinstance(table, Table):
            raise TypeError(f"tables must hold ladder() Tables, got {type(table).__name__}")
        batches = [int(c[1:].split()[0]) for c in table.columns if c.endswith(" IQR (ms)")]
        for b in batches:
            counts: dict[str, tuple[int, int]] = {}
            for row in table:
                if variants is not None and row["variant"] not in variants:
                    continue
                net = row["model"]
                if net not in models:
                    raise ValueError(f"models has no network for {net!r}; it has {list(models)}")
                if net not in counts:
                    size = (b, 3, image_size, image_size)
                    counts[net] = (madds(models[net], size), mac(fold_bn(models[net]), size).bytes)
                work, moved = counts[net]
                seconds = row[f"b{b} (ms)"] * 1e-3
                rows.append(
                    {
                        "operator": f"{row['variant']} (b{b})",
                        "kind": f"{net}, batch {b}",
                        "MAdds": work,
                        "MAC (bytes)": moved,
                        "MAdd/byte": work / moved,
                        "GMAdd/s": work / seconds / 1e9,
                        "GB/s": moved / seconds / 1e9,
                    }
                )
    return Table(rows, title="whole networks on the roofline")


_COPIES = "copies (layout, concat, shuffle)"
_KINDS = (  # (part of the operator's name, kind), first match wins
    ("qconv", "int8 convolution (oneDNN)"),
    ("qlinear", "int8 linear (oneDNN)"),
    ("pool", "pooling"),
    ("quantize", "int8 conversions"),
    ("conv", "convolution"),
    ("batch_norm", "BatchNorm"),
    ("addmm", "linear (classifier)"),
    ("linear", "linear (classifier)"),
    ("CompiledFxGraph", "Inductor's generated kernels (fused element-wise, copies)"),
    ("clamp", "element-wise (ReLU)"),
    ("relu", "element-wise (ReLU)"),
    ("hardtanh", "element-wise (ReLU6)"),
    ("add", "element-wise (add)"),
    ("copy", _COPIES),
    ("clone", _COPIES),
    ("cat", _COPIES),
    ("stack", _COPIES),
    ("contiguous", _COPIES),
    ("mean", "global pooling"),
    ("sum", "global pooling"),
)


def _kind(op: str) -> str:
    for key, kind in _KINDS:
        if key in op:
            return kind
    return "framework (dispatch, views, allocation)"


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Send the C++ side's standard error to /dev/null for the block (then restore it).

    The profiler's tracing library prints its own start and stop lines there, and on a machine
    with a CUDA build of PyTorch and no GPU an error line about the missing device.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def profile_by_operator(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    runs: int = 5,
    top: int = 8,
    label: str = "",
) -> Table:
    """Where a forward pass spends its time, by operator, from ``torch.profiler``; chapter 11.

    Runs ``fn(x)`` once to warm up, then ``runs`` times under the profiler (CPU activities), and
    returns the ``top`` operators by self time (time in the operator itself, not in the ones it
    calls) per forward pass, with their share of the total, the kind of work they do, and one
    row for the rest. The profiler adds a little overhead to every operator call.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    _check_image_batch(x, "x")
    for what, v in (("runs", runs), ("top", top)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{what} must be an int >= 1, got {v!r}")
    from torch.profiler import ProfilerActivity, profile

    run = _inference(fn, x)
    run()
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(runs):
            run()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    rows = [
        {
            "operator": e.key,
            "kind": _kind(e.key),
            "calls": e.count // runs,
            "self time (ms)": e.self_cpu_time_total / runs / 1e3,
            "share": e.self_cpu_time_total / total,
        }
        for e in events[:top]
    ]
    rest = events[top:]
    if rest:
        rest_time = sum(e.self_cpu_time_total for e in rest)
        rows.append(
            {
                "operator": f"({len(rest)} others)",
                "kind": "",
                "calls": sum(e.count for e in rest) // runs,
                "self time (ms)": rest_time / runs / 1e3,
                "share": rest_time / total,
            }
        )
    title = f"profile of {label or 'one forward pass'}, input {tuple(x.shape)}, by self time"
    return Table(rows, title=title, note=str(machine_info(x.device)))
