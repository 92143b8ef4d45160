"""Recorded traffic as the report's replays read it: OTLP/JSON lines as the Collector's
file exporter writes them, and CSV rows, made from the simulator's sessions."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan

from bizops_otel.demo.simulate import Session

CSV_HEADER = ("timestamp", "route", "latency", "order_value", "session", "campaign",
              "variant", "flag", "converted", "error")


def _hex_ids(node: Any) -> Any:
    """The file exporter writes trace and span ids in hex (OTLP/JSON), not base64."""
    import base64

    if isinstance(node, dict):
        return {key: (base64.b64decode(value).hex()
                      if key in ("traceId", "spanId", "parentSpanId") and value
                      else _hex_ids(value)) for key, value in node.items()}
    if isinstance(node, list):
        return [_hex_ids(item) for item in node]
    return node


def otlp_lines(spans: Sequence[ReadableSpan], per_line: int = 500,
               enum_names: bool = False) -> str:
    """The spans as OTLP/JSON lines, ``per_line`` spans to a line (the file exporter
    writes one export request per line); enums as integers, as OTLP/JSON asks, or by
    name."""
    lines = []
    for at in range(0, len(spans), per_line):
        message = encode_spans(spans[at:at + per_line])
        tree = json_format.MessageToDict(message, use_integers_for_enums=not enum_names)
        lines.append(json.dumps(_hex_ids(tree), separators=(",", ":")))
    return "\n".join(lines) + "\n"


def _decimal(ns: int) -> str:
    return f"{ns // 10**9}.{ns % 10**9:09d}"


def csv_text(sessions: Sequence[Session], epoch_ns: int, flag: str = "new-checkout") -> str:
    """One row per request, timed as ``simulate.emit`` times its spans; the campaign is on
    the landing request only, as its utm parameters are."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for session in sessions:
        for request in session.requests:
            start = epoch_ns + int(request.start_s * 1e9)
            latency = int(request.latency_s * 1e9)
            writer.writerow((
                _decimal(start), request.page.route, _decimal(latency),
                "" if request.order_value is None else repr(request.order_value),
                session.id, session.campaign if request.query else "", session.variant,
                flag, int(request.converted) if request.confirm else "",
                int(request.error)))
    return out.getvalue()
