"""int8 after training on x86 CPUs (PyTorch's PT2E flow), and how far it agrees with float32."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .. import validate
from ..env import instruction_sets
from ..tables import Table
from .compiled import Compiled, compile

__all__ = [
    "Int8Model",
    "quantize_int8",
    "top1_agreement",
    "flips",
    "image_batches",
    "relative_error",
    "reduced_range",
]

Model = Callable[[torch.Tensor], torch.Tensor]
Data = torch.Tensor | Iterable[Any]


def image_batches(data: object, name: str, batch_size: int) -> list[torch.Tensor]:
    """A tensor (N, C, H, W), or an iterable of them or of (images, labels) pairs, as a list of
    image batches of at most ``batch_size`` (checked, before any work); ``name`` names ``data``
    in messages. Chapter 11's int8 functions read their images through it."""
    validate.text("name", name)
    validate.integer("batch_size", batch_size, minimum=1)
    if isinstance(data, torch.Tensor):
        items: list[Any] = [data]
    elif isinstance(data, str | bytes) or not isinstance(data, Iterable):
        raise TypeError(
            f"{name} must be a tensor (N, C, H, W) or an iterable of such tensors or of "
            f"(images, labels) pairs, got {validate.show(data)}"
        )
    else:
        items = [i[0] if isinstance(i, tuple | list) and i else i for i in data]
    if not items:
        raise ValueError(f"{name} must hold at least one batch, got none")
    for k, x in enumerate(items):
        where = name if isinstance(data, torch.Tensor) else f"{name}[{k}]"
        validate.tensor(where, x, dims=4, floating=True)
    return [part for x in items for part in x.split(batch_size)]


def relative_error(got: torch.Tensor, want: torch.Tensor, *, floor: float = 1.0) -> float:
    """max |got - want| / max(floor, max |want|); chapters 11 and 13.

    With the default ``floor`` of 1 it is absolute for small outputs and relative for large
    ones, the tolerance of a deployment step; ``floor=0`` gives the error relative to the
    largest output however small, the measure of a derivation checked to float rounding.
    """
    validate.tensor("got", got)
    validate.tensor("want", want)
    validate.number("floor", floor, minimum=0)
    if got.shape != want.shape:
        raise ValueError(f"got must have want's shape {tuple(want.shape)}, got {tuple(got.shape)}")
    scale = want.abs().max().clamp(min=floor)
    if scale == 0:
        raise ValueError(
            "want is all zeros, so an error relative to it is undefined: pass floor > 0"
        )
    return ((got - want).abs().max() / scale).item()


