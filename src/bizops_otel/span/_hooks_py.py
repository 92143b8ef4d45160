"""Pure-Python twin of ``ext/span/_hooks_c.pyx``: the span processor's per-span hooks.

``on_start`` and ``on_end`` run for every span of the application, so they are written
flat and hand over to :class:`~bizops_otel.span.enrich.Enricher` only when there is
something to write. The SDK's spans keep their fields as plain instance attributes,
which are read directly (a property or helper call costs about 0.1 µs here), never
through ``span.__dict__``, whose mere reading slows the SDK's own later accesses on
CPython 3.11+; a span laid out otherwise, from another SDK version, takes the public
properties instead. SpanKind is an Enum whose hash is Python code, so kinds are matched
by identity in a tuple.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from opentelemetry.context import Context, get_current
from opentelemetry.trace import SpanKind, StatusCode

from .. import drops
from ..attributes import HTTP_ROUTE, HTTP_TARGET, PAGE_GROUP, URL_QUERY
from .context import AROUND, CONTEXT_KEY
from .enrich import full_url_of, query_of, route_of, utm_parameters
from .operations import KINDS

#: Live spans remembered for record_order(); past this, new ones are not (and counted).
LIVE_SPAN_LIMIT = 100_000


class Enrichment(Protocol):
    """The slow paths the hooks hand over to (``enrich.Enricher``)."""

    always: bool
    page_group_at: int
    fallbacks: dict[tuple[Any, str], tuple[str, ...]]
    route_fallbacks: dict[Any, tuple[str, ...]]
    campaigns: dict[tuple[str, ...], tuple[tuple[str, str], ...]]

    def campaign_attributes(self, parameters: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
        ...

    def enrich(self, span: Any, parent_context: Context | None, attributes: Mapping[str, Any],
               carried: Mapping[str, str] | None) -> None: ...

    def fallback(self, attributes: Mapping[str, Any], name: str) -> tuple[str, ...]: ...


class Operations(Protocol):
    """The operation matcher the hooks ask (``operations.OperationMatcher``)."""

    caches: tuple[dict[tuple[Any, Any], tuple[tuple[int, ...], tuple[int, ...]]], ...]

    def entry(self, code: int, name: Any, route: Any
              ) -> tuple[tuple[int, ...], tuple[int, ...]]: ...

    def resolve(self, entry: tuple[tuple[int, ...], tuple[int, ...]],
                attributes: Mapping[str, Any], fallback: tuple[str, ...] | None
                ) -> tuple[int, ...]: ...


def public_fields(span: Any) -> tuple[SpanKind, Any, int, Mapping[str, Any]]:
    """(kind, parent, span id, attributes) through the public API."""
    context = span.get_span_context() if hasattr(span, "get_span_context") else span.context
    return span.kind, span.parent, context.span_id if context else 0, span.attributes or {}


def _same_span(started: Any, context: Any, span_id: int) -> bool:
    """Whether ``started``, registered at on_start, is the span that ends with ``context``:
    the SDK hands on_end a read-only copy that shares the span's context."""
    theirs = getattr(started, "_context", None)
    if theirs is None:
        return bool(started.get_span_context().span_id == span_id)
    return theirs is context


