"""Who is exporting: the application's OpenTelemetry resource, and one instance per process.

The attributes are the SDK's own resource detection (``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, the SDK's telemetry attributes), merged with the
TracerProvider's resource when the application configured one, and a
``service.instance.id`` of this very process: each worker of a pre-fork server pushes its
own cumulative series, which would overwrite each other under one id.

The id is the SDK's when it keeps one per process (recent SDKs do, and renew it after a
fork, so traces and metrics of a process agree), else a random one of this package's. Like
the SDK after a fork, it replaces an id configured for the whole service.
"""

from __future__ import annotations

import os
import uuid
from typing import Any, cast

from opentelemetry.sdk.resources import Resource

from ._wire import AttributeValue

INSTANCE_ID = "service.instance.id"

_own = {"pid": -1, "id": ""}


def instance_id() -> str:
    """This process's ``service.instance.id``, renewed in every forked child."""
    try:
        from opentelemetry.sdk.resources import ServiceInstanceIdResourceDetector
    except ImportError:  # SDKs before the detector: one of our own per process
        if _own["pid"] != os.getpid():
            _own["pid"], _own["id"] = os.getpid(), str(uuid.uuid4())
        return str(_own["id"])
    return str(ServiceInstanceIdResourceDetector().detect().attributes[INSTANCE_ID])


def attributes(tracer_provider: Any = None) -> dict[str, AttributeValue]:
    """The resource of this process's exports, the instance id last."""
    resource = Resource.create()
    provided = getattr(tracer_provider, "resource", None)
    if isinstance(provided, Resource):
        resource = resource.merge(provided)
    merged: dict[str, AttributeValue] = {}
    for key, value in resource.attributes.items():
        if key != INSTANCE_ID and _encodable(value):
            merged[key] = cast(AttributeValue, value)
    merged[INSTANCE_ID] = instance_id()
    return merged


def _encodable(value: object) -> bool:
    """Values OTLP attributes carry here: scalars and sequences of scalars."""
    if isinstance(value, str | bool | int | float):
        return True
    return isinstance(value, list | tuple) and all(
        isinstance(item, str | bool | int | float) for item in value)
