"""The statistics of `dbgym bench`: summaries, the speedup's confidence interval, the
significance test, the multiple-comparison correction and outlier notes.

- Summary of a configuration's run times: median, p95 (linear interpolation), min, max,
  mean, standard deviation, quartiles.
- Speedup of configuration B against the baseline A: median(A) / median(B) (> 1: B is
  faster). Its confidence interval is a *percentile bootstrap of the ratio of medians*: each
  of `resamples` rounds resamples A's and B's runs independently with replacement and takes
  the ratio of the medians; the interval is the (alpha/2, 1 - alpha/2) quantiles.
- Significance: the *two-sided Mann-Whitney U test* (exact distribution without ties,
  else the normal approximation with tie and continuity corrections: the p-values of
  `scipy.stats.mannwhitneyu`'s "exact" and "asymptotic" methods, computed here so that a
  comparison does not pay for importing scipy.stats), whose p-values over the configurations
  compared with the baseline are corrected with the *Holm-Bonferroni* step-down method.
- A configuration differs significantly when its corrected p-value is below alpha AND its
  interval excludes 1; an interval containing 1 is always "no significant difference".
- Outliers: runs outside Tukey's fences (1.5 IQR beyond the quartiles), a first run much
  slower than the rest (a cold cache: hyperfine's note), and a coefficient of variation
  above 10% (pyperf's "unstable" warning).
- Over templates: per-template speedups (ratio of the medians of the template's time per
  run) and their geometric mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: pyperf warns when the standard deviation exceeds this fraction of the mean.
UNSTABLE_CV = 0.10
#: hyperfine's note: the first run is this much slower than the median of the others.
FIRST_RUN_FACTOR = 1.5


@dataclass(frozen=True)
class Summary:
    """Descriptive statistics of one configuration's measured run times (seconds)."""

    n: int
    median: float
    p95: float
    min: float
    max: float
    mean: float
    stdev: float
    q1: float
    q3: float

    @property
    def cv(self) -> float:
        """Coefficient of variation (stdev / mean); nan for one run."""
        return self.stdev / self.mean if self.n > 1 and self.mean > 0 else math.nan


