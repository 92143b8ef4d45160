"""The metric model as OTLP: ``ExportMetricsServiceRequest`` protobuf bytes, written
directly, without building protobuf objects or going through the SDK's instruments.

- Raw sums are cumulative Sums (monotonic where they cannot decrease); derived values are
  Gauges; latency is one Histogram, ``bizops.request.duration`` in seconds, a point per key
  and outcome with its count, sum and the exported bounds.
- Every cumulative point starts when the aggregator started counting, so a backend
  computes rates across restarts and forks; all points of one export share its time.
- Attributes are the key's dimensions, empty ones left out; the overflow key carries
  ``otel.metric.overflow = true``, as the SDK marks its own overflow.
- A large export is split into several requests, each under ``max_bytes``: a Collector
  receives at most 4 MiB per gRPC message by default. Splitting cuts between points,
  so every request is a valid request on its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..._version import __version__
from ...aggregate.snapshot import Snapshot
from ...analytics.health import CampaignHealth
from ..family import OVERFLOW_LABEL, Family, HistogramFamily, Labels, RowLabels
from ..model import metric_families
from . import _wire
from .points import histogram_points, number_points

SCOPE = _wire.field_bytes(1, b"bizops_otel") + _wire.field_bytes(2, __version__.encode())
#: A Collector's gRPC receiver takes 4 MiB per message unless configured otherwise.
DEFAULT_MAX_BYTES = 4 * 1024 * 1024 - 64 * 1024
#: Bytes of points per kernel call, at most: the unit a large metric is split by. Sized by
#: the longest attributes of the rows, so long dimension values (``max_value_length`` up
#: to 1,024 characters) cannot make a chunk larger than a request may be.
CHUNK_BYTES = 256 * 1024
#: Points per kernel call, at most, whatever their size.
POINTS_PER_CHUNK = 2048

_CUMULATIVE = 2
_NUMBER_ATTRIBUTES, _HISTOGRAM_ATTRIBUTES = 7, 9
_GAUGE, _SUM, _HISTOGRAM = 5, 7, 9

#: Encoded ``KeyValue`` fields by (field, key, value), kept across exports: keys persist
#: from one export to the next. A table that outgrows the limit starts afresh.
_ENCODED: dict[tuple[int, str, str], bytes] = {}
ENCODED_LIMIT = 200_000


def _attribute(field: int, key: str, value: str) -> bytes:
    cached = _ENCODED.get((field, key, value))
    if cached is None:
        if len(_ENCODED) > ENCODED_LIMIT:
            _ENCODED.clear()
        typed: _wire.AttributeValue = True if key == OVERFLOW_LABEL else value
        cached = _ENCODED[(field, key, value)] = _wire.field_bytes(
            field, _wire.key_value(key, typed))
    return cached


def _labels(field: int, labels: Labels) -> bytes:
    """Attribute fields of ``labels``; an empty value means the attribute is absent."""
    return b"".join(_attribute(field, k, v) for k, v in labels if v)


#: Each row's encoded attributes by (field, label names), then label values, kept across
#: exports like ``_ENCODED``: encoding 10,000 rows costs tens of milliseconds, a lookup
#: a fraction of one. A table that outgrows the limit starts afresh.
_ROWS: dict[tuple[int, tuple[str, ...]], dict[tuple[str, ...], bytes]] = {}


class _RowAttributes:
    """Each row's attribute fields, looked up once per row set and point type."""

    def __init__(self) -> None:
        self._built: dict[tuple[int, int], list[bytes]] = {}
        self._longest: dict[tuple[int, int], int] = {}

    def longest(self, keys: RowLabels, field: int) -> int:
        """The longest attribute fields of any row: a bound for sizing chunks."""
        found = self._longest.get((id(keys), field))
        if found is None:
            found = self._longest[(id(keys), field)] = max(
                map(len, self.of(keys, field)), default=0)
        return found

    def of(self, keys: RowLabels, field: int) -> list[bytes]:
        built = self._built.get((id(keys), field))
        if built is None:
            names = keys.names
            table = _ROWS.get((field, names))
            if table is None or len(table) > ENCODED_LIMIT:
                table = _ROWS[(field, names)] = {}
            built = []
            for values in keys.values:
                encoded = table.get(values)
                if encoded is None:
                    encoded = table[values] = _labels(field, tuple(zip(names, values,
                                                                       strict=True)))
                built.append(encoded)
            self._built[(id(keys), field)] = built
        return built


def _framed(field: int, parts: list[bytes]) -> list[bytes]:
    """A length-delimited field around ``parts``, still in parts: the request is joined
    once at the end, instead of copying tens of megabytes at every level of nesting."""
    return [_wire.tag(field, _wire.LENGTH) + _wire.varint(sum(map(len, parts))), *parts]


@dataclass
class _Metric:
    """One metric's message, less its points: the head (name, description, unit), the
    field of its data message, and the fields that follow the points in it."""

    head: bytes
    data_field: int
    trailer: bytes
    chunks: list[bytes]

    def message(self, chunks: Sequence[bytes]) -> list[bytes]:
        """``ScopeMetrics.metrics`` (field 2) holding ``chunks`` of the points."""
        return _framed(2, [self.head, *_framed(self.data_field, [*chunks, self.trailer])])


def _head(name: str, description: str, unit: str) -> bytes:
    return (_wire.field_bytes(1, name.encode()) + _wire.field_bytes(2, description.encode())
            + _wire.field_bytes(3, unit.encode()))


