"""bizops-otel's metrics on an application's own MeterProvider (the OTel-instruments path),
through the SDK's real OTLP exporters, gRPC and HTTP, to a receiver on 127.0.0.1."""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

import bizops_otel
from bizops_otel import Config
from bizops_otel.export.otlp import resource
from tests.datasets import traffic
from tests.keys import EVERY_KEY
from tests.otlp_receiver import grpc_receiver, http_receiver


def feed(handle: bizops_otel.BizOps) -> None:
    data = traffic(51, n=600)
    assert handle.aggregator is not None
    for i in range(600):
        handle.aggregator.record(("checkout", "spring" if i % 2 else ""), float(data.latency[i]),
                                 {"order_value": float(data.order_value[i]),
                                  "conversion": float(data.conversion[i])})


def find(points: list[tuple[dict[str, str], float]], **attributes: str) -> float:
    matches = [v for a, v in points if all(a.get(k) == v for k, v in attributes.items())
               and all(k in attributes or k in ("bizops.page_group", "bizops.campaign.id")
                       for k in a)]
    assert len(matches) == 1, (attributes, points[:5])
    return matches[0]


@pytest.mark.parametrize(("receiver", "protocol"), [(grpc_receiver, "grpc"),
                                                    (http_receiver, "http/protobuf")])
