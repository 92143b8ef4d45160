"""OTLP metrics, encoded directly from the metric model and pushed by the standard
``OTEL_EXPORTER_OTLP_*`` variables.

``encode(snapshot)`` gives a serialized ``ExportMetricsServiceRequest``: real histograms,
exact at any key count, without the SDK's instruments or their cardinality limit. The
pusher (``push``) sends it periodically over gRPC or HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...aggregate.snapshot import Snapshot
from ...analytics.health import CampaignHealth
from . import encoder, resource
from ._wire import AttributeValue


def encode(snapshot: Snapshot, *, resource_attributes: Mapping[str, AttributeValue] | None = None,
           time_ns: int | None = None, health: Sequence[CampaignHealth] = (),
           tracer_provider: Any = None) -> bytes:
    """``snapshot`` as one serialized ``ExportMetricsServiceRequest``.

    ``resource_attributes`` default to this process's resource (see ``resource``), taken
    from ``tracer_provider`` when given; ``time_ns`` to now.
    """
    attributes = (resource.attributes(tracer_provider) if resource_attributes is None
                  else resource_attributes)
    built = encoder.metrics(snapshot, health, time_ns)
    (request,) = encoder.requests(built, encoder.resource_field(attributes), max_bytes=1 << 62)
    return request


__all__ = ["encode"]
