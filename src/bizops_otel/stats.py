"""Pure functions from aggregated statistics to numbers.

Every function takes sufficient statistics (counts, co-moments, histogram counts) and
returns numbers; none touches aggregator state. Undefined results are ``nan``, never an
exception, because they feed metric callbacks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class Correlation(NamedTuple):
    """A correlation coefficient with its confidence interval."""

    r: float
    low: float
    high: float
    n: int


def z_critical(confidence: float) -> float:
    """Two-sided standard-normal critical value, e.g. 1.95996 for 0.95."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def pearson(m2_t: float, m2_v: float, c_tv: float) -> float:
    """Pearson r from co-moments: ``r = C / sqrt(M2_t · M2_v)``; nan when a variance is 0."""
    denominator = math.sqrt(m2_t * m2_v) if m2_t > 0.0 and m2_v > 0.0 else 0.0
    if denominator == 0.0:
        return math.nan
    return max(-1.0, min(1.0, c_tv / denominator))


def fisher_interval(r: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Confidence interval for r by Fisher's z: ``tanh(atanh(r) ± z/√(n−3))``.

    Needs n > 3; an |r| of exactly 1 has a degenerate interval [r, r].
    """
    if n <= 3 or math.isnan(r):
        return math.nan, math.nan
    if abs(r) >= 1.0:
        return r, r
    centre = math.atanh(r)
    half = z_critical(confidence) / math.sqrt(n - 3)
    return math.tanh(centre - half), math.tanh(centre + half)


def correlation(n: int, m2_t: float, m2_v: float, c_tv: float,
                confidence: float = 0.95) -> Correlation:
    """Pearson r with its Fisher-z interval."""
    r = pearson(m2_t, m2_v, c_tv)
    low, high = fisher_interval(r, n, confidence)
    return Correlation(r, low, high, n)


def slope(m2_t: float, c_tv: float) -> float:
    """Least-squares slope of KPI on latency: ``C / M2_t``, KPI units per second."""
    return c_tv / m2_t if m2_t > 0.0 else math.nan


def spearman_binary(negatives: FloatArray, positives: FloatArray) -> float:
    """Spearman ρ between bucketed latency and a binary outcome, from two histograms.

    Latencies in one bucket are ties and share the mid-rank
    ``R_b = below_b + (n_b + 1)/2``. With a binary outcome, Spearman equals the
    point-biserial correlation of ranks and outcome::

        ρ = (R̄₁ − R̄₀) / s_R · √(p q)

    where R̄₁, R̄₀ are the mean ranks of positives and negatives, s_R the population
    standard deviation of all ranks, p = n₁/n and q = n₀/n. Bucket ties make it differ
    slightly from ρ on exact latencies; buckets 10% wide keep that difference small.
    """
    neg = np.asarray(negatives, dtype=np.float64)
    pos = np.asarray(positives, dtype=np.float64)
    per_bucket = neg + pos
    n = per_bucket.sum()
    n1 = pos.sum()
    n0 = neg.sum()
    if n1 == 0.0 or n0 == 0.0:
        return math.nan
    below = np.cumsum(per_bucket) - per_bucket
    ranks = below + (per_bucket + 1.0) / 2.0
    mean_rank = (n + 1.0) / 2.0
    variance = float((per_bucket * (ranks - mean_rank) ** 2).sum() / n)
    if variance <= 0.0:
        return math.nan
    mean_pos = float((pos * ranks).sum() / n1)
    mean_neg = float((neg * ranks).sum() / n0)
    p, q = n1 / n, n0 / n
    return float((mean_pos - mean_neg) / math.sqrt(variance) * math.sqrt(p * q))


def spearman_table(counts: FloatArray) -> float:
    """Spearman ρ of two binned variables from their contingency table.

    ``counts[i, j]`` holds the observations in bin i of the first variable and bin j of
    the second. Every observation in a bin shares the bin's mid-rank, as
    ``scipy.stats.spearmanr`` ranks ties, and ρ is Pearson's r of the rank pairs::

        R_i = below_i + (r_i + 1)/2,   S_j = below_j + (c_j + 1)/2
        ρ = Σ n_ij (R_i − R̄)(S_j − S̄) / √(Σ r_i (R_i − R̄)² · Σ c_j (S_j − S̄)²)
    """
    table = np.asarray(counts, dtype=np.float64)
    rows, columns = table.sum(axis=1), table.sum(axis=0)
    n = rows.sum()
    if n < 2:
        return math.nan
    mean = (n + 1.0) / 2.0
    row_ranks = np.cumsum(rows) - rows + (rows + 1.0) / 2.0 - mean
    column_ranks = np.cumsum(columns) - columns + (columns + 1.0) / 2.0 - mean
    spread = float((rows * row_ranks**2).sum() * (columns * column_ranks**2).sum())
    if spread <= 0.0:
        return math.nan
    return float(row_ranks @ table @ column_ranks / math.sqrt(spread))


def histogram_quantile(counts: FloatArray, edges: FloatArray, q: float) -> float:
    """Quantile q of a log-bucketed histogram.

    The target rank ``q·(n−1)`` (numpy's default, linear) is located in its bucket, and
    the value is interpolated geometrically inside the bucket, which is where log-normal
    latencies spread evenly. The error is bounded by the bucket's relative width (10%).
    Ranks in the edge buckets return the edge, since their values were clamped.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q!r}")
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum()
    if n == 0.0:
        return math.nan
    rank = q * (n - 1.0)
    cumulative = np.cumsum(counts)
    bucket = int(np.searchsorted(cumulative, rank, side="right"))
    bucket = min(bucket, counts.shape[0] - 1)
    low, high = float(edges[bucket]), float(edges[bucket + 1])
    if bucket == 0:
        return high
    if math.isinf(high):
        return low
    below = cumulative[bucket] - counts[bucket]
    fraction = (rank - below + 0.5) / counts[bucket]
    fraction = min(1.0, max(0.0, fraction))
    return float(low * (high / low) ** fraction)


def conversion_rate(conversions: float, trials: float) -> float:
    """Share of trials that converted; nan with no trials."""
    return conversions / trials if trials > 0 else math.nan


def wilson_interval(successes: npt.ArrayLike, trials: npt.ArrayLike,
                    confidence: float = 0.95) -> tuple[FloatArray, FloatArray]:
    """Wilson score interval of a proportion, per element (Wilson 1927)::

        centre = (p̂ + z²/2n) / (1 + z²/n)
        half   = z·√(p̂(1 − p̂)/n + z²/4n²) / (1 + z²/n)

    Unlike the normal approximation it stays inside [0, 1] and keeps a sensible width
    for rates near 0 or 1 and for small n. nan where n is 0.
    """
    x = np.asarray(successes, np.float64)
    n = np.asarray(trials, np.float64)
    z = z_critical(confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = x / n
        scale = 1.0 + z * z / n
        centre = (p + z * z / (2.0 * n)) / scale
        half = z * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / scale
    low = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
    high = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    return low, high


def histogram_variances(counts: FloatArray, edges: FloatArray, means: FloatArray) -> FloatArray:
    """Unbiased variance of each row's values, from its bucketed counts (rows, buckets) and
    its exact mean ``x̄`` (a sum over a count)::

        s² = (Σ_b n_b (m_b − x̄)² + Σ_b n_b w_b² / 12) / (n − 1)

    with ``m_b`` the midpoint and ``w_b`` the width of bucket b, ``edges`` (buckets + 1
    values) its bounds. The second sum is Sheppard's correction: values spread across
    their bucket add about ``w²/12`` each to what midpoints show. A bucket without a
    finite upper edge holds values clamped to its lower one (width 0). Each value lies
    within half a bucket of its midpoint, 5% of it for 10%-wide buckets, so the standard
    deviation of log-normal latencies comes out within about 1% (tests check it against
    numpy on the raw values). nan for rows with fewer than two values.
    """
    counts = np.asarray(counts, np.float64)
    low, high = edges[:-1], edges[1:]
    finite = np.isfinite(high)
    middle = np.where(finite, (low + high) / 2.0, low)
    width = np.where(finite, high - low, 0.0)
    n = counts.sum(axis=1)
    spread = counts * ((middle[None, :] - np.asarray(means, np.float64)[:, None]) ** 2
                       + width[None, :] ** 2 / 12.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= 2, spread.sum(axis=1) / (n - 1.0), np.nan)


# Vectorised forms, one value per row, for exporters that read thousands of keys at once.
# Each performs the same arithmetic as its scalar twin above.
def pearson_many(m2_t: FloatArray, m2_v: FloatArray, c_tv: FloatArray) -> FloatArray:
    """:func:`pearson` per row."""
    with np.errstate(invalid="ignore", divide="ignore"):
        denominator = np.sqrt(m2_t * m2_v)
        r = np.clip(c_tv / denominator, -1.0, 1.0)
    ok = (m2_t > 0.0) & (m2_v > 0.0) & (denominator > 0.0)
    return np.where(ok, r, np.nan)


def slope_many(m2_t: FloatArray, c_tv: FloatArray) -> FloatArray:
    """:func:`slope` per row."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(m2_t > 0.0, c_tv / m2_t, np.nan)


def spearman_binary_many(negatives: FloatArray, positives: FloatArray) -> FloatArray:
    """:func:`spearman_binary` per row of (rows, buckets) histograms."""
    per_bucket = negatives + positives
    n = per_bucket.sum(axis=1)
    n1 = positives.sum(axis=1)
    n0 = negatives.sum(axis=1)
    below = np.cumsum(per_bucket, axis=1) - per_bucket
    ranks = below + (per_bucket + 1.0) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_rank = (n + 1.0) / 2.0
        variance = (per_bucket * (ranks - mean_rank[:, None]) ** 2).sum(axis=1) / n
        mean_pos = (positives * ranks).sum(axis=1) / n1
        mean_neg = (negatives * ranks).sum(axis=1) / n0
        rho = (mean_pos - mean_neg) / np.sqrt(variance) * np.sqrt((n1 / n) * (n0 / n))
    return np.where((n1 > 0) & (n0 > 0) & (variance > 0.0), rho, np.nan)


def histogram_quantiles_many(counts: FloatArray, edges: FloatArray, qs: Sequence[float],
                             offset: int = 0) -> list[FloatArray]:
    """:func:`histogram_quantile` per row of (rows, buckets) counts, for each q.

    ``counts`` may be a slice of the buckets starting at bucket ``offset`` (with
    ``edges`` sliced alike), which is how callers skip buckets empty in every row.
    """
    n = counts.sum(axis=1)
    cumulative = np.cumsum(counts, axis=1)
    rows = np.arange(counts.shape[0])
    results = []
    for q in qs:
        rank = q * (n - 1.0)
        bucket = np.minimum((cumulative <= rank[:, None]).sum(axis=1), counts.shape[1] - 1)
        low, high = edges[bucket], edges[bucket + 1]
        in_bucket = counts[rows, bucket]
        below = cumulative[rows, bucket] - in_bucket
        with np.errstate(invalid="ignore", divide="ignore"):
            fraction = np.clip((rank - below + 0.5) / in_bucket, 0.0, 1.0)
            inside = low * (high / low) ** fraction
        result = np.where(bucket + offset == 0, high, np.where(np.isinf(high), low, inside))
        results.append(np.where(n > 0, result, np.nan))
    return results
