"""How reproducible is a paired speed ratio? The evidence for the book's estimator and threads.

The same comparison is run twice in a row, for one and for two CPU threads. Each run collects
its per-round times once (``shufflelib.bench.compare`` with a fixed number of interleaved
rounds); every estimator of ``shufflelib.stats.ESTIMATORS`` is then applied to those same raw
rounds, so the estimators differ only in how they read the data. For each thread count and
estimator the table gives both runs' 95% intervals, whether they overlap (a reproducible
measurement's intervals should), their relative half-widths, and each run's verdict on "the
first network is faster".

Comparisons:

- ShuffleNet V2's G1 network (chapter 4), c1:c2 = 1:1 against 1:12 at equal FLOPs, batch 1,
  56x56 input (the ARM x1 column);
- ShuffleNet V2 0.5x against MobileNetV2, both with the 32x32 stem, batch 1, 32x32 input.

    python benchmarks/bench_noise.py [--quick] [--rounds 20] [--min-run-time 0.2]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

from shufflelib import bench, env, guidelines, models, stats
from shufflelib.tables import Table

THREADS = (1, 2)


def g1_pair() -> dict[str, Callable[[], torch.Tensor]]:
    """G1's benchmark network at 1:1 and at 1:12 (equal FLOPs), batch 1, 56x56."""
    out = {}
    for label, c1, c2 in guidelines.g1_configs(1, "arm"):
        if label in ("1:1", "1:12"):
            net = guidelines.g1_network(c1, c2).eval()
            x = torch.randn(net.input_size(1, 56), generator=torch.Generator().manual_seed(0))
            out[f"G1 {label}"] = lambda net=net, x=x: net(x)
    return out


def model_pair() -> dict[str, Callable[[], torch.Tensor]]:
    """ShuffleNet V2 0.5x and MobileNetV2 with the 32x32 stem, batch 1, 32x32 input."""
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = {}
    for name in ("shufflenet_v2_x0_5", "mobilenet_v2"):
        net = models.build(name, num_classes=10, small_input=True).eval()
        out[name] = lambda net=net: net(x)
    return out


def raw_rounds(
    pair: dict[str, Callable[[], torch.Tensor]], threads: int, rounds: int, min_run_time: float
) -> dict[str, list[float]]:
    """Per-round seconds of both candidates: exactly ``rounds`` interleaved rounds."""
    first = next(iter(pair))
    table = bench.compare(
        pair,
        (),
        baseline=first,
        rounds=rounds,
        max_rounds=rounds,
        min_run_time=min_run_time,
        threads=threads,
        device="cpu",
    )
    return table.times


def rows_for(name: str, pair, threads: int, args: argparse.Namespace) -> list[dict[str, object]]:
    """Both runs of one comparison at one thread count, read by every estimator."""
    a, b = list(pair)
    runs = [raw_rounds(pair, threads, args.rounds, args.min_run_time) for _ in range(2)]
    rows = []
    for estimator in stats.ESTIMATORS:
        one, two = (stats.ratio_interval(t[a], t[b], estimator=estimator) for t in runs)
        rows.append(
            {
                "comparison": f"{name}: {a} / {b}",
                "threads": threads,
                "estimator": estimator,
                "run 1": str(one),
                "run 2": str(two),
                "overlap": "yes" if one.low <= two.high and two.low <= one.high else "no",
                "half-width 1": one.halfwidth,
                "half-width 2": two.halfwidth,
                "verdict 1": stats.verdict(one, claim="below"),
                "verdict 2": stats.verdict(two, claim="below"),
            }
        )
    return rows


def tally(rows: list[dict[str, object]]) -> Table:
    """Per thread count and estimator: how many comparisons overlapped, agreed, and how wide."""
    out = []
    for threads in THREADS:
        for estimator in stats.ESTIMATORS:
            mine = [r for r in rows if r["threads"] == threads and r["estimator"] == estimator]
            widths = [w for r in mine for w in (r["half-width 1"], r["half-width 2"])]
            out.append(
                {
                    "threads": threads,
                    "estimator": estimator,
                    "overlapping": f"{sum(r['overlap'] == 'yes' for r in mine)}/{len(mine)}",
                    "same verdict": f"{sum(r['verdict 1'] == r['verdict 2'] for r in mine)}"
                    f"/{len(mine)}",
                    "largest half-width": max(widths),
                    "mean half-width": sum(widths) / len(widths),
                }
            )
    return Table(out, title="summary: the two runs of each comparison")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 rounds of 0.05 s: a smoke run")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds per run")
    parser.add_argument("--min-run-time", type=float, default=0.2, help="seconds per timing")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.min_run_time = 8, 0.05
    if args.rounds < bench.MIN_ROUNDS:
        parser.error(f"--rounds must be >= {bench.MIN_ROUNDS} for a median interval")
    print(env.machine_info("cpu"))
    print(f"{args.rounds} interleaved rounds per run, {args.min_run_time} s per timing\n")
    rows = []
    for name, pair in (("G1 network", g1_pair()), ("models 32x32", model_pair())):
        for threads in THREADS:
            rows += rows_for(name, pair, threads, args)
    print(
        Table(
            rows, title="the same comparison run twice in a row, each estimator on the same rounds"
        )
    )
    print()
    print(tally(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
