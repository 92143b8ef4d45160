"""BizOpsSpanProcessor: business enrichment at span start, one aggregator call at end.

The SDK hands a processor a mutable span only in ``on_start``; ``on_end`` gets a
read-only view. So enrichment happens at start, from what is known then (the business
context, baggage, the URL), and the aggregator is fed at end.

Both hooks are on the application's request path. They never raise (errors are counted
in ``bizops_otel.drops``), never block, hold no lock, and write an attribute only when it
adds information.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import baggage
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from . import context as business
from . import drops
from .attributes import (
    CAMPAIGN_ID,
    CAMPAIGN_MEDIUM,
    CAMPAIGN_SOURCE,
    HTTP_ROUTE,
    HTTP_TARGET,
    MISSING,
    PAGE_GROUP,
    URL_PATH,
    URL_QUERY,
    sanitize_dimension,
)
from .config import Config
from .enrich import CACHE_LIMIT, BaggageFilter, PageGroups, parse_utm, path_of, query_of

_KINDS = {"server": SpanKind.SERVER, "consumer": SpanKind.CONSUMER,
          "client": SpanKind.CLIENT, "producer": SpanKind.PRODUCER,
          "internal": SpanKind.INTERNAL}


def _attribute_dict(span: ReadableSpan) -> Mapping[str, Any]:
    """The span's attributes as a plain dict when the SDK keeps one, which the native
    aggregator reads without a Python-level call; the public mapping otherwise."""
    bounded = getattr(span, "_attributes", None)
    raw = getattr(bounded, "_dict", None)
    if type(raw) is dict:
        return raw
    return span.attributes or {}


class BizOpsSpanProcessor(SpanProcessor):
    """Stamps business attributes on spans and feeds request spans to the aggregator.

    >>> from opentelemetry.sdk.trace import TracerProvider
    >>> from bizops_otel import Aggregator, Config
    >>> aggregator = Aggregator(Config())
    >>> provider = TracerProvider()
    >>> provider.add_span_processor(BizOpsSpanProcessor(aggregator, Config()))
    >>> with provider.get_tracer("shop").start_as_current_span(
    ...         "GET /cart", kind=SpanKind.SERVER, attributes={"http.route": "/cart"}):
    ...     pass
    >>> aggregator.snapshot()[("/cart", "")].count
    1
    """

    def __init__(self, aggregator: Any, config: Config | None = None) -> None:
        self._aggregator = aggregator
        self._config = config if config is not None else aggregator.config
        cfg = self._config
        self._kinds = frozenset(_KINDS[k] for k in cfg.record_kinds)
        self._local_roots = cfg.record_local_roots
        self._baggage = BaggageFilter(cfg.baggage_keys)
        self._rules = PageGroups(cfg.page_groups)
        self._max_length = cfg.max_value_length
        self._page_group_at = (cfg.dimensions.index(PAGE_GROUP)
                               if PAGE_GROUP in cfg.dimensions else -1)
        self._fallbacks: dict[tuple[Any, str], tuple[str, ...] | None] = {}
        self._active = True

    @property
    def aggregator(self) -> Any:
        return self._aggregator

    # Start ---------------------------------------------------------------------------------
    def _is_request(self, span: Span) -> bool:
        if span.kind in self._kinds:
            return True
        parent = span.parent
        return self._local_roots and (parent is None or parent.is_remote)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if not self._active:
            return
        try:
            span_id = span.context.span_id
            parent = span.parent
            parent_id = None if parent is None or parent.is_remote else parent.span_id
            business.requests.started(span, span_id, parent_id, self._is_request(span))
            writes = self._enrichment(span, parent_context)
            if writes:
                span.set_attributes(writes)
        except Exception as error:
            drops.count(drops.PROCESSOR_ERROR, f"on_start: {error!r}")

    def _enrichment(self, span: Span, parent_context: Context | None) -> dict[str, Any] | None:
        attributes = _attribute_dict(span)
        writes: dict[str, Any] | None = None
        carried = business.context_attributes(parent_context)
        if carried:
            writes = {k: v for k, v in carried.items() if k not in attributes}
        if self._baggage:
            for key, value in baggage.get_all(parent_context).items():
                if self._baggage.allows(key) and key not in attributes:
                    writes = writes if writes is not None else {}
                    writes.setdefault(key, sanitize_dimension(value, self._max_length))
        target = attributes.get(HTTP_TARGET)
        query = query_of(attributes.get(URL_QUERY), target)
        if query and "utm_" in query:
            campaign = parse_utm(query, self._max_length)
            if campaign is not None:
                writes = writes if writes is not None else {}
                for key, value in zip((CAMPAIGN_ID, CAMPAIGN_SOURCE, CAMPAIGN_MEDIUM), campaign,
                                      strict=True):
                    if value is not None and key not in attributes:
                        writes.setdefault(key, value)
        if self._rules and PAGE_GROUP not in attributes:
            route = attributes.get(HTTP_ROUTE)
            group = self._rules.match(route if isinstance(route, str) else None,
                                      path_of(attributes.get(URL_PATH), target), span.name)
            if group is not None:
                writes = writes if writes is not None else {}
                writes.setdefault(PAGE_GROUP, group)
        return writes

    # End -----------------------------------------------------------------------------------
    def on_end(self, span: ReadableSpan) -> None:
        if not self._active:
            return
        try:
            context = span.context
            if context is not None:
                business.requests.ended(context.span_id)
            if not self._is_request(span):  # type: ignore[arg-type]
                return
            attributes = _attribute_dict(span)
            fallback = None
            if self._page_group_at >= 0 and PAGE_GROUP not in attributes:
                fallback = self._fallback(attributes, span.name)
            self._aggregator.record_span(
                attributes, span.start_time, span.end_time,
                error=span.status.status_code is StatusCode.ERROR, fallback=fallback)
        except Exception as error:
            drops.count(drops.PROCESSOR_ERROR, f"on_end: {error!r}")

    def _fallback(self, attributes: Mapping[str, Any], name: str) -> tuple[str, ...] | None:
        """The page group of a span that does not carry one: the rules applied to the
        route known by now, else the route itself, else the span name. Cached per route
        and name, as a ready-made tuple so the hot path allocates nothing."""
        route = attributes.get(HTTP_ROUTE)
        key = (route, name)
        try:
            return self._fallbacks[key]
        except KeyError:
            pass
        group = None
        if self._rules:
            path = path_of(attributes.get(URL_PATH), attributes.get(HTTP_TARGET))
            group = self._rules.match(route if isinstance(route, str) else None, path, name)
        if group is None:
            group = route if isinstance(route, str) and route else name
        dims = [MISSING] * len(self._config.dimensions)
        dims[self._page_group_at] = sanitize_dimension(group, self._max_length)
        fallback = tuple(dims)
        if len(self._fallbacks) >= CACHE_LIMIT:
            self._fallbacks.clear()
        self._fallbacks[key] = fallback
        return fallback

    # Life cycle ------------------------------------------------------------------------------
    def shutdown(self) -> None:
        self._active = False

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
