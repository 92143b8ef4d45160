"""Sessions, impact scores, what-if, campaign health and A/B tests as exported metrics:
the Prometheus exposition, the prometheus_client collector and the OTel instruments carry
exactly what the snapshot computes."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bizops_otel import BizOpsSpanProcessor, Config, attributes
from bizops_otel.analytics import compare_variants, session_stats, whatif_projection
from bizops_otel.analytics.health import FAILING, CampaignHealth, CampaignMonitor
from bizops_otel.demo.simulate import Campaign, Scenario, Simulator, emit
from bizops_otel.export.exposition import render
from bizops_otel.export.otel import OTelMetrics
from bizops_otel.export.prometheus import BizOpsCollector
from tests.conftest import load_hooks
from tests.keys import EVERY_KEY
from tests.spans import PAGE_RULES

EPOCH = 1_700_000_000 * 10**9
DIMENSIONS = (attributes.PAGE_GROUP, attributes.CAMPAIGN_ID, attributes.FEATURE_FLAG_VARIANT)


def replayed(aggregator_cls: Any) -> tuple[Any, list[CampaignHealth]]:
    scenario = Scenario(variants={"A": 0.0, "B": 0.3},
                        campaigns=(Campaign("spring", 0.2),
                                   Campaign("broken", 0.2, error_rate=0.5)))
    config = Config(**EVERY_KEY, dimensions=DIMENSIONS, page_groups=PAGE_RULES)
    aggregator = aggregator_cls(config)
    provider = TracerProvider()
    provider.add_span_processor(BizOpsSpanProcessor(aggregator, config,
                                                    hooks=load_hooks(aggregator_cls)))
    emit(provider.get_tracer("simulator"), list(Simulator(scenario, 3).sessions(3000)), EPOCH)
    # Health is judged while the traffic is recent (3000 sessions at 50/s: a minute);
    # the exported snapshot is taken a day later, when every session is finalised.
    health = CampaignMonitor(lambda: None).check(aggregator.snapshot(now_ns=EPOCH + 60 * 10**9))
    return aggregator.snapshot(now_ns=EPOCH + 86_400 * 10**9), health


def points(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Samples by name and non-empty labels (an empty label value means absent)."""
    return {(s.name, frozenset((k, v) for k, v in s.labels.items() if v)): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def test_exposition_carries_the_snapshots_analytics(Aggregator: Any) -> None:
    snapshot, health = replayed(Aggregator)
    exported = points(render(snapshot, health).decode())
    sessions = session_stats(snapshot)
    assert exported[key("bizops_sessions_total", bizops_session_scope="all")] == 3000
    for name in ("landing", "product", "checkout"):
        group = sessions[name]
        labels = {"bizops_page_group": name, "bizops_session_scope": "page_group"}
        assert exported[key("bizops_sessions_total", **labels)] == group.sessions
        assert exported[key("bizops_session_conversions_total", **labels)] == group.converted
        assert exported[key("bizops_session_conversion_impact", **labels)] == pytest.approx(
            group.conversion_impact, rel=1e-12)
        assert exported[key("bizops_session_optimal_load_time_seconds", **labels)] == (
            pytest.approx(group.curve().optimal_load_time, rel=1e-12))
        assert exported[key("bizops_session_pages_mean", **labels)] == pytest.approx(
            group.pages_per_session, rel=1e-12)
        for outcome, converted in (("converted", True), ("not_converted", False)):
            assert exported[key("bizops_session_latency_mean_seconds", **labels,
                                bizops_outcome=outcome)] == pytest.approx(
                group.mean_latency(converted), rel=1e-12)
        for delta in ("-500", "-100", "100", "500"):
            projection = whatif_projection(snapshot, float(delta), name)
            for bound, change, revenue in (
                    ("estimate", projection.change, projection.revenue_change),
                    ("low", projection.low, projection.revenue_low),
                    ("high", projection.high, projection.revenue_high)):
                extra = {**labels, "bizops_delta_ms": delta, "bizops_bound": bound}
                assert exported[key("bizops_whatif_conversion_change", **extra)] == (
                    pytest.approx(change, rel=1e-12))
                assert exported[key("bizops_whatif_revenue_change", **extra)] == (
                    pytest.approx(revenue, rel=1e-12))
    overall = whatif_projection(snapshot, -100.0)
    assert exported[key("bizops_whatif_conversion_change", bizops_session_scope="all",
                        bizops_delta_ms="-100", bizops_bound="estimate")] == pytest.approx(
        overall.change, rel=1e-12)
    assert exported[key("bizops_internal_sessions_open")] == 0
    # A/B: B against the control A.
    comparison = compare_variants(snapshot, "A", "B")
    ab = {"feature_flag_result_variant": "B", "bizops_ab_control": "A"}
    assert exported[key("bizops_ab_p_value", **ab, bizops_ab_test="conversion")] == (
        pytest.approx(comparison.conversion.p_value, rel=1e-12))
    assert exported[key("bizops_ab_difference", **ab, bizops_ab_test="latency")] == (
        pytest.approx(comparison.latency.difference, rel=1e-12))
    # Campaigns: the broken one (half its landings fail) is failing, and says so once.
    states = {h.campaign: h.state for h in health}
    assert states["broken"] == FAILING
    for campaign, state in states.items():
        for candidate in ("ok", "degraded", "failing", "warming_up"):
            value = exported[key("bizops_campaign_health", bizops_campaign_id=campaign,
                                 state=candidate)]
            assert value == (1.0 if candidate == state else 0.0)
    broken = next(h for h in health if h.campaign == "broken")
    assert exported[key("bizops_campaign_error_rate", bizops_campaign_id="broken",
                        bizops_baseline="recent")] == pytest.approx(broken.recent.error_rate)
    assert exported[key("bizops_campaign_first_seen_seconds",
                        bizops_campaign_id="broken")] == broken.first_seen_ns / 1e9


def test_collector_and_otel_instruments_agree_with_the_exposition(Aggregator: Any) -> None:
    snapshot, health = replayed(Aggregator)
    direct = points(render(snapshot, health).decode())
    registry = CollectorRegistry()
    registry.register(BizOpsCollector(lambda: snapshot, lambda: health))
    assert points(generate_latest(registry).decode()) == direct
    reader = InMemoryMetricReader()
    OTelMetrics(MeterProvider(metric_readers=[reader]), lambda: snapshot, snapshot.config,
                lambda: health)
    data = reader.get_metrics_data()
    assert data is not None
    metrics = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics
               for m in sm.metrics}
    cis = {dict(p.attributes).get(attributes.PAGE_GROUP): p.value
           for p in metrics["bizops.session.conversion_impact"].data.data_points
           if dict(p.attributes).get("bizops.session.scope") == "page_group"}
    assert cis == pytest.approx({name: session_stats(snapshot)[name].conversion_impact
                                 for name in session_stats(snapshot)}, rel=1e-12)
    failing = [dict(p.attributes) for p in metrics["bizops.campaign.health"].data.data_points
               if p.value == 1.0 and dict(p.attributes)["state"] == FAILING]
    assert failing == [{attributes.CAMPAIGN_ID: "broken", "state": FAILING}]
