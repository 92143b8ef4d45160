"""A Flask app that knows nothing of bizops-otel, for the zero-code test."""

import os

from flask import Flask


def add_pages(app: Flask) -> None:
    """The shop's read-only pages, shared with the instrumented test app."""

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
