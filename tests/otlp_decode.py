"""OTLP requests decoded with opentelemetry-proto into plain points, for assertions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

Attributes = frozenset[tuple[str, Any]]


def attributes_of(pairs: Iterable[Any]) -> Attributes:
    out = []
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        out.append((pair.key, getattr(pair.value, kind)))
    return frozenset(out)


@dataclass
class Metric:
    name: str
    unit: str
    kind: str                # "sum", "gauge" or "histogram"
    monotonic: bool
    temporality: int
    points: dict[Attributes, Any]


def decode(*bodies: bytes, latest: bool = False
           ) -> tuple[dict[str, Metric], list[dict[str, Any]]]:
    """Metrics by name (points merged over the requests, which must not repeat a point,
    unless ``latest``: then the requests are successive exports of cumulative state, and a
    later point replaces an earlier one) and each request's resource attributes."""
    metrics: dict[str, Metric] = {}
    resources = []
    for body in bodies:
        request = ExportMetricsServiceRequest.FromString(body)
        for resource_metrics in request.resource_metrics:
            resources.append(dict(attributes_of(resource_metrics.resource.attributes)))
            for scope in resource_metrics.scope_metrics:
                assert scope.scope.name == "bizops_otel"
                for metric in scope.metrics:
                    kind = metric.WhichOneof("data")
                    data = getattr(metric, kind)
                    entry = metrics.setdefault(metric.name, Metric(
                        metric.name, metric.unit, kind, getattr(data, "is_monotonic", False),
                        getattr(data, "aggregation_temporality", 0), {}))
                    for point in data.data_points:
                        key = attributes_of(point.attributes)
                        assert latest or key not in entry.points, (metric.name, key)
                        entry.points[key] = point
    return metrics, resources


def value(point: Any) -> float:
    return float(point.as_double if point.HasField("as_double") else point.as_int)
