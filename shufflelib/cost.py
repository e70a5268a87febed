"""What a network costs on paper: parameters, multiply-adds (the papers' "FLOPs") and memory access.

Chapter 1 checks the counts against the group-convolution formulas; chapter 3 derives the memory
access cost (MAC) of ShuffleNet V2 and places each layer on the roofline.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode, flop_registry

from . import validate
from .tables import Table

__all__ = [
    "MAC_UNITS",
    "count_params",
    "madds",
    "MemoryAccess",
    "mac",
    "layer_report",
    "size_table",
    "pointwise_mac",
    "mac_vs_ratio",
    "mac_vs_groups",
    "stage_report",
    "torchinfo_summary",
    "guideline_profile",
]

MAC_UNITS = {"MAC": "bytes"}  # the unit of every "MAC" column ("MAC elements" counts elements)


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those that require grad); chapter 1."""
    validate.module("model", model)
    validate.flag("trainable_only", trainable_only)
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _zero_input(model: nn.Module, input_size: Sequence[int]) -> torch.Tensor:
    """A zero tensor of ``input_size`` on the model's device and dtype (after checking both)."""
    validate.module("model", model)
    size = validate.shape("input_size", input_size)
    param = next(model.parameters(), None)
    if param is None:
        return torch.zeros(size)
    return torch.zeros(size, device=param.device, dtype=param.dtype)


def _forward(model: nn.Module, x: torch.Tensor) -> None:
    """``model(x)``; a model that cannot take an input of this size is the caller's ValueError."""
    try:
        model(x)
    except RuntimeError as e:
        raise ValueError(
            f"input_size {tuple(x.shape)} does not fit {type(model).__name__}: {e}"
        ) from e


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for the block; then every submodule gets its own mode back (they may differ)."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for m, training in modes.items():
            m.training = training


def madds(model: nn.Module, input_size: Sequence[int]) -> int:
    """Multiply-adds of one forward pass on a zero input of ``input_size``; chapter 1.

    Counted by ``torch.utils.flop_counter``, which reports 2 FLOPs per multiply-add for
    convolutions and matrix products; the papers' "FLOPs" are multiply-adds, so we halve it.
    Element-wise work (ReLU, BatchNorm, additions) is not counted, as in the papers.
    """
    x = _zero_input(model, input_size)
    with _eval_mode(model), torch.no_grad(), FlopCounterMode(display=False) as counter:
        _forward(model, x)
    return counter.get_total_flops() // 2


@dataclass(frozen=True)
class MemoryAccess:
    """Memory access cost: elements read and written, and the same in bytes."""

    elements: int
    bytes: int


@dataclass
class _OpRecord:
    module: str
    module_type: str
    op: str
    madds: int
    elements: int
    bytes: int
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]


class _CostMode(TorchDispatchMode):
    """Sees every aten operator a forward pass runs and records its MAdds and memory access.

    No library counts the ShuffleNet V2 paper's MAC, so this is ours: an operator's MAC is the
    number of elements of every tensor it reads (inputs, weights) plus every tensor it writes
    (outputs). View operators (reshape, transpose, chunk, ...) move no data and cost nothing.
    Multiply-adds come from ``torch.utils.flop_counter``'s own per-operator formulas.
    """

    def __init__(self, stack: list[tuple[str, str]]):
        super().__init__()
        self.stack = stack
        self.records: list[_OpRecord] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func.is_view or func._overloadpacket in _FREE_OPS:
            return out
        ins = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        outs = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        if func._schema.is_mutable:  # in-place (relu_, add_): the written input is the output
            outs = outs[:1]
        else:
            storages = {t.untyped_storage().data_ptr() for t in ins}
            if outs and all(t.untyped_storage().data_ptr() in storages for t in outs):
                return out  # an alias of an input (e.g. _unsafe_view): no data moved
        elements = sum(t.numel() for t in ins) + sum(t.numel() for t in outs)
        nbytes = sum(t.numel() * t.element_size() for t in ins + outs)
        flops = 0
        counter = flop_registry.get(func._overloadpacket)
        if counter is not None:
            flops = counter(*args, **kwargs, out_val=out)
        module, module_type = self.stack[-1]
        first_in = next((t for t in ins if t.dim() > 0), None)
        self.records.append(
            _OpRecord(
                module=module,
                module_type=module_type,
                op=func._overloadpacket.__name__,
                madds=flops // 2,
                elements=elements,
                bytes=nbytes,
                in_shape=tuple(first_in.shape) if first_in is not None else (),
                out_shape=tuple(outs[0].shape) if outs else (),
            )
        )
        return out


# Operators that neither compute nor move tensor data.
_FREE_OPS = {
    torch.ops.aten.detach,
    torch.ops.aten.lift_fresh,
    torch.ops.aten.empty,
    torch.ops.aten.empty_like,
    torch.ops.aten.empty_strided,
}


