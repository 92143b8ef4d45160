"""The report, live: ``/bizops/report`` renders the shop's current state on each request.

The campaign states over time come from the health checks the live view reads every
second (:meth:`LiveReport.observe`), so the broken campaign's slide from warming up to
failing shows as it happened.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..install import BizOps
from ..report import html_report
from ..report.timeline import Timeline

ROUTE = "/bizops/report"
#: The WSGI start_response callable.
StartResponse = Callable[..., Any]


class LiveReport:
    """A WSGI application serving the report of ``handle``'s current state."""

    def __init__(self, handle: BizOps, history_s: float = 0.0) -> None:
        self._handle = handle
        self._history_s = history_s
        self._started = time.monotonic()
        self._timeline = Timeline()
        self._lock = threading.Lock()

    def observe(self) -> None:
        """Note the campaigns' states now (the demo calls this once a view refresh)."""
        health = self._handle.campaign_health()
        with self._lock:
            self._timeline.observe(health, time.time_ns())

    def page(self) -> str | None:
        snapshot = self._handle.snapshot()
        if snapshot is None:
            return None
        self.observe()
        with self._lock:
            changes = self._timeline.changes
        period = self._history_s + time.monotonic() - self._started
        return html_report(snapshot, self._handle.campaign_health(),
                           "bizops-otel demo shop · live report",
                           period if period > 0 else math.nan, changes)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:
        page = self.page()
        if page is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"bizops-otel is disabled: nothing to report\n"]
        body = page.encode("utf-8")
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(body))),
                                  ("Cache-Control", "no-store")])
        return [body]
