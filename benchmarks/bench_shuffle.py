"""Channel shuffle against the copy floor, one run, side by side (chapter 2 explains the numbers).

Goal (issue "Foundation"): ``shufflelib.channel_shuffle`` takes at most 1.2x the time of
``x.clone()`` on a 32x232x28x28 float32 tensor on the CPU; we hold it to that in both memory
layouts. Also reported: the textbook view-transpose-contiguous version, ``torch.nn.ChannelShuffle``,
an index gather, and ``shuffle_split`` against a shuffle followed by two contiguous halves.

    python benchmarks/bench_shuffle.py [--rounds 7] [--min-run-time 0.3] [--threads N]
"""

from __future__ import annotations

import argparse

import torch

from shufflelib import bench

GOAL = 1.2
OURS = "shufflelib channel_shuffle"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=4, default=[32, 232, 28, 28], metavar="N")
    parser.add_argument("--groups", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--min-run-time", type=float, default=0.3, help="seconds per timing")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps"])
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(bench.machine_info(args.device))
    kw = dict(device=args.device, rounds=args.rounds, min_run_time=args.min_run_time)
    verdicts = []
    for channels_last in (False, True):
        table = bench.shuffle_benchmark(args.shape, args.groups, channels_last=channels_last, **kw)
        print(f"\n{table}")
        ratio = dict(zip(table.column("name"), table.column("ratio")))
        layout = "channels_last" if channels_last else "NCHW"
        verdicts.append((layout, ratio[OURS], ratio["textbook view-transpose-contiguous"]))
    split = bench.shuffle_split_benchmark(args.shape, **kw)
    print(f"\n{split}")
    split_ratio = dict(zip(split.column("name"), split.column("ratio")))

    print("\nRatios (time / x.clone() time, median of interleaved rounds):")
    met = True
    for layout, ours, textbook in verdicts:
        ok = ours <= GOAL
        met &= ok
        print(
            f"  {layout:13s} channel_shuffle {ours:.2f}x (goal <= {GOAL}x: "
            f"{'met' if ok else 'MISSED'}); textbook {textbook:.2f}x"
        )
    two, one = split_ratio["shuffle, split, 2x contiguous"], split_ratio["shufflelib shuffle_split"]
    print(
        f"  shuffle_split {one:.2f}x vs shuffle + split + contiguous {two:.2f}x "
        f"({two / one:.2f}x faster)"
    )
    print(
        f"\nGoal (channel_shuffle <= {GOAL}x the copy, both layouts): {'met' if met else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
