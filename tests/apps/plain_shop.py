"""A Flask app that knows nothing of bizops-otel, for the zero-code test."""

import os

from flask import Flask

app = Flask("plain-shop")


@app.get("/landing")
def landing() -> str:
    return "welcome"


@app.get("/product/<int:product_id>")
def product(product_id: int) -> str:
    return f"product {product_id}"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ["PORT"]), threaded=True)
