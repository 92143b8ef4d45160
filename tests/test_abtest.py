"""A/B comparison of variants, from real spans of the simulator, on both twins."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from bizops_otel import Config, attributes
from bizops_otel.analytics.abtest import compare
from bizops_otel.demo.simulate import Scenario, Simulator
from tests import traffic
from tests.keys import EVERY_KEY
from tests.spans import run

DIMENSIONS = (attributes.PAGE_GROUP, attributes.FEATURE_FLAG_VARIANT)
PAGES = ("landing", "product", "cart", "checkout", "order")


def test_arms_match_scipy_on_the_simulated_sessions(Aggregator: Any) -> None:
    snapshot, sessions = run(Aggregator, Scenario(variants={"A": 0.0, "B": 0.3}), 8000,
                             seed=11, dimensions=DIMENSIONS)
    result = compare(snapshot, "A", "B")
    checkout = {v: [s for s in sessions if s.variant == v and s.reached_checkout]
                for v in ("A", "B")}
    orders = {v: np.array([s.order_value for s in checkout[v] if s.converted]) for v in checkout}
    # Orders are placed on one page group, so the combination is Welch's test itself.
    welch_orders = sps.ttest_ind(orders["B"], orders["A"], equal_var=False)
    assert result.order_value.statistic == pytest.approx(welch_orders.statistic, rel=1e-6)
    assert result.order_value.p_value == pytest.approx(welch_orders.pvalue, rel=1e-5)
    # Latency within each page group: the mean difference is exact, the statistic within
    # 2% of scipy's Welch on every request of the group (variances come from histograms).
    assert [s.page_group for s in result.strata] == sorted(PAGES)
    for stratum in result.strata:
        latency = {v: np.array([r.latency_s for s in sessions if s.variant == v
                                for r in s.requests if r.page.group == stratum.page_group])
                   for v in ("A", "B")}
        assert stratum.requests == (latency["A"].size, latency["B"].size)
        assert stratum.latency.difference == pytest.approx(
            latency["B"].mean() - latency["A"].mean(), abs=2e-9)  # spans keep ns
        welch_latency = sps.ttest_ind(latency["B"], latency["A"], equal_var=False)
        assert stratum.latency.statistic == pytest.approx(welch_latency.statistic, rel=0.02)
    converted = {v: sum(s.converted for s in checkout[v]) for v in checkout}
    assert result.conversion.difference == pytest.approx(
        converted["B"] / len(checkout["B"]) - converted["A"] / len(checkout["A"]), rel=1e-12)
    assert sum(result.requests) == snapshot.total().count


@pytest.mark.pure_pass_covers
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


# Latency within page groups ---------------------------------------------------------------
#: Variant B draws visitors deeper into the shop (15% likelier to go on after each page) and
#: converts 15% better; no page is any slower under it.
DEEPER = Scenario(variants={"A": 0.0, "B": 0.15}, variant_depth={"B": 0.15})


def pooled_welch(by_key: dict[traffic.Key, traffic.Batch]) -> Any:
    """scipy's Welch test on every request of each arm, page groups pooled."""
    return sps.ttest_ind(traffic.latencies(by_key, "B"), traffic.latencies(by_key, "A"),
                         equal_var=False)


def test_a_variant_that_draws_visitors_to_slow_pages_shows_no_latency_change(
        Aggregator: Any) -> None:
    """The confounder: B sends more of its sessions on to checkout, the slowest page, so
    its pooled latency is higher with nothing slower. Pooled, Welch's test rejects in
    most seeds (35 of 40 measured); within page groups, at the nominal 5% rate (1)."""
    seeds = 40
    pooled = stratified = 0
    for seed in range(seeds):
        aggregator = Aggregator(traffic.config())
        by_key = traffic.record(aggregator, Simulator(DEEPER, seed).sessions(4000))
        result = compare(aggregator.snapshot(), "A", "B", flag=traffic.FLAG)
        pooled += bool(pooled_welch(by_key).pvalue < 0.05)
        stratified += bool(result.latency.p_value < 0.05)
        checkout = dict(zip(("A", "B"), next(s.requests for s in result.strata
                                             if s.page_group == "checkout"), strict=True))
        assert checkout["B"] > 1.3 * checkout["A"]  # the confounder is there
    assert pooled >= 30
    # Nominal 5%: 2 expected in 40; 6 or more has probability 1.4%.
    assert stratified <= 5


def test_a_planted_latency_effect_is_recovered_with_its_size_and_interval(
        Aggregator: Any) -> None:
    """B adds 20 ms to every request and draws visitors deeper: within page groups the
    estimate centres on 20 ms and its 95% interval covers it as often as it should; the
    pooled difference is biased upwards by the deeper sessions."""
    planted = 0.020
    scenario = Scenario(variants={"A": 0.0, "B": 0.15}, variant_depth={"B": 0.15},
                        variant_delay_s={"B": planted})
    seeds, covered, estimates, pooled = 20, 0, [], []
    for seed in range(seeds):
        aggregator = Aggregator(traffic.config())
        by_key = traffic.record(aggregator, Simulator(scenario, 50 + seed).sessions(4000))
        latency = compare(aggregator.snapshot(), "A", "B").latency
        error = latency.difference / latency.statistic
        half = sps.t.ppf(0.975, latency.degrees_of_freedom) * error
        covered += bool(latency.difference - half <= planted <= latency.difference + half)
        assert latency.p_value < 1e-3
        assert 0.002 < half < 0.010  # ±2 to 10 ms from about 15,000 requests per arm
        estimates.append(latency.difference)
        pooled.append(traffic.latencies(by_key, "B").mean()
                      - traffic.latencies(by_key, "A").mean())
    # 95% intervals: 19 covering expected of 20; 16 or fewer has probability 1.6%.
    assert covered >= 17
    assert np.mean(estimates) == pytest.approx(planted, abs=0.002)
    assert np.mean(pooled) > planted + 0.010


