"""A real Flask app, instrumented by opentelemetry-instrumentation-flask, served on
127.0.0.1 by a real WSGI server and driven by real HTTP requests."""

from __future__ import annotations

import http.client
import json
import resource
from collections.abc import Iterator
from typing import Any

import pytest

from bizops_otel import Config, drops
from bizops_otel import attributes as attr
from bizops_otel.span import context as business
from tests.flask.webapp import serve
from tests.keys import EVERY_KEY


class Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self._connection = http.client.HTTPConnection(host, int(port), timeout=10)

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> int:
        payload = None if body is None else json.dumps(body)
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        self._connection.request(method, path, payload, all_headers)
        response = self._connection.getresponse()
        response.read()
        return response.status

    def close(self) -> None:
        self._connection.close()


@pytest.fixture(autouse=True)
def fresh_helpers() -> Iterator[None]:
    drops.reset()
    business._pinned_currency = None
    yield


def test_spans_carry_business_attributes_and_aggregates_match() -> None:
    config = Config(**EVERY_KEY, baggage_keys=("bizops.*",), base_currency="EUR",
                    currency_rates={"USD": 0.5},
                    page_groups=(("/product/*", "product"),))
    with serve(config=config) as shop:
        client = Client(shop.url)
        assert client.request("GET", "/landing?utm_campaign=spring&utm_source=mail",
                              headers={"Cookie": "sid=abc; theme=dark"}) == 200
        for product in range(3):
            assert client.request("GET", f"/product/{product}",
                                  headers={"baggage": "bizops.campaign.id=partner,other=x"}) == 200
        values = [(120.0, "EUR"), (80.0, "USD"), (30.0, None), (99.0, "GBP")]
        for value, currency in values:
            body = {"value": value, "currency": currency}
            assert client.request("POST", "/checkout", body,
                                  headers={"Cookie": "sid=abc"}) == 200
        client.close()
        spans = shop.exporter.get_finished_spans()
        snapshot = shop.handle.snapshot()
    assert snapshot is not None
    landing = next(s for s in spans if s.attributes.get(attr.HTTP_ROUTE) == "/landing")
    assert landing.attributes[attr.CAMPAIGN_ID] == "spring"
    assert landing.attributes[attr.CAMPAIGN_SOURCE] == "mail"
    assert landing.attributes[attr.SESSION_ID] == "abc"
    products = [s for s in spans if s.attributes.get(attr.PAGE_GROUP) == "product"]
    assert len(products) == 3
    assert all(s.attributes[attr.CAMPAIGN_ID] == "partner" for s in products)
    assert all("other" not in s.attributes for s in products)
    checkouts = [s for s in spans if s.attributes.get(attr.HTTP_ROUTE) == "/checkout"]
    assert sorted(s.attributes.get(attr.ORDER_VALUE, -1) for s in checkouts) == [-1, 30, 40, 120]
    payment = next(s for s in spans if s.name == "payment")
    assert attr.ORDER_VALUE not in payment.attributes  # written to the request span

    counts = {key: snapshot[key].count for key in snapshot}
    assert counts == {("/landing", "spring"): 1, ("product", "partner"): 3,
                      ("/checkout", ""): 4}
    checkout = snapshot[("/checkout", "")]
    assert checkout.pairs("order_value") == 3
    assert checkout.raw_sums("order_value").sum_v == 190.0
    assert checkout.conversion_rate() == 1.0 and checkout.pairs("conversion") == 3
    assert drops.counts() == {"currency_mismatch": 1}
    # Latencies are the spans' own durations.
    durations = sorted((s.end_time - s.start_time) * 1e-9 for s in checkouts)
    assert checkout.latency_sum == pytest.approx(sum(durations), rel=1e-9)


def _rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() // 1024


def test_hostile_campaigns_over_http_stay_bounded() -> None:
    """60k distinct campaigns, 10 kB and undecodable values, over real HTTP.

    The memory check: 40k campaigns after the first 20k may grow the process by under
    4 MiB, so anything kept per distinct campaign (a dict entry and its string are over
    100 bytes) fails it. Each request is a real one through Flask, about 1 ms here; the
    count is what the suite's time allows at that sensitivity."""
    total = 60_000
    # Every key admitted on first sight, so the first 50 campaigns fill the key space (the
    # admission of recurring values is tested in tests/test_key_lifecycle.py).
    with serve(export=False, max_keys=50, **EVERY_KEY) as shop:
        client = Client(shop.url)
        assert client.request("GET", "/landing?utm_campaign=" + "A" * 10_000) == 200
        assert client.request("GET", "/landing?utm_campaign=%ff%fe%c3%28") == 200
        for i in range(2, 20_000):
            client.request("GET", f"/landing?utm_campaign=c{i}")
        rss_at_20k = _rss_kib()
        for i in range(20_000, total):
            client.request("GET", f"/landing?utm_campaign=c{i}")
        rss_at_end = _rss_kib()
        client.close()
        snapshot = shop.handle.snapshot()
    assert snapshot is not None
    assert len(snapshot) == 50
    assert ("/landing", "A" * 64) in snapshot
    assert ("/landing", "\ufffd\ufffd\ufffd(") in snapshot
    assert snapshot.overflow is not None and snapshot.overflow.count == total - 50
    assert snapshot.total().count == total
    assert snapshot.dropped_total == 0 and drops.counts() == {}
    # 40k more distinct campaigns did not grow the process measurably.
    assert rss_at_end - rss_at_20k < 4 * 1024, (rss_at_20k, rss_at_end)