def _slices(size: int, point_bytes: int) -> Iterator[slice]:
    """Row slices of at most ``CHUNK_BYTES`` of points that take ``point_bytes`` at most."""
    per_chunk = max(1, min(POINTS_PER_CHUNK, CHUNK_BYTES // max(1, point_bytes)))
    for start in range(0, size, per_chunk):
        yield slice(start, min(size, start + per_chunk))



def _number_metric(family: Family, rows: _RowAttributes, start_ns: int,
                   time_ns: int) -> _Metric | None:
    head = _wire.field_fixed64(2, start_ns) + _wire.field_fixed64(3, time_ns)
    chunks = []
    if family.loose:
        loose_rows = [_labels(_NUMBER_ATTRIBUTES, labels) for labels, _ in family.loose]
        values = np.array([value for _, value in family.loose], np.float64)
        chunks.append(number_points(loose_rows, b"", np.arange(len(loose_rows), dtype=np.int64),
                                    values, head))
    for column in family.columns:
        attributes = rows.of(column.keys, _NUMBER_ATTRIBUTES)
        extra = _labels(_NUMBER_ATTRIBUTES, column.extra)
        chosen = np.ascontiguousarray(column.rows, np.int64)
        values = np.ascontiguousarray(column.values, np.float64)
        point_bytes = (len(head) + 9 + len(extra)
                       + rows.longest(column.keys, _NUMBER_ATTRIBUTES) + 4)
        for part in _slices(chosen.shape[0], point_bytes):
            chunks.append(number_points(attributes, extra, chosen[part], values[part], head))
    if not chunks:
        return None
    if family.kind == "gauge":
        return _Metric(_head(family.name, family.description, family.unit), _GAUGE, b"", chunks)
    trailer = _wire.field_varint(2, _CUMULATIVE)
    if family.kind == "counter":
        trailer += _wire.field_varint(3, 1)
    return _Metric(_head(family.name, family.description, family.unit), _SUM, trailer, chunks)


def _histogram_metric(family: HistogramFamily, rows: _RowAttributes, start_ns: int,
                      time_ns: int) -> _Metric | None:
    head = _wire.field_fixed64(2, start_ns) + _wire.field_fixed64(3, time_ns)
    bounds = _wire.field_bytes(7, np.asarray(family.boundaries, "<f8").tobytes())
    chunks = []
    for column in family.columns:
        attributes = rows.of(column.keys, _HISTOGRAM_ATTRIBUTES)
        extra = _labels(_HISTOGRAM_ATTRIBUTES, column.extra)
        chosen = np.ascontiguousarray(column.rows, np.int64)
        below = np.ascontiguousarray(column.counts, np.int64)
        totals = np.ascontiguousarray(column.totals, np.int64)
        sums = np.ascontiguousarray(column.sums, np.float64)
        point_bytes = (len(head) + 20 + 8 * (below.shape[1] + 1) + 4 + len(bounds) + len(extra)
                       + rows.longest(column.keys, _HISTOGRAM_ATTRIBUTES) + 4)
        for part in _slices(chosen.shape[0], point_bytes):
            chunks.append(histogram_points(attributes, extra, chosen[part], below[part],
                                           totals[part], sums[part], head, bounds))
    if not chunks:
        return None
    return _Metric(_head(family.name, family.description, family.unit), _HISTOGRAM,
                   _wire.field_varint(2, _CUMULATIVE), chunks)


def metrics(snapshot: Snapshot, health: Sequence[CampaignHealth] = (),
            time_ns: int | None = None, extra: Sequence[Family] = ()) -> list[_Metric]:
    """The snapshot's metrics (and ``extra`` families), each with its points in chunks;
    families without points are left out."""
    families, histogram = metric_families(snapshot, health)
    families = [*families, *extra]
    when = time.time_ns() if time_ns is None else time_ns
    start = min(snapshot.started_ns, when)
    rows = _RowAttributes()
    built = [_number_metric(family, rows, start, when) for family in families]
    built.append(_histogram_metric(histogram, rows, start, when))
    return [metric for metric in built if metric is not None]


def resource_field(attributes: Mapping[str, _wire.AttributeValue]) -> bytes:
    """``ResourceMetrics.resource`` (field 1) with these attributes."""
    return _wire.field_bytes(1, _wire.attributes(1, attributes))


def _request(resource: bytes, metric_messages: Sequence[list[bytes]]) -> bytes:
    scope_metrics = _framed(1, [SCOPE])
    for message in metric_messages:
        scope_metrics += message
    return b"".join(_framed(1, [resource, *_framed(2, scope_metrics)]))


def requests(built: Sequence[_Metric], resource: bytes,
             max_bytes: int = DEFAULT_MAX_BYTES) -> list[bytes]:
    """The metrics as requests of at most about ``max_bytes`` each (a single chunk larger
    than that travels alone). A metric that does not fit is continued in the next."""
    out: list[bytes] = []
    current: list[list[bytes]] = []
    size = len(resource) + len(SCOPE) + 32
    for metric in built:
        overhead = len(metric.head) + len(metric.trailer) + 16
        taken: list[bytes] = []
        for chunk in metric.chunks:
            if (current or taken) and size + overhead + len(chunk) > max_bytes:
                if taken:
                    current.append(metric.message(taken))
                out.append(_request(resource, current))
                current, taken = [], []
                size = len(resource) + len(SCOPE) + 32
            taken.append(chunk)
            size += len(chunk)
        current.append(metric.message(taken))
        size += overhead
    if current or not out:
        out.append(_request(resource, current))
    return out
