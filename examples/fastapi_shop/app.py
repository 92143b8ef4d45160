"""A FastAPI shop with bizops-otel installed in code, served by uvicorn.

    pip install 'bizops-otel' fastapi uvicorn opentelemetry-instrumentation-fastapi
    uvicorn app:app --app-dir examples/fastapi_shop --port 8000

Prometheus scrapes http://127.0.0.1:8000/metrics; with OTEL_EXPORTER_OTLP_ENDPOINT set the
metrics (and traces) are pushed over OTLP as well.
"""

import os

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import bizops_otel
from bizops_otel.export.exposition import make_asgi_app
from bizops_otel.span.asgi import BusinessContextASGIMiddleware

provider = TracerProvider()
if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)

bizops = bizops_otel.install(provider, page_groups=(("/product/*", "product"),))

app = FastAPI()


@app.get("/landing")
def landing() -> str:
    return "welcome"


@app.get("/product/{product_id}")
def product(product_id: int) -> str:
    bizops_otel.record_conversion(False)  # browsing: an outcome, not a conversion
    return f"product {product_id}"


@app.post("/checkout")
def checkout(value: float) -> str:
    bizops_otel.record_order(value, "EUR")
    return "ordered"


app.mount("/metrics", make_asgi_app(bizops.snapshot, bizops.campaign_health))
FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls="metrics")
# Outside the instrumentation's middleware, so the session is known when a span starts.
app.add_middleware(BusinessContextASGIMiddleware, session_cookie="sid")
