"""A small web shop: Flask behind OpenTelemetry's WSGI middleware, with bizops-otel
installed, serving ``/metrics``, the live report (``/bizops/report``) and a load test generated from
its sessions (``/bizops/testplan``) beside the shop.

The WSGI middleware (opentelemetry-instrumentation-wsgi) works with any WSGI framework and
follows the newest OpenTelemetry releases; page groups come from path rules, since it
knows no routes.

Each page takes as long as the scenario says it does (a log-normal draw, slower or failing
on the landing page of a broken campaign), so the planted effects reach the spans through
the real instrumentation. The visitor's cookies carry the session id and the feature-flag
variant, as a flag SDK's sticky assignment would.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from flask import Flask, Response, request
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from ..export.exposition import make_wsgi_app
from ..install import BizOps
from ..span.context import business_context, record_conversion, record_order
from ..span.wsgi import BusinessContextMiddleware
from . import live_report, testplan_file
from .simulate import Page, Scenario

SESSION_COOKIE = "bizops_session"
VARIANT_COOKIE = "variant"
FLAG = "new-checkout"


class _Draws:
    """The scenario's latency draws, shared by the server's threads."""

    def __init__(self, scenario: Scenario, seed: int) -> None:
        self._scenario = scenario
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    def serve(self, page: Page, landing: bool, variant: str) -> bool:
        """Sleep as long as the page takes; whether the request fails."""
        campaign = request.args.get("utm_campaign") if landing else None
        with self._lock:
            latency, error = self._scenario.draw(page, campaign, landing, self._rng, variant)
        time.sleep(latency)
        return error


def create_app(scenario: Scenario, handle: BizOps, provider: TracerProvider,
               seed: int = 0, report: Any = None) -> Any:
    """The shop's WSGI application, ``/metrics`` included, and the live report at
    ``/bizops/report`` (``report``: its WSGI application; a new one when None)."""
    app = Flask("bizops-demo-shop")
    draws = _Draws(scenario, seed)
    landing, *inner = scenario.pages

    def page_view(page: Page, is_landing: bool) -> Response:
        variant = request.cookies.get(VARIANT_COOKIE, "A")
        with business_context(feature_flag=FLAG, variant=variant):
            if draws.serve(page, is_landing, variant):
                return Response("the page failed to render", status=503)
        return Response(f"{page.group}\n", mimetype="text/plain")

    def register(page: Page, is_landing: bool) -> None:
        app.add_url_rule(page.route, f"page_{page.group}",
                         lambda **_: page_view(page, is_landing), methods=["GET"])

    register(landing, True)
    for page in inner:
        register(page, False)

    confirm = scenario.confirm

    @app.post(confirm.route)
    def confirm_order() -> Response:
        variant = request.cookies.get(VARIANT_COOKIE, "A")
        with business_context(feature_flag=FLAG, variant=variant):
            draws.serve(confirm, False, variant)
            if request.form.get("buy") == "1":
                record_order(float(request.form.get("value", "0")), "EUR")
                record_conversion(True)
                return Response("thank you\n", mimetype="text/plain")
            record_conversion(False)
        return Response("maybe later\n", mimetype="text/plain")

    # The session cookie enters the business context before the request's span starts.
    traced = OpenTelemetryMiddleware(app.wsgi_app, tracer_provider=provider)
    shop = BusinessContextMiddleware(traced, session_cookie=SESSION_COOKIE)
    return DispatcherMiddleware(shop, {
        "/metrics": make_wsgi_app(handle.snapshot, handle.campaign_health),
        live_report.ROUTE: report if report is not None else live_report.LiveReport(handle),
        testplan_file.ROUTE: testplan_file.TestPlanFile(handle, scenario)})


class _Quiet(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as browsers use

    def log(self, type: str, message: str, *args: Any) -> None:
        pass


def serve(app: Any, port: int) -> tuple[BaseWSGIServer, threading.Thread]:
    """Serve ``app`` on 127.0.0.1:``port`` (0: any free port) from a daemon thread."""
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, name="bizops-demo-shop",
                              daemon=True)
    thread.start()
    return server, thread
