"""What a client chooses never becomes a key, and every refused value is visible in the
exports: page groups of unrouted requests, WSGI paths, the process-wide drop counts."""

from __future__ import annotations

import os
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

import bizops_otel
from bizops_otel import Config, drops, record_order
from bizops_otel import attributes as attr
from bizops_otel.aggregate import persist
from bizops_otel.export.exposition import render
from bizops_otel.export.otlp import encode
from bizops_otel.span import context as business
from tests.keys import EVERY_KEY
from tests.otlp_decode import decode, value
from tests.spans import pipeline

SERVER, CONSUMER = SpanKind.SERVER, SpanKind.CONSUMER


@pytest.fixture(autouse=True)
def fresh_helpers() -> None:
    business.configure(Config(**EVERY_KEY))
    drops.reset()


def page_groups(snapshot: Any) -> dict[str, int]:
    groups: dict[str, int] = {}
    for key in snapshot:
        groups[key[0]] = groups.get(key[0], 0) + snapshot[key].count
    return groups


def test_unrouted_requests_share_one_page_group_and_never_their_path(Aggregator: Any) -> None:
    """404s and routeless requests of every convention: the old (``http.method``,
    ``http.target``, a span name with the path) and the stable (``http.request.method``,
    ``url.path``, ``url.full``). A rule that matches the path still names its group; a
    consumer span keeps the name its code gave it; a routed request its route."""
    p = pipeline(Aggregator, Config(**EVERY_KEY, page_groups=(("/product/*", "product"),)))
    hostile = [
        ("GET /wp-admin/setup.php",
         {"http.method": "GET", attr.HTTP_TARGET: "/wp-admin/setup.php"}),
        ("GET", {attr.HTTP_REQUEST_METHOD: "GET", attr.URL_PATH: "/.env"}),
        ("GET /x", {attr.URL_FULL: "http://shop/x%00y?utm_campaign=z"}),
        ("POST /a/b/c", {attr.HTTP_METHOD: "POST"}),
    ]
    for i in range(200):  # 200 distinct made-up paths
        hostile.append((f"GET /random-{i}", {attr.HTTP_TARGET: f"/random-{i}"}))
    for name, attributes in hostile:
        with p.tracer.start_as_current_span(name, kind=SERVER, attributes=attributes):
            pass
    with p.tracer.start_as_current_span("GET /product/7", kind=SERVER,
                                        attributes={attr.HTTP_TARGET: "/product/7"}):
        pass
    with p.tracer.start_as_current_span("GET /cart", kind=SERVER,
                                        attributes={attr.HTTP_ROUTE: "/cart"}):
        pass
    with p.tracer.start_as_current_span("orders process", kind=CONSUMER):
        pass
    groups = page_groups(p.aggregator.snapshot())
    assert groups == {"unmatched": 204, "product": 1, "/cart": 1, "orders process": 1}


def test_wsgi_paths_are_matched_as_the_client_sent_them(Aggregator: Any) -> None:
    """PEP 3333 gives WSGI applications the request's bytes as latin-1 text, so a rule
    on ``/produkt/中*`` would never see ``中``; the processor decodes such a path as UTF-8,
    as the framework does."""
    p = pipeline(Aggregator, Config(**EVERY_KEY, page_groups=(("/produkt/中*", "produkt-zh"),
                                                 ("/café", "cafe"))))
    as_wsgi = "/produkt/中文".encode().decode("latin-1")
    for target in (as_wsgi, "/produkt/中文", "/café"):  # WSGI text, decoded, true latin-1
        with p.tracer.start_as_current_span("GET", kind=SERVER,
                                            attributes={attr.HTTP_TARGET: target}):
            pass
    assert page_groups(p.aggregator.snapshot()) == {"produkt-zh": 2, "cafe": 1}


def test_every_refused_value_reaches_both_exports_and_the_state_files(
        tmp_path: Any) -> None:
    """Values refused before they reach the aggregator (``record_order`` of nan, inf, −5,
    1e30; a helper outside a request) are counted by reason beside the aggregator's own
    drops, in the scrape, in OTLP and in the files pre-fork workers merge."""
    provider = TracerProvider()
    handle = bizops_otel.install(provider, campaign_interval=0)
    try:
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span("POST /checkout", kind=SERVER,
                                          attributes={attr.HTTP_ROUTE: "/checkout"}):
            for bad in (float("nan"), float("inf"), -5.0, 1e30):
                record_order(bad)
        record_order(10.0)  # outside a request
        with tracer.start_as_current_span("GET /x", kind=SERVER, attributes={
                attr.HTTP_ROUTE: "/x", attr.ORDER_VALUE: "12"}):  # refused by the aggregator
            pass
        expected = {"kpi_nan": 1, "kpi_infinite": 1, "kpi_below_minimum": 1,
                    "kpi_above_maximum": 1, "no_recording_span": 1, "kpi_type": 1}
        snapshot = handle.snapshot()
        assert {r: n for r, n in snapshot.dropped.items() if n} == expected

        scraped = {s.labels["reason"]: s.value
                   for f in text_string_to_metric_families(render(snapshot).decode())
                   for s in f.samples if s.name == "bizops_internal_dropped_total"}
        assert {r: n for r, n in scraped.items() if n} == expected

        metrics, _ = decode(encode(snapshot))
        pushed = {dict(k)["reason"]: value(p)
                  for k, p in metrics["bizops.internal.dropped"].points.items()}
        assert {r: n for r, n in pushed.items() if n} == expected

        path = tmp_path / "state.npz"
        persist.write(snapshot, path)
        merged = persist.read(path).merge(persist.read(path))
        assert {r: n for r, n in merged.dropped.items() if n} == {
            r: 2 * n for r, n in expected.items()}
    finally:
        handle.shutdown()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork")
def test_a_forked_worker_starts_with_no_drops_of_its_parent() -> None:
    drops.count(drops.RULE_ERROR, "planted in the parent")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its counts, then leave without running pytest's exit
        os.close(read)
        os.write(write, repr(drops.counts()).encode())
        drops.count(drops.RULE_ERROR, "the child's own")
        os.write(write, b"|" + repr(drops.counts()).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as reply:
        child = reply.read()
    os.waitpid(pid, 0)
    assert child == "{}|{'rule_error': 1}"
    assert drops.counts() == {"rule_error": 1}
