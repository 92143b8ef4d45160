"""The metric model: one snapshot becomes named families of labelled numbers.

Both exporters translate these families, so an OTLP backend and a Prometheus scrape carry
the same numbers under the same names (the Prometheus ones translated per the OTel
specification: dots to underscores, a unit suffix, ``_total`` on counters).

Two kinds of metric:

- **mergeable raw sums**, which add up across processes and hosts, for fleet-wide
  analytics in the backend (``deploy/prometheus/bizops-rules.yml``);
- **derived per-process gauges** for a quick look: correlations, slopes, conversion
  rates and quantiles, each for the whole run and for the recent window.

Labels are only bounded, sanitised dimension values; the overflow key is labelled
``otel.metric.overflow="true"`` instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from .. import stats
from .._layout import (
    BLOCK,
    BLOCK_CODES,
    BLOCKS_PER_OUTCOME,
    BUCKETS,
    GROWTH,
    LOWEST,
    OUTCOME_CONVERTED,
    OUTCOME_NOT_CONVERTED,
    OUTCOMES,
    bucket_edges,
)
from .._state import StateArrays
from ..config import Config
from ..snapshot import OVERFLOW_VALUE, Snapshot

Kind = Literal["counter", "updown", "gauge"]
Labels = tuple[tuple[str, str], ...]

KPI_LABEL = "bizops.kpi"
OUTCOME_LABEL = "bizops.outcome"
WINDOW_LABEL = "bizops.window"
OVERFLOW_LABEL = "otel.metric.overflow"
QUANTILES = (0.5, 0.9, 0.99)
#: Export boundaries: the internal bucket edges nearest these (seconds). All 118
#: internal buckets per outcome and key would be too many series for any backend.
EXPORT_BOUNDARIES = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class Family:
    """A metric: OTel name, kind, unit, and its points."""

    name: str
    kind: Kind
    unit: str
    description: str
    points: list[tuple[Labels, float]] = field(default_factory=list)


@dataclass
class HistogramFamily:
    """Latency buckets by outcome: cumulative counts at ``boundaries`` (seconds)."""

    name: str
    unit: str
    description: str
    boundaries: tuple[float, ...]
    #: (labels, cumulative counts at the boundaries, total count)
    points: list[tuple[Labels, list[int], int]] = field(default_factory=list)


def _export_edges() -> tuple[np.ndarray, tuple[float, ...]]:
    """Internal edge indices nearest EXPORT_BOUNDARIES, and their exact values."""
    edges = bucket_edges()
    indices = sorted({min(BUCKETS - 1, max(1, round(math.log(b / LOWEST) / math.log(GROWTH)) + 1))
                      for b in EXPORT_BOUNDARIES})
    return np.array(indices), tuple(float(edges[i]) for i in indices)


_EDGE_INDEX, BOUNDARIES = _export_edges()


def key_labels(config: Config, key: Sequence[str]) -> Labels:
    """Dimension labels plus the overflow marker. Every series of a family has the same
    label names (Prometheus needs that); an empty value means the label is absent."""
    if key and key[0] == OVERFLOW_VALUE:
        return (*((d, "") for d in config.dimensions), (OVERFLOW_LABEL, "true"))
    return (*zip(config.dimensions, key, strict=True), (OVERFLOW_LABEL, ""))


def _families(config: Config) -> dict[str, Family]:
    signed = any(k.minimum < 0 for k in config.kpis)
    value_kind: Kind = "updown" if signed else "counter"
    specs: list[tuple[str, Kind, str, str]] = [
        ("bizops.requests", "counter", "{request}", "Requests recorded"),
        ("bizops.request.errors", "counter", "{request}", "Requests that ended in error"),
        ("bizops.request.time", "counter", "s", "Σ latency of the requests"),
        ("bizops.kpi.pairs", "counter", "{pair}", "(latency, KPI) pairs recorded"),
        ("bizops.kpi.latency.sum", "counter", "s", "Σ latency over the pairs"),
        ("bizops.kpi.latency.sum_of_squares", "counter", "s2", "Σ latency² over the pairs"),
        ("bizops.kpi.value.sum", value_kind, "1", "Σ KPI value over the pairs"),
        ("bizops.kpi.value.sum_of_squares", "counter", "1", "Σ KPI value² over the pairs"),
        ("bizops.kpi.cross.sum", value_kind, "s", "Σ latency × KPI value (value·s)"),
        ("bizops.kpi.correlation", "gauge", "1", "Correlation of latency and the KPI"),
        ("bizops.kpi.slope", "gauge", "1/s", "KPI change per second of latency"),
        ("bizops.conversion.rate", "gauge", "1",
         "Share of requests with an outcome that converted"),
        ("bizops.request.duration.quantile", "gauge", "s", "Latency quantiles"),
        ("bizops.internal.dropped", "counter", "{value}", "Values dropped, by reason"),
        ("bizops.internal.keys", "gauge", "{key}", "Keys held"),
        ("bizops.internal.overflow", "counter", "{request}",
         "Requests folded into the overflow key"),
    ]
    return {name: Family(name, kind, unit, text) for name, kind, unit, text in specs}


def dense_histograms(state: StateArrays) -> npt.NDArray[np.uint64]:
    """The (rows, outcomes, buckets) latency counts of every row of ``state``."""
    rows = state.rows
    dense = np.zeros((rows * BLOCK_CODES, BLOCK), np.uint64)
    dense[state.block_row * BLOCK_CODES + state.block_code] = state.block_counts
    return dense.reshape(rows, len(OUTCOMES), BLOCKS_PER_OUTCOME * BLOCK)[:, :, :BUCKETS]


class _Rows:
    """Per-row statistics of one state, computed for all rows at once."""

    def __init__(self, config: Config, state: StateArrays) -> None:
        self.state = state
        self.histogram = dense_histograms(state)
        f = state.kpi_f
        self.pearson = stats.pearson_many(f[:, :, 2], f[:, :, 3], f[:, :, 4])
        self.slope = stats.slope_many(f[:, :, 2], f[:, :, 4])
        counts = self.histogram.astype(np.float64)
        trials = counts[:, OUTCOME_CONVERTED].sum(axis=1) + counts[:, OUTCOME_NOT_CONVERTED].sum(
            axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.conversion = np.where(
                trials > 0, counts[:, OUTCOME_CONVERTED].sum(axis=1) / trials, np.nan)
        self.spearman = (stats.spearman_binary_many(counts[:, OUTCOME_NOT_CONVERTED],
                                                    counts[:, OUTCOME_CONVERTED])
                         if config.outcome is not None else None)
        total = counts.sum(axis=1)
        edges = bucket_edges()
        self.quantiles = [stats.histogram_quantile_many(total, edges, q) for q in QUANTILES]


def _labels_by_row(snapshot: Snapshot, state: StateArrays) -> list[Labels]:
    table = snapshot.key_table
    return [key_labels(snapshot.config, table[int(key_id)]) for key_id in state.key_ids]


def _add_raw(families: dict[str, Family], config: Config, labels: list[Labels],
             rows: _Rows) -> None:
    state = rows.state
    requests = families["bizops.requests"].points
    errors = families["bizops.request.errors"].points
    spent = families["bizops.request.time"].points
    raw = [families[name].points for name in (
        "bizops.kpi.latency.sum", "bizops.kpi.latency.sum_of_squares", "bizops.kpi.value.sum",
        "bizops.kpi.value.sum_of_squares", "bizops.kpi.cross.sum")]
    pairs = families["bizops.kpi.pairs"].points
    count, error_count, latency = (state.count.tolist(), state.errors.tolist(),
                                   state.latency_sum.tolist())
    kpi_n = state.kpi_n.tolist()
    sums = state.kpi_f[:, :, 5:].tolist()
    names = config.kpi_names
    for row, key in enumerate(labels):
        requests.append((key, float(count[row])))
        errors.append((key, float(error_count[row])))
        spent.append((key, latency[row]))
        for j, kpi in enumerate(names):
            n = kpi_n[row][j]
            if n == 0:
                continue
            with_kpi = (*key, (KPI_LABEL, kpi))
            pairs.append((with_kpi, float(n)))
            for points, value in zip(raw, sums[row][j], strict=True):
                points.append((with_kpi, value))


def _add_derived(families: dict[str, Family], config: Config, labels: list[Labels],
                 rows: _Rows, window: str) -> None:
    correlation = families["bizops.kpi.correlation"].points
    slopes = families["bizops.kpi.slope"].points
    conversion = families["bizops.conversion.rate"].points
    quantile_points = families["bizops.request.duration.quantile"].points
    pearson, slope = rows.pearson.tolist(), rows.slope.tolist()
    spearman = rows.spearman.tolist() if rows.spearman is not None else None
    rates = rows.conversion.tolist()
    quantiles = [q.tolist() for q in rows.quantiles]
    counts = rows.state.count.tolist()
    outcome = config.outcome_index
    window_label = (WINDOW_LABEL, window)
    for row, key in enumerate(labels):
        base = (*key, window_label)
        for j, kpi in enumerate(config.kpi_names):
            with_kpi = (*base, (KPI_LABEL, kpi))
            if _finite(pearson[row][j]):
                correlation.append(((*with_kpi, ("method", "pearson")), pearson[row][j]))
            if j == outcome and spearman is not None and _finite(spearman[row]):
                correlation.append(((*with_kpi, ("method", "spearman")), spearman[row]))
            if _finite(slope[row][j]):
                slopes.append((with_kpi, slope[row][j]))
        if _finite(rates[row]):
            conversion.append((base, rates[row]))
        if counts[row]:
            for q, values in zip(QUANTILES, quantiles, strict=True):
                quantile_points.append(((*base, ("quantile", f"{q:g}")), values[row]))


def _add_histograms(histogram: HistogramFamily, labels: list[Labels], rows: _Rows) -> None:
    """Cumulative counts at the export boundaries. Boundary ``edges[i]`` is the upper
    edge of internal bucket ``i - 1``, so the count below it is exact."""
    cumulative = np.cumsum(rows.histogram, axis=2)
    at_bounds = cumulative[:, :, _EDGE_INDEX - 1].tolist()
    totals = cumulative[:, :, -1].tolist()
    for row, key in enumerate(labels):
        for outcome, name in enumerate(OUTCOMES):
            total = totals[row][outcome]
            if total:
                histogram.points.append(((*key, (OUTCOME_LABEL, name)), at_bounds[row][outcome],
                                         total))


def _finite(value: float) -> bool:
    return not math.isnan(value) and not math.isinf(value)


def metric_families(snapshot: Snapshot) -> tuple[list[Family], HistogramFamily]:
    """Every family for one snapshot (and its recent window)."""
    config = snapshot.config
    families = _families(config)
    histogram = HistogramFamily("bizops.request.duration", "s",
                                "Request latency by outcome", BOUNDARIES)
    state = snapshot.state
    labels = _labels_by_row(snapshot, state)
    rows = _Rows(config, state)
    _add_raw(families, config, labels, rows)
    _add_derived(families, config, labels, rows, "cumulative")
    _add_histograms(histogram, labels, rows)
    recent = snapshot.recent()
    if recent is not snapshot:
        _add_derived(families, config, _labels_by_row(recent, recent.state),
                     _Rows(config, recent.state), "recent")
    for reason, count in snapshot.dropped.items():
        families["bizops.internal.dropped"].points.append(((("reason", reason),), float(count)))
    families["bizops.internal.keys"].points.append(((), float(len(snapshot))))
    overflowed = snapshot.overflow.count if snapshot.overflow is not None else 0
    families["bizops.internal.overflow"].points.append(((), float(overflowed)))
    return list(families.values()), histogram
