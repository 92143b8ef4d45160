"""A small Flask shop, instrumented by opentelemetry-instrumentation-flask and served by a
real WSGI server on 127.0.0.1, for integration tests."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, request
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from werkzeug.serving import WSGIRequestHandler, make_server

import bizops_otel
from bizops_otel.span.wsgi import BusinessContextMiddleware


def _example_pages() -> Any:
    """``add_pages`` of examples/flask_zero_code, the zero-code example's own pages."""
    path = Path(__file__).parents[2] / "examples" / "flask_zero_code" / "app.py"
    spec = importlib.util.spec_from_file_location("flask_zero_code_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.add_pages


def create_app(provider: TracerProvider) -> Flask:
    app = Flask("shop")
    _example_pages()(app)

    @app.post("/checkout")
    def checkout() -> str:
        body = request.get_json(force=True)
        tracer = provider.get_tracer("shop")
        with tracer.start_as_current_span("payment"):
            bizops_otel.record_order(body["value"], body.get("currency"))
        return "ok"

    FlaskInstrumentor().instrument_app(app, tracer_provider=provider)
    app.wsgi_app = BusinessContextMiddleware(app.wsgi_app, session_cookie="sid")  # type: ignore[method-assign]
    return app


class _KeepAlive(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"

    def log(self, type: str, message: str, *args: Any) -> None:
        pass  # one line per request would drown the test output


@dataclass
class Shop:
    url: str
    exporter: InMemorySpanExporter
    handle: bizops_otel.BizOps


@contextmanager
def serve(export: bool = True, **overrides: Any) -> Iterator[Shop]:
    """The shop on an ephemeral loopback port; ``export=False`` keeps no span copies."""
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    if export:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    handle = bizops_otel.install(provider, **overrides)
    app = create_app(provider)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_KeepAlive)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Shop(f"http://127.0.0.1:{server.server_port}", exporter, handle)
    finally:
        server.shutdown()
        thread.join(10)
        FlaskInstrumentor().uninstrument_app(app)
        handle.shutdown()
