"""The shop's pages. Orders and conversions are recorded through bizops-otel's context API,
the one line of the shop that knows about it."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

import bizops_otel


def landing(request: HttpRequest) -> HttpResponse:
    return HttpResponse("welcome")


def product(request: HttpRequest, product_id: int) -> HttpResponse:
    bizops_otel.record_conversion(False)  # browsing: an outcome, not a conversion
    return HttpResponse(f"product {product_id}")


def checkout(request: HttpRequest) -> HttpResponse:
    bizops_otel.record_order(float(request.GET.get("value", "0")), "EUR")
    return HttpResponse("ordered")


urlpatterns = [
    path("landing", landing),
    path("product/<int:product_id>", product),
    path("checkout", checkout),
]
