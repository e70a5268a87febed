"""Training throughput: our ShuffleNet V2 and MobileNetV2 against torchvision's, same loop, one run.

Goal (issue "training"; chapter 9): in ``shufflelib.train.fit``, our model trains at least 0.97x
as many images per second as torchvision's model of the same architecture.

Both models get the same weights, the same data (random images of ``--size`` pixels with random
labels from ten classes: throughput does not depend on what the images show) and the same recipe.
Each round trains every model for one short epoch of ``--images`` images, alternating the models,
so a slow drift of a shared machine hits both alike; the first round only warms up. The ratio is
the median over rounds of ours / torchvision's images per second.

    python benchmarks/bench_train.py [--quick] [--rounds 5] [--images 512] [--size 128]
                                     [--batch-size 32] [--threads N] [--models mobilenet_v2 ...]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch.utils.data import TensorDataset

from shufflelib import bench, models, train

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="3 rounds of 256 images at 96 px")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds (after one warm-up)")
    p.add_argument("--images", type=int, default=512, help="images per model per round")
    p.add_argument("--size", type=int, default=128, help="image side in pixels")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    p.add_argument("--models", nargs="+", default=["shufflenet_v2_x1_0", "mobilenet_v2"])
    args = p.parse_args()
    if args.quick:
        args.rounds, args.images, args.size = 3, 256, 96
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(bench.machine_info(torch.device("cpu")))
    print(
        f"training throughput in shufflelib.train.fit, {args.size}x{args.size} images, batch "
        f"{args.batch_size}, {args.images} images per round, {args.rounds} rounds + 1 warm-up\n"
    )
    data = images(args.images, args.size)
    print(f"{'model':<22}{'ours img/s':>12}{'tv img/s':>12}{'ours / tv':>11}{'goal':>8}  result")
    for name in args.models:
        nets = pair(name)
        ratios, speeds = [], {OURS: [], THEIRS: []}
        for r in range(args.rounds + 1):
            order = [OURS, THEIRS] if r % 2 == 0 else [THEIRS, OURS]
            measured = {who: throughput(nets[who], data, args.batch_size) for who in order}
            if r == 0:
                continue  # warm-up: allocator, kernel selection
            ratios.append(measured[OURS] / measured[THEIRS])
            for who in nets:
                speeds[who].append(measured[who])
        ratio = statistics.median(ratios)
        ours, theirs = (statistics.median(speeds[w]) for w in (OURS, THEIRS))
        verdict = "met" if ratio >= GOAL else "MISSED"
        print(f"{name:<22}{ours:>12.1f}{theirs:>12.1f}{ratio:>11.3f}{GOAL:>8.2f}  {verdict}")
        spread = f"{min(ratios):.3f}-{max(ratios):.3f}"
        print(f"{'':<22}per-round ratios {spread} ({len(ratios)} rounds)")


if __name__ == "__main__":
    main()
