"""The Prometheus collector: names, types and numbers, scraped over real HTTP."""

from __future__ import annotations

import math
import urllib.request
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from bizops_otel import Config
from bizops_otel.aggregate._layout import bucket_edges, bucket_of
from bizops_otel.export.exposition import render
from bizops_otel.export.model import BOUNDARIES
from bizops_otel.export.prometheus import BizOpsCollector
from tests.datasets import traffic
from tests.keys import EVERY_KEY
from tests.processes import free_port


def fed(aggregator_cls: Any, **config: Any) -> tuple[Any, Any]:
    agg = aggregator_cls(Config(**EVERY_KEY, max_keys=2, **config))
    data = traffic(31, n=900)
    for i in range(900):
        agg.record(("checkout", ["a", "b", "c"][i % 3]), float(data.latency[i]),
                   {"order_value": float(data.order_value[i]),
                    "conversion": float(data.conversion[i])}, error=i % 50 == 0)
    agg.record(("checkout", "a"), 0.2, {"order_value": "bad"})
    return agg, data


def scrape(registry: CollectorRegistry) -> dict[str, Any]:
    text = generate_latest(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert len(families) == text.count("# TYPE "), "one family per name"
    return families


def samples(family: Any, suffix: str = "", **labels: str) -> list[Any]:
    return [s for s in family.samples if s.name == family.name + suffix
            and all(s.labels.get(k) == v for k, v in labels.items())]


def test_raw_sums_and_counts_equal_the_snapshot(Aggregator: Any) -> None:
    agg, _data = fed(Aggregator)
    registry = CollectorRegistry()
    registry.register(BizOpsCollector(agg.snapshot))
    families = scrape(registry)
    snapshot = agg.snapshot()
    requests = families["bizops_requests"]
    assert sum(s.value for s in samples(requests, "_total")) == 901
    assert samples(requests, "_total", otel_metric_overflow="true")[0].value == 300
    key_a = {"bizops_page_group": "checkout", "bizops_campaign_id": "a"}
    stats = snapshot[("checkout", "a")]
    sums = stats.raw_sums("order_value")
    expected = {"bizops_kpi_pairs": sums.n, "bizops_kpi_latency_sum_seconds": sums.sum_t,
                "bizops_kpi_latency_sum_of_squares_s2": sums.sum_t2,
                "bizops_kpi_value_sum": sums.sum_v, "bizops_kpi_value_sum_of_squares": sums.sum_v2,
                "bizops_kpi_cross_sum_seconds": sums.sum_tv}
    for name, value in expected.items():
        (sample,) = samples(families[name], "_total", bizops_kpi="order_value", **key_a)
        assert sample.value == pytest.approx(value, rel=1e-12), name
    assert samples(families["bizops_request_errors"], "_total", **key_a)[0].value == stats.errors
    dropped = samples(families["bizops_internal_dropped"], "_total", reason="kpi_type")
    assert dropped[0].value == 1
    assert samples(families["bizops_internal_keys"])[0].value == 2


def test_latency_buckets_by_outcome_are_exact(Aggregator: Any) -> None:
    agg, data = fed(Aggregator)
    registry = CollectorRegistry()
    registry.register(BizOpsCollector(agg.snapshot))
    histogram = scrape(registry)["bizops_request_duration_seconds"]
    assert histogram.type == "histogram"
    rows = np.arange(900)
    in_a = rows % 3 == 0
    edges = bucket_edges()
    for outcome, value in (("converted", 1.0), ("not_converted", 0.0)):
        chosen = data.latency[in_a & (data.conversion == value)]
        buckets = {s.labels["le"]: s.value for s in samples(
            histogram, "_bucket", bizops_campaign_id="a", bizops_outcome=outcome)}
        assert len(buckets) == len(BOUNDARIES) + 1
        assert buckets["+Inf"] == len(chosen)
        for boundary in BOUNDARIES:
            index = int(np.searchsorted(edges, boundary))  # the boundary is an internal edge
            below = sum(1 for t in chosen if bucket_of(float(t)) < index)
            assert buckets[f"{boundary:.6g}"] == below


def test_derived_gauges_per_window(Aggregator: Any) -> None:
    agg, _ = fed(Aggregator)
    registry = CollectorRegistry()
    registry.register(BizOpsCollector(agg.snapshot))
    families = scrape(registry)
    stats = agg.snapshot()[("checkout", "b")]
    key_b = {"bizops_page_group": "checkout", "bizops_campaign_id": "b"}
    for window in ("cumulative", "recent"):
        (pearson,) = samples(families["bizops_kpi_correlation"], bizops_kpi="order_value",
                             method="pearson", bizops_window=window, **key_b)
        assert pearson.value == pytest.approx(stats.pearson("order_value").r, rel=1e-12)
        (spearman,) = samples(families["bizops_kpi_correlation"], bizops_kpi="conversion",
                              method="spearman", bizops_window=window, **key_b)
        assert spearman.value == pytest.approx(stats.spearman("conversion"), rel=1e-12)
        (p99,) = samples(families["bizops_request_duration_quantile_seconds"],
                         bizops_quantile="0.99", bizops_window=window, **key_b)
        assert p99.value == pytest.approx(stats.quantile(0.99), rel=1e-12)
    (slope,) = samples(families["bizops_kpi_slope_per_second"], bizops_kpi="order_value",
                       bizops_window="cumulative", **key_b)
    assert slope.value == pytest.approx(stats.slope("order_value"), rel=1e-12)


def test_served_by_start_http_server_and_wsgi(Aggregator: Any) -> None:
    agg, _ = fed(Aggregator)
    registry = CollectorRegistry()
    registry.register(BizOpsCollector(agg.snapshot))  # describe() runs here
    port = free_port()
    # prometheus_client 0.20 and later return the server and its thread; before, the server
    # serves on a daemon thread until the process ends.
    started = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            body = reply.read().decode()
        assert 'bizops_kpi_pairs_total{bizops_campaign_id="a"' in body
    finally:
        if started is not None:
            server, thread = started
            server.shutdown()
            thread.join(10)
    app = make_wsgi_app(registry)
    chunks = app({"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": ""},
                 lambda status, headers: None)
    assert b"bizops_request_duration_seconds_bucket" in b"".join(chunks)


def test_nothing_to_export_yet() -> None:
    registry = CollectorRegistry()
    registry.register(BizOpsCollector(lambda: None))
    assert scrape(registry) == {}


def _sample_set(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    """Samples by name and non-empty labels: Prometheus treats an empty value as absent."""
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if v)),
             round(s.value, 12))
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_direct_exposition_equals_the_collector(Aggregator: Any) -> None:
    from bizops_otel.export.exposition import render

    agg, _ = fed(Aggregator)
    agg.record(('odd "page"\\', "new\nline"), 0.3, {"order_value": 5.0})
    registry = CollectorRegistry()
    registry.register(BizOpsCollector(agg.snapshot))
    snapshot = agg.snapshot()
    collector_text = generate_latest(registry).decode()
    direct_text = render(snapshot).decode()
    direct = _sample_set(direct_text)
    assert direct == _sample_set(collector_text)
    assert len(direct) > 100
    # The direct exposition leaves empty labels out; the collector writes them empty.
    assert '=""' not in direct_text and 'otel_metric_overflow=""' in collector_text
    types = {f.name: f.type for f in text_string_to_metric_families(direct_text)}
    assert types == {f.name: f.type for f in text_string_to_metric_families(collector_text)}
    assert render(None) == b""


