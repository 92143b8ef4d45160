"""The Prometheus text exposition, written straight from the columnar metric model.

prometheus_client serialises about 15 µs per series through its generic objects; a key
exports dozens of series, so at thousands of keys a scrape would take seconds. This
writer renders each key's labels once and reuses them for every series of the key. It
writes the same names, types, labels and numbers as :class:`BizOpsCollector` (a test
holds the two together); use it where scrape time matters, the collector where a
prometheus_client registry is wanted.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ..health import CampaignHealth
from ..snapshot import Snapshot
from .analytics import HealthSource
from .model import Family, HistogramFamily, Labels, RowLabels, metric_families
from .prometheus import label_name, prometheus_name

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class _Renderer:
    def __init__(self) -> None:
        self._rows: dict[int, list[str]] = {}

    def rows(self, keys: RowLabels) -> list[str]:
        """``name="value",…`` for every row, rendered once per scrape."""
        rendered = self._rows.get(id(keys))
        if rendered is None:
            names = [label_name(n) for n in keys.names]
            rendered = [",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values,
                                                                       strict=True))
                        for values in keys.values]
            self._rows[id(keys)] = rendered
        return rendered

    @staticmethod
    def extra(labels: Labels) -> str:
        return "".join(f',{label_name(k)}="{_escape(v)}"' for k, v in labels)

    def family(self, family: Family, out: list[str]) -> None:
        gauge = family.kind != "counter"
        base = prometheus_name(family.name, family.unit, gauge=gauge)
        sample = base if gauge else base + "_total"
        out.append(f"# HELP {sample} {family.description}\n"
                   f"# TYPE {sample} {'gauge' if gauge else 'counter'}\n")
        for labels, value in family.loose:
            rendered = ",".join(f'{label_name(k)}="{_escape(v)}"' for k, v in labels)
            out.append(f"{sample}{{{rendered}}} {_number(value)}\n")
        for column in family.columns:
            rows = self.rows(column.keys)
            extra = self.extra(column.extra)
            out.extend(f"{sample}{{{rows[row]}{extra}}} {_number(value)}\n" for row, value
                       in zip(column.rows.tolist(), column.values.tolist(), strict=True))

    def histogram(self, family: HistogramFamily, out: list[str]) -> None:
        name = prometheus_name(family.name, family.unit)
        out.append(f"# HELP {name} {family.description}\n# TYPE {name} histogram\n")
        bounds = [f'le="{edge:.6g}"' for edge in family.boundaries]
        for column in family.columns:
            rows = self.rows(column.keys)
            extra = self.extra(column.extra)
            counts = column.counts.tolist()
            totals = column.totals.tolist()
            for i, row in enumerate(column.rows.tolist()):
                labels = rows[row] + extra
                out.extend(f"{name}_bucket{{{labels},{le}}} {count}.0\n"
                           for le, count in zip(bounds, counts[i], strict=True))
                # No _count or _sum, like the collector: per-outcome latency sums are not
                # kept, and prometheus_client emits _count only together with _sum.
                out.append(f'{name}_bucket{{{labels},le="+Inf"}} {totals[i]}.0\n')


def render(snapshot: Snapshot | None, health: Sequence[CampaignHealth] = ()) -> bytes:
    """The exposition of ``snapshot`` (empty when there is none yet)."""
    if snapshot is None:
        return b""
    families, histogram = metric_families(snapshot, health)
    renderer = _Renderer()
    out: list[str] = []
    for family in families:
        renderer.family(family, out)
    renderer.histogram(histogram, out)
    return "".join(out).encode()


def make_wsgi_app(source: Callable[[], Snapshot | None],
                  health: HealthSource | None = None) -> Callable[..., Iterable[bytes]]:
    """A WSGI app serving ``render(source())`` on any path; ``health`` adds the
    campaigns' health (``CampaignMonitor.latest``)."""
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = render(source(), health() if health is not None else ())
        start_response("200 OK", [("Content-Type", CONTENT_TYPE),
                                  ("Content-Length", str(len(body)))])
        return [body]
    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def start_http_server(port: int, source: Callable[[], Snapshot | None],
                      addr: str = "0.0.0.0", health: HealthSource | None = None,
                      ) -> tuple[WSGIServer, threading.Thread]:
    """Serve the exposition on ``addr:port`` from a daemon thread; ``server.shutdown()``
    stops it."""
    server = make_server(addr, port, make_wsgi_app(source, health),
                         server_class=_ThreadingServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="bizops-otel-metrics",
                              daemon=True)
    thread.start()
    return server, thread
