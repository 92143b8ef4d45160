"""The application-facing API: business context, orders, conversions, KPIs.

``business_context(...)`` puts values in the OpenTelemetry Context, so they follow the
request into child spans, threads that copy the context, and asyncio tasks; the span
processor stamps them on every span started inside. It also stamps them on the current
span at once, so it works in a ``before_request`` hook, after the request span started.

``record_order(...)`` must reach the *request* span even when called deep inside a child
span. The processor keeps a bounded map from live span ids to their request span (a
request span maps to itself, a child to its parent's entry), so the helper looks up the
current span's id and writes to the request span it finds. That map is the mechanism;
it costs one dict insert and one dict pop per span of a request.

None of these functions raises into the application: a bad value is counted
(``bizops_otel.drops``) and dropped.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span

from .. import drops
from ..attributes import (
    CONTEXT_NAMES,
    CONVERSION,
    DROP_REASONS,
    ORDER_CURRENCY,
    ORDER_VALUE,
    check_kpi_number,
    classify_kpi,
    sanitize_dimension,
)
from ..config import Config

CONTEXT_KEY = otel_context.create_key("bizops-otel-business-context")
# The same values in a plain ContextVar. HTTP instrumentations attach a context extracted
# afresh from the request headers when they start the request span, which hides values
# attached around the request (by a WSGI middleware, say); this variable survives that
# and propagates exactly like the OTel context does.
AROUND = contextvars.ContextVar[dict[str, str] | None]("bizops_otel_business", default=None)

P = ParamSpec("P")
R = TypeVar("R")


class _Settings:
    """What the helpers need from the installed configuration."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.base_currency = config.base_currency
        self.rates = dict(config.currency_rates)
        self.max_length = config.max_value_length
        self.order_bounds = next(((k.minimum, k.maximum) for k in config.kpis
                                  if k.attribute == ORDER_VALUE), (0.0, 1e9))
        self.kpis = {k.name: k for k in config.kpis}


_settings = _Settings(Config())


def configure(config: Config) -> None:
    """Called by install(): the helpers follow the installed configuration."""
    global _settings
    _settings = _Settings(config)


# Request spans -------------------------------------------------------------------------
#: A request's entry in the registry of live spans: (request span, its span id, its
#: attribute dict), what on_end needs of the request read once at on_start. Spans inside
#: the request share its entry. A request whose fields the hooks could not read directly
#: (a span laid out otherwise) is registered as the span alone.
RequestEntry = tuple[Span, int, dict[str, Any]]


class RequestSpans:
    """Live span id -> its request's entry. Written by the processor, read by the helpers."""

    def __init__(self) -> None:
        #: Written directly by the span processor, on the hot path.
        self.live: dict[int, RequestEntry | Span] = {}

    def request_of(self, span: Span) -> Span:
        found = self.live.get(span.get_span_context().span_id)
        if found is None:
            return span
        return found[0] if isinstance(found, tuple) else found

    def __len__(self) -> int:
        return len(self.live)


requests = RequestSpans()


def current_request_span() -> Span:
    """The request span of the current context (the current span if it is not known)."""
    return requests.request_of(trace.get_current_span())


# business_context ----------------------------------------------------------------------
def _attributes_from(names: Mapping[str, object]) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, value in names.items():
        key = CONTEXT_NAMES.get(name)
        if key is None:
            drops.count(drops.UNKNOWN_CONTEXT_NAME,
                        f"business_context({name}=...); known: {sorted(CONTEXT_NAMES)}")
            continue
        if value is None:
            continue
        result[key] = sanitize_dimension(value, _settings.max_length)
    return result


def context_attributes(parent: otel_context.Context | None = None) -> Mapping[str, str] | None:
    """Business attributes carried by ``parent`` (or the current context), for on_start."""
    value = otel_context.get_value(CONTEXT_KEY, parent)
    if isinstance(value, dict):
        return value
    return AROUND.get()


