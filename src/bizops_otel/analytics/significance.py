"""Significance tests for A/B variants, from sufficient statistics only.

Each function takes counts, means and variances (what the aggregator keeps) and returns
the effect, the test statistic and a two-sided p-value. No raw observations are needed,
and nothing here needs SciPy: the Student t distribution comes from the regularised
incomplete beta function, computed by its continued fraction.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import NamedTuple


class TestResult(NamedTuple):
    """An effect (second group minus first), its statistic and two-sided p-value."""

    difference: float
    statistic: float
    p_value: float
    degrees_of_freedom: float = math.inf


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz's method)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return fraction


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularised incomplete beta function."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def student_t_two_sided(t: float, df: float) -> float:
    """P(|T| > |t|) for Student's t with ``df`` degrees of freedom."""
    if math.isnan(t) or df <= 0:
        return math.nan
    if math.isinf(df):
        return 2.0 * normal_sf(abs(t))
    return regularized_beta(df / 2.0, 0.5, df / (df + t * t))


def two_proportions(successes_a: float, trials_a: float, successes_b: float,
                    trials_b: float) -> TestResult:
    """Pooled two-proportion z-test of p_b − p_a::

        p̂ = (x_a + x_b) / (n_a + n_b)
        z = (p_b − p_a) / √(p̂ (1 − p̂) (1/n_a + 1/n_b))
    """
    if trials_a <= 0 or trials_b <= 0:
        return TestResult(math.nan, math.nan, math.nan)
    p_a, p_b = successes_a / trials_a, successes_b / trials_b
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    variance = pooled * (1.0 - pooled) * (1.0 / trials_a + 1.0 / trials_b)
    if variance <= 0.0:
        return TestResult(p_b - p_a, math.nan, math.nan)
    z = (p_b - p_a) / math.sqrt(variance)
    return TestResult(p_b - p_a, z, 2.0 * normal_sf(abs(z)))


def welch(mean_a: float, variance_a: float, n_a: float, mean_b: float, variance_b: float,
          n_b: float) -> TestResult:
    """Welch's t-test of mean_b − mean_a from sample means and unbiased variances::

        t = (x̄_b − x̄_a) / √(s_a²/n_a + s_b²/n_b)
        ν = (s_a²/n_a + s_b²/n_b)² / ((s_a²/n_a)²/(n_a − 1) + (s_b²/n_b)²/(n_b − 1))
    """
    if n_a < 2 or n_b < 2:
        return TestResult(math.nan, math.nan, math.nan, math.nan)
    ea, eb = variance_a / n_a, variance_b / n_b
    if ea + eb <= 0.0:
        return TestResult(mean_b - mean_a, math.nan, math.nan, math.nan)
    t = (mean_b - mean_a) / math.sqrt(ea + eb)
    df = (ea + eb) ** 2 / (ea * ea / (n_a - 1) + eb * eb / (n_b - 1))
    return TestResult(mean_b - mean_a, t, student_t_two_sided(t, df), df)


def correlation_difference(r_a: float, n_a: float, r_b: float, n_b: float) -> TestResult:
    """Difference of two independent correlations by Fisher's z::

        z = (atanh r_b − atanh r_a) / √(1/(n_a − 3) + 1/(n_b − 3))
    """
    if n_a <= 3 or n_b <= 3 or math.isnan(r_a) or math.isnan(r_b) or \
            abs(r_a) >= 1.0 or abs(r_b) >= 1.0:
        return TestResult(math.nan, math.nan, math.nan)
    z = (math.atanh(r_b) - math.atanh(r_a)) / math.sqrt(1.0 / (n_a - 3) + 1.0 / (n_b - 3))
    return TestResult(r_b - r_a, z, 2.0 * normal_sf(abs(z)))