def summarize(values: Sequence[float] | FloatArray) -> Summary | None:
    """The summary of `values`, None when there are none."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return None
    q1, median, q3, p95 = np.percentile(x, [25, 50, 75, 95])
    return Summary(
        n=int(x.size),
        median=float(median),
        p95=float(p95),
        min=float(x.min()),
        max=float(x.max()),
        mean=float(x.mean()),
        stdev=float(x.std(ddof=1)) if x.size > 1 else 0.0,
        q1=float(q1),
        q3=float(q3),
    )


def speedup(base: Sequence[float] | FloatArray, other: Sequence[float] | FloatArray) -> float:
    """median(base) / median(other): > 1 when `other` is faster."""
    b, o = float(np.median(base)), float(np.median(other))
    if o <= 0:
        return math.inf if b > 0 else math.nan
    return b / o


def bootstrap_ratio_ci(
    base: Sequence[float] | FloatArray,
    other: Sequence[float] | FloatArray,
    *,
    alpha: float,
    resamples: int,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """Percentile bootstrap interval (1 - alpha) of median(base) / median(other)."""
    b = np.asarray(base, dtype=np.float64)
    o = np.asarray(other, dtype=np.float64)
    mb = np.median(b[rng.integers(0, b.size, size=(resamples, b.size))], axis=1)
    mo = np.median(o[rng.integers(0, o.size, size=(resamples, o.size))], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = mb / mo
    ratios = ratios[np.isfinite(ratios)]
    if ratios.size == 0:
        return math.nan, math.nan
    low, high = np.quantile(ratios, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _u_distribution(n: int, m: int) -> FloatArray:
    """Probabilities of U = 0 .. n*m under H0 for samples of n and m without ties: the
    coefficients of the Gaussian binomial [n+m choose n](q), normalized."""
    size = n * m + 1
    c = np.zeros(size, dtype=np.float64)
    c[0] = 1.0
    for i in range(1, n + 1):
        shift = m + i  # multiply by (1 - q^(m+i))
        if shift < size:
            c[shift:] -= c[: size - shift].copy()
        rows = -(-size // i)  # divide by (1 - q^i): a running sum with stride i
        padded = np.zeros(rows * i, dtype=np.float64)
        padded[:size] = c
        c = np.cumsum(padded.reshape(rows, i), axis=0).reshape(-1)[:size]
    out: FloatArray = c / c.sum()
    return out


#: the exact distribution is used up to this many runs in total (no ties)
EXACT_MAX_RUNS = 80


def mann_whitney_p(
    base: Sequence[float] | FloatArray, other: Sequence[float] | FloatArray
) -> float:
    """Two-sided Mann-Whitney U p-value: the exact distribution when there are no ties and
    at most EXACT_MAX_RUNS runs, else the normal approximation with the tie and continuity
    corrections (as scipy.stats.mannwhitneyu's "exact" and "asymptotic" methods). 1.0 when
    either side has no runs."""
    b = np.asarray(base, dtype=np.float64)
    o = np.asarray(other, dtype=np.float64)
    n, m = int(b.size), int(o.size)
    if n == 0 or m == 0:
        return 1.0
    both = np.concatenate([b, o])
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(n + m, dtype=np.float64)
    sorted_vals = both[order]
    # average ranks of ties
    _, first, counts = np.unique(sorted_vals, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    u = float(ranks[:n].sum() - n * (n + 1) / 2.0)
    ties = bool((counts > 1).any())
    if not ties and n + m <= EXACT_MAX_RUNS:
        pmf = _u_distribution(n, m)
        k = round(u)
        low = float(pmf[: k + 1].sum())
        high = float(pmf[k:].sum())
        return min(1.0, 2.0 * min(low, high))
    mean = n * m / 2.0
    tie_term = float((counts**3 - counts).sum()) / ((n + m) * (n + m - 1))
    var = n * m / 12.0 * ((n + m + 1) - tie_term)
    if var <= 0:
        return 1.0
    z = (abs(u - mean) - 0.5) / math.sqrt(var)
    return min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2.0)))


def min_p_value(n: int, m: int) -> float:
    """The smallest two-sided exact Mann-Whitney p-value of samples of n and m runs:
    2 / C(n + m, n) (so with 3 runs each nothing can be significant at 0.05)."""
    if n < 1 or m < 1:
        return 1.0
    log_comb = math.lgamma(n + m + 1) - math.lgamma(n + 1) - math.lgamma(m + 1)
    return min(1.0, 2.0 * math.exp(-log_comb))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    k = len(pvalues)
    order = sorted(range(k), key=lambda i: pvalues[i])
    adjusted = [1.0] * k
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (k - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def geometric_mean(values: Sequence[float]) -> float | None:
    """Geometric mean of the finite positive `values` (None when there are none)."""
    x = np.asarray([v for v in values if math.isfinite(v) and v > 0], dtype=np.float64)
    if x.size == 0:
        return None
    return float(np.exp(np.log(x).mean()))


def outlier_notes(values: Sequence[float] | FloatArray) -> tuple[list[int], list[str]]:
    """(indices of the runs outside Tukey's fences, notes on them and on the spread)."""
    x = np.asarray(values, dtype=np.float64)
    notes: list[str] = []
    if x.size < 3:
        return [], notes
    q1, q3 = np.percentile(x, [25, 75])
    iqr = q3 - q1
    low, high = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    out = [int(i) for i in np.flatnonzero((x < low) | (x > high))]
    if out:
        notes.append(
            f"{len(out)} of {x.size} runs are outliers (outside 1.5 IQR of the quartiles: "
            + ", ".join(f"run {i + 1}: {x[i]:.4g} s" for i in out[:5])
            + (", ..." if len(out) > 5 else "")
            + "); the median and the rank test are robust to them"
        )
    rest = np.median(x[1:])
    if rest > 0 and x[0] > FIRST_RUN_FACTOR * rest:
        notes.append(
            f"the first measured run took {x[0] / rest:.1f}x the median of the others "
            "(caches still cold?): consider more --warmup runs"
        )
    mean = float(x.mean())
    if mean > 0:
        cv = float(x.std(ddof=1)) / mean
        if cv > UNSTABLE_CV:
            notes.append(
                f"unstable: the standard deviation is {cv:.0%} of the mean (more than "
                f"{UNSTABLE_CV:.0%}); other load on the machine, or too short a workload"
            )
    return out, notes
