"""Sending encoded requests: gRPC through grpcio, HTTP through requests.

Both come with the OTLP exporter packages this project depends on, and they carry TLS,
HTTP/2 and connection reuse; nothing here speaks a protocol by hand. The exporters
themselves are not reused: they take SDK data objects and encode them (the cost this
package avoids), and the hooks that would let them send ready bytes are private and
change between releases. What a send returns is classified for the pusher: success,
retryable (with the server's requested delay, when it gave one) or permanent.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .settings import PushSettings

METHOD = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
#: gRPC codes the OTLP specification calls retryable. RESOURCE_EXHAUSTED is retryable only
#: when the server says when to retry (RetryInfo).
_RETRYABLE_GRPC = {"CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE",
                   "UNAVAILABLE", "DATA_LOSS"}
_RETRYABLE_HTTP = {429, 502, 503, 504}


@dataclass(frozen=True)
class Outcome:
    """What one send came to. ``reason`` names a failure for the self-metrics."""

    ok: bool
    reason: str = ""
    retryable: bool = False
    retry_after_s: float | None = None
    rejected_points: int = 0


OK = Outcome(True)


class Transport(Protocol):
    def send(self, body: bytes, timeout_s: float) -> Outcome: ...

    def close(self) -> None: ...


def _rejected(reply: bytes) -> int:
    """Points the server refused in a partial success (``ExportMetricsServiceResponse``)."""
    if not reply:
        return 0
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceResponse,
    )
    try:
        response = ExportMetricsServiceResponse.FromString(reply)
    except Exception:  # a reply that is not one is no reason to fail the export
        return 0
    return int(response.partial_success.rejected_data_points)


def _read(path: str | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()


class GrpcTransport:
    """Unary calls of the metrics service on one channel, sending the bytes as they are."""

    def __init__(self, settings: PushSettings) -> None:
        import grpc

        self._grpc = grpc
        options = [("grpc.primary_user_agent", "bizops-otel")]
        compression = grpc.Compression.Gzip if settings.gzip else grpc.Compression.NoCompression
        if settings.insecure:
            self._channel = grpc.insecure_channel(settings.endpoint, options=options,
                                                  compression=compression)
        else:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(settings.certificate),
                private_key=_read(settings.client_key),
                certificate_chain=_read(settings.client_certificate))
            self._channel = grpc.secure_channel(settings.endpoint, credentials,
                                                options=options, compression=compression)
        self._export = self._channel.unary_unary(METHOD, request_serializer=None,
                                                 response_deserializer=None)
        self._metadata = settings.headers

    def send(self, body: bytes, timeout_s: float) -> Outcome:
        grpc = self._grpc
        try:
            reply = self._export(body, timeout=timeout_s, metadata=self._metadata or None)
        except grpc.RpcError as error:
            code = error.code() if hasattr(error, "code") else None
            name = code.name if code is not None else "UNKNOWN"
            delay = _retry_delay(error)
            retryable = name in _RETRYABLE_GRPC or (name == "RESOURCE_EXHAUSTED"
                                                    and delay is not None)
            return Outcome(False, f"grpc_{name.lower()}", retryable, delay)
        return Outcome(True, rejected_points=_rejected(reply))

    def close(self) -> None:
        self._channel.close()


def _retry_delay(error: object) -> float | None:
    """The delay a server asked for in a ``google.rpc.RetryInfo`` trailer, if any."""
    trailers = getattr(error, "trailing_metadata", None)
    if trailers is None:
        return None
    try:
        pairs = trailers() or ()
    except Exception:
        return None
    for key, value in pairs:
        if key == "google.rpc.retryinfo-bin" and isinstance(value, bytes):
            try:
                from google.rpc.error_details_pb2 import RetryInfo
            except ImportError:
                return None
            info = RetryInfo.FromString(value)
            return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    return None


class HttpTransport:
    """POSTs of ``application/x-protobuf`` on one keep-alive session."""

    def __init__(self, settings: PushSettings) -> None:
        import requests

        self._requests = requests
        self._session = requests.Session()
        self._session.verify = settings.certificate or True
        if settings.client_certificate and settings.client_key:
            self._session.cert = (settings.client_certificate, settings.client_key)
        self._url = settings.endpoint
        self._gzip = settings.gzip
        self._headers = {"Content-Type": "application/x-protobuf",
                         "User-Agent": "bizops-otel", **dict(settings.headers)}
        if settings.gzip:
            self._headers["Content-Encoding"] = "gzip"

    def send(self, body: bytes, timeout_s: float) -> Outcome:
        requests = self._requests
        data = gzip.compress(body, compresslevel=6) if self._gzip else body
        try:
            response = self._session.post(self._url, data=data, headers=self._headers,
                                          timeout=timeout_s, allow_redirects=False)
        except requests.Timeout:
            return Outcome(False, "timeout", True)
        except requests.ConnectionError:
            return Outcome(False, "connection", True)
        except requests.RequestException as error:
            return Outcome(False, type(error).__name__.lower(), False)
        status = response.status_code
        if 200 <= status < 300:
            return Outcome(True, rejected_points=_rejected(response.content))
        return Outcome(False, f"http_{status}", status in _RETRYABLE_HTTP,
                       _retry_after(response.headers.get("Retry-After")))

    def close(self) -> None:
        self._session.close()


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: a number of seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime
    from time import time

    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError):
        return None


def open_transport(settings: PushSettings) -> Transport:
    if settings.protocol == "grpc":
        return GrpcTransport(settings)
    return HttpTransport(settings)
