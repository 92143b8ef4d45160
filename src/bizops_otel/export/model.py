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

import functools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .. import stats
from ..aggregate._layout import (
    BLOCK,
    KPI_FIELDS,
    OUTCOME_CONVERTED,
    OUTCOME_NONE,
    OUTCOME_NOT_CONVERTED,
    OUTCOMES,
    bucket_edges,
)
from ..aggregate._state import OPERATION_GOOD, OPERATION_TOTAL, StateArrays
from ..aggregate.snapshot import OVERFLOW_VALUE, Snapshot
from ..analytics.health import CampaignHealth
from ..config import Config
from ..latency_buckets import export_edge_indices
from . import analytics_families
from .digest import digest
from .family import (
    KPI_LABEL,
    OPERATION_LABEL,
    OUTCOME_LABEL,
    OVERFLOW_LABEL,
    QUANTILE_LABEL,
    WINDOW_LABEL,
    Column,
    Family,
    HistogramColumn,
    HistogramFamily,
    Kind,
    Labels,
    RowLabels,
)

QUANTILES = (0.5, 0.9, 0.95, 0.99)


@functools.cache
def export_edges(bounds: tuple[float, ...]) -> tuple[npt.NDArray[np.int64], tuple[float, ...]]:
    """Internal edge indices nearest ``bounds`` (``Config.export_buckets``, validated
    there), and the exact bounds exported."""
    indices = export_edge_indices(bounds)
    edges = bucket_edges()
    index = np.array(indices, np.int64)
    index.setflags(write=False)
    return index, tuple(float(edges[i]) for i in indices)


#: The exported bounds of the default configuration.
BOUNDARIES = export_edges(Config().export_buckets)[1]


def key_labels(config: Config, key: Sequence[str]) -> tuple[str, ...]:
    """Label values of a key: its dimensions, then the overflow marker. Every series of a
    family has the same label names (Prometheus needs that); an empty value means the
    label is absent."""
    if key and key[0] == OVERFLOW_VALUE:
        return (*("" for _ in config.dimensions), "true")
    return (*key, "")


def empty_families(config: Config) -> dict[str, Family]:
    """Every family of the model for ``config``, without points: name, kind, unit, text."""
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
        ("bizops.kpi.correlation", "gauge", "{coefficient}", "Correlation of latency and the KPI"),
        ("bizops.kpi.slope", "gauge", "1/s", "KPI change per second of latency"),
        ("bizops.conversion.rate", "gauge", "{ratio}",
         "Share of requests with an outcome that converted"),
        ("bizops.request.duration.quantile", "gauge", "s", "Latency quantiles"),
        ("bizops.internal.dropped", "counter", "{value}", "Values dropped, by reason"),
        ("bizops.internal.keys", "gauge", "{key}", "Keys held"),
        ("bizops.internal.overflow", "counter", "{request}",
         "Requests folded into the overflow key"),
        ("bizops.operation.requests", "counter", "{request}", "Requests of the operation"),
        ("bizops.operation.good", "counter", "{request}",
         "Requests of the operation within its latency threshold (and without error, where "
         "errors count)"),
        ("bizops.operation.target", "gauge", "{ratio}",
         "The operation's objective: the share of its requests that must be good"),
        ("bizops.operation.threshold", "gauge", "s",
         "The latency a good request of the operation stays within"),
        *analytics_families.SPECS,
    ]
    return {name: Family(name, kind, unit, text) for name, kind, unit, text in specs}


