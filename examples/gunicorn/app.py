"""A shop served by gunicorn workers; see gunicorn.conf.py for the bizops-otel wiring.

    BIZOPS_OTEL_MULTIPROC_DIR=/tmp/bizops gunicorn -c examples/gunicorn/gunicorn.conf.py \
        --chdir examples/gunicorn app:app
"""

from flask import Flask, request
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

import bizops_otel

app = Flask("gunicorn-shop")


@app.get("/product/<int:product_id>")
def product(product_id: int) -> str:
    bizops_otel.record_conversion(False)  # browsing: an outcome, not a conversion
    return f"product {product_id}"


@app.post("/checkout")
def checkout() -> str:
    bizops_otel.record_order(float(request.args.get("value", "0")), "EUR")
    return "ordered"


# Any WSGI framework: OpenTelemetry's WSGI middleware makes the request spans (Flask's own
# instrumentation works as well, where its pins allow the OpenTelemetry release you run).
app.wsgi_app = OpenTelemetryMiddleware(app.wsgi_app)  # type: ignore[method-assign]
