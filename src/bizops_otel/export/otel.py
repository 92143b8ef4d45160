"""Observable OpenTelemetry instruments over the metric model.

Every collection reads the aggregator once: the first instrument's callback takes a
snapshot and builds the families, the others reuse them. Latency buckets become the
counter ``bizops.request.duration.bucket`` with an ``le`` label (cumulative counts, as in
Prometheus), because the OTel Python API has no observable histogram; any backend can sum
and difference them, and ``histogram_quantile`` works on them after translation.
"""

from __future__ import annotations

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

#: A second collection within this many seconds reuses the snapshot (several readers).
REUSE_SECONDS = 0.5
BUCKET_METRIC = "bizops.request.duration.bucket"


def _attributes(labels: Labels) -> dict[str, str]:
    """Empty label values mean "absent" in the model; OTel attributes leave them out."""
    return {key: value for key, value in labels if value}


class _Collection:
    """The families of the current collection, refreshed once per collection."""

    def __init__(self, source: Callable[[], Snapshot | None],
                 health: HealthSource | None) -> None:
        self._source = source
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
        self._collection = _Collection(source, health)
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
