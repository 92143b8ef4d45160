"""Where and how to push, from the standard OpenTelemetry variables only.

Each ``OTEL_EXPORTER_OTLP_METRICS_*`` variable wins over its ``OTEL_EXPORTER_OTLP_*``
sibling, as the specification says. Times are in milliseconds, as the specification says
(the Python SDK's own exporters read ``*_TIMEOUT`` in seconds; a value meant for them is
read here as milliseconds, and the failures it causes are counted and logged as
timeouts).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

from opentelemetry.util.re import parse_env_headers

PROTOCOLS = ("grpc", "http/protobuf")
COMPRESSIONS = ("gzip", "none")
_PREFIX = "OTEL_EXPORTER_OTLP_"
#: APIs from 1.27 also take header values that are not URL-encoded, as other languages'
#: SDKs do; older ones read only encoded values and drop the others with a warning.
_LIBERAL = "liberal" in inspect.signature(parse_env_headers).parameters


@dataclass(frozen=True)
class PushSettings:
    protocol: str
    #: gRPC: host:port; HTTP: the full URL of the metrics path.
    endpoint: str
    #: gRPC only: whether to use a channel without TLS.
    insecure: bool
    headers: tuple[tuple[str, str], ...]
    timeout_s: float
    gzip: bool
    certificate: str | None
    client_key: str | None
    client_certificate: str | None
    interval_s: float
    export_timeout_s: float


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether OTLP metrics are asked for: OTEL_METRICS_EXPORTER names otlp; or, when it
    is not set at all, an OTLP endpoint is. An exporter chosen explicitly (``prometheus``,
    ``none``) is respected even with an endpoint set for traces."""
    env = os.environ if environ is None else environ
    chosen = {e.strip() for e in env.get("OTEL_METRICS_EXPORTER", "").split(",") if e.strip()}
    if chosen:
        return "otlp" in chosen
    return bool(env.get(_PREFIX + "ENDPOINT") or env.get(_PREFIX + "METRICS_ENDPOINT"))


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(_PREFIX + "METRICS_" + name) or env.get(_PREFIX + name)
    return value.strip() if value and value.strip() else None


def _milliseconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number of milliseconds") from None
    if not value > 0:
        raise ValueError(f"{name}={raw!r} must be a positive number of milliseconds")
    return value / 1000.0


def _timeout(env: Mapping[str, str]) -> float:
    for name in ("METRICS_TIMEOUT", "TIMEOUT"):
        if env.get(_PREFIX + name, "").strip():
            return _milliseconds(env, _PREFIX + name, 10.0)
    return 10.0


def load(environ: Mapping[str, str] | None = None) -> PushSettings:
    """The settings; ``ValueError`` naming the variable when one is malformed."""
    env = os.environ if environ is None else environ
    protocol = _get(env, "PROTOCOL") or "grpc"
    if protocol not in PROTOCOLS:
        raise ValueError(f"OTLP protocol {protocol!r} is not supported here; use one of "
                         f"{', '.join(PROTOCOLS)}")
    compression = (_get(env, "COMPRESSION") or "none").lower()
    if compression not in COMPRESSIONS:
        raise ValueError(f"OTLP compression {compression!r} is not supported; use gzip or "
                         "none")
    own = env.get(_PREFIX + "METRICS_ENDPOINT", "").strip()
    shared = env.get(_PREFIX + "ENDPOINT", "").strip()
    insecure_flag = (_get(env, "INSECURE") or "").lower() == "true"
    if protocol == "grpc":
        url = own or shared or "http://localhost:4317"
        parsed = urlparse(url if "://" in url else "//" + url)
        if not parsed.hostname:
            raise ValueError(f"OTLP endpoint {url!r} names no host")
        host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
        endpoint = f"{host}:{parsed.port or 4317}"
        insecure = parsed.scheme == "http" or (parsed.scheme != "https" and insecure_flag)
    else:
        # A signal's own endpoint is used as it is; the shared one gets the signal's path.
        endpoint = own or (shared or "http://localhost:4318").rstrip("/") + "/v1/metrics"
        if urlparse(endpoint).scheme not in ("http", "https"):
            raise ValueError(f"OTLP endpoint {endpoint!r} must be an http:// or https:// URL")
        insecure = endpoint.startswith("http://")
    raw = _get(env, "HEADERS") or ""
    headers = tuple((parse_env_headers(raw, liberal=True) if _LIBERAL
                     else parse_env_headers(raw)).items())
    return PushSettings(
        protocol=protocol, endpoint=endpoint, insecure=insecure, headers=headers,
        timeout_s=_timeout(env), gzip=compression == "gzip",
        certificate=_get(env, "CERTIFICATE"), client_key=_get(env, "CLIENT_KEY"),
        client_certificate=_get(env, "CLIENT_CERTIFICATE"),
        interval_s=_milliseconds(env, "OTEL_METRIC_EXPORT_INTERVAL", 60.0),
        export_timeout_s=_milliseconds(env, "OTEL_METRIC_EXPORT_TIMEOUT", 30.0))
