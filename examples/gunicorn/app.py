"""A shop served by gunicorn workers; see gunicorn.conf.py for the bizops-otel wiring.

    BIZOPS_OTEL_MULTIPROC_DIR=/tmp/bizops gunicorn -c examples/gunicorn/gunicorn.conf.py \
        --chdir examples/gunicorn app:app
"""

from flask import Flask, request
from opentelemetry.instrumentation.flask import FlaskInstrumentor

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


FlaskInstrumentor().instrument_app(app)
