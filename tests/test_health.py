"""Campaign health on simulated traffic: broken launches turn failing, healthy ones stay ok."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from opentelemetry.sdk.trace import TracerProvider

from bizops_otel import BizOpsSpanProcessor, Config, attributes
from bizops_otel.aggregate.snapshot import Snapshot
from bizops_otel.analytics.health import (
    DEGRADED,
    FAILING,
    OK,
    WARMING_UP,
    CampaignHealth,
    CampaignMonitor,
    Thresholds,
    _judge,
    assess,
    figures,
    rank,
)
from bizops_otel.attributes import CAMPAIGN_ID, MISSING, PAGE_GROUP
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
@pytest.mark.pure_pass_covers
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


def per_campaign_scan(snapshot: Snapshot, campaign: str, previous: str = OK,
                      ) -> CampaignHealth:
    """The monitor's judgment of one campaign as it was computed before a pass became
    vectorised: a full scan of the snapshot per campaign and per baseline."""
    dimensions = snapshot.config.dimensions
    at, page_at = dimensions.index(CAMPAIGN_ID), dimensions.index(PAGE_GROUP)
    recent_stats = snapshot.recent().total(where={CAMPAIGN_ID: campaign})
    recent = figures(recent_stats)
    trials = int(recent_stats.histogram[1].sum() + recent_stats.histogram[2].sum())
    landed = {key[page_at] for key in snapshot if key[at] == campaign}
    site = figures(snapshot.total(
        keys=lambda key: key[at] == MISSING and key[page_at] in landed))
    state, reason = _judge(recent, site, trials, Thresholds(), previous)
    own = figures(snapshot.total(where={CAMPAIGN_ID: campaign}))
    return CampaignHealth(campaign, state, reason, 0, recent, own, site)


def generated_traffic(Aggregator: Any, seed: int, extra_dimension: bool) -> Snapshot:
    """Campaigns over pages and (optionally) variants, with and without organic traffic
    on their pages, recent and old, errors, outcomes and latencies from under 1 ms to over
    the top edge; more keys than ``max_keys``, so the overflow key holds data too."""
    rng = np.random.default_rng(seed)
    dimensions = (PAGE_GROUP, CAMPAIGN_ID, *((attributes.FEATURE_FLAG_VARIANT,)
                                             if extra_dimension else ()))
    agg = Aggregator(Config(**EVERY_KEY, dimensions=dimensions, max_keys=150))
    pages = ["landing", "product", "cart", "checkout", "promo"]
    campaigns = [f"c{i}" for i in range(60)]
    now = EPOCH + 10**12
    extra = ("A",) if extra_dimension else ()
    for i in range(25):
        agg.record(("promo", "promo-only", *extra), 0.2 + i / 100, end_ns=now - i * 10**9)
        for quiet in ("c41", "c42"):
            agg.record(("landing", quiet, *extra), 0.3, error=i % 2 == 0,
                       end_ns=now - 1000 * 10**9)
    for _ in range(6000):
        campaign = "" if rng.random() < 0.4 else campaigns[int(rng.zipf(1.5)) % 60]
        # Organic traffic never reaches "promo", so campaigns landing only there have no
        # organic baseline.
        page = pages[int(rng.integers(0, 4 if campaign == "" else 5))]
        dims = (page, campaign, *((str(rng.choice(["A", "B"])),) if extra_dimension else ()))
        latency = float(rng.choice([rng.lognormal(-1.5, 1.0), 0.0004, 70.0],
                                   p=[0.96, 0.02, 0.02]))
        outcome = rng.random()
        kpis = {} if outcome < 0.2 else {"conversion": float(outcome < 0.45)}
        # Old campaigns (c40 and up) sent nothing in the recent window.
        old = (campaign >= "c4" and len(campaign) == 3) or rng.random() < 0.3
        end_ns = now - (int(rng.integers(200, 3000)) if old else int(rng.integers(0, 110))
                        ) * 10**9
        agg.record(dims, latency, kpis, error=bool(rng.random() < 0.07), end_ns=end_ns)
    snapshot = agg.snapshot(now_ns=now)
    assert snapshot.overflow is not None and snapshot.overflow.count > 0
    return snapshot


@pytest.mark.parametrize("extra_dimension", [False, True], ids=["page+campaign", "+variant"])
@pytest.mark.parametrize("seed", range(4))
def test_vectorised_pass_equals_a_scan_per_campaign(Aggregator: Any, seed: int,
                                                    extra_dimension: bool) -> None:
    """Every figure and verdict of a vectorised pass equals the per-campaign scans it
    replaced, on generated traffic: campaigns with several keys, pages without organic
    traffic, overflow, clamped latencies; campaigns without recent traffic retire."""
    snapshot = generated_traffic(Aggregator, seed, extra_dimension)
    at = snapshot.config.dimensions.index(CAMPAIGN_ID)
    in_snapshot = {key[at] for key in snapshot} - {MISSING}
    recent = {key[at] for key in snapshot.recent()} - {MISSING}
    previous = {"c41": FAILING, "c42": DEGRADED, "c3": FAILING, "c5": OK}
    first_seen = {"gone": 1}
    judged = assess(snapshot, first_seen, previous=previous)
    # Recent traffic, or degraded or failing before: c41 and c42 are quiet but stay.
    assert {h.campaign for h in judged} == recent | {"c41", "c42"}
    assert in_snapshot - recent - {"c41", "c42"}, "some campaigns retire"
    assert [h.campaign for h in judged] == sorted(h.campaign for h in judged)
    assert first_seen == dict.fromkeys(in_snapshot, snapshot.taken_ns)
    for health in judged:
        expected = per_campaign_scan(snapshot, health.campaign, previous.get(health.campaign,
                                                                             OK))
        assert (health.state, health.reason) == (expected.state, expected.reason)
        for got, want in ((health.recent, expected.recent),
                          (health.own_baseline, expected.own_baseline),
                          (health.site_baseline, expected.site_baseline)):
            assert got.requests == want.requests
            for name in ("p95_s", "error_rate", "conversion_rate"):
                assert getattr(got, name) == pytest.approx(getattr(want, name), rel=1e-12,
                                                           nan_ok=True), (health, name)
    assert any(h.site_baseline.requests == 0 for h in judged), "a page without organic"
    assert any(h.recent.requests == 0 for h in judged), "a quiet degraded campaign"


def test_rank_puts_traffic_first_then_severity_then_name() -> None:
    recent = {"a": 5, "b": 9, "c": 5, "d": 5, "e": 1}
    previous = {"x": FAILING, "y": DEGRADED, "z": OK, "d": DEGRADED, "c": FAILING,
                "w": WARMING_UP}
    # Quiet campaigns count only when degraded or failing; z (ok) and w have retired.
    assert rank(recent, previous) == ["b", "c", "d", "a", "e", "x", "y"]
    assert rank(recent, previous, limit=3) == ["b", "c", "d"]
    assert rank(recent, previous, limit=100) == rank(recent, previous)
    assert rank({}, {"z": OK}) == []
    assert rank({}, previous) == ["c", "x", "d", "y"]


def test_a_capped_pass_judges_the_busiest_campaigns(Aggregator: Any) -> None:
    """With a cap of k, a pass judges the k campaigns with the most recent requests, a
    failing one among them before an ok one with as many; bot campaigns of a request or
    two each stay below a real campaign of a few requests a minute."""
    agg = Aggregator(Config(max_keys=1000))
    now = EPOCH + 10**12
    for i in range(40):
        agg.record(("landing", ""), 0.1, {"conversion": float(i % 3 == 0)},
                   end_ns=now - i * 10**9)
    for i in range(300):  # a bot's one-off campaigns, seen twice each
        for _ in range(2):
            agg.record(("landing", f"bot{i:03d}"), 0.1, end_ns=now - 10**9)
    for i in range(6):  # a newsletter: one landing every 20 s
        agg.record(("landing", "newsletter"), 0.1, end_ns=now - i * 20 * 10**9)
    for i in range(30):
        agg.record(("landing", "autumn"), 0.1, end_ns=now - i * 10**9)
        agg.record(("landing", "broken"), 0.1, error=i % 2 == 0, end_ns=now - i * 10**9)
    snapshot = agg.snapshot(now_ns=now)
    monitor = CampaignMonitor(lambda: snapshot, limit=3)
    assert [h.campaign for h in monitor.check()] == ["autumn", "broken", "newsletter"]
    assert {h.campaign: h.state for h in monitor.latest}["broken"] == FAILING
    assert monitor.last_pass_seconds is not None and monitor.last_pass_seconds > 0
    # autumn and broken have 30 recent requests each: for one place, the name decides
    # until broken is known to fail.
    assert [h.campaign for h in assess(snapshot, {}, limit=1)] == ["autumn"]
    assert [h.campaign for h in assess(snapshot, {}, previous={"broken": FAILING},
                                       limit=1)] == ["broken"]
    assert len(assess(snapshot, {})) == 303


def test_quiet_campaigns_retire_and_degraded_ones_stay_judged(Aggregator: Any) -> None:
    """A campaign without recent traffic leaves the monitor unless its last verdict was
    degraded or failing; that one stays, its verdict standing, until traffic judges it
    again: a recovery is announced, a repeat of the same failure is not."""
    agg = Aggregator(Config(**EVERY_KEY))
    t0 = EPOCH + 10**12
    window = int(agg.config.window * 1e9)

    def traffic(campaign: str, at_ns: int, errors: bool) -> None:
        for i in range(40):
            agg.record(("landing", ""), 0.1, {"conversion": 1.0}, end_ns=at_ns)
            agg.record(("landing", campaign), 0.1, {"conversion": 1.0},
                       error=errors and i % 2 == 0, end_ns=at_ns)

    alerts: list[tuple[str, str]] = []
    monitor = CampaignMonitor(lambda: None)
    monitor.on_campaign_alert(lambda h: alerts.append((h.campaign, h.state)))
    traffic("fine", t0, errors=False)
    traffic("broken", t0, errors=True)
    states = {h.campaign: h.state for h in monitor.check(agg.snapshot(now_ns=t0))}
    assert states == {"fine": OK, "broken": FAILING}
    assert alerts == [("broken", FAILING)]

    later = t0 + 2 * window  # no traffic since t0: fine retires, broken stays
    quiet = monitor.check(agg.snapshot(now_ns=later))
    assert [(h.campaign, h.state, h.recent.requests) for h in quiet] == [
        ("broken", WARMING_UP, 0)]
    assert quiet[0].own_baseline.requests == 40

    traffic("broken", later, errors=True)  # back, still failing: no second alert
    assert [h.state for h in monitor.check(agg.snapshot(now_ns=later))] == [FAILING]
    assert alerts == [("broken", FAILING)]

    again = later + 2 * window
    traffic("broken", again, errors=False)  # back and fine: the recovery is announced
    traffic("fine", again, errors=False)  # fine comes back without alerting
    states = {h.campaign: h.state for h in monitor.check(agg.snapshot(now_ns=again))}
    assert states == {"fine": OK, "broken": OK}
    assert alerts == [("broken", FAILING), ("broken", OK)]


def test_campaigns_gone_from_the_state_are_forgotten(Aggregator: Any) -> None:
    """first_seen and the verdicts never outgrow the key space: a campaign no longer in
    the snapshot (its keys expired, the aggregator reset) leaves both, and comes back as
    new."""
    agg = Aggregator(Config())
    for _ in range(40):
        agg.record(("landing", ""), 0.1, end_ns=EPOCH)
        agg.record(("landing", "old"), 0.1, error=True, end_ns=EPOCH)
    alerts: list[str] = []
    monitor = CampaignMonitor(lambda: None)
    monitor.on_campaign_alert(lambda h: alerts.append(h.state))
    monitor.check(agg.snapshot(now_ns=EPOCH))
    assert alerts == [FAILING]
    agg.reset()
    assert monitor.check(agg.snapshot(now_ns=EPOCH + 10**9)) == []
    first_seen = {"old": 1}
    assess(agg.snapshot(now_ns=EPOCH + 10**9), first_seen, previous={"old": FAILING})
    assert first_seen == {}
    for _ in range(40):
        agg.record(("landing", ""), 0.1, end_ns=EPOCH + 2 * 10**9)
        agg.record(("landing", "old"), 0.1, error=True, end_ns=EPOCH + 2 * 10**9)
    (health,) = monitor.check(agg.snapshot(now_ns=EPOCH + 2 * 10**9))
    assert health.first_seen_ns == EPOCH + 2 * 10**9
    assert alerts == [FAILING, FAILING]  # a new campaign by that name, failing
