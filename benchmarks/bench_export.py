"""Export cost at 10k keys: snapshot, metric model, Prometheus scrape, OTel collection.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_export.py [--keys N]

Each key holds 20 spans with three KPIs, spread over the recent window, so both the
cumulative and the recent families are exported. The peer is prometheus_client exposing
what a hand-rolled exporter would hold for the same keys (a labelled Histogram and two
counters), serialised in the same run. Target: collect and scrape within 50 ms.

Two floors put the figures in proportion: copying the exposition's bytes once, and
serving the same bytes, already rendered, over HTTP. The same render and scrape are also
timed at the default key limit (``Config().max_keys``).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import numpy as np
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)

sys.path.insert(0, str(Path(__file__).parent))
from _timing import millis, table, verdict

import bizops_otel
from bizops_otel import Config
from bizops_otel.export.exposition import render
from bizops_otel.export.exposition import start_http_server as serve_direct
from bizops_otel.export.model import metric_families
from bizops_otel.export.otel import OTelMetrics
from bizops_otel.export.prometheus import BizOpsCollector


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def fed_aggregator(keys: int, export_derived: bool = True) -> bizops_otel.Aggregator:
    aggregator = bizops_otel.Aggregator(Config(max_keys=keys, export_derived=export_derived))
    rng = np.random.default_rng(1)
    now = time.time_ns()
    for step in range(20):
        latency = rng.lognormal(-1.0, 0.6, keys)
        end = now - (20 - step) * 5 * 10**9
        for key in range(keys):
            aggregator.record((f"page-{key % 50}", f"campaign-{key}"), float(latency[key]),
                              {"order_value": 20.0 + key % 90, "conversion": float(key % 3 == 0),
                               "items": 2.0}, end_ns=end)
    return aggregator


def sdk_reader() -> InMemoryMetricReader:
    try:  # SDKs from 1.45.2 fold points past 2,000 per stream unless told otherwise
        from opentelemetry.sdk.metrics import (
            ObservableCounter,
            ObservableGauge,
            ObservableUpDownCounter,
        )
        limits: Any = {kind: 10**7 for kind in (ObservableCounter, ObservableGauge,
                                                 ObservableUpDownCounter)}
        return InMemoryMetricReader(cardinality_limits=limits)  # type: ignore[call-arg]
    except (ImportError, TypeError):
        return InMemoryMetricReader()


def series_in(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def serve_constant(body: bytes) -> tuple[WSGIServer, threading.Thread]:
    """A server that returns ``body`` as it is, through the same WSGI stack as the
    direct exposition: what a scrape costs with no rendering at all."""
    def app(environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    server = make_server("127.0.0.1", 0, app, server_class=WSGIServer,
                         handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def otel_collection_ms(keys: int) -> tuple[float, int]:
    """One OTel SDK collection of every instrument, and how many points it produced."""
    aggregator = fed_aggregator(keys)
    reader = sdk_reader()
    OTelMetrics(MeterProvider(metric_readers=[reader]), aggregator.snapshot, Config())
    data = reader.get_metrics_data()
    points = sum(len(m.data.data_points) for rm in data.resource_metrics
                 for sm in rm.scope_metrics for m in sm.metrics)
    return millis(reader.get_metrics_data, repeats=3), points


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--otel-keys", type=int, default=1_000,
                        help="keys for the OTel SDK collection, which is far slower")
    args = parser.parse_args()
    keys = args.keys
    aggregator = fed_aggregator(keys)
    snapshot = aggregator.snapshot()
    registry = CollectorRegistry()
    registry.register(BizOpsCollector(aggregator.snapshot))
    body = generate_latest(registry)
    series = series_in(body)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    direct_server, direct_thread = serve_direct(0, aggregator.snapshot, addr="127.0.0.1")

    direct_body = render(aggregator.snapshot())
    constant_server, constant_thread = serve_constant(direct_body)

    def scraper(server: object, gzip: bool = False) -> Callable[[], None]:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"  # type: ignore[attr-defined]
        request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"} if gzip else {})

        def scrape() -> None:
            with urllib.request.urlopen(request, timeout=60) as reply:
                reply.read()
        return scrape

    otel_ms, otel_points = otel_collection_ms(args.otel_keys)

    lean = fed_aggregator(keys, export_derived=False)
    lean_body = render(lean.snapshot())
    lean_series = series_in(lean_body)

    peer = CollectorRegistry()
    histogram = Histogram("request_duration_seconds", "latency", ["page_group", "campaign"],
                          registry=peer)
    counter = Counter("order_value", "orders", ["page_group", "campaign"], registry=peer)
    requests = Counter("requests", "requests", ["page_group", "campaign"], registry=peer)
    for key in range(keys):
        labels = (f"page-{key % 50}", f"campaign-{key}")
        histogram.labels(*labels).observe(0.3)
        counter.labels(*labels).inc(20.0)
        requests.labels(*labels).inc()
    peer_body = generate_latest(peer)

    default_keys = Config().max_keys
    small = fed_aggregator(default_keys)
    small_server, small_thread = serve_direct(0, small.snapshot, addr="127.0.0.1")
    small_series = series_in(render(small.snapshot()))
    small_render = f"direct exposition at {default_keys} keys ({small_series} series): render"
    small_scrape = f"direct exposition at {default_keys} keys: scrape over HTTP"

    rows = [
        ("aggregator.snapshot()", millis(aggregator.snapshot)),
        ("metric model from a snapshot", millis(lambda: metric_families(snapshot))),
        ("direct exposition: render(snapshot())", millis(lambda: render(aggregator.snapshot()))),
        ("direct exposition: scrape over HTTP", millis(scraper(direct_server))),
        (f"floor: one copy of the {len(direct_body) / 1e6:.1f} MB body",
         millis(lambda: bytearray(direct_body))),
        ("floor: the same body, pre-rendered, scraped over HTTP",
         millis(scraper(constant_server))),
        (small_render, millis(lambda: render(small.snapshot()))),
        (small_scrape, millis(scraper(small_server))),
        (f"direct exposition at {default_keys} keys: scrape, gzip (as Prometheus asks)",
         millis(scraper(small_server, gzip=True))),
        ("direct exposition: scrape, gzip (as Prometheus asks)",
         millis(scraper(direct_server, gzip=True), repeats=3)),
        (f"direct exposition, export_derived=False ({lean_series} series): render",
         millis(lambda: render(lean.snapshot()))),
        ("prometheus_client collector: generate_latest",
         millis(lambda: generate_latest(registry))),
        ("prometheus_client collector: scrape over HTTP", millis(scraper(server))),
        (f"OTel SDK collection at {args.otel_keys} keys ({otel_points} points)", otel_ms),
        ("peer: prometheus_client generate_latest, same keys",
         millis(lambda: generate_latest(peer))),
    ]
    for running, worker in ((server, thread), (direct_server, direct_thread),
                            (constant_server, constant_thread), (small_server, small_thread)):
        running.shutdown()
        worker.join(10)
    implementation = "native" if bizops_otel.NATIVE else "pure"
    peer_series = series_in(peer_body)
    print(f"bizops-otel {bizops_otel.__version__} ({implementation}); {keys} keys, "
          f"{series} Prometheus series ({len(body) / 1e6:.1f} MB); the peer exposes "
          f"{peer_series} series\n")
    print(table([(name, f"{value:.1f}") for name, value in rows], ("operation", "ms")))
    timings = dict(rows)
    collect = timings["direct exposition: render(snapshot())"]
    scrape_ms = timings["direct exposition: scrape over HTTP"]
    direct_series = series_in(direct_body)
    per_series = collect * 1e6 / direct_series
    peer_per_series = timings["peer: prometheus_client generate_latest, same keys"] * 1e6 / \
        peer_series
    print(f"\n- render: {per_series:.0f} ns per series; the peer: {peer_per_series:.0f} ns "
          f"per series ({peer_per_series / per_series:.1f}× as much)")
    for label, ms in ((f"collect (direct exposition) at {keys} keys", collect),
                      (f"scrape (direct exposition) at {keys} keys", scrape_ms),
                      (f"collect at {default_keys} keys", timings[small_render]),
                      (f"scrape at {default_keys} keys", timings[small_scrape])):
        print(f"- {label} ≤ 50 ms: {ms:.0f} ms — {verdict(ms <= 50)}")


if __name__ == "__main__":
    main()
