"""The shop's load-test plan, live: ``/bizops/testplan`` serves a Locust file generated from
the sessions recorded so far (as ``bizops-otel testplan`` writes it from saved state), with
the shop's routes for its page groups."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..analytics.testplan import TestPlan
from ..install import BizOps
from ..testplan import Route, parse_paths, render_locustfile
from .simulate import Request, Scenario

ROUTE = "/bizops/testplan"
#: The WSGI start_response callable.
StartResponse = Callable[..., Any]


def shop_routes(scenario: Scenario | None = None) -> dict[str, str]:
    """The demo shop's page groups and the request that reaches each (route text)."""
    scenario = scenario or Scenario()
    routes = {page.group: Request(page, 0.0, 0.0, False, "").path for page in scenario.pages}
    routes[scenario.confirm.group] = f"POST {scenario.confirm.route}"
    return routes


class TestPlanFile:
    """A WSGI application serving the Locust file of ``handle``'s current sessions."""

    __test__ = False  # a WSGI application, not a test class, for pytest's collector

    def __init__(self, handle: BizOps, scenario: Scenario | None = None) -> None:
        self._handle = handle
        self._routes: dict[str, Route] = parse_paths([], shop_routes(scenario))

    def text(self) -> str:
        """The Locust file; ``ValueError`` saying why there is none yet."""
        snapshot = self._handle.snapshot()
        if snapshot is None:
            raise ValueError("bizops-otel is disabled: no traffic recorded")
        return render_locustfile(TestPlan.from_snapshot(snapshot), self._routes,
                                 source="the bizops-otel demo shop, live")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:
        try:
            body = self.text().encode("utf-8")
        except ValueError as error:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain"),
                                                       ("Retry-After", "10")])
            return [f"no load-test plan yet: {error}\n".encode()]
        start_response("200 OK", [("Content-Type", "text/x-python; charset=utf-8"),
                                  ("Content-Disposition", 'inline; filename="locustfile.py"'),
                                  ("Content-Length", str(len(body))),
                                  ("Cache-Control", "no-store")])
        return [body]