def _trace(model: nn.Module, input_size: Sequence[int]) -> list[_OpRecord]:
    x = _zero_input(model, input_size)
    stack: list[tuple[str, str]] = [("(input)", type(model).__name__)]

    def enter(label: str):
        def hook(module: nn.Module, args: Any) -> None:
            stack.append((label, type(module).__name__))

        return hook

    def leave(module: nn.Module, args: Any, output: Any) -> None:
        stack.pop()  # a forward hook must return None, or it replaces the output

    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(enter(name or "(model)")))
        handles.append(module.register_forward_hook(leave))
    mode = _CostMode(stack)
    try:
        with _eval_mode(model), torch.no_grad(), mode:
            _forward(model, x)
    finally:
        for h in handles:
            h.remove()
    return mode.records


def mac(model: nn.Module, input_size: Sequence[int]) -> MemoryAccess:
    """Memory access cost of one forward pass, the ShuffleNet V2 paper's definition; chapter 3.

    Every operator's inputs, weights and outputs, summed (elements, and bytes at the model's
    dtype). For a bias-free 1x1 convolution from ``c1`` to ``c2`` channels on an ``h x w`` map this
    is ``hw(c1 + c2) + c1 c2``, the paper's Eq. 1. Runs in eval mode (BatchNorm uses its
    statistics).
    """
    records = _trace(model, input_size)
    return MemoryAccess(sum(r.elements for r in records), sum(r.bytes for r in records))


def layer_report(model: nn.Module, input_size: Sequence[int]) -> Table:
    """One row per layer: type, shapes, MAdds, MAC and arithmetic intensity; chapters 3 and 7.

    A layer is a leaf module (a convolution, a BatchNorm, a ReLU). Work a module does itself
    outside its children, such as the concatenation and channel shuffle in a ShuffleNet unit, gets
    a row of its own named ``module:operator``. Intensity is multiply-adds per byte of MAC.
    """
    records = _trace(model, input_size)
    rows: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    leaves = {name or "(model)" for name, m in model.named_modules() if not list(m.children())}
    for r in records:
        key = r.module if r.module in leaves else f"{r.module}:{r.op}"
        if key not in index:
            index[key] = len(rows)
            layer_type = r.module_type if r.module in leaves else r.op
            rows.append(
                {
                    "layer": key,
                    "type": layer_type,
                    "input": r.in_shape,
                    "output": r.out_shape,
                    "MAdds": 0,
                    "MAC elements": 0,
                    "MAC": 0,
                }
            )
        row = rows[index[key]]
        row["MAdds"] += r.madds
        row["MAC elements"] += r.elements
        row["MAC"] += r.bytes
        row["output"] = r.out_shape
    for row in rows:
        row["MAdd/byte"] = row["MAdds"] / row["MAC"] if row["MAC"] else 0.0
    total = f"{sum(r['MAdds'] for r in rows):,} MAdds, {sum(r['MAC'] for r in rows):,} bytes"
    title = f"{type(model).__name__} on input {tuple(input_size)}"
    return Table(rows, title=title, note=total, units=MAC_UNITS)


def size_table(
    models: Mapping[str, nn.Module], input_size: Sequence[int], title: str | None = None
) -> Table:
    """Parameters, multiply-adds and MAC of several networks on one input, a row each; ch. 5-9.

    ``models`` maps a label to a network; every count is in millions (MAC in megabytes, at the
    model's dtype), from :func:`count_params`, :func:`madds` and :func:`mac`.
    """
    validate.mapping("models", models)
    for name, model in models.items():
        validate.module(f"models[{name!r}]", model)
    size = validate.shape("input_size", input_size)
    rows = [
        {
            "model": name,
            "params": count_params(model) / 1e6,
            "MAdds": madds(model, size) / 1e6,
            "MAC": mac(model, size).bytes / 1e6,
        }
        for name, model in models.items()
    ]
    units = {"params": "M", "MAdds": "M", "MAC": "MB"}
    return Table(rows, title=title or f"parameters and cost on input {size}", units=units)


def pointwise_mac(h: float, w: float, c1: float, c2: float, groups: float = 1) -> float:
    """MAC of a bias-free 1x1 (group) convolution: ``hw(c1 + c2) + c1 c2 / g``; chapter 3.

    The ShuffleNet V2 paper's Eq. 1 (g = 1) and Eq. 2: the input and output feature maps plus
    the weights, in elements. Real-valued inputs are allowed so the formula can be plotted.
    """
    for name, v in (("h", h), ("w", w), ("c1", c1), ("c2", c2), ("groups", groups)):
        validate.number(name, v, above=0)
    return h * w * (c1 + c2) + c1 * c2 / groups


