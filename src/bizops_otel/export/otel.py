"""Observable OpenTelemetry instruments over the metric model.

Every collection reads the aggregator once: the first instrument's callback takes a
snapshot and builds the families, the others reuse them. Latency buckets become the
counter ``bizops.request.duration.bucket`` with an ``le`` label (cumulative counts, as in
Prometheus), because the OTel Python API has no observable histogram; any backend can sum
and difference them, and ``histogram_quantile`` works on them after translation.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation

from .._version import __version__
from ..aggregate.snapshot import Snapshot
from ..config import Config
from .family import OUTCOME_LABEL, Family, HealthSource, HistogramFamily, Labels, RowLabels
from .model import empty_families, metric_families

_logger = logging.getLogger("bizops_otel")

#: A second collection within this many seconds reuses the snapshot (several readers).
REUSE_SECONDS = 0.5
BUCKET_METRIC = "bizops.request.duration.bucket"


def _attributes(labels: Labels) -> dict[str, str]:
    """Empty label values mean "absent" in the model; OTel attributes leave them out."""
    return {key: value for key, value in labels if value}


class _Collection:
    """The families of the current collection, refreshed once per collection."""

    def __init__(self, source: Callable[[], Snapshot | None],
                 health: HealthSource | None, limit: float = math.inf) -> None:
        self._source = source
        self._limit = limit
        #: Points past the provider's cardinality limit at the last collection: the SDK
        #: folds them into one overflow point per stream.
        self.over_limit = 0
        self._warned = False
        self._health = health
        self._lock = threading.Lock()
        self._taken = -1.0
        self._families: dict[str, Family] = {}
        self._histogram: HistogramFamily | None = None
        self._attributes_of: dict[int, list[dict[str, str]]] = {}

    def refresh(self, force: bool) -> None:
        with self._lock:
            now = time.monotonic()
            if not force and now - self._taken < REUSE_SECONDS:
                return
            self._taken = now
            snapshot = self._source()
            if snapshot is None:
                self._families, self._histogram = {}, None
                return
            families, histogram = metric_families(
                snapshot, self._health() if self._health is not None else ())
            self._attributes_of = {}
            self._families = {f.name: f for f in families}
            self._histogram = histogram
            self._check_limit(families, histogram)

    def _check_limit(self, families: list[Family], histogram: HistogramFamily) -> None:
        bounds = len(histogram.boundaries) + 1
        streams = [len(f.loose) + sum(c.rows.size for c in f.columns) for f in families]
        streams.append(bounds * sum(c.rows.size for c in histogram.columns))
        self.over_limit = int(sum(max(0, n - self._limit) for n in streams
                                  if math.isfinite(self._limit)))
        if self.over_limit and not self._warned:
            self._warned = True
            _logger.warning(
                "bizops-otel: this MeterProvider keeps at most %d points per metric, and "
                "%d of bizops-otel's points are past it: the SDK folds them into "
                "otel.metric.overflow, and fleet sums go wrong. Raise the readers' "
                "cardinality_limits, or let bizops-otel push OTLP itself (see the README); "
                "counted in bizops.internal.otel.points_over_limit", self._limit,
                self.over_limit)

    def _row_attributes(self, keys: RowLabels) -> list[dict[str, str]]:
        """Attributes of every row, built once per collection and shared by its points."""
        cached = self._attributes_of.get(id(keys))
        if cached is None:
            cached = [_attributes(tuple(zip(keys.names, values, strict=True)))
                      for values in keys.values]
            self._attributes_of[id(keys)] = cached
        return cached

    def observations(self, name: str) -> list[Observation]:
        family = self._families.get(name)
        if family is None:
            return []
        result = [Observation(value, _attributes(labels)) for labels, value in family.loose]
        for column in family.columns:
            attributes = self._row_attributes(column.keys)
            extra = _attributes(column.extra)
            result.extend(Observation(value, {**attributes[row], **extra}) for row, value
                          in zip(column.rows.tolist(), column.values.tolist(), strict=True))
        return result

    def bucket_observations(self) -> list[Observation]:
        histogram = self._histogram
        if histogram is None:
            return []
        observations = []
        bounds = [f"{edge:.6g}" for edge in histogram.boundaries]
        for column in histogram.columns:
            attributes = self._row_attributes(column.keys)
            extra = _attributes(column.extra)
            for i, row in enumerate(column.rows.tolist()):
                base = {**attributes[row], **extra}
                for le, count in zip(bounds, column.counts[i].tolist(), strict=True):
                    observations.append(Observation(count, {**base, "le": le}))
                observations.append(Observation(int(column.totals[i]), {**base, "le": "+Inf"}))
        return observations


class OTelMetrics:
    """Registers bizops-otel's instruments on ``meter_provider``."""

    def __init__(self, meter_provider: MeterProvider, source: Callable[[], Snapshot | None],
                 config: Config, health: HealthSource | None = None) -> None:
        self.cardinality_limit = cardinality_limit(meter_provider)
        self._collection = _Collection(source, health, self.cardinality_limit)
        meter: Meter = meter_provider.get_meter("bizops_otel", __version__)
        self.instruments: list[Any] = []
        first = True
        for family in empty_families(config).values():
            self.instruments.append(self._instrument(meter, family, first))
            first = False
        self.instruments.append(meter.create_observable_counter(
            BUCKET_METRIC, callbacks=[self._buckets], unit="{request}",
            description=f"Requests at or under each latency bound (le, seconds), by "
                        f"{OUTCOME_LABEL}"))
        collection = self._collection
        self.instruments.append(meter.create_observable_gauge(
            "bizops.internal.otel.points_over_limit",
            callbacks=[lambda options: [Observation(collection.over_limit)]], unit="{point}",
            description="bizops-otel points past this MeterProvider's cardinality limit "
                        "at the last collection (folded into overflow by the SDK)"))

    def _instrument(self, meter: Meter, family: Family, first: bool) -> Any:
        collection = self._collection
        name = family.name

        def callback(options: CallbackOptions) -> Iterable[Observation]:
            collection.refresh(force=first)
            return collection.observations(name)

        create = {"counter": meter.create_observable_counter,
                  "updown": meter.create_observable_up_down_counter,
                  "gauge": meter.create_observable_gauge}[family.kind]
        return create(name, callbacks=[callback], unit=family.unit,
                      description=family.description)

    def _buckets(self, options: CallbackOptions) -> Iterable[Observation]:
        self._collection.refresh(force=False)
        return self._collection.bucket_observations()


def cardinality_limit(meter_provider: Any) -> float:
    """The fewest points per stream any reader of an SDK MeterProvider keeps for
    observable instruments (SDKs from 1.45.2 default to the specification's 2,000), or
    infinity when none is set. Read from the SDK's internals, since no public API gives
    it; views with a limit of their own are not seen."""
    readers = getattr(meter_provider, "_metric_readers", None)
    if readers is None:  # SDKs that keep the readers in their configuration
        readers = getattr(getattr(meter_provider, "_sdk_config", None), "metric_readers", ())
    limits = []
    for reader in readers or ():
        by_class = getattr(reader, "_instrument_class_cardinality_limit", None) or {}
        limits += [limit for cls, limit in by_class.items()
                   if cls.__name__.startswith("_Observable") and isinstance(limit, int)]
    return float(min(limits)) if limits else math.inf
