"""Intervals and three-valued verdicts: how the book decides that one thing is faster; ch. 3-4.

A speed comparison in this book is always *paired*: the two candidates are timed in the same
round, one after the other, and the ratio of their times is taken within the round, so a slow
moment of a shared machine slows both and cancels. Several rounds give several ratios; their
centre (the *estimator*) and a confidence interval for it come from SciPy's well-tested routines,
not from code of ours:

- ``"median"`` (the default): the median of the per-round ratios, with the distribution-free
  interval of :func:`scipy.stats.quantile_test` (order statistics; no assumption on the noise,
  which on a shared CPU is skewed and has outliers). It needs at least 6 rounds at 95%.
- ``"mean"``: the geometric mean, with the t interval of :func:`scipy.stats.ttest_1samp` on the
  logarithms (exact for log-normal noise, pulled by outliers).
- ``"trimmed"``: the 20%-trimmed mean of the log ratios, with a :func:`scipy.stats.bootstrap`
  interval.
- ``"min"``: the ratio of the two candidates' fastest rounds, with a paired bootstrap interval.

The two bootstrap intervals are too narrow with few rounds: on synthetic timings with a 2% gap
and 10% noise, 8 rounds, they call the gap in about a quarter of the experiments, where the
median's and the mean's intervals rightly find it too close to call (``tests/test_stats.py``).

``benchmarks/bench_noise.py`` runs the same comparisons twice in a row with each estimator and
thread count and reports which intervals overlap: the evidence for the book's defaults.

A claim about a ratio then gets one of three verdicts (:func:`verdict`): it **holds** when the
whole interval lies on the claimed side of the threshold, it **does not hold** when the whole
interval lies on the other side, and it is **too close to call** when the interval straddles it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import validate

__all__ = [
    "ESTIMATORS",
    "HOLDS",
    "FAILS",
    "CLOSE",
    "VERDICTS",
    "Interval",
    "ratio_interval",
    "spread",
    "verdict",
    "all_of",
    "min_rounds",
]

ESTIMATORS = ("median", "mean", "trimmed", "min")
HOLDS, FAILS, CLOSE = "holds", "does not hold", "too close to call"
VERDICTS = (HOLDS, FAILS, CLOSE)
_TRIM = 0.2  # the proportion cut from each end by the "trimmed" estimator


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval ``[low, high]``, from ``n`` paired rounds."""

    estimate: float
    low: float
    high: float
    n: int
    confidence: float = 0.95
    estimator: str = "median"

    @property
    def halfwidth(self) -> float:
        """Half the interval's width relative to the estimate (0.03 means about +-3%)."""
        if not math.isfinite(self.low) or not math.isfinite(self.high) or self.estimate <= 0:
            return math.inf
        return (self.high - self.low) / 2 / self.estimate

    def side(self, threshold: float = 1.0) -> int:
        """+1 when the whole interval is above ``threshold``, -1 below it, 0 when it straddles."""
        if self.low > threshold:
            return 1
        if self.high < threshold:
            return -1
        return 0

    @property
    def decimals(self) -> int:
        """2, or more when an end of the interval would otherwise print as 1 without being 1, so
        that a printed interval never seems to touch the threshold its verdict was drawn from."""
        for d in (2, 3, 4):
            if all(f"{v:.{d}f}" != f"{1:.{d}f}" or v == 1 for v in (self.low, self.high)):
                return d
        return 5

    @property
    def bounds(self) -> str:
        """The interval as text, ``[low, high]``."""
        d = self.decimals
        return f"[{self.low:.{d}f}, {self.high:.{d}f}]"

    def __str__(self) -> str:
        return f"{self.estimate:.{self.decimals}f} {self.bounds}"


def _check_times(name: str, values: object) -> np.ndarray:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray):
        raise TypeError(f"{name} must be a sequence of positive times, got {values!r}")
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or not len(arr) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be a 1-D sequence of positive, finite times, got {values!r}")
    return arr


def min_rounds(confidence: float = 0.95) -> int:
    """The fewest rounds whose median has a finite distribution-free interval at ``confidence``."""
    confidence = validate.number("confidence", confidence, above=0, below=1)
    n = 2
    while 1 - 2 * 0.5**n < confidence:  # the interval [min, max] covers the median w.p. 1 - 2/2^n
        n += 1
    return n


