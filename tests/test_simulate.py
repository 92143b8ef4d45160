"""The simulator's planted effects are recovered through real spans and the aggregator."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from bizops_otel.demo.simulate import Campaign, Scenario, Simulator
from tests.spans import run


def test_sessions_walk_the_funnel_and_carry_campaigns(Aggregator: Any) -> None:
    snapshot, sessions = run(Aggregator, Scenario(), 3000, seed=1)
    pages = {key[0]: snapshot.get(key) for key in snapshot}
    assert set(pages) == {"landing", "product", "cart", "checkout", "order"}
    landing = sum(s.count for k, s in snapshot.items() if k[0] == "landing")
    checkout = sum(s.count for k, s in snapshot.items() if k[0] == "checkout")
    assert landing == 3000 and 0 < checkout < landing
    campaigns = {k[1] for k in snapshot if k[0] == "landing"}
    assert campaigns == {"", "spring_sale", "newsletter"}
    converted = sum(s.converted for s in sessions)
    outcome = sum(snapshot[k].histogram[2].sum() for k in snapshot if k[0] == "order")
    assert outcome == converted


def test_broken_campaign_launch_shows_in_errors_and_latency(Aggregator: Any) -> None:
    scenario = Scenario(campaigns=(Campaign("spring_sale", 0.2),
                                   Campaign("broken", 0.2, launch_s=10.0, latency_factor=10.0,
                                            error_rate=0.3)))
    snapshot, _ = run(Aggregator, scenario, 4000, seed=3)
    broken = snapshot[("landing", "broken")]
    healthy = snapshot[("landing", "spring_sale")]
    assert broken.errors / broken.count == pytest.approx(0.3, abs=0.06)
    assert healthy.errors == 0
    assert broken.quantile(0.5) > 6 * healthy.quantile(0.5)


def test_variant_lift_is_planted() -> None:
    scenario = Scenario(variants={"A": 0.0, "B": 0.3})
    sessions = list(Simulator(scenario, 4).sessions(20_000))
    rate = {v: np.mean([s.converted for s in sessions if s.variant == v and s.reached_checkout])
            for v in ("A", "B")}
    assert rate["B"] / rate["A"] == pytest.approx(1.3, rel=0.15)
    assert math.isclose(sum(s.variant == "A" for s in sessions) / 20_000, 0.5, abs_tol=0.02)
