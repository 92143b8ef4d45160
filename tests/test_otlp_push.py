"""The OTLP pusher against receivers on 127.0.0.1 built from opentelemetry-proto: over
gRPC (grpcio) and HTTP (requests), with gzip, with planted faults, across a fork.

The receivers are real servers speaking the protocol; only their answers are planted
(a status, a delay), because a real Collector cannot be installed on this machine.
"""

from __future__ import annotations

import gc
import inspect
import os
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.util.re import parse_env_headers

import bizops_otel
from bizops_otel import Config
from bizops_otel.export.otlp import settings
from bizops_otel.export.otlp.push import Pusher
from tests.keys import EVERY_KEY
from tests.otlp_decode import decode, value
from tests.otlp_receiver import grpc_receiver, http_receiver
from tests.processes import free_port

RECEIVERS = [(grpc_receiver, "grpc"), (http_receiver, "http/protobuf")]


def env(endpoint: str, protocol: str, **more: str) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_METRIC_EXPORT_INTERVAL": "600000", "OTEL_METRIC_EXPORT_TIMEOUT": "5000",
            **more}


def fed(Aggregator: Any, keys: int = 20, requests_per_key: int = 3) -> Any:
    agg = Aggregator(Config(**EVERY_KEY, max_keys=keys + 10))
    for k in range(keys):
        for r in range(requests_per_key):
            agg.record((f"page{k}", "spring" if k % 2 else ""), 0.05 + 0.01 * r,
                       {"order_value": 10.0 * r, "conversion": float(r % 2),
                        "items": float(r + 1)})
    return agg


def received_requests(received: Any) -> dict[str, Any]:
    with received.lock:
        bodies = list(received.bodies)
    metrics, _ = decode(*bodies, latest=True)
    return metrics


@pytest.mark.parametrize(("receiver", "protocol"), RECEIVERS)
@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_pushed_points_equal_the_snapshot(receiver: Callable[[], Any], protocol: str,
                                          compression: str, Aggregator: Any) -> None:
    agg = fed(Aggregator)
    with receiver() as (endpoint, received):
        config = settings.load(env(endpoint, protocol, OTEL_EXPORTER_OTLP_COMPRESSION=compression,
                                   OTEL_EXPORTER_OTLP_HEADERS="x-tenant=shop%20one"))
        pusher = Pusher(agg.snapshot, config)
        pusher.start()
        assert pusher.force_flush()
        assert pusher.shutdown()
        snapshot = agg.snapshot()
        metrics = received_requests(received)
        headers = received.headers[-1]
        encodings = list(received.content_encodings)
    assert headers["x-tenant"] == "shop one"
    if protocol == "http/protobuf":
        assert set(encodings) == {"gzip" if compression == "gzip" else ""}
    assert pusher.status.failures == {}
    for key, stats in snapshot.items():
        labels = {("bizops.page_group", key[0])} | ({("bizops.campaign.id", key[1])}
                                                   if key[1] else set())
        assert value(metrics["bizops.requests"].points[frozenset(labels)]) == stats.count
        pairs = metrics["bizops.kpi.pairs"].points[frozenset(labels | {("bizops.kpi", "items")})]
        assert value(pairs) == stats.pairs("items")
    assert "bizops.internal.export.failures" not in metrics  # no failure, no point


