"""Chapter 11's experiment: every deployment step timed side by side, against the roofline.

:func:`ladder` builds the steps of :mod:`shufflelib.deploy` on one network and times them in
interleaved rounds; :func:`step_gains` compares each step with the one before it;
:func:`roofline_bound`, :func:`roofline_table` and :func:`roofline_points` say how far they are
from this machine's limit. A ladder's columns are named per batch size by :func:`column`, the one
place those names are built; the batch sizes themselves travel with the table
(:class:`LadderTable`), so nothing reads them back out of a column name.

The experiments layer: above :mod:`shufflelib.deploy`, which it imports, and below nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from . import stats, validate
from .bench import MIN_ROUNDS, Roofline, compare, sampling_arguments, using_threads
from .cost import MAC_UNITS, mac, madds
from .deploy import (
    PRECISIONS,
    STEP_NAMES,
    Compiled,
    Int8Model,
    OnnxModel,
    chosen_runtimes,
    compile,
    folded,
    for_export,
    onnx_models,
    quantize_int8,
    relative_error,
    runtime_models,
    steps,
    top1_agreement,
)
from .deploy.optimized import inference_calls
from .tables import Table

__all__ = [
    "COLUMNS",
    "UNITS",
    "COMPILE",
    "column",
    "LadderTable",
    "ladder",
    "step_gains",
    "fastest",
    "best_variant",
    "RooflineBound",
    "roofline_bound",
    "roofline_table",
    "roofline_points",
]

REFERENCE = "torchvision eager"  # the baseline row of a ladder, unless it is given another name
_STEPS = (*STEP_NAMES, "+ compiled", "+ int8")
COLUMNS = {  # what -> the name of that column for one batch size (see column); units: UNITS
    "median": "b{batch}",
    "IQR": "b{batch} IQR",
    "speed-up": "speed-up b{batch}",
    "low": "b{batch} low",
    "high": "b{batch} high",
    "roofline": "roofline b{batch}",
}
UNITS = {"median": "ms", "IQR": "ms"}  # what -> the unit of its column (the others are ratios)
COMPILE = "compile"  # the column of the seconds spent preparing a row (compile, export, load)


def column(what: str, batch: int) -> str:
    """The name of a :func:`ladder` column for one batch size, e.g. ``column("median", 16)`` is
    ``"b16"`` (in ms, its header ``b16 (ms)``); ``what`` is one of :data:`COLUMNS`. Chapter 11
    picks its views with it."""
    validate.choice("what", what, COLUMNS)
    validate.integer("batch", batch, minimum=1)
    return COLUMNS[what].format(batch=batch)


class LadderTable(Table):
    """What :func:`ladder` returns: its rows, the batch sizes timed and the per-round times.

    ``batches``: the batch sizes in order, each with the columns :func:`column` names;
    ``times``: batch -> variant -> seconds per round (paired by round within one batch size),
    for any paired ratio the table does not show (:func:`step_gains`); ``exported``: the ONNX
    models the runtimes' rows ran (precision -> :class:`~shufflelib.deploy.OnnxModel`), to
    load them again (for a profile) without exporting again; ``compiled``: batch -> the
    compiled networks that were timed (``"+ compiled"``, and ``"+ int8"`` when calibrated), to
    profile them without compiling again.
    """

    def __init__(
        self,
        rows: Iterable[Mapping[str, Any]] = (),
        title: str = "",
        note: str = "",
        *,
        batches: Sequence[int],
        times: Mapping[int, Mapping[str, Sequence[float]]] | None = None,
        exported: Mapping[str, OnnxModel] | None = None,
        compiled: Mapping[int, Mapping[str, Compiled]] | None = None,
        units: Mapping[str, str] | None = None,
    ) -> None:
        self.batches = validate.shape("batches", batches)
        validate.mapping("times", {} if times is None else times, nonempty=False)
        validate.mapping("exported", {} if exported is None else exported, nonempty=False)
        validate.mapping("compiled", {} if compiled is None else compiled, nonempty=False)
        super().__init__(rows, title=title, note=note, units=units)
        self.times = {b: {k: list(v) for k, v in t.items()} for b, t in (times or {}).items()}
        self.exported = dict(exported or {})
        self.compiled = {b: dict(c) for b, c in (compiled or {}).items()}


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


def _work_and_bytes(model: nn.Module, input_size: tuple[int, ...]) -> tuple[int, int]:
    """Multiply-adds and MAC bytes of ``model`` as deployed (:func:`~shufflelib.deploy.folded`:
    BatchNorm folded, and re-parameterised branches) at ``input_size``."""
    deployed = folded(model)
    return madds(deployed, input_size), mac(deployed, input_size).bytes


def roofline_bound(model: nn.Module, input_size: Sequence[int], roof: Roofline) -> RooflineBound:
    """The roofline bound of a whole network on this machine; chapter 11 (chapter 3's model).

    Multiply-adds from :func:`~shufflelib.cost.madds` at the measured peak rate, or the memory
    access cost (:func:`~shufflelib.cost.mac`, the ShuffleNet V2 paper's definition) at the
    measured DRAM bandwidth, whichever takes longer, both of the network as deployed
    (:func:`~shufflelib.deploy.folded`: BatchNorm folded, and a RepVGG's or MobileOne's
    branches). Two
    caveats, both ways: MAC counts every operator's reads and writes, so a compiler that fuses
    operators moves fewer bytes; and small batches live in the caches, faster than DRAM.
    """
    validate.module("model", model, eval_mode=True)
    size = validate.shape("input_size", input_size, length=4)
    validate.instance("roof", roof, Roofline)
    work, moved = _work_and_bytes(model, size)
    return RooflineBound(work, moved, work / roof.peak_madds, moved / roof.bandwidth)


def _check_ladder(model, reference, name, image_size, roof, calibration_data, eval_data, threads):
    """The arguments of :func:`ladder` checked before any work."""
    validate.module("model", model, eval_mode=True)
    validate.module("reference", reference, eval_mode=True)
    validate.instance("name", name, str)
    validate.integer("image_size", image_size, minimum=8)
    if roof is not None:
        validate.instance("roof", roof, Roofline)
    if threads is not None:
        validate.integer("threads", threads, minimum=1)
    if eval_data is not None and calibration_data is None:
        raise ValueError("eval_data measures the int8 agreement: pass calibration_data too")


@dataclass
class _Setup:
    """What every batch size of a :func:`ladder` shares: the eager rows, the int8 graph, the
    exported ONNX models (float32, and int8 when calibrating) and the runtimes to run them in."""

    variants: dict[str, Any]
    quantized: Int8Model | None
    exported: dict[str, OnnxModel]
    runtimes: tuple[str, ...]


def _first_rows(name: str, setup: _Setup) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {
        k: {"model": name, "variant": k, "backend": "PyTorch", "precision": "float32"}
        for k in setup.variants
    }
    rows["+ compiled"] = {**rows["+ channels-last"], "variant": "+ compiled", COMPILE: 0.0}
    if setup.quantized is not None:
        seconds = setup.quantized.quantize_seconds
        rows["+ int8"] = {**rows["+ compiled"], "variant": "+ int8", "precision": "int8"}
        rows["+ int8"][COMPILE] = seconds
    return rows


def _setup(model, reference, reference_name, calibration_data, eval_data, image_size, runtimes):
    """The eager rows of the ladder (name -> model), the int8 graph when calibrating, and the
    exported models when a runtime is to run them."""
    variants = {reference_name: reference, **steps(model)}
    quantized = None
    if calibration_data is not None:
        layout = variants["+ channels-last"]
        quantized = quantize_int8(layout, calibration_data, eval_data=eval_data, compiled=False)
    exported: dict[str, OnnxModel] = {}
    if runtimes:
        example = torch.randn(1, 3, image_size, image_size, generator=torch.Generator())
        exported = onnx_models(for_export(model), example, calibration_data)
    return _Setup(variants, quantized, exported, runtimes)


def _with_compiled(setup: _Setup, x: torch.Tensor, rows) -> dict[str, Any]:
    """The eager rows plus the compiled float (and int8) networks for ``x``; compile seconds in
    ``rows``."""
    fns = dict(setup.variants)
    fns["+ compiled"] = compile(setup.variants["+ channels-last"], x)
    if setup.quantized is not None:
        fns["+ int8"] = compile(setup.quantized.reference, x)
    for k in ("+ compiled", "+ int8"):
        if k in fns:
            rows[k][COMPILE] += fns[k].compile_seconds
    return fns


def _with_runtimes(setup: _Setup, x: torch.Tensor, rows, name: str) -> dict[str, Any]:
    """Every runtime path loaded for ``x``'s shape; its row made at the first batch size, with
    the export (and quantisation) seconds, and every load's seconds added."""
    if not setup.exported:
        return {}
    precisions = PRECISIONS if "int8" in setup.exported else ("float32", "bfloat16")
    runners = runtime_models(
        setup.exported, runtimes=setup.runtimes, precisions=precisions, input_size=x.shape
    )
    for k, r in runners.items():
        prepare = setup.exported["float32"].seconds
        prepare += setup.exported["int8"].seconds if r.precision == "int8" else 0.0
        row = {"model": name, "variant": k, "backend": k.rsplit(" ", 1)[0]}
        row = rows.setdefault(k, {**row, "precision": r.precision, COMPILE: prepare})
        row[COMPILE] += r.load_seconds
    return runners


def _record_errors(model: nn.Module, fns: Mapping[str, Any], x: torch.Tensor, rows) -> None:
    with torch.inference_mode():
        want = model(x)
        for k, f in fns.items():
            err = relative_error(f(x), want)
            rows[k]["max error"] = max(rows[k].get("max error", 0.0), err)


def _time_batch(model, setup, x, rows, name, min_run_time, threads, sampling):
    """Compile and load for ``x``, check every output against ``model``'s, time all side by
    side; the timings' table and the compiled networks."""
    compiled = _with_compiled(setup, x, rows)
    fns = {**compiled, **_with_runtimes(setup, x, rows, name)}
    _record_errors(model, fns, x, rows)
    timed = compare(
        inference_calls(fns, x),
        (),
        baseline=next(iter(setup.variants)),
        min_run_time=min_run_time,
        threads=threads,
        **sampling,
    )
    return timed, {k: compiled[k] for k in ("+ compiled", "+ int8") if k in compiled}


def _agreements(model: nn.Module, setup: _Setup, eval_data, rows) -> None:
    """Top-1 agreement with ``model`` of every reduced-precision row, on ``eval_data``."""
    if setup.quantized is not None:
        rows["+ int8"]["top-1 agreement"] = setup.quantized.agreement
    if not setup.exported:
        return
    precisions = PRECISIONS if "int8" in setup.exported else ("float32", "bfloat16")
    runners = runtime_models(setup.exported, runtimes=setup.runtimes, precisions=precisions)
    for k, r in runners.items():
        if r.precision != "float32" and k in rows:
            rows[k]["top-1 agreement"] = top1_agreement(model, r, eval_data)


def _inverse(ratio: float) -> float:
    return 1.0 / ratio if ratio > 0 else float("inf")


def _record_times(rows, timed: Table, batch: int, bound: RooflineBound | None) -> None:
    """One batch size's columns of every row, from :func:`~shufflelib.bench.compare`'s table."""
    for r in timed:
        row = rows[r["name"]]
        row[column("median", batch)] = r["median"]
        row[column("IQR", batch)] = r["IQR"]
        row[column("speed-up", batch)] = _inverse(r["ratio"])
        row[column("low", batch)] = _inverse(r["ratio high"])
        row[column("high", batch)] = _inverse(r["ratio low"])
        if bound is not None:
            row[column("roofline", batch)] = bound.seconds * 1e3 / r["median"]


def ladder(
    model: nn.Module,
    reference: nn.Module,
    *,
    name: str = "",
    reference_name: str = REFERENCE,
    batches: Sequence[int] = (1, 16),
    image_size: int = 224,
    calibration_data: torch.Tensor | Iterable[Any] | None = None,
    eval_data: torch.Tensor | Iterable[Any] | None = None,
    runtimes: Sequence[str] | None = None,
    roof: Roofline | None = None,
    rounds: int = MIN_ROUNDS,
    min_run_time: float = 0.1,
    threads: int | None = None,
    **sampling: Any,
) -> LadderTable:
    """Chapter 11's table: each deployment step on top of the last, timed side by side.

    Rows: ``reference`` (the library's model, eager, in the row ``reference_name``:
    torchvision's by default, timm's for the networks since 2021), ``model`` (ours, eager, same
    weights), + BN folding (+ re-parameterised for RepVGG and MobileOne;
    :func:`~shufflelib.deploy.steps`), + channels-last (with the fast units for ShuffleNet V2),
    + compiled (:func:`~shufflelib.deploy.compile`, once per batch size), and with
    ``calibration_data`` + int8 (:func:`~shufflelib.deploy.quantize_int8`, calibrated once,
    compiled per batch size). Then the runtimes outside PyTorch, for each of ``runtimes``
    installed (None: every one, ``()``: none): ``model`` (re-parameterised, for RepVGG and
    MobileOne) exported once (:func:`~shufflelib.deploy.export_onnx`) and run in ONNX Runtime
    and OpenVINO in float32, in OpenVINO's bfloat16 where the CPU has the instructions and, with
    ``calibration_data``, in int8 (:func:`~shufflelib.deploy.quantize_onnx`), each loaded for
    every batch size (:func:`~shufflelib.deploy.runtime_models`). Every row names its
    ``backend`` and ``precision``. Per batch size (columns named by :func:`column`): median and
    IQR over the interleaved rounds of :func:`~shufflelib.bench.compare` (``rounds`` at least;
    ``sampling`` goes there), and the speed-up over the reference (1 / the paired time ratio)
    with its interval (``low``, ``high``). The table carries ``batches`` and ``times`` (batch ->
    variant -> per-round seconds) for any other paired ratio; the medians and IQRs are in ms
    (:data:`UNITS`). Also the compile seconds (column :data:`COMPILE`; all batch sizes together;
    for a runtime: export, quantisation and loading), the largest output difference to ours
    eager on the timing input (relative to the largest output when that exceeds 1), and with
    ``eval_data`` the top-1 agreement of every reduced precision with the float model (for
    PyTorch's int8, of PT2E's reference graph, which the compiled int8 kernels compute). With
    ``roof`` (:func:`~shufflelib.bench.roofline_probe`), the fraction of the roofline bound
    (:func:`roofline_bound`) each row reaches; int8 moves fewer bytes than the float32 bound
    assumes and can exceed 1. The table keeps the exported models (``exported``) and the
    compiled ones (``compiled``). Everything runs on ``threads`` threads (as torch's are when
    None). Neither model is changed.
    """
    _check_ladder(model, reference, name, image_size, roof, calibration_data, eval_data, threads)
    if validate.text("reference_name", reference_name) in _STEPS:
        raise ValueError(f"reference_name must not name a step ({_STEPS}), got {reference_name!r}")
    batches = validate.shape("batches", batches)
    validate.number("min_run_time", min_run_time, above=0)
    sampling = sampling_arguments(rounds, sampling)
    chosen = chosen_runtimes(runtimes)
    with using_threads(threads):  # compiled graphs are specialised to the thread count
        setup = _setup(
            model, reference, reference_name, calibration_data, eval_data, image_size, chosen
        )
        rows = _first_rows(name, setup)
        g, times, kept, note = torch.Generator().manual_seed(0), {}, {}, ""
        for b in batches:
            x = torch.randn(b, 3, image_size, image_size, generator=g)
            timed, kept[b] = _time_batch(
                model, setup, x, rows, name, min_run_time, threads, sampling
            )
            bound = roofline_bound(model, tuple(x.shape), roof) if roof is not None else None
            _record_times(rows, timed, b, bound)
            times[b], note = timed.times, timed.note
        if eval_data is not None:
            _agreements(model, setup, eval_data, rows)
    title = f"{name}: deployment paths at {image_size}x{image_size}, eval, inference mode"
    units = {column(what, b): u for b in batches for what, u in UNITS.items()}
    return LadderTable(
        rows.values(),
        title=title,
        note=note,
        batches=batches,
        times=times,
        exported=setup.exported,
        compiled=kept,
        units={COMPILE: "s", **units},
    )


def _over(step: str, previous: str, rows: Mapping[str, Mapping[str, Any]]) -> str:
    """The row a :func:`step_gains` row is compared with: the one before it; for PyTorch's int8
    and every runtime row the PyTorch path it would replace (compiled float, or compiled int8
    for a runtime's int8 where the ladder has it)."""
    row = rows[step]
    if row.get("backend", "PyTorch") == "PyTorch":
        return "+ compiled" if step == "+ int8" else previous
    int8 = row.get("precision") == "int8" and "+ int8" in rows
    return "+ int8" if int8 else "+ compiled"


def step_gains(table: LadderTable) -> Table:
    """Each step of a :func:`ladder` against the step before it, per batch size; chapter 11.

    One row per step and batch size: the speed-up over the previous row of the ladder (its time
    over this one's, the median of per-round ratios from the same interleaved rounds) with its
    95% interval, and whether "this step is faster" *holds*, *does not hold* or is *too close to
    call*. The int8 row is compared with the compiled float row, the step it replaces, and a
    runtime's row with the PyTorch path it would replace (its int8 row with PyTorch's int8
    where the ladder has one).
    """
    validate.instance("table", table, LadderTable)
    if not table.times:
        raise ValueError("table must carry the per-round times of ladder(), got none")
    variants = table.column("variant")
    by_variant = {r["variant"]: r for r in table}
    rows = []
    for b, per_variant in table.times.items():
        for prev, step in zip(variants, variants[1:]):
            prev = _over(step, prev, by_variant)
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


def _speed(row: Mapping[str, Any], batch: int) -> str:
    low, high = row[column("low", batch)], row[column("high", batch)]
    return f"{row[column('speed-up', batch)]:.2f}x [{low:.2f}, {high:.2f}]"


def best_variant(
    table: LadderTable, batch: int, *, precision: str | None = "float32", backend: str = ""
) -> str:
    """The variant of a :func:`ladder` with the largest speed-up at ``batch``; chapter 11.

    Among the rows of ``precision`` (None: every row) and, when given, of ``backend``
    (``"PyTorch"``, ``"ONNX Runtime"``, ``"OpenVINO"``, or ``"runtimes"`` for any but PyTorch).
    """
    return _ranked(table, batch, precision, backend)[0]["variant"]


def _ranked(table: object, batch: object, precision: object, backend: object) -> list[dict]:
    """The rows of ``precision`` and ``backend``, fastest first at ``batch`` (checked)."""
    validate.instance("table", table, LadderTable)
    validate.integer("batch", batch, minimum=1)
    validate.choice("batch", batch, table.times)  # type: ignore[attr-defined]
    if precision is not None:
        validate.choice("precision", precision, PRECISIONS)
    validate.instance("backend", backend, str)

    def keep(r: Mapping[str, Any]) -> bool:
        mine = r.get("backend", "PyTorch")
        wanted = not backend or mine == backend or (backend == "runtimes" and mine != "PyTorch")
        return wanted and (precision is None or r.get("precision", "float32") == precision)

    rows = [r for r in table if keep(r)]  # type: ignore[attr-defined]
    if not rows:
        raise ValueError(f"table has no row of precision {precision!r} and backend {backend!r}")
    return sorted(rows, key=lambda r: -r[column("speed-up", batch)])  # type: ignore[arg-type]


def fastest(table: LadderTable, batch: int, *, precision: str | None = "float32") -> str:
    """The sentence that says which path of a :func:`ladder` is fastest at ``batch``; ch. 11.

    Among the rows of ``precision`` (None: every row), the one with the largest speed-up over
    the ladder's reference (its first row), with its interval; whether it is faster than the
    next one beyond noise (the paired time ratio of the two, with its interval and verdict:
    *holds*, *does not hold*, *too close to call*); and PyTorch's fastest row when another
    backend won. Composed
    from the measurement, so that a chapter never writes a winner into its prose.
    """
    ranked = _ranked(table, batch, precision, "")
    best = ranked[0]
    what = f"{precision} path" if precision else "path, any precision,"
    words = [f"batch {batch}: the fastest {what} here is {best['variant']}, {_speed(best, batch)}"]
    words[0] += f" the speed of {table[0]['variant']}"
    if len(ranked) > 1:
        second, times = ranked[1], table.times[batch]
        iv = stats.ratio_interval(times[second["variant"]], times[best["variant"]])
        verdict = stats.verdict(iv, 1.0, claim="above")
        words.append(
            f"against the next, {second['variant']} ({_speed(second, batch)}), the speed ratio "
            f"is {iv}: faster beyond noise? {verdict}"
        )
    if best.get("backend", "PyTorch") != "PyTorch":
        mine = [r for r in ranked if r.get("backend", "PyTorch") == "PyTorch"]
        if mine:
            words.append(f"PyTorch's fastest is {mine[0]['variant']}, {_speed(mine[0], batch)}")
    return "; ".join(words) + "."


def _networks(name: str, models: object) -> Mapping[str, nn.Module]:
    """``models`` checked: a non-empty mapping of name to a model in eval mode."""
    validate.mapping(name, models)
    for key, model in models.items():  # type: ignore[union-attr]
        validate.module(f"{name}[{key!r}]", model, eval_mode=True)
    return models  # type: ignore[return-value]


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
    _networks("models", models)
    validate.instance("roof", roof, Roofline)
    batches = validate.shape("batches", batches)
    validate.integer("image_size", image_size, minimum=8)
    rows = []
    for name, model in models.items():
        for b in batches:
            bound = roofline_bound(model, (b, 3, image_size, image_size), roof)
            rows.append(
                {
                    "network": name,
                    "batch": b,
                    "MAdds": bound.madds / 1e6,
                    "MAC": bound.mac_bytes / 1e6,
                    "compute": bound.compute_seconds * 1e3,
                    "memory": bound.memory_seconds * 1e3,
                    "bound": bound.seconds * 1e3,
                    "bound by": bound.bound_by,
                }
            )
    units = {"MAdds": "M", "MAC": "MB", "compute": "ms", "memory": "ms", "bound": "ms"}
    return Table(
        rows,
        title="Roofline bound: max(MAdds / peak, MAC bytes / bandwidth)",
        note=str(roof).replace("\n", "; "),
        units=units,
    )


def _check_points(tables: object, models: object, image_size: object, variants: object) -> None:
    validate.instance("tables", tables, Sequence)
    _networks("models", models)
    validate.integer("image_size", image_size, minimum=8)
    if variants is not None and (isinstance(variants, str) or not isinstance(variants, Sequence)):
        raise TypeError(
            f"variants must be a sequence of variant names, got {validate.show(variants)}"
        )
    for k, table in enumerate(tables):  # type: ignore[arg-type]
        validate.instance(f"tables[{k}]", table, LadderTable)
        for net in {row.get("model") for row in table}:
            if net not in models:  # type: ignore[operator]
                raise ValueError(f"models has no network for {net!r}; it has {list(models)}")


def _point(row: Mapping[str, Any], batch: int, net: str, work: int, moved: int) -> dict:
    seconds = row[column("median", batch)] * 1e-3
    return {
        "operator": f"{row['variant']} (b{batch})",
        "kind": f"{net}, batch {batch}",
        "MAdds": work,
        "MAC": moved,
        "MAdd/byte": work / moved,
        "GMAdd/s": work / seconds / 1e9,
        "GB/s": moved / seconds / 1e9,
    }


def roofline_points(
    tables: Sequence[LadderTable],
    models: Mapping[str, nn.Module],
    *,
    image_size: int = 224,
    variants: Sequence[str] | None = None,
) -> Table:
    """Rows of :func:`ladder` tables as points for :func:`shufflelib.plot.roofline`; chapter 11.

    One point per network, batch size (each table's ``batches``) and variant: the network's
    arithmetic intensity (MAdds per MAC byte of the BatchNorm-folded network, the same for every
    variant) and the multiply-adds per second each variant reaches (MAdds / median time).
    ``models`` maps each table's ``model`` column to the float network; ``variants`` keeps only
    those rows.
    """
    _check_points(tables, models, image_size, variants)
    rows = []
    for table in tables:
        for b in table.batches:
            counts: dict[str, tuple[int, int]] = {}
            for row in table:
                if variants is not None and row["variant"] not in variants:
                    continue
                net = row["model"]
                if net not in counts:
                    counts[net] = _work_and_bytes(models[net], (b, 3, image_size, image_size))
                rows.append(_point(row, b, net, *counts[net]))
    return Table(rows, title="whole networks on the roofline", units=MAC_UNITS)
