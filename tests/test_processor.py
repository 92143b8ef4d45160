"""The span processor and the context API on a real OpenTelemetry SDK."""

from __future__ import annotations

import asyncio
import contextvars
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode

from bizops_otel import (
    Config,
    business_context,
    drops,
    record_conversion,
    record_order,
    set_kpi,
)
from bizops_otel import attributes as attr
from bizops_otel.span import context as business
from tests.keys import EVERY_KEY
from tests.spans import pipeline

SERVER = SpanKind.SERVER


@pytest.fixture(autouse=True)
def fresh_helpers() -> None:
    business.configure(Config(**EVERY_KEY))
    business._pinned_currency = None
    drops.reset()


def test_business_context_reaches_nested_spans_and_the_aggregator(Aggregator: Any) -> None:
    p = pipeline(Aggregator)
    with business_context(page_group="checkout", campaign="spring"), \
            p.tracer.start_as_current_span("request", kind=SERVER), \
            business_context(variant="B"), p.tracer.start_as_current_span("db"):
        pass
    spans = p.spans()
    assert spans["request"].attributes[attr.PAGE_GROUP] == "checkout"
    assert spans["db"].attributes[attr.CAMPAIGN_ID] == "spring"
    assert spans["db"].attributes[attr.FEATURE_FLAG_VARIANT] == "B"
    # Entered inside the request, the inner context also stamps the request span.
    assert spans["request"].attributes[attr.FEATURE_FLAG_VARIANT] == "B"
    snapshot = p.aggregator.snapshot()
    assert list(snapshot) == [("checkout", "spring")]  # only the request span is recorded
    assert snapshot[("checkout", "spring")].count == 1


def test_business_context_inside_a_request_stamps_the_request_span(Aggregator: Any) -> None:
    p = pipeline(Aggregator)
    with p.tracer.start_as_current_span("request", kind=SERVER), \
            p.tracer.start_as_current_span("handler"), \
            business_context(session_id="s-1", page_group="cart"):
        pass
    spans = p.spans()
    assert spans["request"].attributes[attr.SESSION_ID] == "s-1"
    assert spans["handler"].attributes[attr.PAGE_GROUP] == "cart"
    assert list(p.aggregator.snapshot()) == [("cart", "")]


def test_decorator_works_for_plain_and_async_functions(Aggregator: Any) -> None:
    p = pipeline(Aggregator)

    @business_context(campaign="sync")
    def plain() -> None:
        with p.tracer.start_as_current_span("plain", kind=SERVER):
            pass

    @business_context(campaign="async")
    async def coroutine() -> str:
        await asyncio.sleep(0)
        with p.tracer.start_as_current_span("async", kind=SERVER):
            pass
        return "done"

    plain()
    assert asyncio.run(coroutine()) == "done"
    spans = p.spans()
    assert spans["plain"].attributes[attr.CAMPAIGN_ID] == "sync"
    assert spans["async"].attributes[attr.CAMPAIGN_ID] == "async"
    assert otel_context.get_value(business.CONTEXT_KEY) is None  # detached again


def test_context_follows_thread_pools_and_asyncio_tasks(Aggregator: Any) -> None:
    p = pipeline(Aggregator)

    def worker(name: str) -> None:
        with p.tracer.start_as_current_span(name):
            record_conversion()

    async def task(name: str) -> None:
        await asyncio.sleep(0)
        with p.tracer.start_as_current_span(name):
            set_kpi("items", 3)

    async def gather() -> None:
        await asyncio.gather(task("task-1"), task("task-2"))

    with business_context(campaign="spring"), \
            p.tracer.start_as_current_span("request", kind=SERVER), \
            ThreadPoolExecutor(2) as pool:
        copied = contextvars.copy_context()
        pool.submit(copied.run, worker, "thread").result()
        asyncio.run(gather())
    spans = p.spans()
    for name in ("thread", "task-1", "task-2"):
        assert spans[name].attributes[attr.CAMPAIGN_ID] == "spring", name
    # The helpers called in the thread and the tasks wrote to the request span.
    assert spans["request"].attributes[attr.CONVERSION] is True
    assert spans["request"].attributes[attr.ORDER_ITEMS] == 3.0
    stats = p.aggregator.snapshot()[("request", "spring")]
    assert stats.conversion_rate() == 1.0 and stats.mean("items") == 3.0


