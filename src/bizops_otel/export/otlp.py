"""A MeterProvider that pushes over OTLP, when the standard variables ask for one.

Nothing is reinvented: the exporters read OTEL_EXPORTER_OTLP_* themselves, the reader
reads OTEL_METRIC_EXPORT_INTERVAL, and the resource reads OTEL_SERVICE_NAME and
OTEL_RESOURCE_ATTRIBUTES. This module only decides whether to push, which protocol to
use, and gives each process its own ``service.instance.id``, so the workers of a
pre-fork server stay distinct series in the backend instead of overwriting each other.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource


def wanted(environ: Mapping[str, str]) -> bool:
    """OTLP push is asked for: OTEL_METRICS_EXPORTER names otlp, or an endpoint is set
    while OTEL_METRICS_EXPORTER does not say none."""
    exporters = {e.strip() for e in environ.get("OTEL_METRICS_EXPORTER", "").split(",")}
    if "none" in exporters:
        return False
    return "otlp" in exporters or bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                                       or environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"))


def exporter(environ: Mapping[str, str]) -> MetricExporter:
    protocol = (environ.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
                or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc").strip()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        return OTLPMetricExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HTTPMetricExporter,
        )
        return HTTPMetricExporter()
    raise ValueError(f"bizops-otel: OTLP protocol {protocol!r} is not supported; "
                     "use grpc or http/protobuf")


def meter_provider(environ: Mapping[str, str] | None = None) -> MeterProvider | None:
    """A MeterProvider pushing OTLP, or None when nothing asks for it."""
    env = os.environ if environ is None else environ
    if not wanted(env):
        return None
    resource = Resource.create({"service.instance.id": str(uuid.uuid4())})
    reader = PeriodicExportingMetricReader(exporter(env))
    return MeterProvider(resource=resource, metric_readers=[reader])
