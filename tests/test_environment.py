"""The test environment is what a new user installs: the newest OpenTelemetry releases."""

from __future__ import annotations

from importlib import metadata


def _version(package: str) -> tuple[int, ...]:
    return tuple(int(part) for part in metadata.version(package).split(".")[:3])


def test_the_newest_sdk_line_is_resolved() -> None:
    """opentelemetry-sdk 1.45.2 is the first release that enforces the specification's
    cardinality limit (2,000 points per stream by default), which the OTLP path must meet;
    a package pinning the API behind it (opentelemetry-instrumentation-flask does) would
    hold the suite on an SDK no new user gets."""
    assert _version("opentelemetry-sdk") >= (1, 45, 2)
    assert _version("opentelemetry-api") == _version("opentelemetry-sdk")
    assert _version("opentelemetry-exporter-otlp-proto-common") == _version("opentelemetry-sdk")