def test_points_pushed_over_otlp_equal_the_snapshot(
        receiver: Callable[[], Any], protocol: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with receiver() as (endpoint, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "shop")
        meter_provider = own_meter_provider(protocol)
        handle = bizops_otel.install(TracerProvider(), meter_provider, config=Config(**EVERY_KEY))
        assert handle.pusher is None  # the user's provider is used, not the pusher
        feed(handle)
        assert handle.force_flush()
        points = received.last_points()
        snapshot = handle.snapshot()
        handle.shutdown()
        meter_provider.shutdown()
    assert snapshot is not None
    stats = snapshot[("checkout", "spring")]
    sums = stats.raw_sums("order_value")
    key = {"bizops.page_group": "checkout", "bizops.campaign.id": "spring"}
    with_kpi = {**key, "bizops.kpi": "order_value"}
    assert find(points["bizops.kpi.pairs"], **with_kpi) == sums.n
    assert find(points["bizops.kpi.latency.sum"], **with_kpi) == pytest.approx(sums.sum_t, 1e-12)
    assert find(points["bizops.kpi.cross.sum"], **with_kpi) == pytest.approx(sums.sum_tv, 1e-12)
    assert find(points["bizops.kpi.value.sum_of_squares"], **with_kpi) == pytest.approx(
        sums.sum_v2, 1e-12)
    assert find(points["bizops.requests"], **key) == stats.count
    r = find(points["bizops.kpi.correlation"], **with_kpi, method="pearson",
             **{"bizops.window": "cumulative"})
    assert r == pytest.approx(stats.pearson("order_value").r, rel=1e-12)
    buckets = points["bizops.request.duration.bucket"]
    total = find(buckets, **key, le="+Inf", **{"bizops.outcome": "converted"})
    assert total == int(stats.histogram[2].sum())
    no_campaign = [a for a, _ in points["bizops.requests"] if "bizops.campaign.id" not in a]
    assert no_campaign == [{"bizops.page_group": "checkout"}]  # empty labels are left out
    assert received.resources()[-1]["service.name"] == "shop"


def own_meter_provider(protocol: str) -> Any:
    """An application's MeterProvider with the SDK's OTLP exporter, as a user builds it."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    exporter: Any
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        exporter = OTLPMetricExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HTTPMetricExporter,
        )
        exporter = HTTPMetricExporter()
    return MeterProvider(resource=Resource.create(),
                         metric_readers=[PeriodicExportingMetricReader(exporter)])


def test_the_resource_is_the_applications_with_an_instance_per_process(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.resources import Resource

    monkeypatch.setenv("OTEL_SERVICE_NAME", "shop")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod,team=web")
    provider = TracerProvider(resource=Resource.create({"service.version": "4.2"}))
    attributes = resource.attributes(provider)
    assert attributes["service.name"] == "shop"
    assert attributes["deployment.environment"] == "prod"
    assert attributes["service.version"] == "4.2"
    assert attributes["telemetry.sdk.language"] == "python"
    assert attributes["service.instance.id"] == resource.instance_id()
    assert list(attributes)[-1] == "service.instance.id"


def test_one_snapshot_per_collection(Aggregator: Any) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from bizops_otel.export.otel import OTelMetrics

    agg = Aggregator(Config(**EVERY_KEY))
    agg.record(("checkout", ""), 0.25, {"order_value": 10.0, "conversion": True})
    calls = []

    def source() -> Any:
        calls.append(1)
        return agg.snapshot()

    reader = InMemoryMetricReader()
    metrics = OTelMetrics(MeterProvider(metric_readers=[reader]), source, Config())
    assert len(metrics.instruments) > 15
    for expected in (1, 2):
        data = reader.get_metrics_data()
        assert len(calls) == expected
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics
             for m in sm.metrics}
    assert {"bizops.kpi.pairs", "bizops.request.duration.bucket",
            "bizops.internal.dropped"} <= names


def test_a_provider_whose_limit_would_fold_points_is_reported_once(
        Aggregator: Any, caplog: pytest.LogCaptureFixture) -> None:
    """SDKs from 1.45.2 keep 2,000 points per stream by default; 1,000 keys × 3 KPIs give
    3,000 pairs points. The fold is reported (log and self-metric), and a reader with a
    higher limit, as the README says to configure, keeps every point. SDKs whose readers
    take no limit (1.25 among them) keep every point, and nothing is reported."""
    from opentelemetry.sdk.metrics import (
        MeterProvider,
        ObservableCounter,
        ObservableGauge,
        ObservableUpDownCounter,
    )
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from bizops_otel.export.otel import OTelMetrics

    agg = Aggregator(Config(**EVERY_KEY, max_keys=1000))
    for k in range(1000):
        agg.record((f"page{k}", ""), 0.1, {"order_value": 1.0, "conversion": 1.0, "items": 1.0})

    def pairs_points(reader: Any) -> tuple[int, bool, float]:
        data = reader.get_metrics_data()
        metrics = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics
                   for m in sm.metrics}
        points = list(metrics["bizops.kpi.pairs"].data.data_points)
        folded = any(p.attributes.get("otel.metric.overflow") is True for p in points)
        (over,) = metrics["bizops.internal.otel.points_over_limit"].data.data_points
        return len(points), folded, over.value

    default = InMemoryMetricReader()
    metrics = OTelMetrics(MeterProvider(metric_readers=[default]), agg.snapshot, Config())
    if "cardinality_limits" not in inspect.signature(InMemoryMetricReader).parameters:
        assert metrics.cardinality_limit == math.inf
        with caplog.at_level("WARNING", logger="bizops_otel"):
            assert pairs_points(default) == (3000, False, 0)
        assert not caplog.records
        return
    assert metrics.cardinality_limit == 2000
    with caplog.at_level("WARNING", logger="bizops_otel"):
        count, folded, over = pairs_points(default)
        pairs_points(default)
    assert (count, folded) == (2001, True) and over > 1000
    assert sum("cardinality_limits" in r.getMessage() for r in caplog.records) == 1
    limits: Any = {kind: 100_000 for kind in (ObservableCounter, ObservableGauge,
                                               ObservableUpDownCounter)}
    raised = InMemoryMetricReader(cardinality_limits=limits)
    OTelMetrics(MeterProvider(metric_readers=[raised]), agg.snapshot, Config())
    assert pairs_points(raised) == (3000, False, 0)


def test_prometheus_port_serves_metrics_from_install_until_shutdown() -> None:
    import urllib.request

    from bizops_otel.auto import summary

    handle = bizops_otel.install(TracerProvider(), config=Config(**EVERY_KEY,
        prometheus_port=0, prometheus_addr="127.0.0.1"))
    assert handle.aggregator is not None and handle.metrics_server is not None
    handle.aggregator.record(("checkout", ""), 0.2, {"order_value": 5.0})
    port = handle.metrics_server.server_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        body = reply.read().decode()
    assert 'bizops_requests_total{bizops_page_group="checkout"} 1.0' in body
    assert f"/metrics on 127.0.0.1:{port}" in summary(handle)
    handle.shutdown()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_shuts_down_without_the_parents_metrics_server() -> None:
    """The child inherits the server's socket but not its thread; its shutdown must not
    wait for that thread (a pre-fork worker would never exit)."""
    import signal
    import time
    import urllib.request

    handle = bizops_otel.install(TracerProvider(), config=Config(**EVERY_KEY,
        prometheus_port=0, prometheus_addr="127.0.0.1"))
    port = handle.metrics_server.server_port
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            handle.shutdown()
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise AssertionError("the child hung in shutdown")
    assert os.waitstatus_to_exitcode(status) == 0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.status == 200  # the parent still serves
    handle.shutdown()