class _Rows:
    """Per-row statistics of one state, computed for all rows at once (the derived ones
    only when ``derived``). ``labels`` caches label values by key id across states."""

    def __init__(self, snapshot: Snapshot, state: StateArrays, derived: bool = True,
                 labels: dict[int, tuple[str, ...]] | None = None) -> None:
        config = snapshot.config
        table = snapshot.key_table
        self.state = state
        self.labels = known = labels if labels is not None else {}
        values = []
        for key_id in state.key_ids.tolist():
            value = known.get(key_id)
            if value is None:
                value = known[key_id] = key_labels(config, table[key_id])
            values.append(value)
        self.keys = RowLabels((*config.dimensions, OVERFLOW_LABEL), values)
        self.digest = digest(
            np.ascontiguousarray(state.block_row, np.int64),
            np.ascontiguousarray(state.block_code, np.int64),
            np.ascontiguousarray(state.block_counts, np.uint64).reshape(-1, BLOCK),
            state.rows, export_edges(config.export_buckets)[0], QUANTILES, derived)
        if derived:
            f = state.kpi_f
            self.pearson = stats.pearson_many(f[:, :, 2], f[:, :, 3], f[:, :, 4])
            self.slope = stats.slope_many(f[:, :, 2], f[:, :, 4])

    def column(self, mask: npt.NDArray[np.bool_], extra: Labels,
               values: npt.NDArray[np.generic]) -> Column:
        rows = np.flatnonzero(mask)
        return Column(self.keys, rows, extra, np.asarray(values, np.float64)[rows])


def _add_raw(families: dict[str, Family], config: Config, rows: _Rows) -> None:
    state = rows.state
    everyone = np.ones(state.rows, np.bool_)
    families["bizops.requests"].columns.append(rows.column(everyone, (), state.count))
    families["bizops.request.errors"].columns.append(rows.column(everyone, (), state.errors))
    families["bizops.request.time"].columns.append(rows.column(everyone, (), state.latency_sum))
    sums = ("bizops.kpi.latency.sum", "bizops.kpi.latency.sum_of_squares",
            "bizops.kpi.value.sum", "bizops.kpi.value.sum_of_squares", "bizops.kpi.cross.sum")
    for j, kpi in enumerate(config.kpi_names):
        present = state.kpi_n[:, j] > 0
        extra = ((KPI_LABEL, kpi),)
        families["bizops.kpi.pairs"].columns.append(
            rows.column(present, extra, state.kpi_n[:, j]))
        for k, name in enumerate(sums):
            families[name].columns.append(rows.column(present, extra, state.kpi_f[:, j, 5 + k]))


def _add_derived(families: dict[str, Family], config: Config, rows: _Rows, window: str) -> None:
    windowed = ((WINDOW_LABEL, window),)
    conversion, spearman, quantiles = (rows.digest.conversion, rows.digest.spearman,
                                       rows.digest.quantiles)
    assert conversion is not None and spearman is not None and quantiles is not None
    for j, kpi in enumerate(config.kpi_names):
        with_kpi = (*windowed, (KPI_LABEL, kpi))
        pearson = rows.pearson[:, j]
        families["bizops.kpi.correlation"].columns.append(
            rows.column(np.isfinite(pearson), (*with_kpi, ("method", "pearson")), pearson))
        if j == config.outcome_index:
            families["bizops.kpi.correlation"].columns.append(rows.column(
                np.isfinite(spearman), (*with_kpi, ("method", "spearman")), spearman))
        slope = rows.slope[:, j]
        families["bizops.kpi.slope"].columns.append(
            rows.column(np.isfinite(slope), with_kpi, slope))
    families["bizops.conversion.rate"].columns.append(
        rows.column(np.isfinite(conversion), windowed, conversion))
    busy = rows.state.count > 0
    for q, values in zip(QUANTILES, quantiles, strict=True):
        families["bizops.request.duration.quantile"].columns.append(
            rows.column(busy, (*windowed, (QUANTILE_LABEL, f"{q:g}")), values))


