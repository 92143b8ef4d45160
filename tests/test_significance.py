"""A/B significance tests against scipy, on generated data with planted effects."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from bizops_otel.analytics import significance as sig


@pytest.mark.parametrize(("a", "b", "x"), [(0.5, 0.5, 0.3), (2.0, 5.0, 0.2), (50.0, 0.5, 0.99),
                                           (0.5, 30.0, 0.01), (200.0, 0.5, 0.5)])
def test_regularized_beta_matches_scipy(a: float, b: float, x: float) -> None:
    assert sig.regularized_beta(a, b, x) == pytest.approx(sps.beta.cdf(x, a, b), rel=1e-10,
                                                          abs=1e-300)


@pytest.mark.parametrize("df", [1.0, 2.5, 7.0, 30.0, 1e4])
@pytest.mark.parametrize("t", [0.0, 0.3, 1.96, 4.0, -12.0])
def test_student_t_matches_scipy(t: float, df: float) -> None:
    expected = 2.0 * sps.t.sf(abs(t), df)
    assert sig.student_t_two_sided(t, df) == pytest.approx(expected, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("seed", range(5))
def test_welch_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.lognormal(-1.0, 0.5, 300)
    b = rng.lognormal(-0.95, 0.7, 180)
    result = sig.welch(a.mean(), a.var(ddof=1), len(a), b.mean(), b.var(ddof=1), len(b))
    expected = sps.ttest_ind(b, a, equal_var=False)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-10)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-8)
    assert result.difference == pytest.approx(b.mean() - a.mean())


def test_two_proportions_matches_the_pooled_formula_and_scipy() -> None:
    result = sig.two_proportions(120, 1000, 150, 1000)
    pooled = 270 / 2000
    z = 0.03 / math.sqrt(pooled * (1 - pooled) * (2 / 1000))
    assert result.statistic == pytest.approx(z, rel=1e-12)
    assert result.p_value == pytest.approx(2 * sps.norm.sf(z), rel=1e-10)
    # scipy's chi-squared test without continuity correction is the same test: χ² = z².
    chi2 = sps.chi2_contingency([[120, 880], [150, 850]], correction=False)
    assert chi2.statistic == pytest.approx(z * z, rel=1e-10)
    assert chi2.pvalue == pytest.approx(result.p_value, rel=1e-8)


def test_planted_conversion_lift_is_detected_and_nulls_are_not() -> None:
    detected = 0
    false_positives = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        a = rng.random(5000) < 0.10
        b = rng.random(5000) < (0.13 if seed < 20 else 0.10)
        p = sig.two_proportions(a.sum(), 5000, b.sum(), 5000).p_value
        if seed < 20:
            detected += p < 0.01
        else:
            false_positives += p < 0.05
    # A 3-point lift on 5000 per arm: z ≈ 4.6, power Φ(4.6 − 2.58) ≈ 0.98 at the 1% level.
    assert detected >= 18
    assert false_positives <= 0.05 * 180 + 2 * math.sqrt(180 * 0.05 * 0.95)


def test_correlation_difference_by_fisher_z() -> None:
    result = sig.correlation_difference(-0.10, 2000, -0.25, 2000)
    z = (math.atanh(-0.25) - math.atanh(-0.10)) / math.sqrt(2 / 1997)
    assert result.statistic == pytest.approx(z, rel=1e-12)
    assert result.p_value == pytest.approx(2 * sps.norm.sf(abs(z)), rel=1e-10)
    assert math.isnan(sig.correlation_difference(0.5, 3, 0.2, 100).p_value)


@pytest.mark.parametrize(("rate", "lift"), [(0.3, 0.15), (0.08, 0.25)])
def test_trials_to_detect_gives_the_stated_power(rate: float, lift: float) -> None:
    """With the trials it names, the z-test detects the planted lift in 80% of simulated
    experiments (at the 5% level), and not in 80% with a tenth of them."""
    from bizops_otel.analytics.significance import trials_to_detect

    n = round(trials_to_detect(rate, lift))
    rng = np.random.default_rng(17)

    def power(trials: int, runs: int = 3000) -> float:
        a = rng.binomial(trials, rate, runs)
        b = rng.binomial(trials, rate * (1 + lift), runs)
        return float(np.mean([sig.two_proportions(float(x), trials, float(y), trials).p_value
                              < 0.05 for x, y in zip(a, b, strict=True)]))

    assert power(n) == pytest.approx(0.80, abs=0.03)
    assert power(max(1, n // 10)) < 0.3
    assert math.isinf(sig.trials_to_detect(0.0, 0.15))
    assert math.isinf(sig.trials_to_detect(0.95, 0.15))  # the lifted rate would pass 1
