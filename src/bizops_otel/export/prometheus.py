"""A prometheus_client Collector: the metric model at scrape time, nothing per event.

Names follow the OTel-to-Prometheus translation: dots become underscores, the unit becomes
a suffix (``_seconds``), counters end in ``_total``, ratios in ``_ratio``. The collector
works with the default registry, ``start_http_server``, ``make_wsgi_app`` and
``make_asgi_app``. It emits only ``bizops_*`` series, so it sits beside OTel's own
PrometheusMetricReader without duplicates, as long as the same snapshot is not also
exported through OTel instruments to that reader.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ..aggregate.snapshot import Snapshot
from ..config import Config
from .family import Column, Family, HealthSource, HistogramColumn, HistogramFamily
from .model import empty_families, metric_families
from .naming import label_name, prometheus_name


def _column_label_names(columns: Sequence[Column | HistogramColumn]) -> list[str]:
    """Label names of a family's series: every column shares them (see model)."""
    if not columns:
        return []
    first = columns[0]
    return [label_name(k) for k in (*first.keys.names, *(k for k, _ in first.extra))]


def _family(family: Family) -> Iterator[Metric]:
    """The Prometheus family; the model gives all its points the same label names. A
    family without points is left out, as the direct exposition leaves it out."""
    if not family.loose and not any(column.rows.size for column in family.columns):
        return
    gauge = family.kind != "counter"
    name = prometheus_name(family.name, family.unit, family.kind)
    cls = GaugeMetricFamily if gauge else CounterMetricFamily
    if family.loose:
        names = [label_name(k) for k, _ in family.loose[0][0]]
        metric = cls(name, family.description, labels=names)
        for labels, value in family.loose:
            metric.add_metric([v for _, v in labels], value)
        yield metric
        return
    metric = cls(name, family.description, labels=_column_label_names(family.columns))
    for column in family.columns:
        extra = [v for _, v in column.extra]
        values = column.keys.values
        for row, value in zip(column.rows.tolist(), column.values.tolist(), strict=True):
            metric.add_metric([*values[row], *extra], value)
    yield metric


def _histogram(family: HistogramFamily) -> Iterator[Metric]:
    name = prometheus_name(family.name, family.unit, "histogram")
    metric = HistogramMetricFamily(name, family.description,
                                   labels=_column_label_names(family.columns))
    bounds = [f"{edge:.6g}" for edge in family.boundaries]
    for column in family.columns:
        extra = [v for _, v in column.extra]
        for i, row in enumerate(column.rows.tolist()):
            buckets = [(le, float(count))
                       for le, count in zip(bounds, column.counts[i].tolist(), strict=True)]
            buckets.append(("+Inf", float(column.totals[i])))
            metric.add_metric([*column.keys.values[row], *extra], buckets,
                              sum_value=float(column.sums[i]))
    yield metric


class BizOpsCollector(Collector):
    """Scrape-time view of an aggregator (or of merged per-process state).

    ``source`` returns the snapshot to export, or None when there is nothing yet;
    ``health``, if given, the campaigns' latest health (``CampaignMonitor.latest``).
    """

    def __init__(self, source: Callable[[], Snapshot | None],
                 health: HealthSource | None = None) -> None:
        self._source = source
        self._health = health

    def collect(self) -> Iterable[Metric]:
        snapshot = self._source()
        if snapshot is None:
            return
        families, histogram = metric_families(
            snapshot, self._health() if self._health is not None else ())
        for family in families:
            yield from _family(family)
        yield from _histogram(histogram)

    def describe(self) -> Iterable[Metric]:
        """The families' names and types, without reading any state."""
        for family in empty_families(Config()).values():
            gauge = family.kind != "counter"
            name = prometheus_name(family.name, family.unit, family.kind)
            yield (GaugeMetricFamily if gauge else CounterMetricFamily)(name, family.description)
        yield HistogramMetricFamily(prometheus_name("bizops.request.duration", "s", "histogram"),
                                    "Request latency by outcome")


def multiprocess_collector(directory: str) -> BizOpsCollector:
    """A collector over every process's state in ``directory`` (``multiproc_dir``)."""
    from .multiproc import merged_snapshot

    return BizOpsCollector(lambda: merged_snapshot(directory))