def test_the_combined_latency_is_the_inverse_variance_hand_computation(
        Aggregator: Any) -> None:
    """Every step by hand with numpy and scipy from the recorded latencies: bucket them,
    take each group's variance from bucket midpoints (with Sheppard's correction) around
    its exact mean, Welch per group by scipy, combine by inverse-variance weights, and the
    Welch–Satterthwaite degrees of freedom."""
    aggregator = Aggregator(traffic.config())
    by_key = traffic.record(aggregator, Simulator(DEEPER, 7).sessions(5000))
    result = compare(aggregator.snapshot(), "A", "B", flag=traffic.FLAG)
    edges = np.concatenate(([0.0], 1e-3 * 1.1 ** np.arange(117), [np.inf]))
    middle = np.where(np.isfinite(edges[1:]), (edges[:-1] + edges[1:]) / 2, edges[:-1])
    width = np.where(np.isfinite(edges[1:]), edges[1:] - edges[:-1], 0.0)
    moments: dict[tuple[str, str], tuple[float, float, int]] = {}
    for page in PAGES:
        for variant in ("A", "B"):
            x = traffic.latencies(by_key, variant, page)
            bucket = np.searchsorted(edges, x, side="right") - 1
            variance = (((middle[bucket] - x.mean()) ** 2).sum()
                        + (width[bucket] ** 2).sum() / 12) / (x.size - 1)
            moments[page, variant] = (x.mean(), variance, x.size)
            # The histogram's standard deviation is within 1% of the raw values' one.
            assert np.sqrt(variance) == pytest.approx(x.std(ddof=1), rel=0.01)
    d, v, e_a, e_b, n_a, n_b = (np.array(c) for c in zip(*(
        (moments[p, "B"][0] - moments[p, "A"][0],
         moments[p, "A"][1] / moments[p, "A"][2] + moments[p, "B"][1] / moments[p, "B"][2],
         moments[p, "A"][1] / moments[p, "A"][2], moments[p, "B"][1] / moments[p, "B"][2],
         moments[p, "A"][2], moments[p, "B"][2]) for p in sorted(PAGES)), strict=True))
    for i, stratum in enumerate(result.strata):
        (mean_a, var_a, count_a), (mean_b, var_b, count_b) = (
            moments[stratum.page_group, "A"], moments[stratum.page_group, "B"])
        welch = sps.ttest_ind_from_stats(mean_b, np.sqrt(var_b), count_b, mean_a,
                                         np.sqrt(var_a), count_a, equal_var=False)
        assert stratum.latency.difference == pytest.approx(d[i], rel=1e-9)
        assert stratum.latency.statistic == pytest.approx(welch.statistic, rel=1e-9)
        assert stratum.latency.p_value == pytest.approx(welch.pvalue, rel=1e-6)
    w = 1 / v
    estimate = (w * d).sum() / w.sum()
    variance = 1 / w.sum()
    df = variance**2 / ((w / w.sum()) ** 4 * (e_a**2 / (n_a - 1) + e_b**2 / (n_b - 1))).sum()
    t = estimate / np.sqrt(variance)
    assert result.latency.difference == pytest.approx(estimate, rel=1e-9)
    assert result.latency.statistic == pytest.approx(t, rel=1e-9)
    assert result.latency.degrees_of_freedom == pytest.approx(df, rel=1e-9)
    assert result.latency.p_value == pytest.approx(2 * sps.t.sf(abs(t), df), rel=1e-6)


def test_one_page_group_is_welchs_test_exactly(Aggregator: Any) -> None:
    """Without page groups among the dimensions, each arm is one stratum: the combination
    reduces to Welch's test on the arm's requests."""
    aggregator = Aggregator(Config(dimensions=(attributes.FEATURE_FLAG_VARIANT,),
                                   kpis=("conversion", "order_value"),
                                   **traffic.FIRST_SIGHTING))
    rng = np.random.default_rng(3)
    x = {"A": rng.lognormal(-1.0, 0.5, 3000), "B": rng.lognormal(-0.97, 0.6, 2500)}
    for variant, values in x.items():
        aggregator.record_many((variant,), values,
                               {"order_value": values * 100, "conversion": values > 0.4})
    result = compare(aggregator.snapshot(), "A", "B")
    assert [s.page_group for s in result.strata] == [""]
    orders = sps.ttest_ind(x["B"] * 100, x["A"] * 100, equal_var=False)
    assert result.order_value.statistic == pytest.approx(orders.statistic, rel=1e-9)
    assert result.order_value.degrees_of_freedom == pytest.approx(orders.df, rel=1e-9)
    assert result.latency.difference == pytest.approx(x["B"].mean() - x["A"].mean(), rel=1e-9)
    raw = sps.ttest_ind(x["B"], x["A"], equal_var=False)
    assert result.latency.statistic == pytest.approx(raw.statistic, rel=0.02)