class business_context:  # lowercase: used like a function, as contextlib's helpers are
    """Attach business attributes to the current request and everything under it.

    Usable as ``with business_context(page_group="checkout", campaign="spring"):`` and as a
    decorator of plain or ``async`` functions. Names: page_group, campaign, campaign_source,
    campaign_medium, session_id, feature_flag, variant. Unknown names are counted and
    ignored; nested contexts add to and override outer ones.
    """

    def __init__(self, **attributes: object) -> None:
        self._attributes = attributes

    @contextmanager
    def _active(self) -> Iterator[None]:
        token = around = None
        try:
            values = _attributes_from(self._attributes)
            merged = {**(context_attributes() or {}), **values}
            token = otel_context.attach(otel_context.set_value(CONTEXT_KEY, merged))
            around = AROUND.set(merged)
            span = trace.get_current_span()
            if values and span.is_recording():
                span.set_attributes(values)
                request = requests.request_of(span)
                if request is not span and request.is_recording():
                    request.set_attributes(values)
        except Exception:
            drops.count(drops.PROCESSOR_ERROR, "business_context could not attach")
        try:
            yield
        finally:
            if around is not None:
                AROUND.reset(around)
            if token is not None:
                otel_context.detach(token)

    def __enter__(self) -> None:
        self._manager = self._active()
        self._manager.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._manager.__exit__(None, None, None)

    def __call__(self, function: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(function):
            @functools.wraps(function)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with business_context(**self._attributes):
                    return await function(*args, **kwargs)
            return run_async  # type: ignore[return-value]

        @functools.wraps(function)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with business_context(**self._attributes):
                return function(*args, **kwargs)
        return run


# Orders, conversions, KPIs -------------------------------------------------------------
_pinned_currency: str | None = None


def _in_base_currency(value: float, currency: str | None) -> float | None:
    """``value`` in the base currency, or None (counted) when it cannot be converted."""
    global _pinned_currency
    settings = _settings
    if currency is None:
        return value
    code = str(currency).strip().upper()
    base = settings.base_currency
    if base is None:
        if _pinned_currency is None:
            _pinned_currency = code  # no base configured: the first currency seen is it
        base = _pinned_currency
    if code == base:
        return value
    rate = settings.rates.get(code)
    if rate is None:
        drops.count(drops.CURRENCY_MISMATCH,
                    f"an order in {code} with base currency {base} and no rate for it; "
                    "set base_currency and currency_rates")
        return None
    return value * rate


def _writable_request() -> Span | None:
    span = current_request_span()
    if not span.is_recording():
        drops.count(drops.NO_RECORDING_SPAN, "called outside a recording request span")
        return None
    return span


def record_order(value: object, currency: str | None = None) -> None:
    """Record an order of ``value`` on the current request, which thereby converted.

    Several orders in one request add up. ``currency`` other than the base currency is
    converted with the configured rates, or dropped and counted (``currency_mismatch``).
    """
    try:
        low, high = _settings.order_bounds
        number, reason = classify_kpi(value, False, low, high)
        if reason >= 0:
            drops.count(DROP_REASONS[reason], f"record_order({value!r})")
            return
        converted = _in_base_currency(number, currency)
        if converted is None:
            return
        span = _writable_request()
        if span is None:
            return
        previous = _current_number(span, ORDER_VALUE)
        total = converted + (previous or 0.0)
        if check_kpi_number(total, False, low, high)[1] >= 0:
            drops.count("kpi_above_maximum", f"order total {total!r}")
            return
        span.set_attribute(ORDER_VALUE, total)
        base = _settings.base_currency or _pinned_currency
        if base is not None:
            span.set_attribute(ORDER_CURRENCY, base)
        span.set_attribute(CONVERSION, True)
    except Exception:
        drops.count(drops.PROCESSOR_ERROR, "record_order failed")


def record_conversion(converted: bool = True) -> None:
    """Mark the current request as converted (or explicitly as not converted)."""
    try:
        span = _writable_request()
        if span is not None:
            span.set_attribute(CONVERSION, bool(converted))
    except Exception:
        drops.count(drops.PROCESSOR_ERROR, "record_conversion failed")


def set_kpi(name: str, value: object) -> None:
    """Set a configured KPI (by name, e.g. ``items``) on the current request span."""
    try:
        kpi = _settings.kpis.get(name)
        if kpi is None:
            drops.count("kpi_unknown", f"set_kpi({name!r}); configured: {sorted(_settings.kpis)}")
            return
        number, reason = classify_kpi(value, kpi.binary, kpi.minimum, kpi.maximum)
        if reason >= 0:
            drops.count(DROP_REASONS[reason], f"set_kpi({name!r}, {value!r})")
            return
        span = _writable_request()
        if span is not None:
            span.set_attribute(kpi.attribute, bool(number) if kpi.binary else number)
    except Exception:
        drops.count(drops.PROCESSOR_ERROR, "set_kpi failed")


def _current_number(span: Span, key: str) -> float | None:
    attributes = getattr(span, "attributes", None)
    value = attributes.get(key) if attributes is not None else None
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None
