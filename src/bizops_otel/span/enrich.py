"""Enrichment rules: campaign parameters from URLs, page groups from routes, baggage.

Everything here is decided once per distinct input where it can be, and cached in
bounded dicts: a span should pay for a dict lookup, not for a regex.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from typing import NamedTuple
from urllib.parse import unquote_plus

from .. import drops
from ..attributes import sanitize_dimension

#: Longest query string that is parsed; attackers control it, and campaign parameters
#: come first in real landing URLs.
MAX_QUERY_LENGTH = 2048
CACHE_LIMIT = 4096

PageGroupRule = tuple[str, str] | Callable[[str | None, str | None, str], str | None]


class Campaign(NamedTuple):
    campaign: str | None
    source: str | None
    medium: str | None


_UTM_FIELDS = {"utm_campaign": 0, "utm_source": 1, "utm_medium": 2}


def parse_utm(query: str, max_length: int = 64) -> Campaign | None:
    """utm_campaign/source/medium from a query string (``a=1&utm_campaign=x``), or None.

    Values are percent-decoded (undecodable bytes become U+FFFD), then sanitised and cut
    to ``max_length``; the first occurrence of each parameter wins.
    """
    if "utm_" not in query:
        return None
    found: list[str | None] = [None, None, None]
    for part in query[:MAX_QUERY_LENGTH].replace(";", "&").split("&"):
        name, _, value = part.partition("=")
        index = _UTM_FIELDS.get(name)
        if index is None or found[index] is not None:
            continue
        decoded = unquote_plus(value[: max_length * 12], errors="replace")
        found[index] = sanitize_dimension(decoded, max_length) or None
    if found == [None, None, None]:
        return None
    return Campaign(*found)


def query_of(url_query: object, http_target: object) -> str | None:
    """The query string from ``url.query``, or from the old semconv ``http.target``."""
    if isinstance(url_query, str):
        return url_query
    if isinstance(http_target, str):
        _, mark, query = http_target.partition("?")
        return query if mark else None
    return None


def path_of(url_path: object, http_target: object) -> str | None:
    if isinstance(url_path, str):
        return url_path
    if isinstance(http_target, str):
        return http_target.partition("?")[0]
    return None


class PageGroups:
    """Ordered rules mapping a route, path or span name to a page group.

    A rule is ``(pattern, group)``, where the pattern is a glob (``/product/*``) or a
    regular expression (``re:^/api/v\\d+/cart``) tried against the route, then the path,
    then the span name; or a callable ``(route, path, name) -> group | None``. The first
    rule that answers wins. A callable that raises is skipped and counted.
    """

    def __init__(self, rules: Sequence[PageGroupRule]) -> None:
        self._rules: list[tuple[re.Pattern[str] | None, str, Callable[..., str | None] | None]]
        self._rules = []
        for rule in rules:
            if callable(rule):
                self._rules.append((None, "", rule))
            else:
                pattern, group = rule
                source = pattern[3:] if pattern.startswith("re:") else fnmatch.translate(pattern)
                self._rules.append((re.compile(source), group, None))
        self._cache: dict[tuple[str | None, str | None, str], str | None] = {}

    def __bool__(self) -> bool:
        return bool(self._rules)

    def match(self, route: str | None, path: str | None, name: str) -> str | None:
        key = (route, path, name)
        try:
            return self._cache[key]
        except KeyError:
            pass
        group = self._evaluate(route, path, name)
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()  # hostile paths cannot grow it; hot routes refill at once
        self._cache[key] = group
        return group

    def _evaluate(self, route: str | None, path: str | None, name: str) -> str | None:
        for pattern, group, function in self._rules:
            if function is not None:
                try:
                    result = function(route, path, name)
                except Exception as error:
                    drops.count(drops.RULE_ERROR, f"page-group rule {function!r} raised {error!r}")
                    continue
                if result:
                    return str(result)
                continue
            assert pattern is not None
            for target in (route, path, name):
                if target is not None and pattern.match(target):
                    return group
        return None


class BaggageFilter:
    """Allow-list of baggage keys; a trailing ``*`` allows a prefix (like contrib's
    BaggageSpanProcessor predicates, but as data so it can come from configuration)."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._exact = frozenset(k for k in keys if not k.endswith("*"))
        self._prefixes = tuple(k[:-1] for k in keys if k.endswith("*"))

    def __bool__(self) -> bool:
        return bool(self._exact or self._prefixes)

    def allows(self, key: str) -> bool:
        return key in self._exact or (bool(self._prefixes) and key.startswith(self._prefixes))
