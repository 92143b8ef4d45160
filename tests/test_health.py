"""Campaign health on simulated traffic: broken launches turn failing, healthy ones stay ok."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from opentelemetry.sdk.trace import TracerProvider

from bizops_otel import BizOpsSpanProcessor, Config, attributes
from bizops_otel.analytics.health import (
    FAILING,
    OK,
    WARMING_UP,
    CampaignHealth,
    CampaignMonitor,
    assess,
)
from bizops_otel.demo.simulate import Campaign, Scenario, Simulator, emit
from tests.conftest import load_hooks
from tests.keys import EVERY_KEY
from tests.spans import PAGE_RULES

EPOCH = 1_700_000_000 * 10**9
LAUNCH_S = 300.0


def replay_and_watch(aggregator_cls: Any, broken: Campaign, seconds: float = 600.0,
                     seed: int = 5,
                     ) -> tuple[dict[float, dict[str, CampaignHealth]], list[CampaignHealth]]:
    scenario = Scenario(campaigns=(Campaign("spring_sale", 0.15), broken))
    config = Config(**EVERY_KEY, page_groups=PAGE_RULES)
    aggregator = aggregator_cls(config)
    provider = TracerProvider()
    provider.add_span_processor(BizOpsSpanProcessor(aggregator, config,
                                                    hooks=load_hooks(aggregator_cls)))
    tracer = provider.get_tracer("simulator")
    sessions = list(Simulator(scenario, seed=seed).sessions(int(seconds * 10), rate_per_s=10.0))
    monitor = CampaignMonitor(lambda: None)
    alerts: list[CampaignHealth] = []
    monitor.on_campaign_alert(alerts.append)
    timeline: dict[float, dict[str, CampaignHealth]] = {}
    # Requests reach the aggregator in the order they end, as in production.
    requests = sorted(((r.start_s + r.latency_s, i, replace(s, requests=[r]))
                       for i, s in enumerate(sessions) for r in s.requests),
                      key=lambda item: item[:2])
    emitted = 0
    for check in range(10, int(seconds) + 1, 10):
        due = [single for end, _, single in requests[emitted:] if end <= check]
        emit(tracer, due, EPOCH)
        emitted += len(due)
        health = monitor.check(aggregator.snapshot(now_ns=EPOCH + check * 10**9))
        timeline[float(check)] = {h.campaign: h for h in health}
    return timeline, alerts


@pytest.mark.parametrize("broken", [
    Campaign("broken", 0.15, launch_s=LAUNCH_S, error_rate=0.3),
    Campaign("broken", 0.15, launch_s=LAUNCH_S, latency_factor=10.0),
], ids=["errors", "latency"])
def test_broken_launch_fails_within_two_minutes_and_healthy_stays_ok(
        Aggregator: Any, broken: Campaign) -> None:
    for seed in range(10):
        timeline, alerts = replay_and_watch(Aggregator, broken, seconds=480.0, seed=seed)
        failing_at = min(t for t, h in timeline.items()
                         if "broken" in h and h["broken"].state == FAILING)
        assert failing_at <= LAUNCH_S + 120
        first_seen = timeline[failing_at]["broken"].first_seen_ns
        assert EPOCH + LAUNCH_S * 10**9 <= first_seen <= EPOCH + (LAUNCH_S + 10) * 10**9
        assert all(h["spring_sale"].state in (OK, WARMING_UP) for h in timeline.values()
                   if "spring_sale" in h), seed
        # Hysteresis: one alert when it fails, no flapping afterwards.
        assert [a.campaign for a in alerts if a.state == FAILING] == ["broken"], seed
        assert all(h["broken"].state == FAILING for t, h in timeline.items()
                   if t >= failing_at), seed
        assert alerts[-1].reason  # says why


def test_callbacks_run_off_the_request_path_and_survive_errors(Aggregator: Any) -> None:
    seen: list[str] = []
    monitor = CampaignMonitor(lambda: None)

    @monitor.on_campaign_alert
    def explode(health: CampaignHealth) -> None:
        raise RuntimeError("flag service down")

    monitor.on_campaign_alert(lambda health: seen.append(health.campaign))
    agg = Aggregator(Config(**EVERY_KEY))
    for i in range(40):
        agg.record(("landing", "bad"), 0.2, {"conversion": 0.0}, error=i % 2 == 0)
        agg.record(("landing", ""), 0.2, {"conversion": 1.0})
    health = monitor.check(agg.snapshot())
    assert [h.state for h in health] == [FAILING]
    assert seen == ["bad"]
    assert monitor.check(agg.snapshot()) and seen == ["bad"]  # no repeat without a change
    assert attributes.CAMPAIGN_ID in agg.config.dimensions


def test_install_runs_a_monitor_whose_alerts_reach_the_application() -> None:
    """install() judges campaigns in its own thread; the handle's callback hears about a
    failing one, and shutdown stops the thread."""
    import threading
    import time

    from opentelemetry.trace import SpanKind, Status, StatusCode

    import bizops_otel

    provider = TracerProvider()
    handle = bizops_otel.install(provider, config=Config(**EVERY_KEY, campaign_interval=0.05))
    heard: list[CampaignHealth] = []
    handle.on_campaign_alert(heard.append)
    tracer = provider.get_tracer("test")
    for i in range(60):
        with tracer.start_as_current_span("GET /", kind=SpanKind.SERVER, attributes={
                attributes.PAGE_GROUP: "landing", attributes.CAMPAIGN_ID: "bad"}) as span:
            if i % 2:
                span.set_status(Status(StatusCode.ERROR))
        with tracer.start_as_current_span("GET /", kind=SpanKind.SERVER, attributes={
                attributes.PAGE_GROUP: "landing"}):
            pass
    deadline = time.monotonic() + 10
    while not heard and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [(h.campaign, h.state) for h in heard] == [("bad", FAILING)]
    assert [h.state for h in handle.campaign_health()] == [FAILING]
    handle.shutdown()
    assert not any(t.name == "bizops-otel-campaigns" for t in threading.enumerate())


def test_alerts_need_the_campaign_dimension() -> None:
    import bizops_otel

    handle = bizops_otel.install(TracerProvider(),
                                 config=Config(**EVERY_KEY, dimensions=(attributes.PAGE_GROUP,)))
    with pytest.raises(ValueError, match=r"bizops\.campaign\.id"):
        handle.on_campaign_alert(print)
    assert handle.campaign_health() == []
    handle.shutdown()


def test_one_pass_totals_equal_the_per_campaign_scans(Aggregator: Any) -> None:
    """assess groups keys once (O(keys) a pass, so thousands of bot campaigns cannot buy
    the CPU); its figures equal scanning the snapshot campaign by campaign."""
    from bizops_otel.analytics.health import figures

    rng = np.random.default_rng(8)
    agg = Aggregator(Config(**EVERY_KEY, max_keys=400))
    pages = ("landing", "product", "cart")
    for i in range(4000):
        campaign = f"c{i % 37}" if i % 3 else ""
        page = pages[(i // 3) % len(pages)] if campaign == "" else pages[i % 2]
        agg.record((page, campaign), float(rng.lognormal(-1.0, 0.6)),
                   {"conversion": float(rng.random() < 0.3)}, error=bool(i % 41 == 0))
    snapshot = agg.snapshot()
    health = {h.campaign: h for h in assess(snapshot, {})}
    assert len(health) == 37
    for name, judged in health.items():
        own = figures(snapshot.total(where={"bizops.campaign.id": name}))
        assert judged.own_baseline.requests == own.requests
        assert judged.own_baseline.p95_s == pytest.approx(own.p95_s, rel=1e-12)
        assert judged.own_baseline.error_rate == pytest.approx(own.error_rate, rel=1e-12,
                                                               nan_ok=True)
        landed = {key[0] for key in snapshot if key[1] == name}
        site = figures(snapshot.total(
            keys=lambda key, landed=landed: key[1] == "" and key[0] in landed))
        assert judged.site_baseline.requests == site.requests
        assert judged.site_baseline.conversion_rate == pytest.approx(site.conversion_rate,
                                                                     rel=1e-12)
    rows = snapshot.rows_by(lambda key: key[0])
    for page, chosen in rows.items():
        direct = snapshot.total(keys=lambda key, page=page: key[0] == page)
        merged = snapshot.total_of(chosen)
        assert merged.count == direct.count
        assert merged.pearson("conversion").r == pytest.approx(
            direct.pearson("conversion").r, rel=1e-9, nan_ok=True)
        np.testing.assert_array_equal(merged.histogram, direct.histogram)
    assert snapshot.total_of([]).count == 0
