"""ShuffleNet V2 1x deployed on this CPU: every path against torchvision's eager model, one run.

Goals (issues "deployment speed" and "the runtimes people actually pick"; chapter 11 explains the
numbers), ShuffleNet V2 1x at 224x224, float32, on 2 CPU threads, eval mode, inference mode:

- the best float variant (``shufflelib.deploy.optimize``: BatchNorm folded, the fast units in
  channels-last memory, ``torch.compile``) is at least 2.0x faster than torchvision's eager model
  at batch 16 and at least 1.7x faster at batch 1;
- int8 (PT2E with ``X86InductorQuantizer``, compiled) is faster again than PyTorch's best float
  variant (the same network compiled in float32) at both batch sizes, with at least 99% top-1
  agreement with the float model on the embedded test set (5,000 images); and the fastest int8
  row of any runtime is faster than what ``optimize`` returns in float32 (which may be a runtime);
- what ``optimize`` returns (it considers ONNX Runtime and OpenVINO too) is no slower than the best
  float32 runtime row, and within 5% of the fastest float32 row of the table, at both batch sizes
  (its time over theirs has its whole interval below 1.05, timed again with that row alone, as
  the table's dozen candidates leave an interval too wide for a 5% goal).

The timed networks carry random weights (timing does not depend on them). The agreement needs a
trained network, and takes chapter 11's: the ShuffleNet V2 0.5x (32x32 stem) of the committed
results store (``shufflelib.results``, seed 0), trained to convergence with the book's recipe. Its
fast channels-last version is quantised the same way, and the agreement of the compiled int8
kernels is measured on the whole embedded test set (5,000 images), as is that of every runtime
path (``deploy.runtime_agreement``).

Rows, each with the same weights: torchvision eager, ours eager, + BN folding, + channels-last
(fast units), + compiled, best (what ``optimize`` returns), + int8, and for every runtime installed
the exported model in ONNX Runtime and OpenVINO: float32, OpenVINO's bfloat16 (on a CPU with the
instructions) and int8 (ONNX Runtime's static QDQ quantisation, the same file in both). Ratios are
taken within interleaved rounds (``shufflelib.bench.compare``), so a slow drift of a shared machine
cancels, and printed with their 95% interval; rounds go on until every interval is within +-3% or
the time cap. Each goal gets a three-valued verdict (``shufflelib.stats.verdict``): *holds* when
the whole interval is on the goal's side, *does not hold* when it is wholly on the other side, *too
close to call* otherwise. Compile times are printed with the table (Inductor keeps a cache on disk:
a second run compiles faster).

    python benchmarks/bench_deploy.py [--quick] [--rounds 6] [--min-run-time 0.3]
                                      [--max-seconds 120] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from shufflelib import bench, data, deploy, env, models, profiler, results, stats
from shufflelib.deploy.optimized import inference_calls

NAME = "shufflenet_v2_x1_0"
STORED = "shufflenet_v2_x0_5"  # the results store's run whose int8 agreement is measured
GOALS = {1: 1.7, 16: 2.0}  # batch -> least speed-up of the best float variant over tv eager
AGREEMENT = 0.99
WITHIN = 1.05  # optimize's time over the fastest float32 row's: at most 5% slower
THEIRS, BEST, INT8 = "torchvision eager", "best (optimize)", "+ int8"


def ladder_models() -> tuple[torch.nn.Module, torch.nn.Module]:
    """torchvision's ShuffleNet V2 1x with random weights and BatchNorm statistics, and ours."""
    return models.torchvision_pair(NAME)


def trained_model() -> torch.nn.Module:
    """Chapter 11's converged network: the results store's ShuffleNet V2 0.5x, seed 0, in eval
    mode on the CPU (the store is checked against the current training code first)."""
    store = results.load()
    store.check_fresh()
    stored = next(r for r in store.runs if r.label == STORED and r.seed == 0)
    print(f"\nthe int8 agreement uses {STORED}, seed 0, from the results store:")
    print(store.provenance())
    return stored.model()


def agreement() -> tuple[float, float, float]:
    """Top-1 agreement of the compiled int8 model with the float one on the test set, and of
    every runtime path (printed)."""
    model = trained_model()
    calibration = data.embedded("train", augment=False).batch(range(512))[0]
    test = data.embedded("test")
    test_images, labels = test.batch(range(len(test)))
    best = deploy.steps(model)["+ channels-last"]
    q = deploy.quantize_int8(best, calibration, eval_data=test_images, batch_size=250)
    every = deploy.flips(model, q, test_images, labels, batch_size=250)[0]  # the "all" row
    if deploy.available_runtimes():
        others = {"PyTorch int8 (PT2E, compiled)": q}
        print(deploy.runtime_agreement(model, calibration, test_images, others=others))
    return q.agreement, every["float32 accuracy"], every["int8 accuracy"]


