"""An OTLP receiver on 127.0.0.1, gRPC or HTTP, built from the official
opentelemetry-proto service definitions. It keeps every metrics request it receives, and
over gRPC the attributes of every span too."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class Received:
    def __init__(self) -> None:
        self.requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self.bodies: list[bytes] = []
        self.spans: list[dict[str, str]] = []
        self.lock = threading.Lock()
        #: Answers to give before accepting, one per request: an HTTP status with headers
        #: (HTTP), or a gRPC status code with trailing metadata (gRPC), each after a delay.
        self.faults: list[tuple[Any, dict[str, Any], float]] = []
        self.attempts = 0
        self.content_encodings: list[str] = []
        self.headers: list[dict[str, str]] = []

    def next_fault(self) -> tuple[Any, dict[str, Any], float] | None:
        with self.lock:
            self.attempts += 1
            return self.faults.pop(0) if self.faults else None

    def add(self, request: metrics_service_pb2.ExportMetricsServiceRequest,
            body: bytes = b"") -> None:
        with self.lock:
            self.requests.append(request)
            self.bodies.append(body or request.SerializeToString())

    def last_points(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """Metric name -> [(attributes, value)] from the most recent export."""
        with self.lock:
            request = self.requests[-1]
        points: dict[str, list[tuple[dict[str, str], float]]] = {}
        for resource_metrics in request.resource_metrics:
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    data = metric.sum if metric.HasField("sum") else metric.gauge
                    for point in data.data_points:
                        attributes = {a.key: a.value.string_value for a in point.attributes}
                        value = (point.as_double if point.HasField("as_double")
                                 else float(point.as_int))
                        points.setdefault(metric.name, []).append((attributes, value))
        return points

    def resources(self) -> list[dict[str, str]]:
        with self.lock:
            return [{a.key: a.value.string_value for a in rm.resource.attributes}
                    for request in self.requests for rm in request.resource_metrics]


class _Service(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, received: Received) -> None:
        self._received = received

    def Export(self, request: Any, context: Any) -> Any:
        fault = self._received.next_fault()
        if fault is not None:
            code, trailers, delay = fault
            time.sleep(delay)
            if code is not None:
                context.set_trailing_metadata(tuple(trailers.items()))
                context.abort(code, "planted fault")
        with self._received.lock:
            self._received.headers.append(dict(context.invocation_metadata()))
        self._received.add(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, received: Received) -> None:
        self._received = received

    def Export(self, request: Any, context: Any) -> Any:
        spans = [{a.key: a.value.string_value for a in span.attributes}
                 for resource_spans in request.resource_spans
                 for scope in resource_spans.scope_spans for span in scope.spans]
        with self._received.lock:
            self._received.spans.extend(spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@contextmanager
def grpc_receiver() -> Iterator[tuple[str, Received]]:
    received = Received()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Service(received), server)
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(received), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        server.stop(grace=None)


@contextmanager
def http_receiver() -> Iterator[tuple[str, Received]]:
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            fault = received.next_fault()
            if fault is not None:
                status, headers, delay = fault
                time.sleep(delay)
                if status is not None:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            encoding = self.headers.get("Content-Encoding", "")
            with received.lock:
                received.content_encodings.append(encoding)
                received.headers.append({k.lower(): v for k, v in self.headers.items()})
            if encoding == "gzip":
                body = gzip.decompress(body)
            request = metrics_service_pb2.ExportMetricsServiceRequest()
            request.ParseFromString(body)
            received.add(request, body)
            reply = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    Handler.protocol_version = "HTTP/1.1"  # keep-alive, as the pusher's session uses
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        thread.join(10)
