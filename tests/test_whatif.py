"""The logistic what-if model against scipy, and recovery of a planted latency effect."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import optimize
from scipy.special import expit

from bizops_otel import Config
from bizops_otel.analytics.whatif import fit_logistic, project
from tests.datasets import traffic
from tests.keys import EVERY_KEY


def grouped(seed: int, slope: float, n: int = 20_000) -> tuple[Any, Any, Any]:
    data = traffic(seed, n=n, conversion_slope=slope)
    edges = np.quantile(data.latency, np.linspace(0, 1, 41))
    index = np.clip(np.searchsorted(edges, data.latency, side="right") - 1, 0, 39)
    x = np.array([data.latency[index == b].mean() for b in range(40)])
    trials = np.bincount(index, minlength=40).astype(float)
    successes = np.bincount(index, weights=data.conversion, minlength=40)
    return x, trials, successes


def reference_fit(x: Any, trials: Any, successes: Any) -> Any:
    def negative_log_likelihood(beta: Any) -> float:
        eta = beta[0] + beta[1] * x
        return float(-(successes * eta - trials * np.logaddexp(0.0, eta)).sum())

    def gradient(beta: Any) -> Any:
        residual = successes - trials * expit(beta[0] + beta[1] * x)
        return -np.array([residual.sum(), (residual * x).sum()])

    return optimize.minimize(negative_log_likelihood, [0.0, 0.0], jac=gradient,
                             method="BFGS", options={"gtol": 1e-10}).x


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_irls_matches_scipy_maximum_likelihood(seed: int) -> None:
    x, trials, successes = grouped(seed, slope=-1.2)
    fit = fit_logistic(x, trials, successes)
    expected = reference_fit(x, trials, successes)
    assert fit.converged
    assert fit.intercept == pytest.approx(expected[0], rel=1e-4)
    assert fit.slope == pytest.approx(expected[1], rel=1e-4)
    # The covariance is the inverse Fisher information, checked by finite differences.
    p = expit(fit.intercept + fit.slope * x)
    weights = trials * p * (1 - p)
    information = np.array([[weights.sum(), (weights * x).sum()],
                            [(weights * x).sum(), (weights * x * x).sum()]])
    np.testing.assert_allclose(fit.covariance, np.linalg.inv(information), rtol=1e-8)


def test_slope_interval_covers_the_planted_slope() -> None:
    planted = -1.2
    covered = 0
    for seed in range(20):
        x, trials, successes = grouped(100 + seed, slope=planted)
        low, high = fit_logistic(x, trials, successes).slope_interval(0.95)
        covered += low <= planted <= high
    assert covered >= 18  # at least 90% of seeds


def test_what_if_projection_and_interval() -> None:
    x, trials, successes = grouped(7, slope=-1.2, n=50_000)
    fit = fit_logistic(x, trials, successes)
    faster = project(fit, x, trials, -0.1)
    slower = project(fit, x, trials, +0.5)
    assert faster.change > 0 > slower.change
    assert faster.low < faster.change < faster.high
    # The projected rate is the fitted curve averaged over the shifted traffic.
    expected = float((trials * expit(fit.intercept + fit.slope * np.maximum(x - 0.1, 0))).sum()
                     / trials.sum())
    assert faster.projected == pytest.approx(expected, rel=1e-12)
    # Planted truth: the data's own logistic curve, shifted.
    data = traffic(7, n=50_000, conversion_slope=-1.2)
    true_change = float(np.mean(expit(0.2 - 1.2 * np.maximum(data.latency - 0.1, 0))
                                - expit(0.2 - 1.2 * data.latency)))
    assert faster.low <= true_change <= faster.high


def test_degenerate_data_do_not_pretend() -> None:
    assert not fit_logistic([0.1, 0.2], [10, 10], [0, 0]).converged
    assert not fit_logistic([0.1, 0.1], [10, 10], [3, 4]).converged
    result = project(fit_logistic([0.1], [5], [2]), [0.1], [5], -0.1)
    assert np.isnan(result.change)


def test_fits_the_aggregators_conversion_curve(Aggregator: Any) -> None:
    data = traffic(9, n=30_000, conversion_slope=-1.5)
    agg = Aggregator(Config(**EVERY_KEY))
    agg.record_many(("checkout", ""), data.latency, {"conversion": data.conversion})
    curve = agg.snapshot()[("checkout", "")].conversion_by_latency()
    middle = np.sqrt(np.maximum(curve.edges[:-1], 1e-3) * np.minimum(curve.edges[1:], 120.0))
    fit = fit_logistic(middle, curve.trials, curve.conversions)
    low, high = fit.slope_interval()
    assert low <= -1.5 <= high