class SpanHooks:
    """on_start/on_end for BizOpsSpanProcessor (pure implementation)."""

    implementation = "pure"

    def __init__(self, record: Callable[..., None], live: dict[int, Any],
                 kinds: tuple[SpanKind, ...], local_roots: bool, enricher: Enrichment,
                 operations: Operations | None = None,
                 record_operations: Callable[..., None] | None = None) -> None:
        self.active = True
        # Configured operations (objectives): None when there are none, so that a service
        # without them pays one test per request span.
        self._operations = operations if record_operations is not None else None
        self._record_operations = record_operations
        self._record = record
        self._live = live
        self._kinds = kinds
        self._local_roots = local_roots
        self._enricher = enricher
        self._always = enricher.always
        self._page_group_at = enricher.page_group_at
        self._fallbacks = enricher.fallbacks
        self._route_fallbacks = enricher.route_fallbacks
        self._campaigns = enricher.campaigns

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        if not self.active:
            return
        try:
            try:
                parent = span._parent
                kind = span._kind
                span_id = span._context.span_id
                attributes = span._attributes._dict
                # on_end takes the attribute dict from here (context.RequestEntry)
                entry: Any = (span, span_id, attributes)
            except AttributeError:
                kind, parent, span_id, attributes = public_fields(span)
                entry = span
            local_parent = parent is not None and not parent.is_remote
            live = self._live
            if len(live) >= LIVE_SPAN_LIMIT:  # spans that never end must not leak here
                drops.count(drops.REQUEST_REGISTRY_FULL, f"over {LIVE_SPAN_LIMIT} live spans")
            elif kind in self._kinds or (self._local_roots and not local_parent):
                live[span_id] = entry
            elif local_parent:
                request = live.get(parent.span_id)
                if request is not None:
                    live[span_id] = request
            context = parent_context if parent_context is not None else get_current()
            carried: Mapping[str, str] | None = context.get(CONTEXT_KEY)  # type: ignore[assignment]
            if carried is None:
                carried = AROUND.get()
            if not carried and not self._always:
                query = query_of(attributes.get(URL_QUERY), attributes.get(HTTP_TARGET),
                                 full_url_of(attributes))
                if query is None or "utm_" not in query:
                    return
                # A landing with nothing else to write: its campaign, without the general
                # enrichment path.
                self._write_campaign(span, attributes, query)
                return
            self._enricher.enrich(span, parent_context, attributes, carried)
        except Exception as error:
            drops.count(drops.PROCESSOR_ERROR, f"on_start: {error!r}")

    def _write_campaign(self, span: Any, attributes: Mapping[str, Any], query: str) -> None:
        """The campaign attributes a query names, where the span does not carry them."""
        parameters = utm_parameters(query)
        pairs = self._campaigns.get(parameters)
        if pairs is None:
            pairs = self._enricher.campaign_attributes(parameters)
        # One set_attribute per key: for the two or three keys of a campaign it costs
        # less than set_attributes, whose mapping goes through the ABC checks of the
        # SDK's attribute cleaning (measured, benchmarks/bench_span_path.py).
        for key, value in pairs:
            if key not in attributes:
                span.set_attribute(key, value)

    def on_end(self, span: Any) -> None:
        if not self.active:
            return
        try:
            try:
                context = span._context
                span_id = context.span_id
            except AttributeError:
                self._end_public(span)
                return
            # on_start registered a request span under its own id, and a span under a
            # request with the request: what is registered says whether this span is a
            # request, with no need to read its kind and parent again.
            request = self._live.pop(span_id, None)
            attributes = None
            if request is None:  # not registered: the registry was full, or no request
                try:
                    kind, parent = span._kind, span._parent
                except AttributeError:
                    self._end_public(span)
                    return
                if kind not in self._kinds and (
                        not self._local_roots or (parent is not None and not parent.is_remote)):
                    return
            elif type(request) is tuple:  # a request's entry, its own or its request's
                if request[1] != span_id:
                    return  # a span inside a request
                # The span's own attribute dict, as on_start found it: the SDK hands on_end
                # a copy of the span that shares it.
                attributes = request[2]
            elif request is not span and not _same_span(request, context, span_id):
                return  # a span inside a request
            try:
                if attributes is None:
                    attributes = span._attributes._dict
                start, end = span._start_time, span._end_time
                failed = span._status._status_code is StatusCode.ERROR
            except AttributeError:
                self._end_public(span)
                return
            fallback = None
            if self._page_group_at >= 0 and PAGE_GROUP not in attributes:
                route = attributes.get(HTTP_ROUTE)
                if isinstance(route, str):
                    fallback = self._route_fallbacks.get(route)
                else:
                    route = None  # as enrich.route_of: no other value names a route
                if fallback is None:
                    fallback = self._name_fallback(attributes, route, span._name)
            self._record(attributes, start, end, failed, fallback)
            if self._operations is not None:
                self._count_operations(span._kind, span._name, attributes, fallback, start,
                                       end, failed)
        except Exception as error:
            drops.count(drops.PROCESSOR_ERROR, f"on_end: {error!r}")

    def _count_operations(self, kind: Any, name: Any, attributes: Mapping[str, Any],
                          fallback: tuple[str, ...] | None, start: int, end: int,
                          failed: bool) -> None:
        """Count the span in the operations it belongs to, if any."""
        operations = self._operations
        assert operations is not None and self._record_operations is not None
        route = attributes.get(HTTP_ROUTE)
        if type(route) is not str:
            route = None
        code = 0
        for known in KINDS:  # by identity: SpanKind's hash is Python code
            if known is kind:
                break
            code += 1
        entry = operations.caches[code].get((name, route))
        if entry is None:
            entry = operations.entry(code, name, route)
        matched = operations.resolve(entry, attributes, fallback)
        if matched:
            self._record_operations(matched, start, end, failed)

    def _name_fallback(self, attributes: Mapping[str, Any], route: Any,
                       name: str) -> tuple[str, ...]:
        fallback = self._fallbacks.get((route, name))
        if fallback is None:
            fallback = self._enricher.fallback(attributes, name)
        return fallback

    def _end_public(self, span: Any) -> None:
        """on_end through the public API, for spans not laid out as this SDK's are."""
        kind, parent, span_id, attributes = public_fields(span)
        self._live.pop(span_id, None)
        if kind not in self._kinds and (
                not self._local_roots or (parent is not None and not parent.is_remote)):
            return
        fallback = None
        if self._page_group_at >= 0 and PAGE_GROUP not in attributes:
            fallback = self._name_fallback(attributes, route_of(attributes), span.name)
        failed = span.status.status_code is StatusCode.ERROR
        self._record(attributes, span.start_time, span.end_time, failed, fallback)
        if self._operations is not None:
            self._count_operations(kind, span.name, attributes, fallback, span.start_time,
                                   span.end_time, failed)
