"""A/B comparison of variants, from real spans of the simulator, on both twins."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from bizops_otel import attributes
from bizops_otel.abtest import compare
from bizops_otel.simulate import Scenario
from tests.test_simulate import run

DIMENSIONS = (attributes.PAGE_GROUP, attributes.FEATURE_FLAG_VARIANT)


def test_arms_match_scipy_on_the_simulated_sessions(Aggregator: Any) -> None:
    snapshot, sessions = run(Aggregator, Scenario(variants={"A": 0.0, "B": 0.3}), 8000,
                             seed=11, dimensions=DIMENSIONS)
    result = compare(snapshot, "A", "B")
    checkout = {v: [s for s in sessions if s.variant == v and s.reached_checkout]
                for v in ("A", "B")}
    orders = {v: np.array([s.order_value for s in checkout[v] if s.converted]) for v in checkout}
    latency = {v: np.array([s.requests[-1].latency_s for s in checkout[v]]) for v in checkout}
    welch_orders = sps.ttest_ind(orders["B"], orders["A"], equal_var=False)
    assert result.order_value.statistic == pytest.approx(welch_orders.statistic, rel=1e-6)
    assert result.order_value.p_value == pytest.approx(welch_orders.pvalue, rel=1e-5)
    welch_latency = sps.ttest_ind(latency["B"], latency["A"], equal_var=False)
    assert result.latency.statistic == pytest.approx(welch_latency.statistic, rel=1e-6)
    converted = {v: sum(s.converted for s in checkout[v]) for v in checkout}
    assert result.conversion.difference == pytest.approx(
        converted["B"] / len(checkout["B"]) - converted["A"] / len(checkout["A"]), rel=1e-12)
    assert sum(result.requests) == snapshot.total().count


def test_planted_lift_is_detected_and_null_variants_are_quiet(Aggregator: Any) -> None:
    detected = sum(
        compare(run(Aggregator, Scenario(variants={"A": 0.0, "B": 0.35}), 6000, seed=seed,
                    dimensions=DIMENSIONS)[0], "A", "B").conversion.p_value < 0.01
        for seed in range(10))
    false_positives = sum(
        compare(run(Aggregator, Scenario(), 6000, seed=100 + seed, dimensions=DIMENSIONS)[0],
                "A", "B").conversion.p_value < 0.05
        for seed in range(10))
    assert detected >= 9
    assert false_positives <= 2  # nominal 5%: 0.5 expected in 10; 3 or more: p ≈ 1.2%


def test_comparison_needs_an_outcome_and_known_dimensions(Aggregator: Any) -> None:
    snapshot, _ = run(Aggregator, Scenario(), 200, seed=1, dimensions=DIMENSIONS)
    with pytest.raises(KeyError, match="not dimensions"):
        compare(snapshot, "A", "B", dimension="device.class")
