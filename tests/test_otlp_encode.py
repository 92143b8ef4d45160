"""The direct OTLP encoder: both twins write the same bytes, and every decoded point equals
the snapshot and the generated data behind it."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pytest

from bizops_otel import Config, attributes
from bizops_otel.aggregate._layout import OUTCOMES
from bizops_otel.export.model import BOUNDARIES
from bizops_otel.export.otlp import _points_py, _wire, encode, encoder
from tests.conftest import native_module
from tests.datasets import traffic
from tests.keys import EVERY_KEY
from tests.otlp_decode import decode, value

T0 = 1_700_000_000 * 10**9
RESOURCE = {"service.name": "shop", "service.instance.id": "worker-1"}
PAGES = ("checkout", "product", "cart")


def native() -> Any:
    return native_module("export.otlp._points_c")


def feed(Aggregator: Any, n: int = 3000, seed: int = 5) -> tuple[Any, dict[str, Any]]:
    """Generated traffic over three page groups, with and without a campaign, a third of
    the requests without an outcome; returns the aggregator and the truth by key."""
    data = traffic(seed, n=n)
    agg = Aggregator(Config(**EVERY_KEY))
    truth: dict[tuple[str, str], dict[str, list[float]]] = {}
    for i in range(n):
        key = (PAGES[i % 3], "spring" if i % 4 == 0 else "")
        kpis: dict[str, float] = {"order_value": float(data.order_value[i])}
        outcome = "none"
        if i % 3 != 1:
            kpis["conversion"] = float(data.conversion[i])
            outcome = "converted" if data.conversion[i] == 1.0 else "not_converted"
        latency = float(data.latency[i])
        agg.record(key, latency, kpis, end_ns=T0 + i * 1000)
        truth.setdefault(key, {o: [] for o in OUTCOMES})[outcome].append(latency)
    return agg, truth


def test_point_kernels_write_the_same_bytes() -> None:
    rng = np.random.default_rng(3)
    rows_labels = [_wire.attributes(7, {"bizops.page_group": f"p{i}", "x": "é" * (i % 5)})
                   for i in range(300)]
    rows = rng.integers(0, 300, 1000).astype(np.int64)
    values = np.concatenate([rng.normal(0, 1e6, 990), [0.0, -0.0, math.inf, -math.inf,
                                                        math.nan, 5e-324, 1e308, 1.0, 2.0, 3.0]])
    head = _wire.field_fixed64(2, T0) + _wire.field_fixed64(3, T0 + 7)
    extra = _wire.attributes(7, {"bizops.kpi": "order_value"})
    pure = _points_py.number_points(rows_labels, extra, rows, values, head)
    assert native().number_points(rows_labels, extra, rows, values, head) == pure
    below = np.sort(rng.integers(0, 1000, (1000, 12)), axis=1).astype(np.int64)
    totals = below[:, -1] + rng.integers(0, 50, 1000)
    sums = rng.uniform(0, 1e4, 1000)
    bounds = _wire.field_bytes(7, np.asarray(BOUNDARIES, "<f8").tobytes())
    pure = _points_py.histogram_points(rows_labels, extra, rows, below, totals, sums, head,
                                       bounds)
    assert native().histogram_points(rows_labels, extra, rows, below, totals, sums, head,
                                     bounds) == pure
    with pytest.raises(IndexError):
        native().number_points(rows_labels[:2], b"", np.array([5], np.int64),
                               np.array([1.0]), head)


def test_encoders_of_both_twins_write_identical_requests(
        Aggregator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    agg, _ = feed(Aggregator, n=600)
    snapshot = agg.snapshot(now_ns=T0 + 10**9)
    native_body = encode(snapshot, resource_attributes=RESOURCE, time_ns=T0 + 10**9)
    monkeypatch.setattr(encoder, "number_points", _points_py.number_points)
    monkeypatch.setattr(encoder, "histogram_points", _points_py.histogram_points)
    assert encode(snapshot, resource_attributes=RESOURCE, time_ns=T0 + 10**9) == native_body


def test_every_decoded_point_equals_the_snapshot_and_the_data(Aggregator: Any) -> None:
    agg, truth = feed(Aggregator)
    snapshot = agg.snapshot(now_ns=T0 + 10**9)
    when = time.time_ns() + 10**9  # the export's time, after the aggregator started
    metrics, resources = decode(encode(snapshot, resource_attributes=RESOURCE, time_ns=when))
    assert resources == [RESOURCE]
    key_attributes = {key: frozenset((d, v) for d, v in zip(
        (attributes.PAGE_GROUP, attributes.CAMPAIGN_ID), key, strict=True) if v)
        for key in snapshot}
    # Raw sums: cumulative, monotonic, starting when the aggregator started.
    for name in ("bizops.requests", "bizops.kpi.pairs", "bizops.kpi.cross.sum"):
        metric = metrics[name]
        assert (metric.kind, metric.monotonic, metric.temporality) == ("sum", True, 2)
        for point in metric.points.values():
            assert point.start_time_unix_nano == snapshot.started_ns <= when
            assert point.time_unix_nano == when
    for key, stats in snapshot.items():
        labels = key_attributes[key]
        assert value(metrics["bizops.requests"].points[labels]) == stats.count
        for kpi in ("order_value", "conversion"):
            sums = stats.raw_sums(kpi)
            with_kpi = labels | {("bizops.kpi", kpi)}
            if sums.n == 0:  # a KPI never seen on the key has no points there
                assert with_kpi not in metrics["bizops.kpi.pairs"].points
                continue
            assert value(metrics["bizops.kpi.pairs"].points[with_kpi]) == sums.n
            for name, expected in (("bizops.kpi.latency.sum", sums.sum_t),
                                   ("bizops.kpi.latency.sum_of_squares", sums.sum_t2),
                                   ("bizops.kpi.value.sum", sums.sum_v),
                                   ("bizops.kpi.cross.sum", sums.sum_tv)):
                assert value(metrics[name].points[with_kpi]) == expected, (name, key)
        pearson = metrics["bizops.kpi.correlation"].points[
            labels | {("bizops.kpi", "order_value"), ("method", "pearson"),
                      ("bizops.window", "cumulative")}]
        assert value(pearson) == pytest.approx(stats.pearson("order_value").r, rel=1e-12)
        # Latency: one histogram point per key and outcome, against the generated data.
        histogram = metrics["bizops.request.duration"]
        assert (histogram.kind, histogram.unit, histogram.temporality) == ("histogram", "s", 2)
        for outcome, latencies in truth[key].items():
            point = histogram.points.get(labels | {("bizops.outcome", outcome)})
            if not latencies:
                assert point is None
                continue
            observed = np.array(latencies)
            assert point.count == observed.size == sum(point.bucket_counts)
            assert point.sum == pytest.approx(observed.sum(), rel=1e-9)
            assert list(point.explicit_bounds) == list(BOUNDARIES)
            expected = np.diff([0, *(np.sum(observed < b) for b in BOUNDARIES), observed.size])
            assert list(point.bucket_counts) == expected.tolist()
            assert not point.HasField("min") and not point.HasField("max")
    quantiles = metrics["bizops.request.duration.quantile"]
    assert quantiles.kind == "gauge"
    p95 = quantiles.points[key_attributes[("checkout", "")] | {
        ("bizops.quantile", "0.95"), ("bizops.window", "cumulative")}]
    assert value(p95) == pytest.approx(snapshot[("checkout", "")].quantile(0.95), rel=1e-12)


def test_overflow_is_marked_as_the_sdk_marks_it_and_empty_values_are_left_out(
        Aggregator: Any) -> None:
    agg = Aggregator(Config(**EVERY_KEY, max_keys=2))
    for i in range(5):
        agg.record((f"page{i}", ""), 0.1, {"conversion": 1.0})
    snapshot = agg.snapshot()
    metrics, _ = decode(encode(snapshot, resource_attributes=RESOURCE))
    requests = metrics["bizops.requests"].points
    assert requests[frozenset({("otel.metric.overflow", True)})].as_double == 3.0
    assert requests[frozenset({("bizops.page_group", "page0")})].as_double == 1.0
    assert len(requests) == 3


def test_large_exports_split_into_valid_requests_under_the_limit(Aggregator: Any) -> None:
    agg = Aggregator(Config(**EVERY_KEY, max_keys=3000))
    for i in range(3000):
        agg.record((f"page{i}", "c" if i % 2 else ""), 0.05 + i * 1e-4,
                   {"order_value": float(i), "conversion": float(i % 2)})
    snapshot = agg.snapshot()
    built = encoder.metrics(snapshot, time_ns=T0)
    resource = encoder.resource_field(RESOURCE)
    whole = encoder.requests(built, resource, max_bytes=1 << 40)
    parts = encoder.requests(built, resource, max_bytes=512 * 1024)
    assert len(whole) == 1 and len(parts) > 2
    assert max(len(p) for p in parts) <= 512 * 1024 + 1024  # framing's slack at most
    merged, resources = decode(*parts)
    single, _ = decode(*whole)
    assert resources == [RESOURCE] * len(parts)
    assert merged.keys() == single.keys()
    for name, metric in single.items():
        assert merged[name].points == metric.points, name


def test_long_dimension_values_still_fit_the_request_limit(Aggregator: Any) -> None:
    """Chunks are sized by bytes: 1,024-character values on two dimensions would make a
    chunk of 2,048 points several megabytes, larger than a Collector accepts."""
    agg = Aggregator(Config(**EVERY_KEY, max_keys=3000, max_value_length=1024))
    for i in range(3000):
        agg.record((f"{i:04d}" + "p" * 1020, f"{i:04d}" + "c" * 1020), 0.1 + i * 1e-4,
                   {"order_value": 1.0, "conversion": 1.0})
    built = encoder.metrics(agg.snapshot(), time_ns=T0)
    parts = encoder.requests(built, encoder.resource_field(RESOURCE))
    assert len(parts) > 3
    assert max(len(p) for p in parts) <= encoder.DEFAULT_MAX_BYTES + 1024
    merged, _ = decode(*parts)
    assert len(merged["bizops.requests"].points) == 3000
