"""Which configured operations (``Config.operations``) a request span belongs to.

Both hook twins ask this module, and only when operations are configured: a service
without them pays nothing. The rules on what does not change between the requests of one
endpoint (span kind, span name, route) are decided once per (kind, name, route) and cached
in a bounded dict; the rules on what may (the page group, the HTTP method, attribute
conditions) are checked per span, and only for the operations that passed the first.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import SpanKind

from ..attributes import HTTP_METHOD, HTTP_REQUEST_METHOD, HTTP_ROUTE, PAGE_GROUP
from ..config import Config, Operation

#: (kind, name, route) entries cached; past this, new ones are decided on every span.
CACHE_LIMIT = 4096

#: Span kinds by code: the caches are per code, because SpanKind is an Enum whose hash is
#: Python code (a kind is found by identity here, as the hooks find it).
KINDS = (SpanKind.SERVER, SpanKind.CONSUMER, SpanKind.CLIENT, SpanKind.PRODUCER,
         SpanKind.INTERNAL)
_KIND_NAMES = ("server", "consumer", "client", "producer", "internal", None)


def kind_code(kind: Any) -> int:
    """The position of ``kind`` in :data:`KINDS`, or ``len(KINDS)`` for anything else."""
    for code, known in enumerate(KINDS):
        if known is kind:
            return code
    return len(KINDS)

#: A cache entry: the operations every span of the entry belongs to, and those whose
#: per-span rules are still to be checked.
Entry = tuple[tuple[int, ...], tuple[int, ...]]


class _Text:
    """One text rule: exact, glob or ``re:`` regular expression."""

    __slots__ = ("exact", "regex")

    exact: str | None
    regex: re.Pattern[str] | None

    def __init__(self, pattern: str) -> None:
        if pattern.startswith("re:"):
            self.exact, self.regex = None, re.compile(pattern[3:])
        elif any(c in pattern for c in "*?["):
            self.exact, self.regex = None, re.compile(fnmatch.translate(pattern))
        else:
            self.exact, self.regex = pattern, None

    def matches(self, value: Any) -> bool:
        if type(value) is not str:
            return False
        if self.regex is None:
            return value == self.exact
        return self.regex.match(value) is not None


def _text(pattern: str | None) -> _Text | None:
    return None if pattern is None else _Text(pattern)


def _same(value: Any, expected: Any) -> bool:
    """An attribute condition: equal values (a bool equals only a bool), or a number or
    bool whose text is the expected text (conditions from variables are text)."""
    if value is None:
        return False
    if isinstance(value, bool) or isinstance(expected, bool):
        if isinstance(value, bool) and isinstance(expected, bool):
            return value is expected
    elif value == expected:
        return True
    return (isinstance(expected, str) and isinstance(value, int | float)
            and str(value).lower() == expected.lower())


class _Rule:
    __slots__ = ("attributes", "dynamic", "kind", "method", "name", "page_group", "route")

    def __init__(self, operation: Operation) -> None:
        self.kind = operation.kind
        self.name = _text(operation.span_name)
        self.route = _text(operation.route)
        self.page_group = _text(operation.page_group)
        self.method = operation.method
        self.attributes = operation.attributes
        self.dynamic = (self.page_group is not None or self.method is not None
                        or bool(self.attributes))

    def static_match(self, kind: str | None, name: Any, route: Any) -> bool:
        return ((self.kind is None or self.kind == kind)
                and (self.name is None or self.name.matches(name))
                and (self.route is None or self.route.matches(route)))

    def dynamic_match(self, attributes: Mapping[str, Any], page_group: Any) -> bool:
        if self.page_group is not None and not self.page_group.matches(page_group):
            return False
        if self.method is not None:
            method = attributes.get(HTTP_REQUEST_METHOD)
            if method is None:
                method = attributes.get(HTTP_METHOD)
            if type(method) is not str or method.upper() != self.method:
                return False
        return all(_same(attributes.get(key), value) for key, value in self.attributes)


class OperationMatcher:
    """Resolves a request span to the indices of the operations it belongs to.

    ``caches[kind_code(kind)]`` maps (span name, route) to an :data:`Entry`; the hooks read
    it directly and call :meth:`entry` on a miss and :meth:`resolve` for the per-span rules.

    >>> from bizops_otel import Config, Operation
    >>> matcher = OperationMatcher(Config(operations=(
    ...     Operation("authorise", 2.0, 0.99, route="/api/orders/{id}/authorise", method="POST"),
    ...     Operation("pages", 1.0, 0.95, route="/*"))))
    >>> matcher.match(SpanKind.SERVER, "POST /api/orders/{id}/authorise",
    ...               {"http.route": "/api/orders/{id}/authorise", "http.request.method": "POST"})
    (0, 1)
    """

    def __init__(self, config: Config, page_group_at: int = -1) -> None:
        self._rules = [_Rule(o) for o in config.operations]
        self.page_group_at = page_group_at
        self.caches: tuple[dict[tuple[Any, Any], Entry], ...] = tuple(
            {} for _ in _KIND_NAMES)
        self._cached = 0

    def entry(self, code: int, name: Any, route: Any) -> Entry:
        """The entry of (span kind code, name, route), computed and cached on a miss."""
        cache = self.caches[code]
        key = (name, route)
        found = cache.get(key)
        if found is not None:
            return found
        kind_name = _KIND_NAMES[code]
        static: list[int] = []
        dynamic: list[int] = []
        for index, rule in enumerate(self._rules):
            if rule.static_match(kind_name, name, route):
                (dynamic if rule.dynamic else static).append(index)
        entry = (tuple(static), tuple(dynamic))
        if self._cached < CACHE_LIMIT:
            self._cached += 1
            cache[key] = entry
        return entry

    def resolve(self, entry: Entry, attributes: Mapping[str, Any],
                fallback: tuple[str, ...] | None) -> tuple[int, ...]:
        """The operations of a span of ``entry``: its static ones, and the dynamic ones
        whose per-span rules hold. The page group is the span's ``bizops.page_group``, or
        the one the processor derived (``fallback``), or the route."""
        static, dynamic = entry
        if not dynamic:
            return static
        group = attributes.get(PAGE_GROUP)
        if group is None and fallback is not None and self.page_group_at >= 0:
            group = fallback[self.page_group_at]
        if group is None:
            group = attributes.get(HTTP_ROUTE)
        matched = [i for i in dynamic if self._rules[i].dynamic_match(attributes, group)]
        return tuple(sorted((*static, *matched))) if matched else static

    def match(self, kind: Any, name: Any, attributes: Mapping[str, Any],
              fallback: tuple[str, ...] | None = None) -> tuple[int, ...]:
        """The operations a span belongs to (indices into ``Config.operations``)."""
        route = attributes.get(HTTP_ROUTE)
        if type(route) is not str:
            route = None
        return self.resolve(self.entry(kind_code(kind), name, route), attributes, fallback)
