"""The Prometheus text exposition, written straight from the columnar metric model.

prometheus_client serialises about 15 µs per series through its generic objects; a key
exports dozens of series, so at thousands of keys a scrape would take seconds. This
writer renders each key's labels once and reuses them for every series of the key. It
writes the same names, types, labels and numbers as :class:`BizOpsCollector` (a test
holds the two together); use it where scrape time matters, the collector where a
prometheus_client registry is wanted.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

from ..aggregate.snapshot import Snapshot
from ..analytics.health import CampaignHealth
from .family import Family, HealthSource, HistogramFamily, Labels, RowLabels
from .lines import Writer, number
from .model import metric_families
from .naming import label_name, prometheus_name

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    if "\\" not in value and "\n" not in value and '"' not in value:
        return value
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    """``name="value",…``, leaving out empty values: Prometheus treats a label with an
    empty value as absent, and at thousands of keys the bytes add up."""
    return ",".join(f'{label_name(k)}="{_escape(v)}"' for k, v in pairs if v)


#: Rendered row labels by label names, then values, kept across scrapes: keys persist from
#: one scrape to the next, and rendering 10,000 keys' labels costs about 10 ms. A table
#: that outgrows the limit starts afresh, so keys that come and go cannot grow it forever.
_RENDERED_LABELS: dict[tuple[str, ...], dict[tuple[str, ...], bytes]] = {}
RENDERED_LABELS_LIMIT = 200_000


def _rendered_labels(names: tuple[str, ...]) -> dict[tuple[str, ...], bytes]:
    table = _RENDERED_LABELS.get(names)
    if table is None or len(table) > RENDERED_LABELS_LIMIT:
        table = _RENDERED_LABELS[names] = {}
    return table


class _Renderer:
    """Writes families as exposition bytes; the lines of whole columns are written by
    ``lines`` (native, or its pure twin)."""

    def __init__(self) -> None:
        self._rows: dict[int, list[bytes]] = {}

    def rows(self, keys: RowLabels) -> list[bytes]:
        """``name="value",…`` for every row (empty values left out)."""
        rows = self._rows.get(id(keys))
        if rows is None:
            names = [label_name(n) for n in keys.names]
            rendered = _rendered_labels(keys.names)
            rows = []
            for values in keys.values:
                text = rendered.get(values)
                if text is None:
                    text = rendered[values] = ",".join(
                        f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True) if v
                    ).encode()
                rows.append(text)
            self._rows[id(keys)] = rows
        return rows

    @staticmethod
    def extra(labels: Labels) -> bytes:
        """``,name="value",…``: the column's labels, written after each row's."""
        text = _labels(labels)
        return f",{text}".encode() if text else b""

    def family(self, family: Family, out: Writer) -> None:
        if not family.loose and not any(column.rows.size for column in family.columns):
            return  # a family without samples is noise to a scrape (promtool warns)
        sample = prometheus_name(family.name, family.unit, family.kind)
        kind = "counter" if family.kind == "counter" else "gauge"
        out.text(f"# HELP {sample} {family.description}\n# TYPE {sample} {kind}\n".encode())
        name = sample.encode()
        for labels, value in family.loose:
            out.text(b"%s{%s} %s\n" % (name, _labels(labels).encode(), number(value)))
        for column in family.columns:
            out.column(name, self.rows(column.keys), self.extra(column.extra),
                       np.ascontiguousarray(column.rows, np.int64),
                       np.ascontiguousarray(column.values, np.float64))

    def histogram(self, family: HistogramFamily, out: Writer) -> None:
        name = prometheus_name(family.name, family.unit, "histogram")
        out.text(f"# HELP {name} {family.description}\n# TYPE {name} histogram\n".encode())
        bounds = [f'le="{edge:.6g}"'.encode() for edge in family.boundaries]
        for column in family.columns:
            rows, extra = self.rows(column.keys), self.extra(column.extra)
            chosen = np.ascontiguousarray(column.rows, np.int64)
            totals = np.ascontiguousarray(column.totals, np.int64)
            out.buckets(f"{name}_bucket".encode(), rows, extra, bounds, chosen,
                        np.ascontiguousarray(column.counts, np.int64), totals)
            out.column(f"{name}_sum".encode(), rows, extra, chosen,
                       np.ascontiguousarray(column.sums, np.float64))
            out.column(f"{name}_count".encode(), rows, extra, chosen, totals.astype(np.float64))


def render(snapshot: Snapshot | None, health: Sequence[CampaignHealth] = ()) -> bytes:
    """The exposition of ``snapshot`` (empty when there is none yet)."""
    if snapshot is None:
        return b""
    families, histogram = metric_families(snapshot, health)
    renderer = _Renderer()
    out = Writer()
    for family in families:
        renderer.family(family, out)
    renderer.histogram(histogram, out)
    return bytes(out.getvalue())


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` header allows gzip (``gzip`` or ``*`` with q > 0)."""
    for coding in accept_encoding.split(","):
        name, *parameters = coding.split(";")
        if name.strip().lower() not in {"gzip", "*"}:
            continue
        quality = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        return quality > 0.0
    return False


