"""A/B comparison of variants, from real spans of the simulator, on both twins."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from bizops_otel import Config, attributes
from bizops_otel.analytics.abtest import compare
from bizops_otel.demo.simulate import Scenario
from tests.keys import EVERY_KEY
from tests.spans import run

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


FLAGGED = (attributes.PAGE_GROUP, attributes.FEATURE_FLAG_KEY, attributes.FEATURE_FLAG_VARIANT)
#: Conversion probability per (flag, variant): only "new-checkout" has an effect, and both
#: flags name their variants "off" and "on".
RATES = {("new-checkout", "off"): 0.10, ("new-checkout", "on"): 0.15,
         ("dark-mode", "off"): 0.125, ("dark-mode", "on"): 0.125}


def two_experiments(Aggregator: Any, seed: int) -> tuple[Any, dict[tuple[str, str], Any]]:
    """Requests of two concurrent experiments, each request under one flag; returns the
    snapshot and, per (flag, variant), the conversions drawn."""
    rng = np.random.default_rng(seed)
    aggregator = Aggregator(Config(**EVERY_KEY, dimensions=FLAGGED,
                                   kpis=("conversion", "order_value")))
    drawn = {}
    for (flag, variant), rate in RATES.items():
        converted = rng.random(4000) < rate
        latency = rng.lognormal(-1.2, 0.5, converted.size)
        for hit, seconds in zip(converted.tolist(), latency.tolist(), strict=True):
            aggregator.record(("checkout", flag, variant), seconds,
                              {"conversion": float(hit), "order_value": 40.0} if hit
                              else {"conversion": 0.0})
        drawn[flag, variant] = converted
    return aggregator.snapshot(), drawn


def test_concurrent_twins_are_compared_within_their_own_flag(Aggregator: Any) -> None:
    """Two flags share the variant names "off"/"on"; only one has a planted lift. Within
    each flag the difference equals the drawn proportions exactly; pooled, the lift is
    diluted by the other experiment, which is why ``flag=`` exists."""
    snapshot, drawn = two_experiments(Aggregator, seed=5)
    for flag in ("new-checkout", "dark-mode"):
        result = compare(snapshot, "off", "on", flag=flag)
        expected = drawn[flag, "on"].mean() - drawn[flag, "off"].mean()
        assert result.conversion.difference == pytest.approx(expected, rel=1e-12)
        assert result.requests == (4000, 4000)
    assert compare(snapshot, "off", "on", flag="new-checkout").conversion.p_value < 0.01
    pooled = compare(snapshot, "off", "on")
    on = np.concatenate([drawn["new-checkout", "on"], drawn["dark-mode", "on"]])
    off = np.concatenate([drawn["new-checkout", "off"], drawn["dark-mode", "off"]])
    assert pooled.conversion.difference == pytest.approx(on.mean() - off.mean(), rel=1e-12)
    assert pooled.requests == (8000, 8000)


def test_a_flag_needs_the_flag_key_dimension(Aggregator: Any) -> None:
    snapshot, _ = run(Aggregator, Scenario(), 200, seed=1, dimensions=DIMENSIONS)
    with pytest.raises(ValueError, match=r"feature_flag\.key"):
        compare(snapshot, "A", "B", flag="new-checkout")


def test_the_flag_key_comes_from_real_spans(Aggregator: Any) -> None:
    """The simulator's spans carry ``feature_flag.key`` = new-checkout: within that flag
    the comparison is the whole one, and an unknown flag has no requests."""
    snapshot, _ = run(Aggregator, Scenario(variants={"A": 0.0, "B": 0.3}), 3000, seed=2,
                      dimensions=FLAGGED)
    within = compare(snapshot, "A", "B", flag="new-checkout")
    assert within == compare(snapshot, "A", "B")
    assert sum(within.requests) == snapshot.total().count > 0
    assert compare(snapshot, "A", "B", flag="dark-mode").requests == (0, 0)


def test_exported_ab_series_are_per_flag(Aggregator: Any) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from bizops_otel.export.exposition import render

    snapshot, _ = two_experiments(Aggregator, seed=6)
    samples = [s for family in text_string_to_metric_families(render(snapshot).decode())
               if family.name == "bizops_ab_p_value" for s in family.samples]
    conversion = {s.labels["feature_flag_key"]: s.value for s in samples
                  if s.labels["bizops_ab_test"] == "conversion"}
    assert set(conversion) == {"new-checkout", "dark-mode"}
    for flag, p_value in conversion.items():
        assert p_value == pytest.approx(
            compare(snapshot, "off", "on", flag=flag).conversion.p_value, rel=1e-12)
    assert all(s.labels["feature_flag_result_variant"] == "on"
               and s.labels["bizops_ab_control"] == "off" for s in samples)
