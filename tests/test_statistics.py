"""Statistics from the aggregator against numpy and scipy on generated data."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from bizops_otel import Config
from bizops_otel.aggregate._layout import GROWTH, bucket_edges, bucket_of
from tests.datasets import DISTRIBUTIONS, Traffic, traffic
from tests.keys import EVERY_KEY

KEY = ("checkout", "spring_sale")


def feed(agg: Any, data: Traffic, key: tuple[str, ...] = KEY, start: int = 0,
         stop: int | None = None) -> None:
    stop = len(data.latency) if stop is None else stop
    for i in range(start, stop):
        agg.record(key, float(data.latency[i]), {
            "order_value": float(data.order_value[i]),
            "conversion": float(data.conversion[i]),
            "items": float(data.items[i]),
        })


def close(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pearson_and_slope_match_numpy(Aggregator: Any, seed: int) -> None:
    data = traffic(seed, n=5000)
    agg = Aggregator(Config(**EVERY_KEY))
    feed(agg, data)
    stats = agg.snapshot()[KEY]
    for kpi, values in (("order_value", data.order_value), ("conversion", data.conversion),
                        ("items", data.items)):
        expected = np.corrcoef(data.latency, values)[0, 1]
        result = stats.pearson(kpi)
        assert close(result.r, expected, 1e-9), (kpi, result.r, expected)
        assert result.n == 5000
        expected_slope = np.polyfit(data.latency, values, 1)[0]
        assert close(stats.slope(kpi), expected_slope, 1e-9)
        assert close(stats.mean(kpi), values.mean(), 1e-12)
    # The planted effect is recovered: order value falls with latency.
    assert stats.pearson("order_value").r < -0.3
    assert stats.slope("order_value") == pytest.approx(-40.0, rel=0.1)


def test_pearson_interval_is_fisher_z(Aggregator: Any) -> None:
    data = traffic(4, n=2000)
    agg = Aggregator(Config(**EVERY_KEY))
    feed(agg, data)
    r, low, high, n = agg.snapshot()[KEY].pearson("order_value", confidence=0.9)
    z = sps.norm.ppf(0.95)
    assert low == pytest.approx(math.tanh(math.atanh(r) - z / math.sqrt(n - 3)), rel=1e-12)
    assert high == pytest.approx(math.tanh(math.atanh(r) + z / math.sqrt(n - 3)), rel=1e-12)
    assert low < r < high


def test_pearson_interval_covers_true_correlation(Aggregator: Any) -> None:
    """Over 40 independent samples the 95% interval covers the population r about 38 times."""
    rho = -0.4
    covered = 0
    for seed in range(40):
        rng = np.random.default_rng(1000 + seed)
        x = rng.normal(size=300)
        y = rho * x + math.sqrt(1 - rho**2) * rng.normal(size=300)
        agg = Aggregator(Config(**EVERY_KEY, kpis=("order_value",), outcome=None))
        # Latency and value are affine in x and y, so the population r is exactly rho.
        agg.record_many(("a", "b"), 1.0 + 0.1 * x, {"order_value": 100.0 + 10.0 * y})
        result = agg.snapshot()[("a", "b")].pearson("order_value")
        assert result.r == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-9)
        covered += result.low <= rho <= result.high
    assert 34 <= covered <= 40


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_spearman_of_conversion_matches_scipy(Aggregator: Any, seed: int) -> None:
    data = traffic(seed, n=20_000, conversion_slope=-2.0)
    agg = Aggregator(Config(**EVERY_KEY))
    agg.record_many(KEY, data.latency, {"conversion": data.conversion})
    rho = agg.snapshot()[KEY].spearman("conversion")
    expected = sps.spearmanr(data.latency, data.conversion).statistic
    assert abs(rho - expected) <= 0.02, (rho, expected)
    assert rho < -0.1  # the planted effect: slower requests convert less


def test_spearman_refuses_continuous_kpis(Aggregator: Any) -> None:
    agg = Aggregator(Config(**EVERY_KEY))
    agg.record(KEY, 0.2, {"order_value": 10.0, "conversion": 1})
    with pytest.raises(ValueError, match="outcome KPI"):
        agg.snapshot()[KEY].spearman("order_value")


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_quantiles_within_bucket_width(Aggregator: Any, name: str) -> None:
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    latency = DISTRIBUTIONS[name](rng, 20_000)
    latency = latency[(latency >= 0.001) & (latency < 60.0)]
    agg = Aggregator(Config(**EVERY_KEY))
    agg.record_many(KEY, latency)
    stats = agg.snapshot()[KEY]
    for q in (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999):
        expected = float(np.quantile(latency, q))
        estimate = stats.quantile(q)
        assert abs(estimate - expected) <= (GROWTH - 1.0) * expected, (q, estimate, expected)


def test_buckets_are_at_most_ten_percent_wide() -> None:
    edges = bucket_edges()
    inner = edges[1:-1]
    assert inner[0] == pytest.approx(0.001)
    assert inner[-1] >= 60.0
    assert np.all(inner[1:] / inner[:-1] <= 1.1 + 1e-12)
    rng = np.random.default_rng(8)
    for t in rng.lognormal(0, 2.5, 5000):
        b = bucket_of(float(t))
        assert edges[b] * (1 - 1e-12) <= t < edges[b + 1] * (1 + 1e-12)


def test_out_of_range_latencies_clamp_into_edge_buckets(Aggregator: Any) -> None:
    agg = Aggregator(Config(**EVERY_KEY))
    for t in (0.0, 0.0004, 0.5, 75.0, 3600.0, 1e6):
        agg.record(KEY, t)
    stats = agg.snapshot()[KEY]
    assert stats.count == 6
    assert stats.below_range == 2
    assert stats.above_range == 3
    assert stats.quantile(0.0) == pytest.approx(0.001)


def test_conversion_curve_counts_are_exact(Aggregator: Any) -> None:
    data = traffic(9, n=3000)
    agg = Aggregator(Config(**EVERY_KEY))
    feed(agg, data)
    curve = agg.snapshot()[KEY].conversion_by_latency()
    buckets = np.array([bucket_of(float(t)) for t in data.latency])
    expected_trials = np.bincount(buckets, minlength=len(curve.trials))
    expected_conversions = np.bincount(buckets, weights=data.conversion,
                                       minlength=len(curve.trials))
    np.testing.assert_array_equal(curve.trials, expected_trials)
    np.testing.assert_array_equal(curve.conversions, expected_conversions.astype(np.uint64))
    assert agg.snapshot()[KEY].conversion_rate() == pytest.approx(data.conversion.mean(),
                                                                  rel=1e-15)
    assert len(curve.edges) == len(curve.trials) + 1


def test_merge_equals_one_aggregator_fed_the_union(Aggregator: Any) -> None:
    data = traffic(10, n=6000)
    whole, left, right = (Aggregator(Config(**EVERY_KEY)) for _ in range(3))
    feed(whole, data)
    feed(left, data, stop=2500)
    feed(right, data, start=2500)
    feed(right, traffic(11, n=500), key=("cart", ""))
    feed(whole, traffic(11, n=500), key=("cart", ""))
    merged = left.snapshot().merge(right.snapshot())
    expected = whole.snapshot()
    assert set(merged) == set(expected)
    for key in expected:
        a, b = merged[key], expected[key]
        assert a.count == b.count and a.errors == b.errors
        np.testing.assert_array_equal(a.histogram, b.histogram)
        for kpi in ("order_value", "conversion", "items"):
            assert a.pairs(kpi) == b.pairs(kpi)
            assert close(a.pearson(kpi).r, b.pearson(kpi).r, 1e-9)
            assert close(a.slope(kpi), b.slope(kpi), 1e-9)
            assert close(a.mean(kpi), b.mean(kpi), 1e-9)
            for x, y in zip(a.raw_sums(kpi), b.raw_sums(kpi), strict=True):
                assert close(x, y, 1e-9)
    total_a, total_b = merged.total(), expected.total()
    assert total_a.count == total_b.count == 6500
    assert close(total_a.pearson("order_value").r, total_b.pearson("order_value").r, 1e-9)
    assert merged.recent().total().count == 6500  # windows merge too


def test_total_equals_numpy_over_all_keys(Aggregator: Any) -> None:
    data = traffic(12, n=4000)
    agg = Aggregator(Config(**EVERY_KEY))
    pages = np.array(["home", "product", "cart", "checkout"])[np.arange(4000) % 4]
    for i, page in enumerate(pages):
        agg.record((page, ""), float(data.latency[i]), {"order_value": float(data.order_value[i])})
    total = agg.snapshot().total()
    assert total.count == 4000
    assert close(total.pearson("order_value").r,
                 float(np.corrcoef(data.latency, data.order_value)[0, 1]), 1e-9)
    assert close(total.latency_sum, float(data.latency.sum()), 1e-12)