def _median_interval(logs: np.ndarray, confidence: float) -> tuple[float, float]:
    from scipy.stats import quantile_test

    ci = quantile_test(logs, q=float(np.median(logs)), p=0.5).confidence_interval(confidence)
    return float(ci.low), float(ci.high)


def _bootstrap(data: tuple[np.ndarray, ...], statistic, confidence: float, paired: bool):
    from scipy.stats import bootstrap

    res = bootstrap(
        data,
        statistic,
        paired=paired,
        vectorized=False,
        confidence_level=confidence,
        n_resamples=999,
        method="percentile",
        rng=np.random.default_rng(0),  # the same data always give the same interval
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def ratio_interval(
    numerator: Sequence[float],
    denominator: Sequence[float],
    *,
    estimator: str = "median",
    confidence: float = 0.95,
) -> Interval:
    """The ratio ``numerator / denominator`` of paired times, with its confidence interval.

    ``numerator[i]`` and ``denominator[i]`` were measured in the same round. A ratio below 1
    means the numerator is faster. Too few rounds for an interval give ``low = 0`` and
    ``high = inf`` (never a verdict).
    """
    a, b = _check_times("numerator", numerator), _check_times("denominator", denominator)
    if len(a) != len(b):
        raise ValueError(f"numerator and denominator must pair up, got {len(a)} and {len(b)}")
    validate.choice("estimator", estimator, ESTIMATORS)
    confidence = validate.number("confidence", confidence, above=0, below=1)
    logs = np.log(a / b)
    n = len(logs)
    lo, hi = -math.inf, math.inf
    if estimator == "median":
        centre = float(np.median(logs))
        if n >= min_rounds(confidence):
            lo, hi = _median_interval(logs, confidence)
    elif estimator == "mean":
        from scipy.stats import ttest_1samp

        centre = float(np.mean(logs))
        if n >= 2 and np.ptp(logs) == 0:
            lo = hi = centre
        elif n >= 2:
            ci = ttest_1samp(logs, 0.0).confidence_interval(confidence)
            lo, hi = float(ci.low), float(ci.high)
    elif estimator == "trimmed":
        from scipy.stats import trim_mean

        centre = float(trim_mean(logs, _TRIM))
        if n >= 3:
            lo, hi = _bootstrap((logs,), lambda s: trim_mean(s, _TRIM), confidence, False)
    else:
        centre = float(np.log(a.min() / b.min()))
        if n >= 3:
            lo, hi = _bootstrap(
                (a, b), lambda x, y: np.log(x.min() / y.min()), confidence, paired=True
            )
    return Interval(math.exp(centre), math.exp(lo), math.exp(hi), n, confidence, estimator)


def spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation of repeated results (accuracies over seeds); ch. 10."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray):
        raise TypeError(f"values must be a sequence of numbers, got {values!r}")
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or len(arr) < 2 or not np.all(np.isfinite(arr)):
        raise ValueError(f"values must hold at least 2 finite numbers, got {values!r}")
    return float(arr.mean()), float(arr.std(ddof=1))


def verdict(interval: Interval, threshold: float = 1.0, *, claim: str = "above") -> str:
    """Whether the claim "the ratio is ``claim`` ``threshold``" holds, fails or is too close.

    ``claim`` is "above" or "below". The verdict is :data:`HOLDS` when the whole interval is on
    the claimed side, :data:`FAILS` when the whole interval is on the other side, :data:`CLOSE`
    when it straddles the threshold.
    """
    if not isinstance(interval, Interval):
        raise TypeError(f"interval must be a stats.Interval, got {type(interval).__name__}")
    validate.choice("claim", claim, ("above", "below"))
    validate.number("threshold", threshold)
    side = interval.side(threshold) * (1 if claim == "above" else -1)
    return {1: HOLDS, -1: FAILS, 0: CLOSE}[side]


def all_of(*verdicts: str) -> str:
    """The verdict on several claims together: fails if one fails, holds if all hold."""
    for v in verdicts:
        validate.choice("each verdict", v, VERDICTS)
    if FAILS in verdicts:
        return FAILS
    return HOLDS if verdicts and all(v == HOLDS for v in verdicts) else CLOSE