def test_record_order_reaches_the_request_span_from_a_child(Aggregator: Any) -> None:
    business.configure(Config(**EVERY_KEY, base_currency="EUR", currency_rates={"USD": 0.5}))
    p = pipeline(Aggregator)
    with p.tracer.start_as_current_span("request", kind=SERVER, attributes={
            attr.HTTP_ROUTE: "/checkout"}), \
            p.tracer.start_as_current_span("payment"), \
            p.tracer.start_as_current_span("charge"):
        record_order(100.0, "EUR")
        record_order(40, "USD")
        record_order(10.0, "JPY")
    request = p.spans()["request"].attributes
    assert request[attr.ORDER_VALUE] == 120.0
    assert request[attr.ORDER_CURRENCY] == "EUR"
    assert request[attr.CONVERSION] is True
    assert attr.ORDER_VALUE not in p.spans()["charge"].attributes
    assert drops.counts() == {"currency_mismatch": 1}
    stats = p.aggregator.snapshot()[("/checkout", "")]
    assert stats.mean("order_value") == 120.0 and stats.conversion_rate() == 1.0


def test_without_base_currency_the_first_currency_is_pinned(Aggregator: Any) -> None:
    p = pipeline(Aggregator)
    with p.tracer.start_as_current_span("a", kind=SERVER):
        record_order(10.0, "usd")
    with p.tracer.start_as_current_span("b", kind=SERVER):
        record_order(10.0, "EUR")
    spans = p.spans()
    assert spans["a"].attributes[attr.ORDER_CURRENCY] == "USD"
    assert attr.ORDER_VALUE not in spans["b"].attributes
    assert drops.counts() == {"currency_mismatch": 1}


def test_hostile_order_values_are_counted_and_never_raise(Aggregator: Any) -> None:
    p = pipeline(Aggregator)
    with p.tracer.start_as_current_span("request", kind=SERVER):
        for value in ("abc", math.nan, -5, 1e30, True, None, [1]):
            record_order(value)
        set_kpi("unknown", 1)
        set_kpi("items", "many")
    record_order(5.0)  # outside any span
    assert drops.counts() == {"kpi_type": 4, "kpi_nan": 1, "kpi_below_minimum": 1,
                              "kpi_above_maximum": 1, "kpi_bool": 1, "kpi_unknown": 1,
                              "no_recording_span": 1}
    assert attr.ORDER_VALUE not in p.spans()["request"].attributes
    assert p.aggregator.snapshot().dropped_total == 0  # nothing bad reached it


def test_baggage_allow_list(Aggregator: Any) -> None:
    p = pipeline(Aggregator, Config(**EVERY_KEY, baggage_keys=("session.id", "bizops.*")))
    ctx = baggage.set_baggage("session.id", "s-9")
    ctx = baggage.set_baggage("bizops.campaign.id", "mail", ctx)
    ctx = baggage.set_baggage("user.email", "a@b.c", ctx)
    token = otel_context.attach(ctx)
    try:
        with p.tracer.start_as_current_span("request", kind=SERVER):
            pass
    finally:
        otel_context.detach(token)
    attributes = p.spans()["request"].attributes
    assert attributes[attr.SESSION_ID] == "s-9"
    assert attributes[attr.CAMPAIGN_ID] == "mail"
    assert "user.email" not in attributes
    assert list(p.aggregator.snapshot()) == [("request", "mail")]


@pytest.mark.parametrize("start_attributes", [
    {attr.URL_QUERY: "q=1&utm_campaign=spring%20sale&utm_source=news&utm_medium=email"},
    {attr.HTTP_TARGET: "/landing?utm_campaign=spring+sale&utm_source=news&utm_medium=email"},
])
def test_utm_parameters_become_campaign_attributes(Aggregator: Any,
                                                   start_attributes: dict[str, str]) -> None:
    p = pipeline(Aggregator)
    with p.tracer.start_as_current_span("GET /landing", kind=SERVER, attributes=start_attributes):
        pass
    attributes = p.spans()["GET /landing"].attributes
    assert attributes[attr.CAMPAIGN_ID] == "spring sale"
    assert attributes[attr.CAMPAIGN_SOURCE] == "news"
    assert attributes[attr.CAMPAIGN_MEDIUM] == "email"