def mac_vs_ratio(h: int, w: int, flops: float, ratios: Sequence[float]) -> Table:
    """G1: MAC of a 1x1 convolution at fixed FLOPs ``B = hw c1 c2`` as ``c2 / c1`` varies; ch. 3.

    For each ratio ``r = c2 / c1`` the channels solve ``hw c1 (r c1) = B``; the lower bound
    ``2 sqrt(hw B) + B / hw`` is reached at ``r = 1``.
    """
    hw = validate.number("h", h, above=0) * validate.number("w", w, above=0)
    flops = validate.number("flops", flops, above=0)
    rows = []
    for r in ratios:
        r = validate.number("ratio", r, above=0)
        c1 = (flops / (hw * r)) ** 0.5
        c2 = r * c1
        rows.append(
            {
                "c2/c1": r,
                "c1": c1,
                "c2": c2,
                "MAC": pointwise_mac(h, w, c1, c2),
                "lower bound": 2 * (hw * flops) ** 0.5 + flops / hw,
            }
        )
    return Table(rows, title=f"1x1 convolution, {h}x{w} map, B = {flops:,.0f} MAdds fixed")


def mac_vs_groups(h: int, w: int, c1: int, flops: float, groups: Sequence[int]) -> Table:
    """G2: MAC of a 1x1 group convolution at fixed FLOPs and input width as g grows; chapter 3.

    With ``B = hw c1 c2 / g`` and ``c1`` fixed, the output width is ``c2 = B g / (hw c1)`` and
    ``MAC = hw c1 + B g / c1 + B / hw``, which grows linearly with ``g``.
    """
    hw = validate.number("h", h, above=0) * validate.number("w", w, above=0)
    c1 = validate.number("c1", c1, above=0)
    flops = validate.number("flops", flops, above=0)
    rows = []
    for g in validate.shape("groups", groups):
        c2 = flops * g / (hw * c1)
        rows.append({"g": g, "c1": c1, "c2": c2, "MAC": pointwise_mac(h, w, c1, c2, g)})
    return Table(rows, title=f"1x1 group convolution, {h}x{w} map, c1 = {c1:g}, B = {flops:,.0f}")


def _stage_outputs(model: nn.Module, input_size: Sequence[int], depth: int) -> dict[str, tuple]:
    shapes: dict[str, tuple] = {}
    handles = []
    for name, module in model.named_modules():
        if name and name.count(".") == depth - 1:

            def hook(m: nn.Module, a: Any, out: Any, name: str = name) -> None:
                if isinstance(out, torch.Tensor):
                    shapes[name] = tuple(out.shape)

            handles.append(module.register_forward_hook(hook))
    x = _zero_input(model, input_size)
    try:
        with _eval_mode(model), torch.no_grad():
            _forward(model, x)
    finally:
        for h in handles:
            h.remove()
    return shapes


def stage_report(model: nn.Module, input_size: Sequence[int], depth: int = 1) -> Table:
    """Parameters, MAdds and MAC summed per stage (module path cut at ``depth``); chapters 5-8.

    ``depth=1`` groups by the model's direct children (``conv1``, ``stage2``, ... in ShuffleNet);
    ``depth=2`` by their children (``features.3`` in MobileNetV2). Built on :func:`layer_report`.
    """
    validate.integer("depth", depth, minimum=1)
    report = layer_report(model, input_size)
    outputs = _stage_outputs(model, input_size, depth)
    rows: dict[str, dict[str, Any]] = {}
    for r in report:
        path = r["layer"].split(":")[0]
        key = "(model)" if path == "(model)" else ".".join(path.split(".")[:depth])
        if key not in rows:
            params = 0 if key == "(model)" else count_params(model.get_submodule(key))
            if key == "(model)":  # parameters held by the model itself, outside any child
                params = sum(p.numel() for p in model.parameters(recurse=False))
            rows[key] = {"stage": key, "params": params, "MAdds": 0, "MAC": 0}
        rows[key]["MAdds"] += r["MAdds"]
        rows[key]["MAC"] += r["MAC"]
        rows[key]["output"] = outputs.get(key, r["output"])
    for row in rows.values():
        row["MAdd/byte"] = row["MAdds"] / row["MAC"] if row["MAC"] else 0.0
    ordered = [r for k, r in rows.items() if k != "(model)"] + [
        r
        for k, r in rows.items()
        if k == "(model)"  # the model's own work (pooling, flatten)
    ]
    title = f"{type(model).__name__} by stage, input {tuple(input_size)}"
    return Table(ordered, title=title, units=MAC_UNITS)