@torch.no_grad()
def _top1(fn: Model, batches: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([fn(x).argmax(1) for x in batches])


def top1_agreement(model_a: Model, model_b: Model, data: Data, *, batch_size: int = 256) -> float:
    """Fraction of images on which two models predict the same class (top-1); chapter 11.

    ``data``: an image tensor (N, C, H, W) or an iterable of tensors or (images, labels) batches,
    run in batches of ``batch_size``.
    """
    validate.function("model_a", model_a)
    validate.function("model_b", model_b)
    validate.integer("batch_size", batch_size, minimum=1)
    batches = image_batches(data, "data", batch_size)
    return (_top1(model_a, batches) == _top1(model_b, batches)).float().mean().item()


def _flip_row(group: str, part: torch.Tensor, classes: dict[str, torch.Tensor], labels, margin):
    row: dict[str, Any] = {"images": group, "count": int(part.sum())}
    for kind, c in classes.items():
        row[f"{kind} accuracy"] = (c[part] == labels[part]).float().mean().item()
    row["median margin"] = margin[part].median().item()
    return row


def flips(
    float_model: Model,
    int8_model: Model,
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
    validate.function("float_model", float_model)
    validate.function("int8_model", int8_model)
    x = validate.tensor("images", images, dims=4, floating=True)
    validate.tensor("labels", labels, dims=1)
    if len(labels) != len(x):
        raise ValueError(f"labels must be a tensor of {len(x)} class indices, got {len(labels)}")
    validate.integer("batch_size", batch_size, minimum=1)
    batches = list(x.split(batch_size))
    with torch.inference_mode():
        probs = torch.cat([float_model(b).softmax(1) for b in batches])
    classes = {"float32": probs.argmax(1), "int8": _top1(int8_model, batches)}
    top2 = probs.topk(2, dim=1).values
    margin = top2[:, 0] - top2[:, 1]
    flipped = classes["float32"] != classes["int8"]
    groups = {"all": torch.ones_like(flipped), "flipped": flipped, "kept": ~flipped}
    rows = [_flip_row(g, p, classes, labels, margin) for g, p in groups.items() if p.any()]
    return Table(rows, title="int8 against float32: the predictions int8 changed")


@dataclass
class Int8Model:
    """A post-training int8 model: call it like the float one; chapter 11.

    ``reference`` is PT2E's converted graph (quantise/dequantise around float operators: the
    int8 arithmetic, simulated); ``fn`` runs it compiled by Inductor into int8 oneDNN kernels (a
    :class:`~shufflelib.deploy.Compiled`, warmed up for every batch shape it was evaluated on)
    or is ``reference`` itself with ``compiled=False``. A call is ``fn``'s call and nothing
    more. ``agreement`` is the top-1 agreement with the float model on ``agreement_images``
    images; ``compile_seconds`` covers every shape compiled.
    """

    fn: Model
    reference: nn.Module
    agreement: float
    agreement_images: int
    quantize_seconds: float
    compile_seconds: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


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


def reduced_range() -> bool:
    """Whether int8 multiplies must keep their sums in range: True on a CPU without VNNI.

    Without VNNI, x86 multiplies uint8 activations by int8 weights with an instruction that adds
    pairs of products into 16 bits, and saturates: 255 x 127 x 2 does not fit. The quantisers'
    documented remedy is one bit less on one side (7-bit activations in PyTorch's PT2E flow,
    7-bit weights in ONNX Runtime's); with VNNI the sums are 32 bits wide and all 8 bits are
    used. On a 2-core AVX2 CPU without the remedy, a small test network's int8 outputs were 18%
    off its float ones (``tests/test_deploy.py``, ``tests/test_runtimes.py``).
    """
    return "VNNI" not in instruction_sets()


def _convert(model: nn.Module, calibration: list[torch.Tensor]) -> nn.Module:
    """PT2E: export (batch dimension dynamic), observe ``calibration``, convert; the graph."""
    prepare_pt2e, convert_pt2e, xiq = _pt2e()
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad():
        exported = torch.export.export(model, (calibration[0],), dynamic_shapes=({0: batch},))
        quantizer = xiq.X86InductorQuantizer()
        config = xiq.get_default_x86_inductor_quantization_config(reduce_range=reduced_range())
        quantizer.set_global(config)
        # Max-pooling compares and never multiplies, so int8 saves it no arithmetic; in float32
        # Inductor fuses it into the loop that converts the stem's output, where the int8 pool
        # is a kernel of its own. Measured on ShuffleNet V2 1x (2-core x86 CPU): int8 about 4%
        # faster at batch 1 and 12% at batch 16 with a float32 pool, the same predictions.
        quantizer.set_module_type_qconfig(nn.MaxPool2d, None)
        prepared = prepare_pt2e(exported.module(), quantizer)
        for x in calibration:
            prepared(x)
        return convert_pt2e(prepared)


def _compiled_for(reference: nn.Module, inputs: Sequence[torch.Tensor]) -> Compiled:
    """``reference`` compiled and warmed up for every input shape among ``inputs``."""
    compiled = compile(reference, inputs[0])
    shapes = {tuple(inputs[0].shape)}
    for x in inputs[1:]:
        if tuple(x.shape) not in shapes:
            shapes.add(tuple(x.shape))
            compiled.warm_up(x)
    return compiled


def quantize_int8(
    model: nn.Module,
    calibration_data: Data,
    *,
    example_input: torch.Tensor | None = None,
    eval_data: Data | None = None,
    compiled: bool = True,
    batch_size: int = 64,
) -> Int8Model:
    """Post-training static int8 quantisation for x86 CPUs, PyTorch's PT2E flow; chapter 11.

    The recipe PyTorch documents for x86 ("PyTorch 2 Export Quantization with X86 Backend
    through Inductor"; since PyTorch 2.10 in ``torchao.quantization.pt2e``): export the model
    with ``torch.export`` (the batch dimension left dynamic), insert observers with
    ``prepare_pt2e`` and ``X86InductorQuantizer``'s default configuration (int8 weights per
    output channel, int8 activations per tensor, 7 bits on a CPU without VNNI:
    :func:`reduced_range`; max-pooling left in float32), run
    ``calibration_data`` through it to record activation ranges, ``convert_pt2e`` to a graph
    with quantise/dequantise nodes, and (with ``compiled``) let Inductor with freezing turn the
    patterns into int8 oneDNN convolutions, compiled on ``example_input`` (default: the first
    evaluation batch) and on every other batch shape of the evaluation. Then the top-1
    agreement with the float model is measured on ``eval_data`` (default: the calibration
    data) in batches of ``batch_size``, by the compiled int8 model or by the reference graph
    with ``compiled=False``.

    ``calibration_data`` and ``eval_data``: an image tensor (N, C, H, W) or an iterable of
    tensors or (images, labels) batches, normalised as the model expects. ``model`` must be in
    eval mode and is not changed.
    """
    validate.module("model", model, eval_mode=True)
    validate.integer("batch_size", batch_size, minimum=1)
    validate.flag("compiled", compiled)
    if example_input is not None:
        validate.tensor("example_input", example_input, dims=4, floating=True)
    calib = image_batches(calibration_data, "calibration_data", batch_size)
    evals = calib if eval_data is None else image_batches(eval_data, "eval_data", batch_size)
    example = evals[0] if example_input is None else example_input

    start = time.perf_counter()
    reference = _convert(model, calib)
    quantize_seconds = time.perf_counter() - start
    fn: Model = _compiled_for(reference, [example, *evals]) if compiled else reference
    agreement = top1_agreement(model, fn, evals, batch_size=batch_size)
    seconds = fn.compile_seconds if isinstance(fn, Compiled) else 0.0
    n = sum(len(x) for x in evals)
    return Int8Model(fn, reference, agreement, n, quantize_seconds, seconds)