def test_hostile_utm_values_are_capped_and_sanitised(Aggregator: Any) -> None:
    p = pipeline(Aggregator)
    huge = "x" * 10_000
    queries = {"huge": f"utm_campaign={huge}", "bytes": "utm_campaign=%ff%fe%00caf%C3%A9",
               "control": "utm_campaign=a%0d%0aSet-Cookie:%20x"}
    for name, query in queries.items():
        with p.tracer.start_as_current_span(name, kind=SERVER, attributes={attr.URL_QUERY: query}):
            pass
    spans = p.spans()
    assert spans["huge"].attributes[attr.CAMPAIGN_ID] == "x" * 64
    assert spans["bytes"].attributes[attr.CAMPAIGN_ID] == "\ufffd\ufffd_café"
    assert spans["control"].attributes[attr.CAMPAIGN_ID] == "a__Set-Cookie: x"
    assert len(p.aggregator.snapshot()) == 3


def test_page_group_rules_glob_regex_and_callables(Aggregator: Any) -> None:
    def broken(route: str | None, path: str | None, name: str) -> str | None:
        raise RuntimeError("bad rule")

    def admin(route: str | None, path: str | None, name: str) -> str | None:
        return "admin" if path and path.startswith("/admin") else None

    config = Config(**EVERY_KEY, page_groups=(broken, ("/product/*", "product"),
                                 ("re:^/api/v[0-9]+/cart", "cart"), admin))
    p = pipeline(Aggregator, config)
    requests = {"p": {attr.URL_PATH: "/product/123"},
                "c": {attr.HTTP_TARGET: "/api/v2/cart?x=1"},
                "a": {attr.URL_PATH: "/admin/users"},
                "other": {attr.URL_PATH: "/about", attr.HTTP_ROUTE: "/about"}}
    for name, attributes in requests.items():
        with p.tracer.start_as_current_span(name, kind=SERVER, attributes=attributes):
            pass
    spans = p.spans()
    assert spans["p"].attributes[attr.PAGE_GROUP] == "product"
    assert spans["c"].attributes[attr.PAGE_GROUP] == "cart"
    assert spans["a"].attributes[attr.PAGE_GROUP] == "admin"
    assert attr.PAGE_GROUP not in spans["other"].attributes  # the route says it already
    keys = {key[0]: p.aggregator.snapshot()[key].count for key in p.aggregator.snapshot()}
    assert keys == {"product": 1, "cart": 1, "admin": 1, "/about": 1}
    assert drops.counts()["rule_error"] == 4  # the broken rule, once per distinct input


def test_route_known_only_at_end_still_names_the_page_group(Aggregator: Any) -> None:
    """Flask sets http.route after the span started; the aggregator gets it at end."""
    p = pipeline(Aggregator, Config(**EVERY_KEY, page_groups=(("/product/<int:id>", "product"),)))
    for _ in range(3):
        with p.tracer.start_as_current_span("GET", kind=SERVER) as span:
            span.set_attribute(attr.HTTP_ROUTE, "/product/<int:id>")
    with p.tracer.start_as_current_span("GET /health", kind=SERVER):
        pass
    snapshot = p.aggregator.snapshot()
    assert {k: snapshot[k].count for k in snapshot} == {("product", ""): 3,
                                                         ("GET /health", ""): 1}


def test_only_request_spans_are_recorded_and_errors_are_flagged(Aggregator: Any) -> None:
    p = pipeline(Aggregator, Config(**EVERY_KEY, record_local_roots=False))
    # An internal root is not a request here, nor is a client span under it.
    with p.tracer.start_as_current_span("job"), \
            p.tracer.start_as_current_span("call", kind=SpanKind.CLIENT):
        pass
    with p.tracer.start_as_current_span("consume", kind=SpanKind.CONSUMER) as span:
        span.set_status(Status(StatusCode.ERROR))
    snapshot = p.aggregator.snapshot()
    assert list(snapshot) == [("consume", "")]
    assert snapshot[("consume", "")].errors == 1

    roots = pipeline(Aggregator)
    with roots.tracer.start_as_current_span("job"), roots.tracer.start_as_current_span("step"):
        pass
    assert list(roots.aggregator.snapshot()) == [("job", "")]