def torchinfo_summary(
    model: nn.Module, input_size: Sequence[int] = (1, 3, 224, 224), depth: int = 2
) -> Table:
    """torchinfo's layer-by-layer summary as a Table: each module down to ``depth``, with its
    output shape, parameters and multiply-adds (those of everything inside it); chapter 5.

    torchinfo counts; this only lays its numbers out as a table that fits the book's page (its
    own text is wider than the column). The note gives torchinfo's totals.
    """
    import torchinfo  # only chapter 5 needs it

    validate.module("model", model)
    size = validate.shape("input_size", input_size)
    validate.integer("depth", depth, minimum=1)
    stats = torchinfo.summary(model, input_size=size, depth=depth, verbose=0)
    layers = stats.summary_list
    rows = []
    for k, layer in enumerate(layers):
        if layer.depth > depth:
            continue
        inside = [layer]
        for later in layers[k + 1 :]:
            if later.depth <= layer.depth:
                break
            inside.append(later)
        name = f"{layer.class_name}: {layer.depth}-{layer.depth_index}"  # torchinfo's naming
        rows.append(
            {
                "module": ". " * layer.depth + name,
                "output shape": tuple(layer.output_size),
                "params": layer.num_params,
                "mult-adds": sum(x.macs for x in inside if x.is_leaf_layer),
            }
        )
    note = f"torchinfo: {stats.total_params:,} parameters, {stats.total_mult_adds:,} mult-adds"
    return Table(rows, title=f"{type(model).__name__} on input {size}, depth {depth}", note=note)


# aten operators that copy a tensor without changing it: layout moves, not element-wise work.
_COPIES = {"clone", "copy_", "_to_copy", "contiguous", "cat", "stack"}


def _is_elementwise(r: _OpRecord) -> bool:
    """An operator that maps each element on its own: no multiply-adds, output shaped as its
    first input, and neither a copy nor a BatchNorm (which deployment folds, chapter 11)."""
    if r.madds or r.op in _COPIES or "batch_norm" in r.op or not r.out_shape:
        return False
    return r.out_shape == r.in_shape


def _profile_row(model: nn.Module, size: tuple[int, ...]) -> dict[str, Any]:
    records = _trace(model, size)
    convs = {n or "(model)": m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    total_madds = sum(r.madds for r in records) or 1
    grouped = depthwise = 0
    pointwise, bound = 0.0, 0.0
    for r in records:
        conv = convs.get(r.module)
        if conv is None or r.op != "convolution":
            continue
        if conv.groups == conv.in_channels and conv.groups > 1:
            depthwise += r.madds
        elif conv.groups > 1:
            grouped += r.madds
        elif conv.kernel_size == (1, 1):  # G1: Eq. 1 against its minimum at the same MAdds
            hw, c1, c2 = r.out_shape[-1] * r.out_shape[-2], conv.in_channels, conv.out_channels
            pointwise += pointwise_mac(1, hw, c1, c2)
            bound += pointwise_mac(1, hw, (c1 * c2) ** 0.5, (c1 * c2) ** 0.5)
    elementwise = sum(r.bytes for r in records if _is_elementwise(r))
    return {
        "1x1 MAC / minimum": pointwise / bound if bound else None,
        "grouped MAdds": 100 * grouped / total_madds,
        "depthwise MAdds": 100 * depthwise / total_madds,
        "operators": len(records),
        "element-wise MAC": 100 * elementwise / (sum(r.bytes for r in records) or 1),
    }


def guideline_profile(models: Mapping[str, nn.Module], input_size: Sequence[int]) -> Table:
    """How far each network's structure follows the four guidelines, counted on paper; ch. 4.

    One row per network, from the operators one forward pass on ``input_size`` runs (the trace
    behind :func:`mac`). No library measures a design against the ShuffleNet V2 paper's
    guidelines, so these four counts are ours:

    - **G1** ``1x1 MAC / minimum``: the MAC of every dense 1x1 convolution (Eq. 1, without
      bias) over the least MAC a 1x1 convolution with the same multiply-adds on the same map can
      have, at equal input and output widths; 1.0 means every one keeps its widths equal.
    - **G2** ``grouped MAdds`` and ``depthwise MAdds``: the share (%) of the multiply-adds in
      group convolutions (1 < groups < input channels) and in depthwise ones.
    - **G3** ``operators``: the aten operators that move data, the fragments a runtime launches
      one by one unless it fuses them.
    - **G4** ``element-wise MAC``: the share (%) of the bytes moved by element-wise operators
      (activations, additions, multiplications by a same-shaped tensor). BatchNorm is left out,
      since deployment folds it into the convolution before it (chapter 11).

    Counts, not times: chapters 4, 7, 12 and 13 time what they predict.
    """
    validate.mapping("models", models)
    for name, model in models.items():
        validate.module(f"models[{name!r}]", model)
    size = validate.shape("input_size", input_size)
    rows = [{"model": name, **_profile_row(model, size)} for name, model in models.items()]
    units = {"grouped MAdds": "%", "depthwise MAdds": "%", "element-wise MAC": "%"}
    return Table(rows, title=f"the guidelines on paper, input {size}", units=units)
