"""Our models against torchvision's, same architecture and same weights, one run, side by side.

Goals (issue "model zoo"; chapters 6-8 explain the numbers): on the CPU, in eval mode under
``torch.inference_mode``, at 224x224,

- ShuffleNet V2 1x: ours takes at most 0.95x torchvision's time at batch 1 and 0.97x at
  batch 16 (our units write their shuffled output with one copy instead of two, chapter 7);
- MobileNetV2 and EfficientNetV2-S: ours takes at most 1.02x torchvision's time (same work).

For ShuffleNet V2 a third row, ours with ``channels_last_stem=False``, shows what the shuffle
trick alone gives; the rest comes from running the stem (Conv1 and the max-pool) in
channels-last memory.

Ratios are taken within interleaved rounds (``shufflelib.bench.compare``), so a slow drift of a
shared machine cancels, and printed with their 95% interval; rounds go on until every interval
is within +-3% or the time cap (``--max-seconds`` per table). Each goal gets a three-valued
verdict (``shufflelib.stats.verdict``): it *holds* when the whole interval is at or below the
goal, *does not hold* when the whole interval is above it, and is *too close to call* otherwise.
Other processes competing for the cores widen the intervals (with all threads busy, one stalled
OpenMP thread can multiply a time): rerun on a quiet machine, or compare with ``--threads 1``.

    python benchmarks/bench_models.py [--quick] [--rounds 6] [--min-run-time 0.3]
                                      [--max-seconds 60] [--threads N]
                                      [--models shufflenet_v2_x1_0 ...]
"""

from __future__ import annotations

import argparse

import torch

from shufflelib import bench, env, models, stats
from shufflelib.tables import Table

# (model name, batch size) -> goal for ours / torchvision (paired time ratio, at most).
GOALS = {
    ("shufflenet_v2_x1_0", 1): 0.95,
    ("shufflenet_v2_x1_0", 16): 0.97,
    ("mobilenet_v2", 1): 1.02,
    ("mobilenet_v2", 16): 1.02,
    ("efficientnet_v2_s", 1): 1.02,
    ("efficientnet_v2_s", 16): 1.02,
}
OURS, THEIRS = "shufflelib", "torchvision"
PLAIN_POOL = "shufflelib, NCHW stem"


def inference(model: torch.nn.Module):
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    return run


def timed_pair(name: str, batch: int, args: argparse.Namespace) -> Table:
    """Ours against torchvision's (and, for ShuffleNet V2, ours with an NCHW stem), one batch."""
    ours, theirs = models.torchvision_pair(name)
    x = torch.randn(batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        diff = (ours(x) - theirs(x)).abs().max().item()
    if diff > 1e-4:
        raise RuntimeError(f"{name}: ours and torchvision's disagree by {diff:.2e}")
    candidates = {THEIRS: inference(theirs), OURS: inference(ours)}
    if name.startswith("shufflenet"):
        plain = models.build(name, channels_last_stem=False).eval()
        plain.load_state_dict(ours.state_dict())
        candidates[PLAIN_POOL] = inference(plain)
    return bench.compare(
        candidates,
        x,
        baseline=THEIRS,
        rounds=args.rounds,
        min_run_time=args.min_run_time,
        max_seconds=args.max_seconds,
        title=f"{name}, batch {batch}, {args.size}x{args.size}, eval, inference_mode, "
        f"max |ours - torchvision| = {diff:.1e}",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="6 rounds of 0.1 s: a smoke run")
    parser.add_argument("--rounds", type=int, default=bench.MIN_ROUNDS, help="least rounds")
    parser.add_argument("--min-run-time", type=float, default=0.3, help="seconds per timing")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="time cap per table")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--size", type=int, default=224, help="image side (default 224)")
    names = list(dict.fromkeys(n for n, _ in GOALS))
    parser.add_argument("--models", nargs="+", choices=names, default=names, help="default: all")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.min_run_time, args.max_seconds = bench.MIN_ROUNDS, 0.1, 5.0
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(env.machine_info("cpu"))

    intervals: dict[tuple[str, int], dict[str, stats.Interval]] = {}
    for name in args.models:
        for batch in sorted(b for n, b in GOALS if n == name):
            table = timed_pair(name, batch, args)
            print(f"\n{table}")
            intervals[(name, batch)] = table.intervals

    print("\nRatios (our time / torchvision's, paired, 95% interval):")
    verdicts = []
    for (name, batch), goal in GOALS.items():
        if (name, batch) not in intervals:
            continue
        ours = intervals[(name, batch)][OURS]
        v = stats.verdict(ours, goal, claim="below")
        verdicts.append(v)
        line = f"  {name:20s} batch {batch:2d}: {ours} (goal <= {goal}x: {v})"
        if PLAIN_POOL in intervals[(name, batch)]:
            line += f"; with an NCHW stem {intervals[(name, batch)][PLAIN_POOL]}"
        print(line)
    print(f"\nAll goals: {stats.all_of(*verdicts)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
