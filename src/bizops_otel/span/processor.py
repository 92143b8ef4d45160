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

from typing import Any

from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import SpanKind

from ..config import Config
from . import context as business
from .enrich import Enricher
from .hooks import SpanHooks
from .operations import OperationMatcher

_KINDS = {"server": SpanKind.SERVER, "consumer": SpanKind.CONSUMER,
          "client": SpanKind.CLIENT, "producer": SpanKind.PRODUCER,
          "internal": SpanKind.INTERNAL}


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
        enricher = Enricher(config)
        operations: tuple[Any, ...] = ()
        counted = getattr(aggregator, "config", config)  # the aggregator counts them
        if counted.operations:
            # Configured operations (objectives): the hooks resolve each request span's
            # and count it with the aggregator's record_operations.
            operations = (OperationMatcher(counted, enricher.page_group_at),
                          aggregator.record_operations)
        self._hooks = hooks_cls(aggregator.record_span, business.requests.live,
                                tuple(_KINDS[k] for k in config.record_kinds),
                                config.record_local_roots, enricher, *operations)
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
