"""Planted effects, recovered through real spans, the span processor and the session table.

The simulator plants a known logistic effect of latency on conversion on chosen page
groups. Ten seeds per check, on both twins. The simulator is seeded, so each check is
deterministic; the thresholds are set from the sampling error, not tuned to the seeds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from bizops_otel.analytics import session_stats, whatif_projection
from bizops_otel.demo.simulate import Page, Scenario, logistic_slope
from tests.spans import replay

SEEDS = range(10)
#: Only the product page is sensitive: landing and cart are placebos.
PAGES = (Page("landing", "/", 0.25), Page("product", "/product/<id>", 0.45, sensitive=True),
         Page("cart", "/cart", 0.30), Page("checkout", "/checkout", 0.70))


@pytest.mark.pure_pass_covers
def test_planted_page_ranks_first_by_conversion_impact_and_placebos_score_near_zero(
        Aggregator: Any) -> None:
    scenario = Scenario(pages=PAGES, phone_share=1.0)
    for seed in SEEDS:
        snapshot, _ = replay(Aggregator, scenario, 8000, seed)
        sessions = session_stats(snapshot)
        ranking = sessions.impact_ranking()
        assert ranking[0].name == "product", [(g.name, g.conversion_impact) for g in ranking]
        assert ranking[0].conversion_impact < -0.012  # about -0.022 expected, SE 0.004
        # Placebos: |ρ| has a standard error of about 1/√n ≈ 0.011 here, times a share
        # of about 0.3, so 0.015 is more than three standard errors.
        for placebo in ("landing", "cart"):
            assert abs(sessions[placebo].conversion_impact) < 0.015, (seed, placebo)
        # Nothing planted ties latency to how far a visitor goes: activity scores stay
        # near zero; every checkout session has all five pages, so there it is undefined.
        for page in ("landing", "product"):
            assert abs(sessions[page].activity_impact) < 0.015, (seed, page)
        assert math.isnan(sessions["checkout"].activity_impact)


@pytest.mark.pure_pass_covers
def test_logistic_slope_interval_covers_the_planted_slope(Aggregator: Any) -> None:
    """Every session that sees the product page goes on to checkout, and only phones
    visit, so conversion given the product latency is exactly logistic with the planted
    slope. The 95% interval must cover it in at least 9 of 10 seeds; the what-if
    interval must likewise cover the true change of the conversion rate."""
    scenario = Scenario(pages=PAGES, continue_probability=(0.8, 1.0, 1.0, 0.0),
                        phone_share=1.0, campaigns=())
    planted = logistic_slope("phone", scenario.base_conversion)
    intercept = math.log(scenario.base_conversion / (1 - scenario.base_conversion))
    median = PAGES[1].median_s
    slope_covered = whatif_covered = 0
    for seed in SEEDS:
        snapshot, simulated = replay(Aggregator, scenario, 4000, seed)
        product = session_stats(snapshot)["product"]
        fit = product.fit()
        low, high = fit.slope_interval(0.95)
        slope_covered += low <= planted <= high
        x = np.array([s.requests[1].latency_s for s in simulated if len(s.requests) > 1])
        assert product.sessions == x.size

        def rate(shift: float, x: np.ndarray = x) -> float:
            eta = intercept + planted * (np.maximum(x + shift, 0.0) - median)
            return float(np.mean(1.0 / (1.0 + np.exp(-eta))))

        projection = whatif_projection(snapshot, delta_ms=-100, page_group="product")
        truth = rate(-0.1) - rate(0.0)
        assert projection.change > 0
        whatif_covered += projection.low <= truth <= projection.high
    assert slope_covered >= 9
    assert whatif_covered >= 9


def test_revenue_projection_scales_with_sessions_and_order_value(Aggregator: Any) -> None:
    snapshot, simulated = replay(Aggregator, Scenario(pages=PAGES), 3000, seed=7)
    projection = whatif_projection(snapshot, delta_ms=-500)
    overall = session_stats(snapshot).overall
    bought = [s.order_value for s in simulated if s.converted]
    revenue_per_order = sum(bought) / len(bought)  # type: ignore[arg-type]
    assert overall.revenue == pytest.approx(sum(bought), rel=1e-9)  # type: ignore[arg-type]
    assert projection.sessions == 3000
    assert projection.revenue_change == pytest.approx(
        3000 * projection.change * revenue_per_order, rel=1e-9)
    assert projection.revenue_low <= projection.revenue_change <= projection.revenue_high
