"""Aggregator cost against peers measured in the same run.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_aggregator.py [--quick]

Every figure is the median of repeated runs of a Python-level loop, so each includes the
same loop and call overhead as its peer; record_span and river's update, whose ratio is a
target, run in alternating rounds. Targets (benchmark figures, not tests):

- native ``record_span`` (3 KPIs + histogram + window) ≤ 1/6 of river's PearsonCorr.update
- ``record_many`` ≥ 30 M observations/s
- cost at 100k keys ≤ 1.5 × cost at 10 keys
- ≤ 4 KiB per key
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import interleaved_ns, per_call_ns, table, verdict

import bizops_otel
from bizops_otel import Config, attributes
from bizops_otel.aggregate._aggregator_py import Aggregator as PureAggregator

START = 1_700_000_000 * 10**9


def span_attributes(page: str = "checkout", campaign: str = "spring_sale") -> dict[str, Any]:
    return {attributes.PAGE_GROUP: page, attributes.CAMPAIGN_ID: campaign,
            attributes.ORDER_VALUE: 42.5, attributes.CONVERSION: True,
            attributes.ORDER_ITEMS: 3, "http.route": "/checkout", "http.method": "POST"}


def record_span_loop(aggregator_cls: Any) -> Callable[[int], None]:
    """``n`` calls of record_span, as a replay or batch path makes them."""
    aggregator = aggregator_cls(Config())
    record = aggregator.record_span
    attrs = span_attributes()

    def run(n: int) -> None:
        for _i in range(n):
            record(attrs, START, START + 123_456_789)

    return run


def bench_unique(aggregator_cls: Any, calls: int) -> float:
    """ns per record_span when every span carries a campaign never seen before (an attack
    of unique values): the key lookup misses, so this is the slow path that admission and
    the overflow key take, with the keys already at ``max_keys``."""
    aggregator = aggregator_cls(Config(max_keys=100))
    attrs = span_attributes()
    names = iter([f"attack-{i:09d}" for i in range(calls * 9)])
    record = aggregator.record_span
    campaign = attributes.CAMPAIGN_ID
    for i in range(200):  # fill the keys, each value seen twice
        attrs[campaign] = f"legit-{i // 2 % 100}"
        record(attrs, START, START + 123_456_789)

    def run(n: int) -> None:
        for _i in range(n):
            attrs[campaign] = next(names)
            record(attrs, START, START + 123_456_789)

    return per_call_ns(run, calls)


def river_loop() -> Callable[[int], None]:
    """``n`` calls of river's PearsonCorr.update, the peer of record_span."""
    from river import stats

    correlation = stats.PearsonCorr()
    update = correlation.update

    def run(n: int) -> None:
        for _i in range(n):
            update(0.123456789, 42.5)

    return run


def bench_against_river(aggregator_cls: Any, rounds: int) -> tuple[float, float, float]:
    """(ns per record_span, ns per river update, river / record_span), measured in
    alternating rounds of equal duration; the ratio is the median of the rounds'."""
    samples = interleaved_ns({"ours": record_span_loop(aggregator_cls), "river": river_loop()},
                             rounds)
    ratios = [r / o for o, r in zip(samples["ours"], samples["river"], strict=True)]
    return (statistics.median(samples["ours"]), statistics.median(samples["river"]),
            statistics.median(ratios))


def bench_prometheus(calls: int, bound: bool) -> float:
    from prometheus_client import CollectorRegistry, Histogram

    histogram = Histogram("latency_seconds", "latency", ["page_group", "campaign"],
                          registry=CollectorRegistry())
    child = histogram.labels("checkout", "spring_sale")

    def run_bound(n: int) -> None:
        observe = child.observe
        for _i in range(n):
            observe(0.123456789)

    def run_labels(n: int) -> None:
        for _i in range(n):
            histogram.labels("checkout", "spring_sale").observe(0.123456789)

    return per_call_ns(run_bound if bound else run_labels, calls)