def t_critical(df: float, confidence: float = 0.95) -> float:
    """Two-sided critical value of Student's t with ``df`` degrees of freedom (the normal
    one for ``df = inf``): the t at which :func:`student_t_two_sided` equals
    ``1 − confidence``, found by bisection (the p-value falls monotonically in |t|)."""
    alpha = 1.0 - confidence
    if not 0.0 < alpha < 1.0 or math.isnan(df) or df <= 0:
        return math.nan
    if math.isinf(df):
        return NormalDist().inv_cdf(1.0 - alpha / 2.0)
    low, high = 0.0, 1.0
    while student_t_two_sided(high, df) > alpha:
        high *= 2.0
    for _ in range(100):
        middle = 0.5 * (low + high)
        if student_t_two_sided(middle, df) > alpha:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def interval(result: TestResult, confidence: float = 0.95) -> tuple[float, float]:
    """Confidence interval of a test's difference, from its statistic::

        SE = difference / statistic,   difference ± t_crit(ν) · SE

    For Welch's test this is the Welch interval. For the pooled two-proportion test the
    standard error is the pooled one (under no difference), so the interval is the one
    that agrees with the test's p-value: it excludes 0 exactly when p < 1 − confidence.
    nan when the statistic is undefined or 0.
    """
    difference, statistic = result.difference, result.statistic
    if not (math.isfinite(difference) and math.isfinite(statistic)) or statistic == 0.0:
        return math.nan, math.nan
    half = t_critical(result.degrees_of_freedom, confidence) * abs(difference / statistic)
    return difference - half, difference + half


def trials_to_detect(rate: float, lift: float, alpha: float = 0.05,
                     power: float = 0.8) -> float:
    """Trials per arm a two-sided two-proportion z-test at level ``alpha`` needs to
    detect, with probability ``power``, a relative ``lift`` of a base ``rate``:

    ``n = (z₁₋α/₂·√(2·p̄(1−p̄)) + z_power·√(p₁(1−p₁) + p₂(1−p₂)))² / (p₂ − p₁)²``,
    with ``p₂ = p₁(1 + lift)`` and ``p̄`` their mean (Fleiss, *Statistical Methods for
    Rates and Proportions*, the normal approximation). ``inf`` when no lift is possible.
    """
    p1, p2 = rate, rate * (1.0 + lift)
    if not (0.0 < p1 < 1.0 and 0.0 < p2 < 1.0) or p1 == p2:
        return math.inf
    normal = NormalDist()
    z_alpha, z_power = normal.inv_cdf(1.0 - alpha / 2.0), normal.inv_cdf(power)
    mean = (p1 + p2) / 2.0
    root = (z_alpha * math.sqrt(2.0 * mean * (1.0 - mean))
            + z_power * math.sqrt(p1 * (1.0 - p1) + p2 * (1.0 - p2)))
    return root * root / (p2 - p1) ** 2


def harm_e_value(harm: float, variance: float, scale: float) -> float:
    """The one-sided mixture sequential probability ratio test (mSPRT) of "no harm": the
    likelihood ratio of a normal estimate ``harm`` (variance ``V``) under effects θ > 0,
    mixed over a half-normal of scale ``τ``, against θ = 0::

        Λ⁺ = 2 · √(V / (V + τ²)) · exp(θ̂² τ² / (2 V (V + τ²))) · Φ(θ̂ τ / √(V (V + τ²)))

    Under θ ≤ 0 it is a nonnegative supermartingale as the data accumulate, so by Ville's
    inequality the chance that it *ever* reaches 1/α, however often it is looked at, is at
    most α (Robbins 1970; Johari, Pekelis and Walsh, "Always valid inference", 2017, whose
    two-sided normal mixture this restricts to the harmful half). It is an e-value: its
    reciprocal, minimised over the looks so far, is an always-valid p-value. nan without a
    positive variance and scale.
    """
    if not (variance > 0.0 and scale > 0.0) or math.isnan(harm):
        return math.nan
    total = variance + scale * scale
    x = harm * scale / math.sqrt(variance * total)
    tail = 0.5 * math.erfc(-x / math.sqrt(2.0))  # Φ(x)
    if tail <= 0.0:
        return 0.0
    log_e = (math.log(2.0) + 0.5 * math.log(variance / total) + 0.5 * x * x + math.log(tail))
    return math.exp(min(log_e, 700.0))


def confidence_sequence(estimate: float, variance: float, scale: float,
                        alpha: float) -> tuple[float, float]:
    """The always-valid (1 − α) interval of the two-sided normal mixture of scale ``τ``:
    the effects θ₀ its likelihood ratio does not reject at 1/α::

        θ̂ ± √(V (V + τ²) / τ² · (2 ln(1/α) + ln((V + τ²) / V)))

    It covers the true effect at every look at once with probability 1 − α. (nan, nan)
    without a positive variance and scale."""
    if not (variance > 0.0 and scale > 0.0) or math.isnan(estimate):
        return math.nan, math.nan
    total = variance + scale * scale
    half = math.sqrt(variance * total / (scale * scale)
                     * (2.0 * math.log(1.0 / alpha) + math.log(total / variance)))
    return estimate - half, estimate + half
