"""How the per-span hooks read spans: by attribute access on the SDK's own layout, never
through the instance dict, and through the public API when a span is laid out otherwise."""

from __future__ import annotations

import gc
import sys
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

from bizops_otel import BizOpsSpanProcessor, Config, attributes
from tests.conftest import load_hooks
from tests.keys import EVERY_KEY

SERVER = SpanKind.SERVER


def _dict_materialised(span: Any) -> bool:
    """CPython 3.11+ keeps instance attributes inline until someone asks for ``__dict__``;
    from then on the object refers to a real dict, which ``gc.get_referents`` shows."""
    return any(type(r) is dict and r.get("_name") is not None for r in gc.get_referents(span))


@pytest.mark.skipif(sys.version_info < (3, 11), reason="inline instance values: CPython 3.11+")
def test_the_hooks_leave_the_sdk_span_layout_alone(Aggregator: Any) -> None:
    """Reading ``span.__dict__`` would turn the span's inline values into a dict, and every
    later attribute access of the SDK's own code on that span would take the slower path
    (about 6,500 instructions a span in callgrind). The hooks must read fields without it."""
    provider = TracerProvider()
    aggregator = Aggregator(Config(**EVERY_KEY))
    provider.add_span_processor(BizOpsSpanProcessor(aggregator, hooks=load_hooks(Aggregator)))
    tracer = provider.get_tracer("t")
    span = tracer.start_span("GET /product/{id}", kind=SERVER, attributes={
        attributes.HTTP_ROUTE: "/product/{id}", attributes.URL_QUERY: "utm_campaign=spring&x=1"})
    assert not _dict_materialised(span), "the SDK itself materialised the dict"
    span.set_attribute(attributes.ORDER_VALUE, 20.0)
    span.end()
    assert not _dict_materialised(span)
    assert aggregator.snapshot()[("/product/{id}", "spring")].pairs("order_value") == 1
    # The check itself can fail: asking for the dict is seen.
    assert span.__dict__ and _dict_materialised(span)