def make_wsgi_app(source: Callable[[], Snapshot | None],
                  health: HealthSource | None = None,
                  compress: bool = True,
                  registry: CollectorRegistry | None = None) -> Callable[..., Iterable[bytes]]:
    """A WSGI app serving ``render(source())`` on any path; ``health`` adds the
    campaigns' health (``CampaignMonitor.latest``).

    ``registry`` (a prometheus_client registry, such as ``prometheus_client.REGISTRY``) is
    written first, so an application's own metrics share the endpoint. Should it also
    hold a :class:`BizOpsCollector`, its bizops families are the ones served, so no series
    appears twice.

    Prometheus asks for gzip, and a body of many megabytes shrinks about 15-fold, so it is
    compressed when the client accepts it (``compress=False`` never does). Level 1 takes
    half the time of the default level for a body about a third larger.
    """
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body, headers = _response(source, health, compress, registry,
                                  environ.get("HTTP_ACCEPT_ENCODING", ""))
        start_response("200 OK", headers)
        return [body]
    return app


def make_asgi_app(source: Callable[[], Snapshot | None],
                  health: HealthSource | None = None, compress: bool = True,
                  registry: CollectorRegistry | None = None) -> Callable[..., Any]:
    """The same as :func:`make_wsgi_app`, for ASGI: mount it at ``/metrics`` in Starlette
    or FastAPI (``app.mount("/metrics", make_asgi_app(handle.snapshot))``). The render runs
    on a worker thread, so the event loop keeps serving requests meanwhile."""
    import asyncio

    async def app(scope: dict[str, Any], receive: Callable[..., Any],
                  send: Callable[..., Any]) -> None:
        if scope.get("type") != "http":
            return
        accept = ""
        for name, value in scope.get("headers") or ():
            if name == b"accept-encoding":
                accept = bytes(value).decode("latin-1")
        body, headers = await asyncio.to_thread(_response, source, health, compress,
                                                registry, accept)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(k.lower().encode(), v.encode()) for k, v in headers]})
        await send({"type": "http.response.body", "body": body})
    return app


def _response(source: Callable[[], Snapshot | None], health: HealthSource | None,
              compress: bool, registry: CollectorRegistry | None,
              accept_encoding: str) -> tuple[bytes, list[tuple[str, str]]]:
    body = b""
    if registry is not None:
        body = generate_latest(registry)
    if b"# HELP bizops_" not in body:
        body += render(source(), health() if health is not None else ())
    headers = [("Content-Type", CONTENT_TYPE)]
    if compress and accepts_gzip(accept_encoding):
        body = gzip.compress(body, compresslevel=1)
        headers.append(("Content-Encoding", "gzip"))
    if compress:
        headers.append(("Vary", "Accept-Encoding"))
    headers.append(("Content-Length", str(len(body))))
    return body, headers


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """A thread per scrape, each named for this package, and none outliving
    ``server_close()``: a client that connected and never sent its request (or stopped
    reading the answer) would otherwise hold a thread, and its socket, forever. Closing
    the server shuts those connections down, which wakes their threads, and joins them."""

    daemon_threads = True
    #: Seconds to wait for the scrape threads at close (they end as soon as their socket
    #: is shut down; this bounds a stuck collect).
    close_timeout = 5.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connections: dict[socket.socket, threading.Thread | None] = {}
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections[request] = None
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        thread = threading.current_thread()
        thread.name = "bizops-otel-scrape"
        with self._connections_lock:
            if request in self._connections:
                self._connections[request] = thread
        super().process_request_thread(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.pop(request, None)
        super().shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        with self._connections_lock:
            open_now = list(self._connections.items())
        for connection, _ in open_now:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + self.close_timeout
        for _, thread in open_now:
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))


def start_http_server(port: int, source: Callable[[], Snapshot | None],
                      addr: str = "0.0.0.0", health: HealthSource | None = None,
                      compress: bool = True, registry: CollectorRegistry | None = None,
                      ) -> tuple[WSGIServer, threading.Thread]:
    """Serve the exposition (see :func:`make_wsgi_app`) on ``addr:port`` from a daemon
    thread; ``server.shutdown()`` stops it."""
    server = make_server(addr, port, make_wsgi_app(source, health, compress, registry),
                         server_class=_ThreadingServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="bizops-otel-metrics",
                              daemon=True)
    thread.start()
    return server, thread
