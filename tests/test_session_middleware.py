"""Session middlewares for ASGI (under uvicorn) and Django (under a real WSGI server), each
behind OpenTelemetry's own instrumentation, on 127.0.0.1: the cookie's session reaches the
request span and the session table, a minted one is set on the response and then read
back, and the raw id reaches neither a snapshot nor a scrape. The campaign of a landing
URL and the page groups come out the same on all three, under the default HTTP semantic
conventions."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bizops_otel import BizOpsSpanProcessor, Config, attributes
from bizops_otel.analytics import session_stats
from bizops_otel.export.exposition import render
from bizops_otel.span import context as business
from tests.conftest import load_hooks
from tests.keys import EVERY_KEY
from tests.processes import free_port

SECRET = "visitor-7f3a-PLANTED"


def pipeline(Aggregator: Any) -> tuple[TracerProvider, InMemorySpanExporter, Any]:
    config = Config(**EVERY_KEY, page_groups=(("/checkout*", "checkout"), ("/*", "landing")))
    business.configure(config)
    aggregator = Aggregator(config)
    provider = TracerProvider()
    provider.add_span_processor(BizOpsSpanProcessor(aggregator, config,
                                                    hooks=load_hooks(Aggregator)))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter, aggregator


def get(port: int, path: str, cookie: str | None = None) -> tuple[int, str | None]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("Set-Cookie")
    finally:
        connection.close()


def check(exporter: InMemorySpanExporter, aggregator: Any, minted: str,
          by_group: bool = True) -> None:
    servers = [s for s in exporter.get_finished_spans() if s.kind.name == "SERVER"]
    sessions = {s.attributes.get(attributes.SESSION_ID) for s in servers}
    assert sessions == {SECRET, minted}, sessions
    snapshot = aggregator.snapshot(now_ns=time.time_ns() + 10**13)  # every session idle
    stats = session_stats(snapshot)
    assert stats.finalised == 2 and stats.overall.converted == 1
    assert stats.overall.sessions == 2
    if by_group:
        assert stats["checkout"].sessions == 1
    # The campaign comes from the landing URL whichever attribute the instrumentation put
    # the query in (the ASGI one keeps it in the full URL only).
    counts = {key: snapshot[key].count for key in snapshot}
    assert counts[("landing", "spring")] == 1, counts
    scraped = render(snapshot)
    assert SECRET.encode() not in scraped and minted.encode() not in scraped


def visit(port: int, mint_name: str) -> str:
    """A known visitor (two pages, one order), then a new one whose minted cookie is sent
    back on the second request; returns the minted id."""
    assert get(port, "/landing?utm_campaign=spring&x=1", f"{mint_name}={SECRET}") == (200, None)
    assert get(port, "/checkout?buy=1", f"{mint_name}={SECRET}") == (200, None)
    status, set_cookie = get(port, "/landing")
    assert status == 200 and set_cookie is not None
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie
    minted = set_cookie.split(";")[0].split("=", 1)[1]
    assert len(minted) >= 22
    assert get(port, "/landing", f"{mint_name}={minted}")[1] is None
    return minted


@contextmanager
def wsgi_serving(app: Any) -> Iterator[int]:
    """``app`` on a real WSGI server (wsgiref) on 127.0.0.1, stopped when the block ends."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