class Batch(NamedTuple):
    """One batch size's table, the callables it timed (by row name), and what profiles need."""

    table: Any
    candidates: dict[str, Any]
    compiled: Any
    quantized: Any
    runners: dict[str, Any]
    x: torch.Tensor


def timed_batch(batch: int, ours, theirs, steps, int8, exported, args) -> Batch:
    """Every variant at one batch size, side by side: the table, and what the profiles need."""
    x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(batch))
    best = deploy.optimize(
        ours, x, min_run_time=args.min_run_time, max_seconds=args.max_seconds / 2
    )
    compiled = deploy.compile(steps["+ channels-last"], x)
    quantized = deploy.compile(int8.reference, x)
    print(
        f"\nbatch {batch}: optimize kept {best.backend} {best.precision}: {', '.join(best.steps)} "
        f"({best.reason}); compile {compiled.compile_seconds:.1f} s (float), "
        f"{quantized.compile_seconds:.1f} s (int8)"
    )
    candidates = {THEIRS: theirs, **steps, "+ compiled": compiled, BEST: best, INT8: quantized}
    runners = {}
    if exported:
        runners = deploy.runtime_models(exported, precisions=deploy.PRECISIONS, input_size=x.shape)
    candidates.update(runners)
    precision = {k: r.precision for k, r in runners.items()} | {INT8: "int8"}
    with torch.inference_mode():
        want = theirs(x)
        diffs = {k: deploy.relative_error(f(x), want) for k, f in candidates.items()}
    for k, d in diffs.items():
        if precision.get(k, "float32") == "float32" and d > 1e-4:
            raise RuntimeError(f"{k} differs from torchvision's output by {d:.2e}")
    table = bench.compare(
        inference_calls(candidates, x),
        (),
        baseline=THEIRS,
        rounds=args.rounds,
        min_run_time=args.min_run_time,
        max_seconds=args.max_seconds,
        title=f"{NAME}, batch {batch}, 224x224, {args.threads} threads, inference mode",
    )
    for row in table:
        row["precision"] = precision.get(row["name"], "float32")
        row["speed-up"] = 1.0 / row["ratio"]
        row["max error to tv"] = diffs[row["name"]]
    print(table)
    return Batch(table, candidates, compiled, quantized, runners, x)


def speed_up(table) -> stats.Interval:
    """The best float variant's speed-up over torchvision eager: 1 / the paired time ratio."""
    return stats.ratio_interval(table.times[THEIRS], table.times[BEST])


def against_the_fastest(kept: Batch, batch: int, args) -> list[str]:
    """optimize's time over the best float32 runtime row's and the fastest float32 row's.

    Each pair is timed again, the two alone, until the interval is within +-1.5% or half the
    table's time cap: among a dozen candidates the table's own interval is too wide to tell a
    5% goal. Both intervals are printed; the verdict reads the head-to-head one.
    """
    table = kept.table
    floats = [r for r in table if r["precision"] == "float32" and r["name"] != BEST]
    runtimes = [r for r in floats if r["name"].startswith(("ONNX Runtime", "OpenVINO"))]
    verdicts = []
    for what, rows in (("best float32 runtime row", runtimes), ("fastest float32 row", floats)):
        if not rows:
            continue
        fastest = min(rows, key=lambda r: r["ratio"])["name"]
        in_table = stats.ratio_interval(table.times[BEST], table.times[fastest])
        pair = {k: kept.candidates[k] for k in (fastest, BEST)}
        alone = bench.compare(
            inference_calls(pair, kept.x),
            (),
            baseline=fastest,
            rounds=args.rounds,
            min_run_time=args.min_run_time,
            target=0.015,
            max_seconds=args.max_seconds / 2,
        )
        iv = stats.ratio_interval(alone.times[BEST], alone.times[fastest])
        verdicts.append(stats.verdict(iv, WITHIN, claim="below"))
        print(
            f"  optimize,   batch {batch:2d}: its time over the {what} ({fastest}) {iv}, "
            f"the two alone, {len(alone.times[BEST])} rounds; in the table {in_table} "
            f"(goal < {WITHIN}: {verdicts[-1]})"
        )
    return verdicts


