"""The framework examples, each run as a user runs it: a real server on 127.0.0.1, real
requests, a scrape of /metrics and the spans pushed over OTLP to a receiver built from
opentelemetry-proto. Both HTTP semantic-convention modes: the default, and
``OTEL_SEMCONV_STABILITY_OPT_IN=http``."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.otlp_decode import decode, value
from tests.otlp_receiver import grpc_receiver
from tests.processes import free_port, reap, spawn, stop, wait_for_port

EXAMPLES = Path(__file__).parent.parent / "examples"
BIN = Path(sys.executable).parent
MODES = ["", "http"]


def request(port: int, method: str, path: str, cookie: str | None = None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers={"Cookie": cookie} if cookie else {})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def shop_visits(port: int, cookie_name: str) -> int:
    """Visit the shop; the number of 404s among the visits."""
    visitor = f"{cookie_name}=visitor-PLANTED-1"
    assert request(port, "GET", "/landing?utm_campaign=spring&utm_source=mail", visitor) == 200
    assert request(port, "GET", "/product/1", visitor) == 200
    assert request(port, "GET", "/product/2") == 200
    method = "POST" if cookie_name == "sid" else "GET"
    assert request(port, method, "/checkout?value=30", visitor) == 200
    # Paths a client makes up: 404s, one of them not ASCII. No label may carry them.
    assert request(port, "GET", "/no-such-page-PLANTED") == 404
    # opentelemetry-instrumentation-django fails on this one under Django's development
    # server in the default conventions (a 500 and no span, with bizops-otel off too).
    status = request(port, "GET", "/%E4%B8%AD/PLANTED?utm_x=1")
    assert status in (404, 500)
    return 1 + (status == 404)


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    assert "PLANTED" not in text
    return {(s.name, frozenset((k, v) for k, v in s.labels.items() if v)): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def check(points: dict[Any, float], spans: list[dict[str, str]], checkout: str,
          not_found: int) -> None:
    def requests(**labels: str) -> float:
        return points[("bizops_requests_total",
                       frozenset((f"bizops_{k}", v) for k, v in labels.items()))]

    assert requests(page_group="/landing", campaign_id="spring") == 1
    assert requests(page_group="product") == 2
    assert requests(page_group=checkout) == 1
    assert requests(page_group="unmatched") == not_found
    pairs = points[("bizops_kpi_pairs_total", frozenset({("bizops_page_group", checkout),
                                                         ("bizops_kpi", "order_value")}))]
    assert pairs == 1
    landing = [s for s in spans if s.get("bizops.campaign.id") == "spring"]
    assert landing and landing[0].get("bizops.campaign.source") == "mail"
    assert landing[0].get("session.id") == "visitor-PLANTED-1"


def run_example(arguments: list[str], cwd: Path, env: dict[str, str], port: int,
                metrics_port: int, cookie_name: str, checkout: str) -> None:
    with grpc_receiver() as (endpoint, received):
        # The checks count single visits under their own keys: keys on first sight, as
        # a service can configure (tests/test_key_lifecycle.py pins the default, two).
        environment = {**os.environ, **env, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                       "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_METRIC_EXPORT_INTERVAL": "500",
                       "BIZOPS_OTEL_QUIET": "1", "BIZOPS_OTEL_ADMISSION_COUNT": "1"}
        process = spawn(arguments, cwd=cwd, env=environment, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, text=True)
        try:
            wait_for_port(port, process)
            if metrics_port != port:
                wait_for_port(metrics_port, process)
            not_found = shop_visits(port, cookie_name)
            points = scrape(metrics_port)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with received.lock:
                    spans = list(received.spans)
                if any(s.get("bizops.campaign.id") for s in spans):
                    break
                time.sleep(0.2)
            stop(process)
        finally:
            reap(process)
        check(points, spans, checkout, not_found)
        # The same figures reached the OTLP receiver, pushed by the pusher (the SDK's own
        # MeterProvider pushes the instrumentation's metrics there too).
        with received.lock:
            bodies = [r.SerializeToString() for r in received.requests]
        ours = [b for b in bodies if b"bizops.requests" in b]
        assert ours, "no bizops export reached the receiver"
        metrics, _ = decode(ours[-1])
        assert sum(value(p) for p in metrics["bizops.requests"].points.values()) == 4 + not_found


@pytest.mark.parametrize("semconv", MODES)
def test_fastapi_example_under_uvicorn(semconv: str) -> None:
    port = free_port()
    run_example([str(BIN / "uvicorn"), "app:app", "--app-dir", str(EXAMPLES / "fastapi_shop"),
                 "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                EXAMPLES / "fastapi_shop", {"OTEL_SEMCONV_STABILITY_OPT_IN": semconv},
                port, port, "sid", "/checkout")


@pytest.mark.parametrize("semconv", MODES)
def test_django_example_under_opentelemetry_instrument(semconv: str) -> None:
    port, metrics_port = free_port(), free_port()
    run_example([str(BIN / "opentelemetry-instrument"), sys.executable, "manage.py",
                 "runserver", "--noreload", f"127.0.0.1:{port}"],
                EXAMPLES / "django_shop",
                {"OTEL_SEMCONV_STABILITY_OPT_IN": semconv,
                 "DJANGO_SETTINGS_MODULE": "shop.settings",
                 "OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp",
                 "OTEL_LOGS_EXPORTER": "none",
                 "BIZOPS_OTEL_PROMETHEUS_PORT": str(metrics_port),
                 "BIZOPS_OTEL_PROMETHEUS_ADDR": "127.0.0.1",
                 "BIZOPS_OTEL_PAGE_GROUPS": "/product/*=product"},
                port, metrics_port, "sessionid", "/checkout")


def test_kpi_table_example_recovers_the_planted_slopes() -> None:
    """examples/kpi_table.py plants its steepest conversion slope and its only order-value
    slope (−25 €/s) on checkout; its table must show them there, and no order slope
    elsewhere."""
    result = subprocess.run([sys.executable, str(EXAMPLES / "kpi_table.py"), "--spans",
                             "100000", "--seed", "3"], capture_output=True, text=True,
                            timeout=120, check=True)
    rows = [line.split() for line in result.stdout.splitlines()
            if line.split() and line.split()[0] in ("landing", "product", "cart", "checkout")]
    assert len(rows) == 12
    rho = {(r[0], r[1]): float(r[6]) for r in rows}
    assert max(rho[k] for k in rho if k[0] == "checkout") < min(
        rho[k] for k in rho if k[0] != "checkout")
    slopes = [float(r[8]) for r in rows if r[0] == "checkout"]
    assert all(-35.0 < s < -15.0 for s in slopes), slopes
    assert all(r[8] == "-" for r in rows if r[0] != "checkout")