# ASGI -------------------------------------------------------------------------------
async def shop(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/checkout" and b"buy=1" in scope.get("query_string", b""):
        business.record_order(30.0, None)
        business.record_conversion(True)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


@contextmanager
def uvicorn_serving(app: Any) -> Iterator[int]:
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(20)


def test_asgi_middleware_under_uvicorn(Aggregator: Any) -> None:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    from bizops_otel.span.asgi import BusinessContextASGIMiddleware

    provider, exporter, aggregator = pipeline(Aggregator)
    app = BusinessContextASGIMiddleware(OpenTelemetryMiddleware(shop, tracer_provider=provider),
                                        session_cookie="sid", mint_session=True)
    with uvicorn_serving(app) as port:
        minted = visit(port, "sid")
    check(exporter, aggregator, minted)


# Django -----------------------------------------------------------------------------
def django_views() -> list[Any]:
    from django.http import HttpResponse
    from django.urls import path

    def landing(request: Any) -> Any:
        return HttpResponse("ok")

    def checkout(request: Any) -> Any:
        if request.GET.get("buy") == "1":
            business.record_order(30.0, None)
            business.record_conversion(True)
        return HttpResponse("ok")

    return [path("landing", landing), path("checkout", checkout)]


urlpatterns: list[Any] = []


def configure_django() -> Any:
    """Django's settings for these tests, made once per process; returns them."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False, SECRET_KEY="tests", ALLOWED_HOSTS=["127.0.0.1"], ROOT_URLCONF=__name__,
            MIDDLEWARE=["bizops_otel.span.django_middleware.BusinessContextMiddleware"],
            BIZOPS_OTEL_MINT_SESSION=True, BIZOPS_OTEL_SESSION_COOKIE="bizops_session",
            INSTALLED_APPS=[], DATABASES={})
        django.setup()
    return settings


def test_django_middleware_under_a_wsgi_server(Aggregator: Any) -> None:
    configure_django()
    urlpatterns[:] = django_views()
    from django.core.wsgi import get_wsgi_application
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    provider, exporter, aggregator = pipeline(Aggregator)
    instrumentor = DjangoInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        with wsgi_serving(get_wsgi_application()) as port:
            minted = visit(port, "bizops_session")
    finally:
        instrumentor.uninstrument()
    # Django's routes have no leading slash ("checkout"): the /checkout* rule matches their
    # normal form, so the page groups come out as on any other framework.
    check(exporter, aggregator, minted)
    routes = {s.attributes.get("http.route") for s in exporter.get_finished_spans()}
    assert "checkout" in routes


def test_wsgi_middleware_mints_and_reads_back(Aggregator: Any) -> None:
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    from bizops_otel.span.wsgi import BusinessContextMiddleware

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/checkout" and "buy=1" in environ.get("QUERY_STRING", ""):
            business.record_order(30.0, None)
            business.record_conversion(True)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    provider, exporter, aggregator = pipeline(Aggregator)
    traced = OpenTelemetryMiddleware(app, tracer_provider=provider)
    with wsgi_serving(BusinessContextMiddleware(traced, session_cookie="sid",
                                                mint_session=True)) as port:
        minted = visit(port, "sid")
    check(exporter, aggregator, minted)


def test_the_session_survives_other_malformed_cookies() -> None:
    from bizops_otel.span._cookies import session_from_header

    for header in ('prefs={"a":1}; session=abc', "session=abc; x=a b", "msg=héllo; session=abc",
                   "a=b;c;session=abc", 'session="abc"'):
        assert session_from_header(header, "session") == "abc", header
    assert session_from_header("other=1", "session") is None
    assert session_from_header("session=", "session") is None
    assert session_from_header("x" * 9000 + "; session=abc", "session") is None  # bounded


def test_wsgi_bodies_stream_in_context_and_are_closed() -> None:
    """A streaming body is passed on chunk by chunk, each produced inside the business
    context, and closed as PEP 3333 asks; the application's own cookie is never
    overwritten by a minted one."""
    from bizops_otel.span.context import AROUND
    from bizops_otel.span.wsgi import BusinessContextMiddleware

    produced: list[Any] = []
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            for i in range(3):
                produced.append(dict(AROUND.get() or {}))
                yield b"chunk%d" % i

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Set-Cookie", "sid=the-apps-own; Path=/")])
        return Body()

    headers: list[Any] = []
    middleware = BusinessContextMiddleware(app, session_cookie="sid", mint_session=True)
    body = middleware({"QUERY_STRING": ""}, lambda status, h, *exc: headers.extend(h))
    first = next(iter(body))
    assert first == b"chunk0" and len(produced) == 1  # not buffered
    assert list(body) == [b"chunk1", b"chunk2"]
    body.close()  # type: ignore[attr-defined]
    assert closed == [True]
    assert all(values.get(attributes.SESSION_ID) for values in produced)
    assert [v for k, v in headers if k == "Set-Cookie"] == ["sid=the-apps-own; Path=/"]


def test_asgi_reads_every_cookie_header() -> None:
    import asyncio

    from bizops_otel.span.asgi import BusinessContextASGIMiddleware
    from bizops_otel.span.context import AROUND

    seen: list[Any] = []
    sent: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(dict(AROUND.get() or {}))
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "query_string": b"",
             "headers": [(b"cookie", b"a=1"), (b"cookie", b"sid=EXISTING")]}
    middleware = BusinessContextASGIMiddleware(app, session_cookie="sid", mint_session=True)
    asyncio.run(middleware(scope, None, send))
    assert seen[0].get(attributes.SESSION_ID) == "EXISTING"
    assert sent[0]["headers"] == []  # an existing session is not minted again


def test_django_refuses_to_mint_under_its_own_session_cookie() -> None:
    from bizops_otel.span.django_middleware import BusinessContextMiddleware

    settings = configure_django()
    previous = settings.BIZOPS_OTEL_SESSION_COOKIE
    settings.BIZOPS_OTEL_SESSION_COOKIE = settings.SESSION_COOKIE_NAME
    try:
        with pytest.raises(ValueError, match="replace Django's own session cookie"):
            BusinessContextMiddleware(lambda request: None)
    finally:
        settings.BIZOPS_OTEL_SESSION_COOKIE = previous
