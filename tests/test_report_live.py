"""The demo shop serves the report of its current state at /bizops/report, and keeps the
campaigns' states over the run for it."""

from __future__ import annotations

import math

from opentelemetry.sdk.trace import TracerProvider
from werkzeug.test import Client

from bizops_otel.analytics import session_stats
from bizops_otel.analytics.health import CampaignHealth, Figures
from bizops_otel.demo import live_report, shop
from bizops_otel.demo.simulate import Simulator, emit
from bizops_otel.install import install
from bizops_otel.report.timeline import MAX_CAMPAIGNS, Timeline
from tests.html_dom import Dom
from tests.planted_shop import CONFIG, SCENARIO
from tests.spans import EPOCH


def test_shop_serves_the_live_report_of_its_state() -> None:
    provider = TracerProvider()
    handle = install(provider, config=CONFIG)
    try:
        emit(provider.get_tracer("past"), list(Simulator(SCENARIO, 4).sessions(4000)), EPOCH)
        report = live_report.LiveReport(handle, history_s=3600.0)
        app = shop.create_app(SCENARIO, handle, provider, report=report)
        response = Client(app).get(live_report.ROUTE)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert response.headers["Cache-Control"] == "no-store"
        page = response.get_data(as_text=True)
        snapshot = handle.snapshot()
        assert snapshot is not None
        ranking = [g.name for g in session_stats(snapshot).impact_ranking()]
        assert ranking[0] == "product"
        assert [r["data-group"] for r in Dom(page).having("data-rank")] == ranking
        assert "bizops-otel demo shop · live report" in page
    finally:
        handle.shutdown()
        provider.shutdown()


def test_disabled_bizops_otel_answers_503() -> None:
    provider = TracerProvider()
    handle = install(provider, config=CONFIG, enabled=False)
    statuses = []
    body = live_report.LiveReport(handle)({}, lambda status, headers: statuses.append(status))
    assert statuses == ["503 Service Unavailable"] and b"disabled" in b"".join(body)
    provider.shutdown()


def _health(campaign: str, state: str, first_seen_ns: int) -> CampaignHealth:
    nothing = Figures(0, math.nan, math.nan, math.nan)
    return CampaignHealth(campaign, state, "", first_seen_ns, nothing, nothing, nothing)


def test_timeline_keeps_changes_only_and_starts_at_first_sight() -> None:
    timeline = Timeline()
    timeline.observe([_health("flash", "warming_up", 100)], 150)
    timeline.observe([_health("flash", "warming_up", 100)], 200)
    timeline.observe([_health("flash", "failing", 100), _health("spring", "ok", 180)], 300)
    timeline.observe([_health("flash", "failing", 100)], 400)
    assert timeline.changes == {"flash": ((100, "warming_up"), (300, "failing")),
                                "spring": ((180, "ok"),)}


def test_timeline_holds_a_bounded_number_of_campaigns() -> None:
    timeline = Timeline()
    timeline.observe([_health(f"bot{i}", "warming_up", i) for i in range(MAX_CAMPAIGNS + 50)],
                     10**6)
    assert len(timeline.changes) == MAX_CAMPAIGNS
