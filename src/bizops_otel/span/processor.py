"""BizOpsSpanProcessor: business enrichment at span start, one aggregator call at end.

The SDK hands a processor a mutable span only in ``on_start``; ``on_end`` gets a
read-only view. So enrichment happens at start, from what is known then (the business
context, baggage, the URL), and the aggregator is fed at end.

Both hooks are on the application's request path. They never raise (errors are counted
in ``bizops_otel.drops``), never block, hold no lock, and write an attribute only when it
adds information. The per-span work lives in ``SpanHooks`` (native when built, see
``_hooks_py.py``); this module holds the configuration and the enrichment rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import baggage
from opentelemetry.context import Context
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import SpanKind

from ..attributes import (
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
from ..config import Config
from . import context as business
from .enrich import CACHE_LIMIT, BaggageFilter, PageGroups, parse_utm, path_of, query_of
from .hooks import SpanHooks

_KINDS = {"server": SpanKind.SERVER, "consumer": SpanKind.CONSUMER,
          "client": SpanKind.CLIENT, "producer": SpanKind.PRODUCER,
          "internal": SpanKind.INTERNAL}


class Enricher:
    """What to write on a span at start, and the page group of a span at end."""

    def __init__(self, config: Config) -> None:
        self._baggage = BaggageFilter(config.baggage_keys)
        self._rules = PageGroups(config.page_groups)
        self._max_length = config.max_value_length
        self._dimensions = len(config.dimensions)
        #: Whether every span needs the slow path (baggage or rules are configured).
        self.always = bool(self._baggage) or bool(self._rules)
        self.page_group_at = (config.dimensions.index(PAGE_GROUP)
                              if PAGE_GROUP in config.dimensions else -1)
        #: (route, span name) -> ready-made fallback tuple; read directly by the hooks.
        self.fallbacks: dict[tuple[Any, str], tuple[str, ...]] = {}

    def enrich(self, span: Any, parent_context: Context | None, attributes: Mapping[str, Any],
               carried: Mapping[str, str] | None) -> None:
        """Write business context, allowed baggage, campaign parameters and the page group,
        each only where the span does not already carry the attribute."""
        writes: dict[str, Any] = {}
        if carried:
            writes.update((k, v) for k, v in carried.items() if k not in attributes)
        if self._baggage:
            for key, value in baggage.get_all(parent_context).items():
                if self._baggage.allows(key) and key not in attributes:
                    writes.setdefault(key, sanitize_dimension(value, self._max_length))
        target = attributes.get(HTTP_TARGET)
        query = query_of(attributes.get(URL_QUERY), target)
        if query and "utm_" in query:
            campaign = parse_utm(query, self._max_length)
            if campaign is not None:
                for key, value in zip((CAMPAIGN_ID, CAMPAIGN_SOURCE, CAMPAIGN_MEDIUM), campaign,
                                      strict=True):
                    if value is not None and key not in attributes:
                        writes.setdefault(key, value)
        if self._rules and PAGE_GROUP not in attributes:
            route = attributes.get(HTTP_ROUTE)
            group = self._rules.match(route if isinstance(route, str) else None,
                                      path_of(attributes.get(URL_PATH), target), span.name)
            if group is not None:
                writes.setdefault(PAGE_GROUP, group)
        if writes:
            span.set_attributes(writes)

    def fallback(self, attributes: Mapping[str, Any], name: str) -> tuple[str, ...]:
        """The page group of a span that does not carry one: the rules applied to the
        route known by now, else the route itself, else the span name. Cached per route
        and name, as a ready-made tuple, so the hot path allocates nothing for it."""
        route = attributes.get(HTTP_ROUTE)
        group = None
        if self._rules:
            path = path_of(attributes.get(URL_PATH), attributes.get(HTTP_TARGET))
            group = self._rules.match(route if isinstance(route, str) else None, path, name)
        if group is None:
            group = route if isinstance(route, str) and route else name
        dims = [MISSING] * self._dimensions
        dims[self.page_group_at] = sanitize_dimension(group, self._max_length)
        fallback = tuple(dims)
        if len(self.fallbacks) >= CACHE_LIMIT:
            self.fallbacks.clear()
        self.fallbacks[(route, name)] = fallback
        return fallback


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

    def __init__(self, aggregator: Any, config: Config | None = None,
                 hooks: type[Any] | None = None) -> None:
        self._aggregator = aggregator
        config = config if config is not None else aggregator.config
        self._config = config
        hooks_cls = SpanHooks if hooks is None else hooks
        self._hooks = hooks_cls(aggregator.record_span, business.requests.live,
                                tuple(_KINDS[k] for k in config.record_kinds),
                                config.record_local_roots, Enricher(config))
        # The SDK calls these per span: bind the hooks' methods directly, with no Python
        # frame of ours in between.
        self.on_start = self._hooks.on_start  # type: ignore[method-assign]
        self.on_end = self._hooks.on_end  # type: ignore[method-assign]

    @property
    def aggregator(self) -> Any:
        return self._aggregator

    @property
    def hooks_implementation(self) -> str:
        return str(self._hooks.implementation)

    def shutdown(self) -> None:
        self._hooks.active = False

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
