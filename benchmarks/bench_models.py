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
shared machine cancels. Other processes competing for the cores still add noise (with all
threads busy, one stalled OpenMP thread can multiply a time): rows whose IQR exceeds 10% of
the median are flagged; rerun on a quiet machine, or compare with ``--threads 1``.

    python benchmarks/bench_models.py [--quick] [--rounds 7] [--min-run-time 0.3] [--threads N]
                                      [--models shufflenet_v2_x1_0 ...]
"""

from __future__ import annotations

import argparse

import torch

from shufflelib import bench, models

# (model name, batch size) -> goal for ours / torchvision (median of the per-round ratios).
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
NOISY = 0.10  # IQR / median above which a row is flagged


def inference(model: torch.nn.Module):
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 0.1 s: a smoke run")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--min-run-time", type=float, default=0.3, help="seconds per timing")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--size", type=int, default=224, help="image side (default 224)")
    names = list(dict.fromkeys(n for n, _ in GOALS))
    parser.add_argument("--models", nargs="+", choices=names, default=names, help="default: all")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.min_run_time = 3, 0.1
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(bench.machine_info("cpu"))

    ratios: dict[tuple[str, int], float] = {}
    plain_ratios: dict[tuple[str, int], float] = {}
    noisy = False
    for name in args.models:
        ours, theirs = models.torchvision_pair(name)
        for batch in sorted(b for n, b in GOALS if n == name):
            x = torch.randn(
                batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)
            )
            with torch.inference_mode():
                diff = (ours(x) - theirs(x)).abs().max().item()
            if diff > 1e-4:
                raise RuntimeError(f"{name}: ours and torchvision's disagree by {diff:.2e}")
            candidates = {THEIRS: inference(theirs), OURS: inference(ours)}
            if name.startswith("shufflenet"):
                plain = models.build(name, channels_last_stem=False).eval()
                plain.load_state_dict(ours.state_dict())
                candidates[PLAIN_POOL] = inference(plain)
            table = bench.compare(
                candidates,
                x,
                baseline=THEIRS,
                rounds=args.rounds,
                min_run_time=args.min_run_time,
                title=f"{name}, batch {batch}, {args.size}x{args.size}, eval, inference_mode, "
                f"max |ours - torchvision| = {diff:.1e}",
            )
            for row in table:
                row["noisy"] = "NOISY" if row["IQR (ms)"] > NOISY * row["median (ms)"] else ""
            print(f"\n{table}")
            by_name = dict(zip(table.column("name"), table.column("ratio")))
            ratios[(name, batch)] = by_name[OURS]
            if PLAIN_POOL in by_name:
                plain_ratios[(name, batch)] = by_name[PLAIN_POOL]
            noisy |= any(table.column("noisy"))

    print("\nRatios (our time / torchvision's, median of interleaved rounds):")
    met_all = True
    for (name, batch), goal in GOALS.items():
        if (name, batch) not in ratios:
            continue
        ratio = ratios[(name, batch)]
        met = ratio <= goal
        met_all &= met
        verdict = "met" if met else "MISSED"
        line = f"  {name:20s} batch {batch:2d}: {ratio:.3f}x (goal <= {goal}x: {verdict})"
        if (name, batch) in plain_ratios:
            line += f"; with an NCHW stem {plain_ratios[(name, batch)]:.3f}x"
        print(line)
    print(f"\nAll goals: {'met' if met_all else 'MISSED'}")
    if noisy:
        print(f"Some rows had an IQR above {NOISY:.0%} of the median: the machine was busy.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