def test_1500_keys_and_3_kpis_arrive_exact_with_no_overflow(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With install() and the newest SDK (which enforces a 2,000-point cardinality limit
    on its own instruments), every point arrives: the pusher bypasses the instruments."""
    with grpc_receiver() as (endpoint, received):
        for name, setting in env(endpoint, "grpc").items():
            monkeypatch.setenv(name, setting)
        handle = bizops_otel.install(TracerProvider(), config=Config(**EVERY_KEY,
            kpis=("order_value", "conversion", "items"), max_keys=2000))
        assert handle.pusher is not None and handle.aggregator is not None
        for k in range(1500):
            for r in range(2):
                handle.aggregator.record((f"page{k}", ""), 0.1 * (r + 1),
                                         {"order_value": float(k), "conversion": float(r),
                                          "items": 2.0})
        assert handle.force_flush()
        snapshot = handle.snapshot()
        handle.shutdown()
        metrics = received_requests(received)
    assert snapshot is not None and len(snapshot) == 1500
    for name, metric in metrics.items():
        assert all(("otel.metric.overflow", True) not in p for p in metric.points), name
    pairs = metrics["bizops.kpi.pairs"].points
    assert len(pairs) == 1500 * 3
    assert all(value(point) == 2.0 for point in pairs.values())
    histogram = metrics["bizops.request.duration"].points
    assert sum(point.count for point in histogram.values()) == 3000
    assert len(histogram) == 1500 * 2  # converted and not converted, per key


@pytest.mark.parametrize(("receiver", "protocol", "fault", "reason"), [
    (http_receiver, "http/protobuf", 503, "http_503"),
    (http_receiver, "http/protobuf", 429, "http_429"),
    (grpc_receiver, "grpc", grpc.StatusCode.UNAVAILABLE, "grpc_unavailable"),
])
def test_retryable_answers_are_retried_after_the_delay_asked_for(
        receiver: Callable[[], Any], protocol: str, fault: Any, reason: str,
        Aggregator: Any) -> None:
    agg = fed(Aggregator)
    with receiver() as (endpoint, received):
        trailers: dict[str, Any] = {}
        if protocol == "http/protobuf":
            trailers = {"Retry-After": "1"}
        received.faults = [(fault, trailers, 0.0), (fault, trailers, 0.0)]
        pusher = Pusher(agg.snapshot, settings.load(env(endpoint, protocol)))
        began = time.monotonic()
        assert pusher.force_flush(10.0)
        took = time.monotonic() - began
        pusher.shutdown(5.0)
        metrics = received_requests(received)
        attempts = received.attempts
    assert pusher.status.failures[reason] == 2
    assert attempts == 2 + 2  # two refusals, the flush, and the final export at shutdown
    if protocol == "http/protobuf":
        assert took >= 2.0  # Retry-After: 1, twice, was honoured
    assert value(metrics["bizops.requests"].points[frozenset({("bizops.page_group",
                                                               "page0")})]) == 3.0


def test_resource_exhausted_is_retried_only_with_retry_info(Aggregator: Any) -> None:
    agg = fed(Aggregator)
    info = RetryInfo()
    info.retry_delay.nanos = 200_000_000
    with grpc_receiver() as (endpoint, received):
        received.faults = [
            (grpc.StatusCode.RESOURCE_EXHAUSTED, {"google.rpc.retryinfo-bin":
                                                  info.SerializeToString()}, 0.0),
            (grpc.StatusCode.RESOURCE_EXHAUSTED, {}, 0.0)]
        pusher = Pusher(agg.snapshot, settings.load(env(endpoint, "grpc")))
        assert not pusher.force_flush(10.0)  # retried once (RetryInfo), then refused for good
        assert received.attempts == 2
        assert pusher.force_flush(10.0)
        pusher.shutdown(5.0)
    assert pusher.status.failures["grpc_resource_exhausted"] == 2


@pytest.mark.parametrize(("receiver", "protocol", "fault", "reason"), [
    (http_receiver, "http/protobuf", 400, "http_400"),
    (http_receiver, "http/protobuf", 401, "http_401"),
    (grpc_receiver, "grpc", grpc.StatusCode.INVALID_ARGUMENT, "grpc_invalid_argument"),
])
def test_permanent_answers_are_not_retried(receiver: Callable[[], Any], protocol: str,
                                           fault: Any, reason: str, Aggregator: Any) -> None:
    agg = fed(Aggregator)
    with receiver() as (endpoint, received):
        received.faults = [(fault, {}, 0.0)]
        pusher = Pusher(agg.snapshot, settings.load(env(endpoint, protocol)))
        assert not pusher.force_flush(10.0)
        assert received.attempts == 1
        assert pusher.force_flush(10.0)  # the next export carries everything
        pusher.shutdown(5.0)
    assert pusher.status.failures == {reason: 1}
    assert pusher.status.last_success_ns > 0


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_receiver_that_is_down_costs_nothing_and_memory_stays_flat(
        protocol: str, Aggregator: Any) -> None:
    """Nobody listens on the port: exports fail and are counted, recording goes on, and
    memory stays flat over many failed exports; a slow receiver times out."""
    agg = fed(Aggregator)
    port = free_port()
    pusher = Pusher(agg.snapshot, settings.load(env(f"http://127.0.0.1:{port}", protocol,
                                                    OTEL_EXPORTER_OTLP_TIMEOUT="300")))
    for _ in range(20):  # warm up: lazy imports, connection pools, caches
        assert not pusher.export(0.05)
    tracemalloc.start()
    gc.collect()
    before = tracemalloc.take_snapshot()
    for _ in range(100):
        assert not pusher.export(0.05)
        agg.record(("page0", ""), 0.1)
    gc.collect()  # failed sends leave reference cycles (exceptions and their frames)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert grown < 32 * 1024, grown  # flat: nothing is kept per failed export
    assert sum(pusher.status.failures.values()) >= 120
    assert agg.snapshot()[("page0", "")].count == 3 + 100
    pusher.shutdown(0.5)


@pytest.mark.parametrize(("receiver", "protocol"), RECEIVERS)
def test_a_slow_receiver_times_out_and_totals_catch_up_after_recovery(
        receiver: Callable[[], Any], protocol: str, Aggregator: Any) -> None:
    agg = fed(Aggregator)
    with receiver() as (endpoint, received):
        # Answers, but after the timeout, to every attempt the 0.9 s budget allows (a
        # timeout is retryable, so one slow answer alone would be retried past).
        received.faults = [(None, {}, 1.5)] * 3
        pusher = Pusher(agg.snapshot, settings.load(env(endpoint, protocol,
                                                        OTEL_EXPORTER_OTLP_TIMEOUT="400")))
        assert not pusher.force_flush(0.9)
        agg.record(("page0", ""), 0.2)
        time.sleep(1.5)  # the receiver recovers
        assert pusher.force_flush(5.0)
        pusher.shutdown(5.0)
        with received.lock:
            last = received.bodies[-1]
    reasons = set(pusher.status.failures)
    assert reasons & {"timeout", "grpc_deadline_exceeded", "deadline"}, reasons
    metrics, _ = decode(last)
    assert value(metrics["bizops.requests"].points[frozenset({("bizops.page_group",
                                                               "page0")})]) == 4.0


def test_failures_travel_in_the_next_successful_export(Aggregator: Any) -> None:
    agg = fed(Aggregator)
    with http_receiver() as (endpoint, received):
        received.faults = [(400, {}, 0.0)]
        pusher = Pusher(agg.snapshot, settings.load(env(endpoint, "http/protobuf")))
        assert not pusher.force_flush(5.0)
        assert pusher.force_flush(5.0)
        pusher.shutdown(5.0)
        metrics = received_requests(received)
    failures = metrics["bizops.internal.export.failures"]
    assert value(failures.points[frozenset({("reason", "http_400")})]) == 1.0
    last = value(next(iter(metrics["bizops.internal.export.last_success"].points.values())))
    assert abs(last - time.time()) < 60


def test_shutdown_exports_the_final_state_and_leaves_no_thread(Aggregator: Any) -> None:
    agg = fed(Aggregator)
    with grpc_receiver() as (endpoint, received):
        pusher = Pusher(agg.snapshot, settings.load(env(endpoint, "grpc",
                                                        OTEL_METRIC_EXPORT_INTERVAL="100")))
        pusher.start()
        time.sleep(0.5)
        periodic = received.attempts
        agg.record(("final", ""), 0.3)
        assert pusher.shutdown(5.0)
        metrics = received_requests(received)
    assert periodic >= 2  # the interval pushes on its own
    assert frozenset({("bizops.page_group", "final")}) in metrics["bizops.requests"].points
    assert not [t for t in threading.enumerate() if t.name == "bizops-otel-otlp"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_pushes_its_own_state_as_its_own_instance(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with grpc_receiver() as (endpoint, received):
        for name, setting in env(endpoint, "grpc").items():
            monkeypatch.setenv(name, setting)
        handle = bizops_otel.install(TracerProvider(), config=Config(**EVERY_KEY))
        assert handle.aggregator is not None
        handle.aggregator.record(("parent", ""), 0.1)
        assert handle.force_flush()
        pid = os.fork()
        if pid == 0:  # the child: record, push, leave without running the parent's code
            code = 1
            try:
                handle.aggregator.record(("child", ""), 0.2)
                code = 0 if handle.force_flush() else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        handle.shutdown()
        with received.lock:
            bodies = list(received.bodies)
    by_instance: dict[str, set[str]] = {}
    for body in bodies:
        metrics, resources = decode(body)
        instance = str(resources[0]["service.instance.id"])
        groups = {dict(points)["bizops.page_group"]
                  for points in metrics["bizops.requests"].points}
        by_instance.setdefault(instance, set()).update(groups)
    assert sorted(map(sorted, by_instance.values())) == [["child"], ["parent"]]


def test_malformed_variables_fail_at_configuration_time() -> None:
    with pytest.raises(ValueError, match="OTLP protocol 'http/json'"):
        settings.load({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
    with pytest.raises(ValueError, match="compression 'zstd'"):
        settings.load({"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"})
    with pytest.raises(ValueError, match="OTEL_METRIC_EXPORT_INTERVAL"):
        settings.load({"OTEL_METRIC_EXPORT_INTERVAL": "soon"})
    assert not settings.wanted({})
    assert not settings.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317",
                                "OTEL_METRICS_EXPORTER": "none"})
    assert settings.wanted({"OTEL_METRICS_EXPORTER": "console,otlp"})
    loaded = settings.load({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4317",
                            "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "2500"})
    assert (loaded.endpoint, loaded.insecure, loaded.timeout_s) == ("collector:4317", False, 2.5)
    http = settings.load({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                          "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"})
    assert http.endpoint == "http://collector:4318/v1/metrics"
    own = settings.load({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                         "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://c:9/custom"})
    assert own.endpoint == "http://c:9/custom"


def test_headers_are_read_as_the_installed_api_reads_them() -> None:
    """URL-encoded values are decoded on every supported API. A value that is not encoded
    (other languages' SDKs take them) is taken from API 1.27, which reads headers
    liberally; before it, the API leaves it out with a warning, as its own exporters do."""
    loaded = settings.load({"OTEL_EXPORTER_OTLP_HEADERS":
                            "x-tenant=shop%20one, Authorization=Basic a b"})
    liberal = "liberal" in inspect.signature(parse_env_headers).parameters
    assert dict(loaded.headers) == {"x-tenant": "shop one", **(
        {"authorization": "Basic a b"} if liberal else {})}


def test_session_and_order_ids_never_reach_a_payload(Aggregator: Any) -> None:
    from opentelemetry.sdk.trace import TracerProvider as Provider

    from bizops_otel import BizOpsSpanProcessor, attributes

    config = Config(**EVERY_KEY)
    agg = Aggregator(config)
    provider = Provider()
    provider.add_span_processor(BizOpsSpanProcessor(agg, config))
    tracer = provider.get_tracer("t")
    secret_session, secret_order = "sess-7c1d-PLANTED", "order-99431-PLANTED"
    for i in range(50):
        with tracer.start_as_current_span("GET /checkout", kind=2, attributes={
                "http.route": "/checkout", attributes.SESSION_ID: f"{secret_session}{i}",
                "order.id": f"{secret_order}{i}", attributes.ORDER_VALUE: 20.0}):
            pass
    with http_receiver() as (endpoint, received):
        pusher = Pusher(agg.snapshot, settings.load(env(endpoint, "http/protobuf")))
        assert pusher.force_flush(5.0)
        pusher.shutdown(5.0)
        bodies = b"".join(received.bodies)
    assert agg.snapshot().total().count == 50
    assert b"PLANTED" not in bodies and b"sess-7c1d" not in bodies


def test_the_pusher_never_raises_into_its_caller(Aggregator: Any) -> None:
    def broken() -> Any:
        raise RuntimeError("the source broke")

    pusher = Pusher(broken, settings.load(env("http://127.0.0.1:9", "grpc")))
    assert pusher.export(0.5) is False
    assert pusher.status.failures == {"internal": 1}
    pusher.shutdown(0.1)


def test_retries_wait_even_when_the_server_asks_for_no_delay(Aggregator: Any) -> None:
    """Retry-After: 0 (or a past date) must not turn into a tight loop of sends."""
    from bizops_otel.export.otlp import push
    from bizops_otel.export.otlp.transport import Outcome

    sends: list[float] = []

    class Refusing:
        def send(self, body: bytes, timeout_s: float) -> Outcome:
            sends.append(time.monotonic())
            return Outcome(False, "http_503", True, 0.0)

        def close(self) -> None:
            pass

    opened: list[Refusing] = []

    def open_transport(settings: Any) -> Refusing:
        opened.append(Refusing())
        return opened[-1]

    pusher = Pusher(fed(Aggregator).snapshot, settings.load(env("http://127.0.0.1:9", "grpc")),
                    transport=open_transport)
    assert not pusher.export(1.0)
    assert 5 <= len(sends) <= 1.0 / push.MIN_RETRY_DELAY_S + 1
    pusher.shutdown(0.5)
    assert not pusher.force_flush(0.5)  # after shutdown: nothing sent, nothing opened
    assert len(opened) == 1


def test_an_explicit_metrics_exporter_is_respected_and_ipv6_endpoints_work() -> None:
    assert not settings.wanted({"OTEL_METRICS_EXPORTER": "prometheus",
                                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"})
    assert settings.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"})
    assert settings.load({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://[::1]:4317"}).endpoint == \
        "[::1]:4317"


def test_resource_integers_past_int64_stay_decodable() -> None:
    from bizops_otel import Aggregator as Native
    from bizops_otel.export.otlp import encode

    body = encode(Native(Config()).snapshot(), resource_attributes={"big": 2**70, "ok": 5})
    _, resources = decode(body)
    assert resources == [{"big": str(2**70), "ok": 5}]
