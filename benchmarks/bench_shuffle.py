"""Channel shuffle against the copy floor, one run, side by side (chapter 2 explains the numbers).

Goal (issue "Foundation"): ``shufflelib.channel_shuffle`` takes at most 1.2x the time of
``x.clone()`` on a 32x232x28x28 float32 tensor on the CPU; we hold it to that in both memory
layouts. Also reported: the textbook view-transpose-contiguous version, ``torch.nn.ChannelShuffle``,
an index gather, and ``shuffle_split`` against a shuffle followed by two contiguous halves.

Every ratio is paired (taken within interleaved rounds, ``shufflelib.bench.compare``) and printed
with its 95% interval; rounds go on until every interval is within +-3% or the time cap. A goal
*holds* when its whole interval is on the right side, *does not hold* when it is wholly on the
wrong side, and is *too close to call* otherwise (``shufflelib.stats.verdict``).

    python benchmarks/bench_shuffle.py [--rounds 6] [--min-run-time 0.3] [--max-seconds 30]
                                       [--threads N]
"""

from __future__ import annotations

import argparse

import torch

from shufflelib import bench, env, stats, sweeps

GOAL = 1.2
OURS = "shufflelib channel_shuffle"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=4, default=[32, 232, 28, 28], metavar="N")
    parser.add_argument("--groups", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=bench.MIN_ROUNDS, help="least rounds")
    parser.add_argument("--min-run-time", type=float, default=0.3, help="seconds per timing")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="time cap per table")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps"])
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(env.machine_info(args.device))
    kw = dict(
        device=args.device,
        rounds=args.rounds,
        min_run_time=args.min_run_time,
        max_seconds=args.max_seconds,
    )
    verdicts = []
    print("\nRatios (time / x.clone() time, paired, 95% interval):")
    for channels_last in (False, True):
        table = sweeps.shuffle_benchmark(args.shape, args.groups, channels_last=channels_last, **kw)
        print(f"\n{table}")
        ours, textbook = (
            table.intervals[OURS],
            table.intervals["textbook view-transpose-contiguous"],
        )
        layout = "channels_last" if channels_last else "NCHW"
        v = stats.verdict(ours, GOAL, claim="below")
        verdicts.append(v)
        print(f"  {layout}: channel_shuffle {ours} (goal <= {GOAL}x: {v}); textbook {textbook}")
    split = sweeps.shuffle_split_benchmark(args.shape, **kw)
    print(f"\n{split}")
    two, one = "shuffle, split, 2x contiguous", "shufflelib shuffle_split"
    gain = stats.ratio_interval(split.times[two], split.times[one])
    print(
        f"  shuffle_split {split.intervals[one]} vs shuffle + split + contiguous "
        f"{split.intervals[two]}: the latter takes {gain}x as long "
        f"(shuffle_split faster: {stats.verdict(gain, 1.0, claim='above')})"
    )
    print(f"\nGoal (channel_shuffle <= {GOAL}x the copy, both layouts): {stats.all_of(*verdicts)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
