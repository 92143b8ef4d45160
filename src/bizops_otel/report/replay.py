"""Recorded spans replayed into an aggregator, for a report of traffic already served.

Two formats:

- **OTLP/JSON lines**, as the OpenTelemetry Collector's file exporter writes them: one
  ``ExportTraceServiceRequest`` per line (``resourceSpans`` → ``scopeSpans`` → ``spans``).
  Each span goes the way the span processor would have sent it: enriched as at its start
  (campaign from the utm parameters of its URL, page group from the rules), recorded if
  its kind is one of ``record_kinds`` (or it is a local root), through ``record_span``.
  Spans of a service that ran bizops-otel already carry their business attributes.
- **CSV** with a header row naming the columns ``timestamp`` (the request's start: Unix
  seconds or ISO 8601), ``route``, ``latency`` (seconds; or ``latency_ms``),
  ``order_value``, ``session``, ``campaign``, ``variant``, and optionally ``converted``
  (0/1), ``error`` (0/1) and ``flag``. Without a ``converted`` column a row with an order
  value counts as a conversion, so sessions convert by their orders.

Every span goes through ``record_span`` one by one, because the session table needs each
request's session: the native aggregator takes about a microsecond per span. As the
replay advances through time it checks campaign health once a window (at most once per
:data:`CHECK_EVERY` spans), so the report can show each campaign's state over time.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import json
import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ..aggregate.aggregator import Aggregator
from ..aggregate.snapshot import Snapshot
from ..analytics.health import CampaignHealth, CampaignMonitor
from ..attributes import (
    CAMPAIGN_ID,
    CONVERSION,
    FEATURE_FLAG_KEY,
    FEATURE_FLAG_VARIANT,
    HTTP_ROUTE,
    HTTP_TARGET,
    ORDER_VALUE,
    PAGE_GROUP,
    SESSION_ID,
    URL_QUERY,
)
from ..config import Config
from ..span.enrich import Enricher, full_url_of, query_of
from .progress import Progress
from .timeline import Timeline

#: Dimensions of a replay when the configuration names none of its own.
REPLAY_DIMENSIONS = (PAGE_GROUP, CAMPAIGN_ID, FEATURE_FLAG_KEY, FEATURE_FLAG_VARIANT)
#: Fewest spans between two campaign-health checks.
CHECK_EVERY = 10_000
#: OTLP span kinds by number and by name.
_KINDS = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}
_KIND_NAMES = {f"SPAN_KIND_{name.upper()}": number for name, number in _KINDS.items()}
_STATUS_ERROR = 2
#: OTLP span flags: whether the parent's remoteness is known, and whether it is remote.
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200
_NS = 10**9


class ReplayError(ValueError):
    """A file that is not OTLP/JSON lines or a CSV of the expected columns."""


class Replay(NamedTuple):
    """What a replay produced."""

    #: The state after the last span, every session finalised.
    snapshot: Snapshot
    #: Campaign health at the end of the traffic (its last window).
    health: list[CampaignHealth]
    timeline: Timeline
    spans: int
    #: Seconds between the first span's start and the last span's end.
    period_s: float


class _Span:
    """What enrichment writes to: the attributes of a span being replayed."""

    __slots__ = ("attributes", "name")

    def __init__(self, name: str, attributes: dict[str, Any]) -> None:
        self.name = name
        self.attributes = attributes

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def set_attributes(self, values: Mapping[str, Any]) -> None:
        self.attributes.update(values)


class Replayer:
    """Feeds spans to an aggregator as the span processor would, and keeps the time."""

    def __init__(self, config: Config, aggregator: Any = None) -> None:
        self.config = config
        # A given aggregator keeps its own key_ttl; made here, keys never expire (as
        # replay_config says why).
        self.aggregator = (aggregator if aggregator is not None
                           else Aggregator(dataclasses.replace(config, key_ttl=0)))
        self._record = self.aggregator.record_span
        self._enricher = Enricher(config)
        self._group_at = self._enricher.page_group_at
        self._always = self._enricher.always
        self._route_fallbacks = self._enricher.route_fallbacks
        self._fallbacks = self._enricher.fallbacks
        self._kinds = frozenset(_KINDS[k] for k in config.record_kinds)
        self._roots = config.record_local_roots
        self._monitor = CampaignMonitor(lambda: None)
        self.timeline = Timeline()
        self.spans = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self._checked_ns: int | None = None
        self._since_check = 0
        self._step_ns = round(config.window * _NS)

    # One span -------------------------------------------------------------------------
    def span(self, name: str, attributes: dict[str, Any], start_ns: int, end_ns: int,
             error: bool, has_url: bool = True) -> None:
        """Enrich and record one request span (``attributes`` is written to), as the span
        hooks do, cached fallbacks first; ``has_url`` False: the span carries no URL to
        read a campaign from."""
        enricher = self._enricher
        if self._always:
            enricher.enrich(_Span(name, attributes), None, attributes, None)
        elif has_url:
            query = query_of(attributes.get(URL_QUERY), attributes.get(HTTP_TARGET),
                             full_url_of(attributes))
            if query is not None and "utm_" in query:
                enricher.enrich(_Span(name, attributes), None, attributes, None)
        fallback = None
        if self._group_at >= 0 and PAGE_GROUP not in attributes:
            route = attributes.get(HTTP_ROUTE)
            if isinstance(route, str):
                fallback = self._route_fallbacks.get(route)
            else:
                route = None
            if fallback is None:
                fallback = self._fallbacks.get((route, name))
                if fallback is None:
                    fallback = enricher.fallback(attributes, name)
        self._record(attributes, start_ns, end_ns, error, fallback)
        self.spans += 1
        if self.first_ns is None or start_ns < self.first_ns:
            self.first_ns = start_ns
        if self.last_ns is None or end_ns > self.last_ns:
            self.last_ns = end_ns
        self._since_check += 1
        # Checks follow the latest end seen, which only moves forward: files are ordered
        # roughly (by session, by batch), and one early or late span must not move the
        # window a check reads.
        if self._checked_ns is None:
            self._checked_ns = end_ns
        elif (self.last_ns - self._checked_ns >= self._step_ns
              and self._since_check >= CHECK_EVERY):
            self._check(self.last_ns)

    def _check(self, at_ns: int) -> None:
        self.timeline.observe(self._monitor.check(self.aggregator.snapshot(now_ns=at_ns)),
                              at_ns)
        self._checked_ns = at_ns
        self._since_check = 0

    def finish(self) -> Replay:
        """Campaign health at the end of the traffic, then every session finalised."""
        if self.last_ns is None or self.first_ns is None:
            snapshot = self.aggregator.snapshot()
            return Replay(snapshot, [], self.timeline, 0, math.nan)
        self._check(self.last_ns)
        health = list(self._monitor.latest)
        final = self.last_ns + self.config.session_timeout_ns + 1
        snapshot = self.aggregator.snapshot(now_ns=final)
        return Replay(snapshot, health, self.timeline, self.spans,
                      (self.last_ns - self.first_ns) / _NS)

    # OTLP/JSON lines ------------------------------------------------------------------
    def otlp_line(self, line: str | bytes) -> None:
        """One line of the file exporter: an ExportTraceServiceRequest in OTLP/JSON."""
        if not line.strip():
            return
        try:
            request = json.loads(line)
        except ValueError as error:
            raise ReplayError(f"not a JSON line: {error}") from None
        if not isinstance(request, dict) or not (
                "resourceSpans" in request or "resource_spans" in request):
            raise ReplayError("not an OTLP/JSON trace line (no resourceSpans)")
        for resource in _items(request, "resourceSpans", "resource_spans"):
            for scope in _items(resource, "scopeSpans", "scope_spans"):
                for span in _items(scope, "spans", "spans"):
                    self._otlp_span(span)

    def _otlp_span(self, span: Mapping[str, Any]) -> None:
        kind = span.get("kind", 0)
        kind = _KIND_NAMES.get(kind, 0) if isinstance(kind, str) else kind
        if kind not in self._kinds:
            parent = span.get("parentSpanId") or span.get("parent_span_id")
            flags = int(span.get("flags", 0) or 0)
            local_parent = bool(parent) and not (flags & _HAS_IS_REMOTE and flags & _IS_REMOTE)
            if not self._roots or local_parent:
                return
        status = span.get("status") or {}
        code = status.get("code", 0)
        error = code == _STATUS_ERROR or code == "STATUS_CODE_ERROR"
        attributes = {}
        for item in span.get("attributes") or ():
            value = item.get("value") or {}
            text = value.get("stringValue")  # most attributes: no call for them
            attributes[item["key"]] = text if text is not None else _value(value)
        start_text: Any = span.get("startTimeUnixNano") or span.get("start_time_unix_nano")
        end_text: Any = span.get("endTimeUnixNano") or span.get("end_time_unix_nano")
        try:
            start, end = int(start_text), int(end_text)
        except (TypeError, ValueError):
            start, end = 0, -1  # counted as a bad latency, as the processor would
        self.span(str(span.get("name", "")), attributes, start, end, error)

    # CSV --------------------------------------------------------------------------------
    def csv_rows(self, rows: Iterator[list[str]], header: list[str]) -> Iterator[int]:
        """Record the rows of a CSV whose first row was ``header``; yields after every
        row (for progress), the rows read so far."""
        column = _csv_columns(header)
        route_at, session_at = column["route"], column.get("session")
        value_at, campaign_at = column.get("order_value"), column.get("campaign")
        variant_at, flag_at = column.get("variant"), column.get("flag")
        converted_at, error_at = column.get("converted"), column.get("error")
        # Milliseconds read as seconds are a thousand times too many nanoseconds.
        latency_at, divisor = ((column["latency"], 1) if "latency" in column
                               else (column["latency_ms"], 1000))
        time_at = column["timestamp"]
        for number, row in enumerate(rows, 2):
            try:
                start = _timestamp_ns(row[time_at])
                end = start + _decimal_ns(row[latency_at]) // divisor
            except (ValueError, IndexError) as error:
                raise ReplayError(f"line {number}: {error}") from None
            route = row[route_at]
            attributes: dict[str, Any] = {HTTP_ROUTE: route}
            if session_at is not None and row[session_at]:
                attributes[SESSION_ID] = row[session_at]
            if campaign_at is not None and row[campaign_at]:
                attributes[CAMPAIGN_ID] = row[campaign_at]
            if variant_at is not None and row[variant_at]:
                attributes[FEATURE_FLAG_VARIANT] = row[variant_at]
            if flag_at is not None and row[flag_at]:
                attributes[FEATURE_FLAG_KEY] = row[flag_at]
            if value_at is not None and row[value_at]:
                attributes[ORDER_VALUE] = _number(row[value_at], number)
            if converted_at is not None:
                if row[converted_at]:
                    attributes[CONVERSION] = _flag(row[converted_at])
            elif attributes.get(ORDER_VALUE, 0) > 0:
                attributes[CONVERSION] = True
            failed = error_at is not None and _flag(row[error_at])
            self.span(route, attributes, start, end, failed, has_url=False)
            yield number - 1


#: CSV column names, and the names they may also go by.
_CSV_NAMES = {
    "timestamp": ("timestamp", "time", "start", "start_time"),
    "route": ("route", "http.route", "path"),
    "latency": ("latency", "latency_s", "duration", "duration_s"),
    "latency_ms": ("latency_ms", "duration_ms"),
    "order_value": ("order_value", "order value", "value", "revenue"),
    "session": ("session", "session_id", "session.id"),
    "campaign": ("campaign", "utm_campaign", "campaign_id"),
    "variant": ("variant", "feature_flag.result.variant"),
    "flag": ("flag", "feature_flag", "feature_flag.key"),
    "converted": ("converted", "conversion"),
    "error": ("error", "failed"),
}


def _csv_columns(header: list[str]) -> dict[str, int]:
    names = [name.strip().lower() for name in header]
    column = {}
    for field, aliases in _CSV_NAMES.items():
        for alias in aliases:
            if alias in names:
                column[field] = names.index(alias)
                break
    missing = [f for f in ("timestamp", "route") if f not in column]
    if "latency" not in column and "latency_ms" not in column:
        missing.append("latency")
    if missing:
        raise ReplayError(f"CSV header {header} lacks the columns {missing}")
    return column


def _decimal_ns(text: str) -> int:
    """Decimal seconds as integer nanoseconds, exactly (``1.5`` → 1500000000); other
    number forms (exponents) through float."""
    whole, _, fraction = text.partition(".")
    try:
        nanos = int(fraction[:9].ljust(9, "0")) if fraction else 0
        seconds = int(whole)
    except ValueError:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {text!r}") from None
        return round(value * _NS)
    return seconds * _NS - nanos if whole.lstrip().startswith("-") else seconds * _NS + nanos


def _timestamp_ns(text: str) -> int:
    try:
        return _decimal_ns(text)
    except ValueError:
        pass
    stamp = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.UTC)
    whole = int(stamp.replace(microsecond=0).timestamp())
    return whole * _NS + stamp.microsecond * 1000


def _number(text: str, line: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise ReplayError(f"line {line}: not a number: {text!r}") from None


def _flag(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes")


def _items(parent: Mapping[str, Any], camel: str, snake: str) -> list[Any]:
    items = parent.get(camel)
    if items is None:
        items = parent.get(snake)
    return items if isinstance(items, list) else []


def _value(any_value: Mapping[str, Any]) -> Any:
    """An OTLP AnyValue in its JSON form as the SDK would hold it (int64 as strings)."""
    if "stringValue" in any_value:
        return any_value["stringValue"]
    if "intValue" in any_value:
        return int(any_value["intValue"])
    if "doubleValue" in any_value:
        return float(any_value["doubleValue"])
    if "boolValue" in any_value:
        return bool(any_value["boolValue"])
    if "arrayValue" in any_value:
        return tuple(_value(v) for v in (any_value["arrayValue"] or {}).get("values", ()))
    return None  # kvlist and bytes values carry nothing a report reads


# Files --------------------------------------------------------------------------------
def replay_config(config: Config) -> Config:
    """``config`` for a replay: the replay's dimensions when it keeps only the default ones,
    and keys that never expire (``key_ttl=0``). A report covers the whole file, and its
    final snapshot comes a session timeout after the last span, past any idle time."""
    if config.dimensions == Config().dimensions:
        config = dataclasses.replace(config, dimensions=REPLAY_DIMENSIONS)
    if config.key_ttl != 0:
        config = dataclasses.replace(config, key_ttl=0)
    return config


def is_csv(path: Path) -> bool:
    return path.suffix.lower() in (".csv", ".tsv")


def replay_file(path: Path, config: Config, aggregator: Any = None,
                progress: Callable[[int, int], None] | None = None) -> Replay:
    """Replay the spans in ``path``: a CSV (``.csv``) or OTLP/JSON lines (any other
    name). ``progress(bytes_read, spans)`` is called as the replay advances."""
    replayer = Replayer(config, aggregator)
    with path.open("rb") as raw:
        if is_csv(path):
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            reader = csv.reader(text, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            header = next(reader, None)
            if header is None:
                raise ReplayError("empty CSV")
            for rows in replayer.csv_rows(reader, header):
                if progress is not None and rows % 4096 == 0:
                    progress(raw.tell(), replayer.spans)
        else:
            for number, line in enumerate(raw, 1):
                try:
                    replayer.otlp_line(line)
                except ReplayError as error:
                    raise ReplayError(f"line {number}: {error}") from None
                if progress is not None:
                    progress(raw.tell(), replayer.spans)
    return replayer.finish()


def replay_with_progress(path: Path, config: Config, aggregator: Any = None) -> Replay:
    """:func:`replay_file` with a progress bar on stderr."""
    bar = Progress(path.stat().st_size, f"replaying {path.name}")
    result = replay_file(path, config, aggregator, bar.update)
    bar.close(result.spans)
    return result
