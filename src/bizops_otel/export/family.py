"""The shapes every exporter reads: metric families of labelled columns, and the label
names they share. Both the raw-sum model (``model``) and the analytics families
(``analytics_families``) build these; the writers (``exposition``, ``prometheus``,
``otel``) translate them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from ..analytics.health import CampaignHealth

Kind = Literal["counter", "updown", "gauge"]
Labels = tuple[tuple[str, str], ...]

KPI_LABEL = "bizops.kpi"
OUTCOME_LABEL = "bizops.outcome"
WINDOW_LABEL = "bizops.window"
#: Not ``quantile``: Prometheus reserves that label for summaries, and these are gauges.
QUANTILE_LABEL = "bizops.quantile"
OVERFLOW_LABEL = "otel.metric.overflow"
SCOPE_LABEL = "bizops.session.scope"
DELTA_LABEL = "bizops.delta_ms"
BOUND_LABEL = "bizops.bound"
BASELINE_LABEL = "bizops.baseline"
OPERATION_LABEL = "bizops.operation"


@dataclass
class RowLabels:
    """The dimension labels of every row of one state; shared by the columns that use it."""

    names: tuple[str, ...]
    values: list[tuple[str, ...]]


@dataclass
class Column:
    """Points of one family that share their extra labels: one per listed row."""

    keys: RowLabels
    rows: npt.NDArray[np.int64]
    extra: Labels
    values: npt.NDArray[np.float64]


@dataclass
class Family:
    """A metric: OTel name, kind, unit, and its points in columns (plus a few loose ones)."""

    name: str
    kind: Kind
    unit: str
    description: str
    columns: list[Column] = field(default_factory=list)
    loose: list[tuple[Labels, float]] = field(default_factory=list)


@dataclass
class HistogramColumn:
    keys: RowLabels
    rows: npt.NDArray[np.int64]
    extra: Labels
    #: (rows, boundaries) cumulative counts, and the total per row
    counts: npt.NDArray[np.int64]
    totals: npt.NDArray[np.int64]
    #: Σ latency (seconds) per row
    sums: npt.NDArray[np.float64]


@dataclass
class HistogramFamily:
    """Latency buckets by outcome: cumulative counts at ``boundaries`` (seconds)."""

    name: str
    unit: str
    description: str
    boundaries: tuple[float, ...]
    columns: list[HistogramColumn] = field(default_factory=list)


#: Where exporters get the campaign health to publish (the campaign monitor's last pass).
HealthSource = Callable[[], Sequence[CampaignHealth]]
