"""Where a load test sends each page group's requests.

The session table knows page groups, not URLs, so a plan needs one representative
request per group: ``--path product=/product/42``, or ``--path "order=POST /checkout"``
for a method other than GET. A group without one is requested at ``/<group>``, and the
overflow group's requests (pages past the session table's groups) at ``/``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from ..analytics.testplan import OTHER_PAGES

_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


class Route(NamedTuple):
    """One request: the HTTP method and the path (with any query)."""

    method: str
    path: str


def parse_route(text: str) -> Route:
    """``/path`` or ``METHOD /path``; ``ValueError`` saying what is wrong otherwise."""
    method, _, path = text.strip().rpartition(" ")
    method = method.strip().upper() or "GET"
    if method not in _METHODS:
        raise ValueError(f"{text!r}: unknown method {method!r} (one of {', '.join(_METHODS)})")
    if not path.startswith("/") or any(c.isspace() or ord(c) < 32 for c in path):
        raise ValueError(f"{text!r}: a path starts with / and holds no spaces")
    return Route(method, path)


def parse_paths(options: Iterable[str], defaults: Mapping[str, str] | None = None
                ) -> dict[str, Route]:
    """``group=route`` options over ``defaults`` (group -> route text)."""
    routes = {group: parse_route(route) for group, route in (defaults or {}).items()}
    for option in options:
        group, equals, route = option.partition("=")
        if not equals or not group.strip():
            raise ValueError(f"--path {option!r}: expected GROUP=/path")
        routes[group.strip()] = parse_route(route)
    return routes


def route_of(group: str, routes: Mapping[str, Route]) -> Route:
    """The route of ``group``: its own, or ``/<group>`` (``/`` for the overflow group)."""
    if group in routes:
        return routes[group]
    if group == OTHER_PAGES:
        return Route("GET", "/")
    return Route("GET", "/" + group.strip("/").replace(" ", "-"))
