"""A prometheus_client Collector: the metric model at scrape time, nothing per event.

Names follow the OTel-to-Prometheus translation: dots become underscores, the unit becomes
a suffix (``_seconds``), counters end in ``_total``, ratios in ``_ratio``. The collector
works with the default registry, ``start_http_server``, ``make_wsgi_app`` and
``make_asgi_app``. It emits only ``bizops_*`` series, so it sits beside OTel's own
PrometheusMetricReader without duplicates, as long as the same snapshot is not also
exported through OTel instruments to that reader.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ..snapshot import Snapshot
from .model import Family, HistogramFamily, Labels, metric_families

_UNIT_SUFFIX = {"s": "seconds", "s2": "seconds_squared", "1": "", "1/s": "per_second"}
_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def prometheus_name(name: str, unit: str, gauge: bool = False) -> str:
    """OTel name and unit to a Prometheus base name (without ``_total``)."""
    base = _INVALID.sub("_", name)
    suffix = _UNIT_SUFFIX.get(unit, "" if unit.startswith("{") else _INVALID.sub("_", unit))
    if unit == "1" and gauge and not base.endswith(("_rate", "_correlation")):
        suffix = "ratio"
    if suffix and not base.endswith("_" + suffix):
        base = f"{base}_{suffix}"
    return base


def label_name(key: str) -> str:
    return _INVALID.sub("_", key)


def _split(labels: Labels) -> tuple[list[str], list[str]]:
    return [label_name(k) for k, _ in labels], [v for _, v in labels]


def _family(family: Family) -> Iterator[Metric]:
    """The Prometheus family; the model gives all its points the same label names, so
    this yields exactly one family per name."""
    by_names: dict[tuple[str, ...], list[tuple[list[str], float]]] = {}
    for labels, value in family.points:
        names, values = _split(labels)
        by_names.setdefault(tuple(names), []).append((values, value))
    gauge = family.kind != "counter"
    name = prometheus_name(family.name, family.unit, gauge=gauge)
    for label_names, points in by_names.items() or [((), [])]:
        metric: CounterMetricFamily | GaugeMetricFamily
        if gauge:
            metric = GaugeMetricFamily(name, family.description, labels=list(label_names))
        else:
            metric = CounterMetricFamily(name, family.description, labels=list(label_names))
        for values, value in points:
            metric.add_metric(values, value)
        yield metric


def _histogram(family: HistogramFamily) -> Iterator[Metric]:
    name = prometheus_name(family.name, family.unit)
    by_names: dict[tuple[str, ...], list[tuple[list[str], list[int], int]]] = {}
    for labels, counts, total in family.points:
        names, values = _split(labels)
        by_names.setdefault(tuple(names), []).append((values, counts, total))
    for label_names, histogram_points in by_names.items() or [((), [])]:
        metric = HistogramMetricFamily(name, family.description, labels=list(label_names))
        for values, counts, total in histogram_points:
            buckets = [(f"{edge:.6g}", float(count))
                       for edge, count in zip(family.boundaries, counts, strict=True)]
            buckets.append(("+Inf", float(total)))
            metric.add_metric(values, buckets, sum_value=None)
        yield metric


class BizOpsCollector(Collector):
    """Scrape-time view of an aggregator (or of merged per-process state).

    ``source`` returns the snapshot to export, or None when there is nothing yet.
    """

    def __init__(self, source: Callable[[], Snapshot | None]) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        snapshot = self._source()
        if snapshot is None:
            return
        families, histogram = metric_families(snapshot)
        for family in families:
            yield from _family(family)
        yield from _histogram(histogram)

    def describe(self) -> Iterable[Metric]:
        """The families' names and types, without reading any state."""
        from ..config import Config
        from .model import BOUNDARIES, _families

        for family in _families(Config()).values():
            gauge = family.kind != "counter"
            name = prometheus_name(family.name, family.unit, gauge=gauge)
            yield (GaugeMetricFamily if gauge else CounterMetricFamily)(name, family.description)
        yield HistogramMetricFamily(prometheus_name("bizops.request.duration", "s"),
                                    f"Request latency by outcome ({len(BOUNDARIES)} bounds)")


def multiprocess_collector(directory: str) -> BizOpsCollector:
    """A collector over every process's state in ``directory`` (``multiproc_dir``)."""
    from .multiproc import merged_snapshot

    return BizOpsCollector(lambda: merged_snapshot(directory))