def test_direct_exposition_over_http(Aggregator: Any) -> None:
    from bizops_otel.export.exposition import start_http_server as serve

    agg, _ = fed(Aggregator)
    server, thread = serve(0, agg.snapshot, addr="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            families = {f.name for f in text_string_to_metric_families(reply.read().decode())}
    finally:
        server.shutdown()
        thread.join(10)
    assert {"bizops_kpi_pairs", "bizops_request_duration_seconds"} <= families


def test_direct_exposition_is_gzipped_when_the_client_accepts_it(Aggregator: Any) -> None:
    """Prometheus sends ``Accept-Encoding: gzip``; other clients get the plain text."""
    import gzip

    from bizops_otel.export.exposition import accepts_gzip, render
    from bizops_otel.export.exposition import start_http_server as serve

    agg, _ = fed(Aggregator)
    snapshot = agg.snapshot()
    plain = render(snapshot)
    server, thread = serve(0, lambda: snapshot, addr="127.0.0.1")
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    try:
        request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert reply.headers["Content-Encoding"] == "gzip"
            packed = reply.read()
        with urllib.request.urlopen(url, timeout=10) as reply:
            assert reply.headers["Content-Encoding"] is None
            assert reply.read() == plain
    finally:
        server.shutdown()
        thread.join(10)
    assert gzip.decompress(packed) == plain and len(packed) < len(plain) / 4
    assert accepts_gzip("gzip") and accepts_gzip("deflate, GZIP;q=0.5") and accepts_gzip("*")
    assert not accepts_gzip("") and not accepts_gzip("identity")
    assert not accepts_gzip("gzip;q=0") and not accepts_gzip("gzip; q=0.0, br")


def test_direct_exposition_shares_the_endpoint_with_an_application_registry(
        Aggregator: Any) -> None:
    """The application's own prometheus_client metrics come first; a BizOpsCollector on
    the same registry does not make the bizops series appear twice."""
    from prometheus_client import Counter

    from bizops_otel.export.exposition import make_wsgi_app as direct_app
    from bizops_otel.export.exposition import render

    agg, _ = fed(Aggregator)
    snapshot = agg.snapshot()
    registry = CollectorRegistry()
    Counter("shop_orders", "Orders placed", registry=registry).inc(7)

    def scrape_app(app: Any) -> str:
        chunks = app({"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics"},
                     lambda status, headers: None)
        return b"".join(chunks).decode()

    shared = scrape_app(direct_app(lambda: snapshot, registry=registry))
    families = {f.name: f for f in text_string_to_metric_families(shared)}
    assert families["shop_orders"].samples[0].value == 7.0
    assert _sample_set(shared) == _sample_set(generate_latest(registry).decode()) | \
        _sample_set(render(snapshot).decode())
    registry.register(BizOpsCollector(lambda: snapshot))
    both = scrape_app(direct_app(lambda: snapshot, registry=registry))
    helps = [line for line in both.splitlines() if line.startswith("# HELP bizops_")]
    assert len(helps) == len(set(helps)) > 10
    assert _sample_set(both) == _sample_set(shared)


def test_rendered_labels_are_reused_across_scrapes_and_stay_bounded(
        Aggregator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from bizops_otel.export import exposition

    monkeypatch.setattr(exposition, "_RENDERED_LABELS", {})
    monkeypatch.setattr(exposition, "RENDERED_LABELS_LIMIT", 50)
    agg = Aggregator(Config(**EVERY_KEY, max_keys=1000))
    for key in range(40):
        agg.record((f"page-{key}", ""), 0.2)
    first = exposition.render(agg.snapshot())
    (table,) = exposition._RENDERED_LABELS.values()
    assert len(table) == 40
    assert exposition.render(agg.snapshot()) == first
    sizes = []
    for batch in range(1, 11):    # keys that come and go: the table starts afresh
        other = Aggregator(Config(**EVERY_KEY, max_keys=1000))
        for key in range(40):
            other.record((f"page-{batch}-{key}", ""), 0.2)
        body = exposition.render(other.snapshot()).decode()
        assert _sample_set(body) == _sample_set(generate_latest(registry_of(other)).decode())
        sizes.append(len(next(iter(exposition._RENDERED_LABELS.values()))))
    assert max(sizes) <= 50 + 40 and min(sizes) == 40


def registry_of(agg: Any) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(BizOpsCollector(agg.snapshot))
    return registry


def test_quantile_gauges_equal_the_snapshot_at_the_edges_of_the_range(Aggregator: Any) -> None:
    """Keys below 1 ms, above the top edge, and in between: the vectorised gauges work on
    the occupied span of buckets only, and must still equal KeyStats.quantile."""
    from bizops_otel.export.exposition import render

    agg = Aggregator(Config(**EVERY_KEY))
    rng = np.random.default_rng(4)
    for page, scale in (("tiny", 1e-4), ("huge", 100.0), ("mid", 0.3), ("mixed", None)):
        for _ in range(200):
            latency = float(rng.lognormal(np.log(scale), 0.3)) if scale else float(
                rng.choice([2e-4, 0.05, 90.0]))
            agg.record((page, ""), latency)
    snapshot = agg.snapshot()
    families = {f.name: f for f in text_string_to_metric_families(render(snapshot).decode())}
    for page in ("tiny", "huge", "mid", "mixed"):
        stats = snapshot[(page, "")]
        for q in ("0.5", "0.9", "0.95", "0.99"):
            (sample,) = samples(families["bizops_request_duration_quantile_seconds"],
                                bizops_quantile=q, bizops_window="cumulative",
                                bizops_page_group=page)
            assert sample.value == pytest.approx(stats.quantile(float(q)), rel=1e-12), (page, q)


def test_served_by_make_asgi_app_under_uvicorn(Aggregator: Any) -> None:
    """prometheus_client's ASGI app with the collector, served by a real uvicorn on
    127.0.0.1."""
    import socket
    import threading
    import time

    import uvicorn
    from prometheus_client import make_asgi_app

    agg, _ = fed(Aggregator)
    registry = CollectorRegistry()
    registry.register(BizOpsCollector(agg.snapshot))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(make_asgi_app(registry), host="127.0.0.1",
                                           port=port, log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            body = reply.read().decode()
    finally:
        server.should_exit = True
        thread.join(10)
    families = {f.name: f for f in text_string_to_metric_families(body)}
    (pairs,) = samples(families["bizops_kpi_pairs"], "_total", bizops_kpi="order_value",
                       bizops_page_group="checkout", bizops_campaign_id="b")
    assert pairs.value == agg.snapshot()[("checkout", "b")].pairs("order_value")


def test_derived_gauges_can_be_left_out(Aggregator: Any) -> None:
    """export_derived=False keeps every raw sum and bucket, drops the derived gauges, and
    travels with persisted state (so a multi-process merge honours it)."""
    from bizops_otel.aggregate import persist
    from bizops_otel.export.exposition import render

    full, _ = fed(Aggregator)
    lean, _ = fed(Aggregator, export_derived=False)
    derived = {"bizops_kpi_correlation", "bizops_kpi_slope_per_second",
               "bizops_conversion_rate", "bizops_request_duration_quantile_seconds"}
    def by_series(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {(name, labels): value for name, labels, value in _sample_set(text)}

    full_samples = by_series(render(full.snapshot()).decode())
    kept = {series: value for series, value in full_samples.items()
            if series[0] not in derived}
    for snapshot in (lean.snapshot(), persist.loads(persist.dumps(lean.snapshot()))):
        lean_samples = by_series(render(snapshot).decode())
        assert lean_samples.keys() == kept.keys()
        # The two aggregators may see a sub-window boundary at different spans, and then
        # add the same numbers in another order: equal to the last bits, not beyond.
        assert lean_samples == pytest.approx(kept, rel=1e-12)
        assert len(lean_samples) < len(full_samples)


def _histogram_quantile(q: float, bounds: list[float], cumulative: list[float]) -> float:
    """Prometheus's histogram_quantile: linear within the bucket holding rank q·n, the
    first bucket starting at 0, the +Inf bucket answered by the highest bound."""
    rank = q * cumulative[-1]
    lower, below = 0.0, 0.0
    for bound, count in zip([*bounds, math.inf], cumulative, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return bounds[-1]
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    raise AssertionError("unreachable")


def test_prometheus_p95_from_the_default_buckets_lands_near_the_true_p95(
        Aggregator: Any) -> None:
    """The default export bounds: histogram_quantile(0.95) over the scraped buckets,
    against numpy's p95 of the generated latencies, over ten distribution shapes."""
    from tests.datasets import DISTRIBUTIONS

    rng = np.random.default_rng(11)
    errors = {}
    for name, draw in DISTRIBUTIONS.items():
        latencies = np.clip(draw(rng, 20_000), 1.5e-3, 60.0)
        agg = Aggregator(Config(**EVERY_KEY, outcome=None, kpis=("order_value",)))
        agg.record_many(("p", ""), latencies)
        families = {f.name: f for f in text_string_to_metric_families(
            render(agg.snapshot()).decode())}
        buckets = sorted(((float(s.labels["le"]), s.value) for s in
                          families["bizops_request_duration_seconds"].samples
                          if s.name.endswith("_bucket")), key=lambda pair: pair[0])
        bounds = [le for le, _ in buckets[:-1]]
        estimate = _histogram_quantile(0.95, bounds, [count for _, count in buckets])
        errors[name] = abs(estimate / float(np.quantile(latencies, 0.95)) - 1)
    assert float(np.median(list(errors.values()))) < 0.06, errors
    assert max(errors.values()) < 0.25, errors


def test_export_buckets_choose_the_exported_bounds(Aggregator: Any) -> None:
    agg = Aggregator(Config(**EVERY_KEY, export_buckets=(0.1, 1.0)))
    agg.record(("a", ""), 0.05)
    agg.record(("a", ""), 0.5)
    agg.record(("a", ""), 5.0)
    scraped = render(agg.snapshot()).decode()
    families = {f.name: f for f in text_string_to_metric_families(scraped)}
    buckets = {s.labels["le"]: s.value
               for s in families["bizops_request_duration_seconds"].samples
               if s.name.endswith("_bucket")}
    assert list(buckets.values()) == [1.0, 2.0, 3.0] and len(buckets) == 3
    assert abs(float(next(iter(buckets))) - 0.1) < 0.01
