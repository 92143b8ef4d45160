"""A Flask app that knows nothing of bizops-otel or OpenTelemetry: run it under
opentelemetry-instrument and bizops-otel comes with it.

    pip install 'bizops-otel' flask opentelemetry-distro opentelemetry-instrumentation-flask
    BIZOPS_OTEL_PROMETHEUS_PORT=9464 BIZOPS_OTEL_PAGE_GROUPS='/product/*=product' \
        PORT=8000 opentelemetry-instrument python examples/flask_zero_code/app.py

Prometheus scrapes http://127.0.0.1:9464/metrics.
"""

import os

from flask import Flask


def add_pages(app: Flask) -> None:
    """The shop's pages (the explicit Flask tests serve them too)."""

    @app.get("/landing")
    def landing() -> str:
        return "welcome"

    @app.get("/product/<int:product_id>")
    def product(product_id: int) -> str:
        return f"product {product_id}"


app = Flask("plain-shop")
add_pages(app)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ["PORT"]), threaded=True)
