"""Who is exporting: the application's OpenTelemetry resource, and one instance per process.

The attributes are the SDK's own resource detection (``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, the SDK's telemetry attributes), merged with the
TracerProvider's resource when the application configured one, plus a
``service.instance.id`` of this process. Each worker of a pre-fork server gets its own id
after the fork, so its cumulative series stay distinct in the backend instead of
overwriting each other.
"""

from __future__ import annotations

import os
import uuid
from typing import Any, cast

from opentelemetry.sdk.resources import Resource

from ._wire import AttributeValue

INSTANCE_ID = "service.instance.id"

_instance = {"pid": -1, "id": ""}


def instance_id() -> str:
    """This process's ``service.instance.id``: a new one in every process, forks included."""
    if _instance["pid"] != os.getpid():
        _instance["pid"], _instance["id"] = os.getpid(), str(uuid.uuid4())
    return str(_instance["id"])


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
    configured = resource.attributes.get(INSTANCE_ID)
    # An instance id configured for the service names the service's process before a
    # fork; each worker still needs its own, so it is kept only in the process that set it.
    merged[INSTANCE_ID] = configured if isinstance(configured, str) and not _forked() \
        else instance_id()
    return merged


def _encodable(value: object) -> bool:
    """Values OTLP attributes carry here: scalars and sequences of scalars."""
    if isinstance(value, str | bool | int | float):
        return True
    return isinstance(value, list | tuple) and all(
        isinstance(item, str | bool | int | float) for item in value)


_started_pid = os.getpid()


def _forked() -> bool:
    return os.getpid() != _started_pid