def bench_record_many(aggregator_cls: Any, rows: int) -> tuple[float, float]:
    """(ns per observation for record_many, ns per observation for numpy's Pearson)."""
    rng = np.random.default_rng(1)
    latency = rng.lognormal(-1.0, 0.6, rows)
    value = 80.0 - 30.0 * latency + rng.normal(0.0, 10.0, rows)
    aggregator = aggregator_cls(Config(kpis=("order_value",), outcome=None))

    def ours(n: int) -> None:
        aggregator.record_many(("checkout", ""), latency, {"order_value": value})

    def numpy_pearson(n: int) -> None:
        dt = latency - latency.mean()
        dv = value - value.mean()
        _ = (dt @ dv) / np.sqrt((dt @ dt) * (dv @ dv))

    return per_call_ns(ours, 1, repeats=7) / rows, per_call_ns(numpy_pearson, 1, 7) / rows


def bench_keys(aggregator_cls: Any, keys: int, calls: int) -> float:
    """ns per record_span when spans cycle over ``keys`` distinct campaigns, in random order.

    One attribute dict is reused and only its campaign changes: a real span's attributes
    were just written and sit in cache, so rebuilding 100k cold dicts would charge the
    aggregator for misses it does not cause. The campaign strings do come from a pool of
    ``keys`` objects, as fresh values would.
    """
    aggregator = aggregator_cls(Config(max_keys=max(keys, 1)))
    names = [f"campaign-{i}" for i in range(keys)]
    attrs = span_attributes()
    for name in names * 2:  # a key exists from its second sighting on
        attrs[attributes.CAMPAIGN_ID] = name
        aggregator.record_span(attrs, START, START + 100_000_000)
    order = np.random.default_rng(2).permutation(np.resize(np.arange(keys), calls))
    stream = [names[i] for i in order]
    record = aggregator.record_span
    campaign = attributes.CAMPAIGN_ID

    def run(n: int) -> None:
        for name in stream[:n]:
            attrs[campaign] = name
            record(attrs, START, START + 123_456_789)

    return per_call_ns(run, calls, repeats=5)


def bench_prometheus_keys(keys: int, calls: int) -> float:
    """The peer under the same load: one labelled prometheus_client Histogram whose
    campaign label cycles over ``keys`` values in the same random order."""
    from prometheus_client import CollectorRegistry, Histogram

    histogram = Histogram("latency_seconds", "latency", ["page_group", "campaign"],
                          registry=CollectorRegistry())
    names = [f"campaign-{i}" for i in range(keys)]
    for name in names:
        histogram.labels("checkout", name).observe(0.1)
    order = np.random.default_rng(2).permutation(np.resize(np.arange(keys), calls))
    stream = [names[i] for i in order]

    def run(n: int) -> None:
        for name in stream[:n]:
            histogram.labels("checkout", name).observe(0.123456789)

    return per_call_ns(run, calls, repeats=5)