def _outcome_sums(config: Config, state: StateArrays) -> npt.NDArray[np.float64]:
    """Σ latency per row and outcome, shape (rows, outcomes), from the raw sums: the
    outcome KPI's pairs are exactly the requests with an outcome, and its value is 1 on
    the converted ones, so Σtv is their latency, Σt − Σtv that of the others, and the
    rest of the row's latency belongs to requests without an outcome. Rounding can leave
    a difference a hair below zero; it is clamped."""
    sums = np.zeros((state.rows, len(OUTCOMES)), np.float64)
    j = config.outcome_index
    if j < 0:
        sums[:, OUTCOME_NONE] = state.latency_sum
        return sums
    with_outcome = state.kpi_f[:, j, KPI_FIELDS.index("sum_t")]
    converted = state.kpi_f[:, j, KPI_FIELDS.index("sum_tv")]
    sums[:, OUTCOME_CONVERTED] = converted
    sums[:, OUTCOME_NOT_CONVERTED] = with_outcome - converted
    sums[:, OUTCOME_NONE] = state.latency_sum - with_outcome
    return np.maximum(sums, 0.0, out=sums)


def _add_histograms(histogram: HistogramFamily, config: Config, rows: _Rows) -> None:
    """Cumulative counts at the export boundaries, with each row's count and latency sum.
    Boundary ``edges[i]`` is the upper edge of internal bucket ``i - 1``, so the count
    below it is exact."""
    below, totals = rows.digest.below, rows.digest.totals
    sums = _outcome_sums(config, rows.state)
    for outcome, name in enumerate(OUTCOMES):
        chosen = np.flatnonzero(totals[:, outcome] > 0)
        histogram.columns.append(HistogramColumn(
            rows.keys, chosen, ((OUTCOME_LABEL, name),),
            np.ascontiguousarray(below[chosen, outcome]), totals[chosen, outcome],
            np.ascontiguousarray(sums[chosen, outcome])))


def _add_operations(families: dict[str, Family], snapshot: Snapshot) -> None:
    """Every configured operation's counts (zero ones too, so that rates start at once)
    and its objective, which the recording rules and alerts read."""
    counts = snapshot.operation_counts
    for i, operation in enumerate(snapshot.config.operations):
        labels = ((OPERATION_LABEL, operation.name),)
        families["bizops.operation.requests"].loose.append(
            (labels, float(counts[i, OPERATION_TOTAL])))
        families["bizops.operation.good"].loose.append((labels, float(counts[i, OPERATION_GOOD])))
        families["bizops.operation.target"].loose.append((labels, operation.target))
        families["bizops.operation.threshold"].loose.append((labels, operation.threshold))


def metric_families(snapshot: Snapshot, health: Sequence[CampaignHealth] = ()
                    ) -> tuple[list[Family], HistogramFamily]:
    """Every family for one snapshot (and its recent window), with the campaigns'
    ``health`` when a monitor judged them."""
    config = snapshot.config
    families = empty_families(config)
    histogram = HistogramFamily("bizops.request.duration", "s",
                                "Request latency by outcome",
                                export_edges(config.export_buckets)[1])
    derived = config.export_derived
    rows = _Rows(snapshot, snapshot.state, derived)
    _add_raw(families, config, rows)
    _add_histograms(histogram, config, rows)
    recent = snapshot.recent()
    if derived:
        _add_derived(families, config, rows, "cumulative")
        if recent is not snapshot:
            _add_derived(families, config, _Rows(recent, recent.state, labels=rows.labels),
                         "recent")
    for reason, count in snapshot.dropped.items():
        families["bizops.internal.dropped"].loose.append(((("reason", reason),), float(count)))
    families["bizops.internal.keys"].loose.append(((), float(len(snapshot))))
    overflowed = snapshot.overflow.count if snapshot.overflow is not None else 0
    families["bizops.internal.overflow"].loose.append(((), float(overflowed)))
    _add_operations(families, snapshot)
    analytics_families.add_sessions(families, snapshot)
    analytics_families.add_variants(families, snapshot)
    analytics_families.add_guardrails(families, snapshot)
    analytics_families.add_flow(families, snapshot)
    analytics_families.add_campaigns(families, health)
    analytics_families.add_journeys(families, snapshot)
    return list(families.values()), histogram