def int8_verdicts(kept) -> tuple[list[str], list[int]]:
    """int8 against float32 at each batch: PyTorch's int8 over its compiled float32, and the
    fastest int8 row over what ``optimize`` returns; and the batches where PyTorch's int8 is not
    faster (their profiles are printed)."""
    verdicts, slower = [], []
    for batch in sorted(GOALS):
        table = kept[batch].table
        fastest_int8 = min((r for r in table if r["precision"] == "int8"), key=lambda r: r["ratio"])
        for what, slow, fast in (
            ("PyTorch int8 over its compiled float32", "+ compiled", INT8),
            (
                f"fastest int8 ({fastest_int8['name']}) over optimize's float32",
                BEST,
                fastest_int8["name"],
            ),
        ):
            gain = stats.ratio_interval(table.times[slow], table.times[fast])  # > 1: int8 faster
            verdicts.append(stats.verdict(gain, 1.0, claim="above"))
            if verdicts[-1] != stats.HOLDS and fast == INT8:
                slower.append(batch)
            print(f"  int8,       batch {batch:2d}: {what}: {gain}x (goal > 1x: {verdicts[-1]})")
    return verdicts, slower


def where_runtimes_save(kept) -> None:
    """Where torch alone does not close the gap to a runtime: the profiles that say why."""
    for batch, b in kept.items():
        table, compiled, x = b.table, b.compiled, b.x
        floats = {k: r for k, r in b.runners.items() if r.precision == "float32"}
        if not floats:
            continue
        ratio = {r["name"]: r["ratio"] for r in table}
        fastest = min(floats, key=ratio.__getitem__)
        gap = stats.ratio_interval(table.times["+ compiled"], table.times[fastest])
        if stats.verdict(gap, 1.0, claim="above") != stats.HOLDS:
            continue
        print(f"\n{fastest} is faster than torch.compile at batch {batch} ({gap}x); profiles:")
        label = f"compiled float, batch {batch}"
        profiles = {"torch.compile": profiler.profile_by_operator(compiled, x, top=12, label=label)}
        profiles[fastest] = deploy.profile_runtime(floats[fastest], x, top=12)
        for t in profiles.values():
            print(t)
        print(profiler.kind_table(profiles))
        print(profiler.where_saved(profiles, fastest, "torch.compile"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="0.1 s timings, 20 s per table")
    parser.add_argument("--rounds", type=int, default=bench.MIN_ROUNDS, help="least rounds")
    parser.add_argument("--min-run-time", type=float, default=0.3, help="seconds per timing")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="time cap per table")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    if args.quick:
        args.min_run_time, args.max_seconds = 0.1, 20.0
    torch.set_num_threads(args.threads)
    print(env.machine_info("cpu"))

    ours, theirs = ladder_models()
    steps = deploy.steps(ours)
    calibration = F.interpolate(
        data.embedded("train", augment=False).batch(range(64))[0], size=224, mode="bilinear"
    )
    start = time.perf_counter()
    int8 = deploy.quantize_int8(steps["+ channels-last"], calibration, compiled=False)
    print(f"int8: exported, calibrated and converted in {time.perf_counter() - start:.1f} s")
    exported = {}
    if deploy.available_runtimes():
        exported = deploy.onnx_models(ours, calibration[:1], calibration)
        print(
            f"ONNX: exported in {exported['float32'].seconds:.1f} s, quantised (QDQ) in "
            f"{exported['int8'].seconds:.1f} s; runtimes {deploy.available_runtimes()}"
        )
    kept = {b: timed_batch(b, ours, theirs, steps, int8, exported, args) for b in sorted(GOALS)}
    agree, float_acc, int8_acc = agreement()

    print("\nSpeed-ups over torchvision eager (paired, 95% interval):")
    verdicts = []
    for batch, goal in sorted(GOALS.items()):
        s = speed_up(kept[batch].table)
        verdicts.append(stats.verdict(s, goal, claim="above"))
        print(f"  best float, batch {batch:2d}: {s}x (goal >= {goal}x: {verdicts[-1]})")
    more, slower = int8_verdicts(kept)
    verdicts += more
    for batch in sorted(GOALS):
        verdicts += against_the_fastest(kept[batch], batch, args)
    verdicts.append(stats.HOLDS if agree >= AGREEMENT else stats.FAILS)
    print(
        f"  int8 top-1 agreement with float on the embedded test set: {agree:.4f} "
        f"(goal >= {AGREEMENT}: {verdicts[-1]}); accuracy float {float_acc:.3f}, "
        f"int8 {int8_acc:.3f}"
    )
    print(f"\nAll goals: {stats.all_of(*verdicts)}")
    for batch in slower:  # the issue asks for the profile that shows why
        compiled, quantized, x = kept[batch].compiled, kept[batch].quantized, kept[batch].x
        print(f"\nint8 is not faster beyond noise at batch {batch}; where each spends its time:")
        print(profiler.profile_by_operator(compiled, x, label=f"compiled float, batch {batch}"))
        print(profiler.profile_by_operator(quantized, x, label=f"int8, batch {batch}"))
    where_runtimes_save(kept)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
