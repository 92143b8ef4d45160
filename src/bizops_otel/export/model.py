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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .._layout import BUCKETS, GROWTH, LOWEST, OUTCOMES, bucket_edges
from ..config import Config
from ..snapshot import OVERFLOW_VALUE, KeyStats, Snapshot

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


def _finite(value: float) -> bool:
    return not math.isnan(value) and not math.isinf(value)


def _add_raw(families: dict[str, Family], config: Config, labels: Labels,
             stats: KeyStats) -> None:
    families["bizops.requests"].points.append((labels, float(stats.count)))
    families["bizops.request.errors"].points.append((labels, float(stats.errors)))
    families["bizops.request.time"].points.append((labels, stats.latency_sum))
    for kpi in config.kpi_names:
        sums = stats.raw_sums(kpi)
        if sums.n == 0:
            continue
        with_kpi = (*labels, (KPI_LABEL, kpi))
        for name, value in (("bizops.kpi.pairs", sums.n),
                            ("bizops.kpi.latency.sum", sums.sum_t),
                            ("bizops.kpi.latency.sum_of_squares", sums.sum_t2),
                            ("bizops.kpi.value.sum", sums.sum_v),
                            ("bizops.kpi.value.sum_of_squares", sums.sum_v2),
                            ("bizops.kpi.cross.sum", sums.sum_tv)):
            families[name].points.append((with_kpi, float(value)))


def _add_derived(families: dict[str, Family], config: Config, labels: Labels,
                 stats: KeyStats, window: str) -> None:
    labels = (*labels, (WINDOW_LABEL, window))
    for kpi in config.kpi_names:
        with_kpi = (*labels, (KPI_LABEL, kpi))
        r = stats.pearson(kpi).r
        if _finite(r):
            families["bizops.kpi.correlation"].points.append(
                ((*with_kpi, ("method", "pearson")), r))
        if kpi == config.outcome:
            rho = stats.spearman(kpi)
            if _finite(rho):
                families["bizops.kpi.correlation"].points.append(
                    ((*with_kpi, ("method", "spearman")), rho))
        slope = stats.slope(kpi)
        if _finite(slope):
            families["bizops.kpi.slope"].points.append((with_kpi, slope))
    rate = stats.conversion_rate()
    if _finite(rate):
        families["bizops.conversion.rate"].points.append((labels, rate))
    if stats.count:
        for q in QUANTILES:
            families["bizops.request.duration.quantile"].points.append(
                ((*labels, ("quantile", f"{q:g}")), stats.quantile(q)))


def _histogram_points(stats: KeyStats, labels: Labels
                      ) -> Iterator[tuple[Labels, list[int], int]]:
    """Cumulative counts at the export boundaries. Boundary ``edges[i]`` is the upper
    edge of internal bucket ``i - 1``, so the count below it is exact."""
    cumulative = np.cumsum(stats.histogram, axis=1)
    for outcome, name in enumerate(OUTCOMES):
        total = int(cumulative[outcome, -1])
        if total == 0:
            continue
        counts = [int(cumulative[outcome, i - 1]) for i in _EDGE_INDEX]
        yield ((*labels, (OUTCOME_LABEL, name)), counts, total)


def metric_families(snapshot: Snapshot) -> tuple[list[Family], HistogramFamily]:
    """Every family for one snapshot (and its recent window)."""
    config = snapshot.config
    families = _families(config)
    histogram = HistogramFamily("bizops.request.duration", "s",
                                "Request latency by outcome", BOUNDARIES)
    entries = [(key, snapshot[key]) for key in snapshot]
    if snapshot.overflow is not None:
        entries.append((snapshot.overflow.key or (), snapshot.overflow))
    for key, stats in entries:
        labels = key_labels(config, key)
        _add_raw(families, config, labels, stats)
        _add_derived(families, config, labels, stats, "cumulative")
        histogram.points.extend(_histogram_points(stats, labels))
    recent = snapshot.recent()
    recent_entries = [(key, recent[key]) for key in recent]
    if recent.overflow is not None:
        recent_entries.append((recent.overflow.key or (), recent.overflow))
    for key, stats in recent_entries:
        _add_derived(families, config, key_labels(config, key), stats, "recent")
    for reason, count in snapshot.dropped.items():
        families["bizops.internal.dropped"].points.append(((("reason", reason),), float(count)))
    families["bizops.internal.keys"].points.append(((), float(len(snapshot))))
    overflowed = snapshot.overflow.count if snapshot.overflow is not None else 0
    families["bizops.internal.overflow"].points.append(((), float(overflowed)))
    return list(families.values()), histogram