def bytes_per_key(aggregator_cls: Any, keys: int, spread_s: float) -> float:
    """Traced bytes per key (C state and Python key tables), 24 varied spans per key.

    ``spread_s`` spreads each key's spans over that many seconds: 0 puts them all in one
    sub-window (the cost of a key that is merely busy), the window length puts a row in
    every sub-window of the ring (the most a key can cost).
    """
    rng = np.random.default_rng(3)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    aggregator = aggregator_cls(Config(max_keys=keys))
    names = [f"campaign-{i}" for i in range(keys)]
    attrs = span_attributes()
    for step in range(24):
        end = START + int(step * spread_s / 24 * 1e9)
        latency = rng.lognormal(-1.0, 0.8, keys)
        for name, seconds in zip(names, latency, strict=True):
            attrs[attributes.CAMPAIGN_ID] = name
            attrs[attributes.CONVERSION] = bool(seconds < 0.3)
            aggregator.record_span(attrs, end - int(seconds * 1e9), end)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del aggregator
    return used / keys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller runs, for smoke tests")
    args = parser.parse_args()
    calls = 20_000 if args.quick else 200_000
    native_cls = bizops_otel.Aggregator
    name = native_cls.implementation
    print(f"bizops-otel {bizops_otel.__version__}: measured implementation = {name} "
          f"(bizops_otel.NATIVE={bizops_otel.NATIVE}); Python {sys.version.split()[0]}\n")

    rounds = 9 if args.quick else 41
    ours, river, river_ratio = bench_against_river(native_cls, rounds)
    pure = per_call_ns(record_span_loop(PureAggregator), max(2000, calls // 20))
    unique = bench_unique(native_cls, calls // 4)
    pure_unique = bench_unique(PureAggregator, max(2000, calls // 40))
    prom_labels = bench_prometheus(calls, bound=False)
    prom_bound = bench_prometheus(calls, bound=True)
    rows = [
        (f"{name} record_span (3 KPIs + histogram + window)", f"{ours:.0f}", "1.00"),
        ("pure twin record_span", f"{pure:.0f}", f"{pure / ours:.1f}"),
        (f"{name} record_span, a campaign never seen before", f"{unique:.0f}",
         f"{unique / ours:.1f}"),
        ("pure twin, a campaign never seen before", f"{pure_unique:.0f}",
         f"{pure_unique / ours:.1f}"),
        ("river PearsonCorr.update (1 pair)", f"{river:.0f}", f"{river_ratio:.1f}"),
        ("prometheus_client Histogram.labels(..).observe", f"{prom_labels:.0f}",
         f"{prom_labels / ours:.1f}"),
        ("prometheus_client pre-bound child observe", f"{prom_bound:.0f}",
         f"{prom_bound / ours:.1f}"),
    ]
    print(table(rows, ("per span / update", "ns/op", "× ours")))
    print(f"(record_span and river in {rounds} alternating rounds of about 4 ms each; "
          "river's × ours is the median of the rounds' ratios)")

    batch_rows = 200_000 if args.quick else 2_000_000
    many, numpy_ns = bench_record_many(native_cls, batch_rows)
    print()
    print(table([(f"{name} record_many (1 KPI)", f"{many:.2f}", f"{1e3 / many:.0f}"),
                 ("numpy centred-dot Pearson", f"{numpy_ns:.2f}", f"{1e3 / numpy_ns:.0f}")],
                ("per observation", "ns/obs", "M obs/s")))

    key_calls = calls // 2
    few = bench_keys(native_cls, 10, key_calls)
    many_keys = bench_keys(native_cls, 100_000, key_calls)
    peer_few = bench_prometheus_keys(10, key_calls)
    peer_many = bench_prometheus_keys(100_000, key_calls)
    memory_keys = 2_000 if args.quick else 10_000
    window = Config().window
    native_bytes = bytes_per_key(native_cls, memory_keys, 0.0)
    native_worst = bytes_per_key(native_cls, memory_keys, window)
    pure_bytes = bytes_per_key(PureAggregator, min(memory_keys, 2_000), 0.0)
    print()
    print(table([("record_span at 10 keys", f"{few:.0f} ns"),
                 ("record_span at 100k keys", f"{many_keys:.0f} ns"),
                 ("ratio 100k / 10 keys", f"{many_keys / few:.2f}"),
                 ("peer: prometheus_client labels().observe at 10 keys", f"{peer_few:.0f} ns"),
                 ("peer: the same at 100k keys", f"{peer_many:.0f} ns"),
                 ("peer ratio 100k / 10 keys", f"{peer_many / peer_few:.2f}"),
                 (f"{name}: bytes per key, busy in one sub-window ({memory_keys} keys)",
                  f"{native_bytes:.0f}"),
                 (f"{name}: bytes per key, busy in all {Config().window_slots} sub-windows",
                  f"{native_worst:.0f}"),
                 ("pure twin: bytes per key, one sub-window", f"{pure_bytes:.0f}")],
                ("scaling and memory", "value")))

    print("\nTargets:")
    print(f"- record_span ≤ 1/6 of river: 1/{river_ratio:.1f} — {verdict(river_ratio >= 6)}")
    print(f"- record_many ≥ 30 M obs/s: {1e3 / many:.0f} M/s — {verdict(1e3 / many >= 30)}")
    print(f"- 100k keys ≤ 1.5 × 10 keys: {many_keys / few:.2f} — "
          f"{verdict(many_keys / few <= 1.5)}")
    print(f"- ≤ 4 KiB per key: {native_bytes:.0f} B busy in one sub-window — "
          f"{verdict(native_bytes <= 4096)}; {native_worst:.0f} B busy in every sub-window — "
          f"{verdict(native_worst <= 4096)}")


if __name__ == "__main__":
    main()
