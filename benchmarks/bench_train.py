"""Training throughput: our ShuffleNet V2 and MobileNetV2 against torchvision's, same loop, one run.

Goal (issue "training"; chapter 9): in ``shufflelib.train.fit``, our model trains at least 0.97x
as many images per second as torchvision's model of the same architecture.

Both models get the same weights, the same data (random images of ``--size`` pixels with random
labels from ten classes: throughput does not depend on what the images show) and the same recipe.
Each round trains every model for one short epoch of ``--images`` images, alternating the order,
so a slow drift of a shared machine hits both alike; the first round only warms up. The ratio
ours / torchvision's images per second is taken within each round (paired), and its 95% interval
comes from ``shufflelib.stats.ratio_interval``; rounds go on past ``--rounds`` until the interval
is within +-3%, ``--max-rounds`` or ``--max-seconds`` per model. The goal *holds* when the whole
interval is at or above 0.97, *does not hold* when it is wholly below, and is *too close to
call* otherwise.

    python benchmarks/bench_train.py [--quick] [--rounds 6] [--max-rounds 20] [--max-seconds 600]
                                     [--images 512] [--size 128] [--batch-size 32] [--threads N]
                                     [--models mobilenet_v2 ...]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.data import TensorDataset

from shufflelib import bench, env, models, stats, train

GOAL = 0.97  # ours / torchvision, images per second, higher is better
OURS, THEIRS = "shufflelib", "torchvision"


def pair(name: str) -> dict[str, torch.nn.Module]:
    """torchvision's model (10 classes, fresh random weights) and ours with the same weights."""
    ours, theirs = models.torchvision_pair(name, num_classes=10, random_batchnorm=False)
    return {OURS: ours, THEIRS: theirs}


def images(n: int, size: int) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 3, size, size, generator=g), torch.randint(0, 10, (n,)))


def throughput(model: torch.nn.Module, data: TensorDataset, batch_size: int) -> float:
    history = train.fit(
        model, data, 1, batch_size=batch_size, progress=False, log=None, workers=0, lr=0.01
    )
    return history[-1]["images/s"]


def paired_rounds(
    nets: dict[str, torch.nn.Module], data: TensorDataset, args: argparse.Namespace
) -> tuple[dict[str, list[float]], stats.Interval]:
    """Seconds per round of each model (one warm-up round first) and the throughput ratio."""
    seconds: dict[str, list[float]] = {OURS: [], THEIRS: []}
    start, r = time.perf_counter(), 0
    while True:
        order = [OURS, THEIRS] if r % 2 == 0 else [THEIRS, OURS]
        measured = {who: throughput(nets[who], data, args.batch_size) for who in order}
        if r == 0:
            start = time.perf_counter()  # warm-up: allocator, kernel selection
        else:
            for who in nets:
                seconds[who].append(len(data) / measured[who])
        r += 1
        n = len(seconds[OURS])
        # images/s ours / tv = time tv / time ours, paired by round
        ratio = stats.ratio_interval(seconds[THEIRS], seconds[OURS]) if n else None
        spent = time.perf_counter() - start
        if n >= args.rounds and (
            ratio.halfwidth <= bench.TARGET
            or n >= args.max_rounds
            or spent + spent / n > args.max_seconds
        ):
            return seconds, ratio


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="6 rounds of 256 images at 96 px")
    p.add_argument("--rounds", type=int, default=bench.MIN_ROUNDS, help="least timed rounds")
    p.add_argument("--max-rounds", type=int, default=20, help="most timed rounds")
    p.add_argument("--max-seconds", type=float, default=600.0, help="time cap per model")
    p.add_argument("--images", type=int, default=512, help="images per model per round")
    p.add_argument("--size", type=int, default=128, help="image side in pixels")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    p.add_argument("--models", nargs="+", default=["shufflenet_v2_x1_0", "mobilenet_v2"])
    args = p.parse_args()
    if args.quick:
        args.rounds, args.max_rounds, args.images, args.size = bench.MIN_ROUNDS, 6, 256, 96
    if args.rounds < 1 or args.max_rounds < args.rounds:
        p.error(f"need 1 <= --rounds <= --max-rounds, got {args.rounds} and {args.max_rounds}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(env.machine_info(torch.device("cpu")))
    print(
        f"training throughput in shufflelib.train.fit, {args.size}x{args.size} images, batch "
        f"{args.batch_size}, {args.images} images per round, {args.rounds}-{args.max_rounds} "
        f"paired rounds + 1 warm-up\n"
    )
    data = images(args.images, args.size)
    header = f"{'model':<22}{'ours img/s':>12}{'tv img/s':>12}  {'ours / tv [95% interval]':<26}"
    print(f"{header}{'goal':>6}  verdict")
    verdicts = []
    for name in args.models:
        seconds, ratio = paired_rounds(pair(name), data, args)
        ours, theirs = (args.images / statistics.median(seconds[w]) for w in (OURS, THEIRS))
        v = stats.verdict(ratio, GOAL, claim="above")
        verdicts.append(v)
        print(f"{name:<22}{ours:>12.1f}{theirs:>12.1f}  {str(ratio):<26}{GOAL:>6.2f}  {v}")
        print(f"{'':<22}{ratio.n} paired rounds, median estimator")
    print(
        f"\nGoal (ours >= {GOAL}x torchvision's images/s, every model): {stats.all_of(*verdicts)}"
    )


if __name__ == "__main__":
    main()