def test_the_installed_sdks_spans_take_the_direct_reads(
        Aggregator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the installed SDK (the newest, or 1.25 under make test-oldest) the hooks read the
    span at on_start and its ReadableSpan copy at on_end by their fields, never through the
    slower public fallback: the copy shares the span's context, attributes and status."""
    hooks = load_hooks(Aggregator)
    fallbacks: list[Any] = []
    monkeypatch.setattr(sys.modules[hooks.__module__], "public_fields",
                        lambda span: fallbacks.append(span))
    provider = TracerProvider()
    aggregator = Aggregator(Config(**EVERY_KEY))
    provider.add_span_processor(BizOpsSpanProcessor(aggregator, hooks=hooks))
    tracer = provider.get_tracer("t")
    for failed in (False, True):
        with tracer.start_as_current_span("GET /cart", kind=SERVER,
                                          attributes={attributes.HTTP_ROUTE: "/cart"}) as span:
            with tracer.start_as_current_span("db"):
                pass
            if failed:
                span.set_status(Status(StatusCode.ERROR))
    assert fallbacks == []
    stats = aggregator.snapshot()[("/cart", "")]
    assert (stats.count, stats.errors) == (2, 1)


class PublicOnlySpan:
    """A span of another layout: only the public API of an SDK span, none of its private
    fields. Stands in for an SDK version that renamed them (none installed here does)."""

    def __init__(self, real: Any) -> None:
        self._real = real

    kind = property(lambda self: self._real.kind)
    parent = property(lambda self: self._real.parent)
    attributes = property(lambda self: self._real.attributes)
    start_time = property(lambda self: self._real.start_time)
    end_time = property(lambda self: self._real.end_time)
    name = property(lambda self: self._real.name)
    status = property(lambda self: self._real.status)

    def get_span_context(self) -> Any:
        return self._real.get_span_context()

    def set_attribute(self, key: str, value: Any) -> None:
        self._real.set_attribute(key, value)

    def set_attributes(self, values: dict[str, Any]) -> None:
        self._real.set_attributes(values)


def test_a_span_laid_out_otherwise_takes_the_public_api(Aggregator: Any) -> None:
    """The same requests through the SDK's spans and through public-only wrappers give the
    same aggregates, the same enrichment and the same live-span registry use."""
    from bizops_otel.span import context as business

    def run(wrap: bool) -> Any:
        aggregator = Aggregator(Config(**EVERY_KEY))
        processor = BizOpsSpanProcessor(aggregator, hooks=load_hooks(Aggregator))
        tracer = TracerProvider().get_tracer("t")  # no processor: the test drives the hooks
        written = []
        for i in range(40):
            span = tracer.start_span(f"GET /p{i % 3}", kind=SERVER, attributes={
                attributes.HTTP_ROUTE: f"/p{i % 3}",
                attributes.HTTP_TARGET: f"/p{i % 3}?utm_campaign=c{i % 2}&gclid={i}"})
            seen = PublicOnlySpan(span) if wrap else span
            processor.on_start(seen)
            assert span.get_span_context().span_id in business.requests.live
            if i % 4 == 0:
                span.set_attribute(attributes.ORDER_VALUE, float(i))
            if i % 5 == 0:
                span.set_status(Status(StatusCode.ERROR))
            span.end()
            processor.on_end(seen)
            assert span.get_span_context().span_id not in business.requests.live
            written.append(span.attributes.get(attributes.CAMPAIGN_ID))
        snapshot = aggregator.snapshot()
        return ({key: (snapshot[key].count, snapshot[key].errors,
                       snapshot[key].pairs("order_value")) for key in snapshot}, written)

    direct, wrapped = run(False), run(True)
    assert direct == wrapped
    assert direct[0][("/p0", "c0")] == (7, 2, 4) and direct[1][:2] == ["c0", "c1"]


def test_spans_the_registry_could_not_hold_are_still_judged_right(Aggregator: Any) -> None:
    """on_end knows a request by what on_start registered. When the registry of live spans
    was full (spans that never end), or a span belongs to no request, on_end reads the
    kind and parent instead: requests are still recorded, and nothing else is."""
    from bizops_otel import drops
    from bizops_otel.span import context as business
    from bizops_otel.span._hooks_py import LIVE_SPAN_LIMIT

    drops.reset()
    provider = TracerProvider()
    aggregator = Aggregator(Config(**EVERY_KEY, record_local_roots=False))
    provider.add_span_processor(BizOpsSpanProcessor(aggregator, hooks=load_hooks(Aggregator)))
    tracer = provider.get_tracer("t")
    live = business.requests.live
    live.update((-i, None) for i in range(1, LIVE_SPAN_LIMIT + 1))  # never-ending spans
    try:
        with (tracer.start_as_current_span("GET /a", kind=SERVER,
                                           attributes={attributes.HTTP_ROUTE: "/a"}),
              tracer.start_as_current_span("db")):
            pass
    finally:
        for i in range(1, LIVE_SPAN_LIMIT + 1):
            live.pop(-i, None)
    # an INTERNAL root and its child: no request
    with tracer.start_as_current_span("job"), tracer.start_as_current_span("step"):
        pass
    with (tracer.start_as_current_span("GET /b", kind=SERVER,
                                       attributes={attributes.HTTP_ROUTE: "/b"}),
          tracer.start_as_current_span("db")):
        pass
    snapshot = aggregator.snapshot()
    assert {key[0]: snapshot[key].count for key in snapshot} == {"/a": 1, "/b": 1}
    assert drops.counts() == {"request_registry_full": 2}
    assert not live


def test_native_hooks_call_the_native_aggregator_directly_and_any_other_through_python(
        ) -> None:
    """The native hooks call the native aggregator's record_span as a C function (taken
    from a capsule, only for that exact type); a pure aggregator, a subclass that overrides
    record_span, or any callable gets a Python call, with the same result."""
    from tests.conftest import load, native_module

    hooks = native_module("span._hooks_c").SpanHooks
    native, pure = load("native"), load("pure")

    class Counting(native):  # type: ignore[misc, valid-type]
        calls = 0

        def record_span(self, *args: Any) -> None:
            Counting.calls += 1
            super().record_span(*args)

    results = {}
    config = Config(**EVERY_KEY)
    for name, aggregator in (("native", native(config)), ("pure", pure(config)),
                             ("subclass", Counting(config))):
        processor = BizOpsSpanProcessor(aggregator, hooks=hooks)
        assert processor._hooks.records_directly is (name == "native")
        provider = TracerProvider()
        provider.add_span_processor(processor)
        for i in range(6):
            with provider.get_tracer("t").start_as_current_span(
                    "GET /a", kind=SERVER, attributes={attributes.HTTP_ROUTE: "/a"}) as span:
                if i % 2:
                    span.set_attribute(attributes.ORDER_VALUE, 10.0 * i)
        stats = aggregator.snapshot()[("/a", "")]
        results[name] = (stats.count, stats.pairs("order_value"), stats.mean("order_value"))
    assert results["native"] == results["pure"] == results["subclass"] == (6, 3, 30.0)
    assert Counting.calls == 6


def test_the_native_query_and_path_reading_matches_the_pure_functions() -> None:
    """The native hooks find ``utm_`` parameters by searching rather than splitting the
    query; on 5,000 random queries over the characters that matter (separators, ``=``,
    the ``utm_`` prefix inside and outside parameters, past the length bound) both agree."""
    import random

    from bizops_otel.span.enrich import MAX_QUERY_LENGTH, utm_parameters
    from tests.conftest import native_module

    native = native_module("span._hooks_c").utm_parameters
    rng = random.Random(3)
    pieces = ["utm_", "utm_campaign=", "utm_source=x", "&", ";", "=", "a", "%20", "é", "xutm_",
              "gclid=Cj0K"]
    for _ in range(5000):
        query = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert native(query) == utm_parameters(query), query
    # And where the query is looked for: url.query, http.target after "?", the full URL
    # between "?" and "#", bounded.
    from bizops_otel.span.enrich import MAX_URL_LENGTH, query_of

    bounds = native_module("span._hooks_c").campaign_query
    texts = ["/p?utm_campaign=a#frag", "/p", "?", "#?x", "http://h/p?a=1#b?c", "",
             "http://h/" + "x" * MAX_URL_LENGTH + "?utm_campaign=far", 7]
    keys = [attributes.URL_QUERY, attributes.HTTP_TARGET, attributes.URL_FULL,
            attributes.HTTP_URL]
    # The native hooks walk a small attribute dict once and look keys up in a large one,
    # or in one holding a key that is not an exact str: every way must find the same.
    noise: dict[object, object] = {f"http.noise.{i}": i for i in range(30)}
    for _ in range(3000):
        attrs = {key: rng.choice(texts) for key in keys if rng.random() < 0.5}
        if rng.random() < 0.2:
            attrs = {**noise, **attrs}
        if rng.random() < 0.1:
            attrs[(1, 2)] = "not a str key"
        found = bounds(attrs)
        native_query = None if found is None else found[0][found[1]:found[2]]
        assert native_query == query_of(attrs.get(keys[0]), attrs.get(keys[1]),
                                         attrs.get(keys[2], attrs.get(keys[3]))), attrs
    # And the path the native hooks give the page-group rules: enrich.path_of's.
    from bizops_otel.span.enrich import path_of

    rule_path = native_module("span._hooks_c").rule_inputs
    paths = ["/p?q=1", "/\u00e4\u00b8\u00ad?x", "/caf\u00e9", "", "?", "http://h/a/b?c#d",
             "http://h", 3]
    path_keys = [attributes.URL_PATH, attributes.HTTP_TARGET, attributes.URL_FULL,
                 attributes.HTTP_URL]
    for _ in range(3000):
        attrs = {key: rng.choice(paths) for key in path_keys if rng.random() < 0.5}
        assert rule_path(attrs) == path_of(attrs.get(path_keys[0]), attrs.get(path_keys[1]),
                                           attrs.get(path_keys[2], attrs.get(path_keys[3]))), attrs
    long = "x=1&" * (MAX_QUERY_LENGTH // 4 - 2) + "utm_campaign=late&utm_source=later"
    assert native(long) == utm_parameters(long) == ("utm_camp",)


def test_a_landing_writes_only_the_campaign_keys_the_span_lacks(Aggregator: Any) -> None:
    """The campaign fast path (no business context, no rules) writes what a landing's query
    names, never over what the instrumentation or the application put there, and caches
    campaigns on their utm pairs: landings that differ only in click ids share one entry."""
    from bizops_otel.span.enrich import Enricher

    provider = TracerProvider()
    aggregator = Aggregator(Config(**EVERY_KEY))
    enricher = Enricher(Config(**EVERY_KEY))
    hooks = load_hooks(Aggregator)(aggregator.record_span, {}, (SERVER,), True, enricher)
    processor = BizOpsSpanProcessor(aggregator, hooks=load_hooks(Aggregator))
    # hooks of our own, so that their enricher can be inspected below
    processor.on_start, processor.on_end = hooks.on_start, hooks.on_end  # type: ignore
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    written = []
    for click in range(50):
        query = f"utm_campaign=spring&utm_source=news&utm_medium=mail&gclid=click{click}"
        with tracer.start_as_current_span("GET /landing", kind=SERVER, attributes={
                attributes.HTTP_ROUTE: "/landing", attributes.URL_QUERY: query,
                attributes.CAMPAIGN_SOURCE: "own"}) as span:
            written.append(dict(span.attributes))
    assert {(w[attributes.CAMPAIGN_ID], w[attributes.CAMPAIGN_SOURCE],
             w[attributes.CAMPAIGN_MEDIUM]) for w in written} == {("spring", "own", "mail")}
    assert len(enricher.campaigns) == 1
    assert aggregator.snapshot().total().count == 50


def test_with_rules_both_twins_write_the_same_attributes_and_aggregates() -> None:
    """With page-group rules and no business context, the native hooks apply the rules and
    write the campaign themselves; the pure twin goes through the general enrichment. On
    600 random spans (routes of three frameworks, paths, 404s, landings, a group set by the
    application) both write the same attributes and aggregate the same keys."""
    import random

    from bizops_otel.aggregate._aggregator_py import Aggregator as Pure
    from tests.conftest import load

    rules = (("/product/*", "product"), ("re:^/api/", "api"), ("GET /health", "health"),
             (lambda route, path, name: "static" if path and path.startswith("/s/") else None))
    config = Config(**EVERY_KEY, page_groups=rules)

    def run(aggregator_cls: Any) -> Any:
        rng = random.Random(11)
        provider = TracerProvider()
        aggregator = aggregator_cls(config)
        provider.add_span_processor(BizOpsSpanProcessor(aggregator,
                                                        hooks=load_hooks(aggregator_cls)))
        tracer = provider.get_tracer("t")
        written = []
        for i in range(600):
            route = rng.choice(["/product/{id}", "product/<int:pid>", "/cart", None])
            path = rng.choice(["/product/7", "/api/v1/x", "/s/app.js", "/nope",
                               "/\u00e4\u00b8\u00ad"])
            query = rng.choice(["", "?utm_campaign=spring&utm_source=mail", "?x=1"])
            start = {attributes.HTTP_TARGET: path + query, "http.method": "GET"}
            if route is not None:
                start[attributes.HTTP_ROUTE] = route
            if i % 7 == 0:
                start[attributes.PAGE_GROUP] = "set-by-app"
            name = rng.choice(["GET /health", f"GET {route or path}"])
            with tracer.start_as_current_span(name, kind=SERVER, attributes=start) as span:
                written.append(dict(span.attributes))
        snapshot = aggregator.snapshot()
        return written, {key: snapshot[key].count for key in snapshot}

    native, pure = run(load("native")), run(Pure)
    assert native == pure
    groups = {w.get(attributes.PAGE_GROUP) for w in native[0]}
    assert {"product", "api", "static", "health", "set-by-app"} <= groups
    assert sum(1 for w in native[0] if attributes.CAMPAIGN_ID in w) > 100