def test_processor_errors_are_counted_not_raised(Aggregator: Any) -> None:
    class Failing:
        config = Config(**EVERY_KEY)

        def record_span(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("aggregator down")

    from opentelemetry.sdk.trace import TracerProvider

    from bizops_otel import BizOpsSpanProcessor
    from tests.conftest import load_hooks

    provider = TracerProvider()
    provider.add_span_processor(BizOpsSpanProcessor(Failing(), hooks=load_hooks(Aggregator)))
    with provider.get_tracer("t").start_as_current_span("request", kind=SERVER):
        pass
    assert drops.counts() == {"processor_error": 1}


def test_unsampled_requests_are_recorded_but_not_exported(Aggregator: Any) -> None:
    from bizops_otel.span.sampling import record_unsampled, sampling_state

    p = pipeline(Aggregator, sampler=TraceIdRatioBased(0.25))
    tracer_before = p.tracer  # handed out before the wrap, like an instrumentation's
    assert not sampling_state(p.provider).complete
    assert record_unsampled(p.provider)
    for _ in range(400):
        with tracer_before.start_as_current_span("request", kind=SERVER):
            pass
    exported = len(p.exporter.get_finished_spans())
    assert p.aggregator.snapshot().total().count == 400
    assert 40 <= exported <= 160  # still about a quarter exported
    state = sampling_state(p.provider)
    assert state.complete and "TraceIdRatioBased" in state.description

    off = pipeline(Aggregator, sampler=ALWAYS_OFF)
    with off.tracer.start_as_current_span("request", kind=SERVER):
        pass
    assert off.aggregator.snapshot().total().count == 0  # what head sampling costs


def test_wrapping_a_shared_sampler_leaves_other_providers_tracers_alone(
        Aggregator: Any) -> None:
    """Tracers handed out before the wrap are found whether the SDK keeps a registry of
    them or not (1.25 does not), and only the wrapped provider's."""
    from opentelemetry.sdk.trace import TracerProvider

    from bizops_otel.span.sampling import RecordUnsampled, record_unsampled

    shared = TraceIdRatioBased(0.25)
    ours = pipeline(Aggregator, sampler=shared)
    theirs = TracerProvider(sampler=shared)
    their_tracer = theirs.get_tracer("theirs")
    assert record_unsampled(ours.provider)
    assert type(ours.tracer.sampler) is RecordUnsampled and ours.tracer.sampler.inner is shared
    assert their_tracer.sampler is shared and theirs.sampler is shared
    for tracer in (ours.tracer, their_tracer):
        for _ in range(100):
            with tracer.start_as_current_span("request", kind=SERVER):
                pass
    assert ours.aggregator.snapshot().total().count == 100


def test_install_is_idempotent_and_disable_switch(Aggregator: Any) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    import bizops_otel

    provider = TracerProvider()
    first = bizops_otel.install(provider, config=Config(**EVERY_KEY, max_keys=10))
    second = bizops_otel.install(provider, config=Config(**EVERY_KEY, max_keys=10))
    assert first is second and first.enabled
    with provider.get_tracer("t").start_as_current_span("r", kind=SERVER):
        pass
    assert first.snapshot() is not None and first.snapshot().total().count == 1
    first.shutdown()
    first.shutdown()
    with provider.get_tracer("t").start_as_current_span("r", kind=SERVER):
        pass
    assert first.snapshot().total().count == 1  # nothing recorded after shutdown
    disabled = bizops_otel.install(TracerProvider(), enabled=False)
    assert not disabled.enabled and disabled.snapshot() is None
    with pytest.raises(ValueError, match="max_keys"):
        bizops_otel.install(TracerProvider(), max_keys=-1)
    assert isinstance(trace.get_tracer_provider(), object)
