"""What the session table costs per span: sessions on against sessions off, same run.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_sessions.py [--quick]

1. The aggregator alone: ``record_span`` on spans carrying ``session.id``, with the
   default table (100,000 sessions) against ``max_sessions=0``, for two traffic shapes:
   50,000 visitors coming back page after page (lookups and updates), and a new visitor on
   every span (insert, plus the eviction of the least recently seen session once the table
   is full). river's ``PearsonCorr.update`` is timed alongside as a yardstick.
2. Whole spans: two TracerProviders with ``install()``, sessions on and off, running the
   same request mix (with session ids) in interleaved rounds.

No target is set by the issue beyond "measured"; the figures go in the README.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

sys.path.insert(0, str(Path(__file__).parent))
from _timing import per_call_ns, table
from bench_aggregator import START, bench_river, span_attributes

import bizops_otel
from bizops_otel import Config
from bizops_otel import attributes as attr
from bizops_otel.aggregate.aggregator import Aggregator


def bench_aggregator(sessions: bool, ids: list[str], calls: int) -> float:
    aggregator = Aggregator(Config(max_sessions=100_000 if sessions else 0))
    record = aggregator.record_span
    spans = []
    for sid in ids:
        attributes = span_attributes()
        attributes[attr.SESSION_ID] = sid
        spans.append(attributes)
    count = len(spans)
    clock = [START]

    def run(n: int) -> None:
        now = clock[0]
        for i in range(n):
            now += 1_000_000  # a span per millisecond of span time
            record(spans[i % count], now - 123_456_789, now)
        clock[0] = now

    return per_call_ns(run, calls)


def request_mix(count: int, visitors: int) -> list[tuple[str, dict[str, Any]]]:
    routes = ["/", "/product/<id>", "/cart", "/checkout", "/search"]
    mix = []
    for i in range(count):
        route = routes[i % len(routes)]
        mix.append((f"GET {route}", {attr.HTTP_ROUTE: route, attr.HTTP_TARGET: route,
                                     attr.SESSION_ID: f"visitor-{(i * 7919) % visitors}"}))
    return mix


def run_spans(provider: TracerProvider, mix: list[tuple[str, dict[str, Any]]]) -> float:
    start_span = provider.get_tracer("bench").start_as_current_span
    server = SpanKind.SERVER
    started = time.perf_counter_ns()
    for name, attributes in mix:
        with start_span(name, kind=server, attributes=attributes):
            pass
    return (time.perf_counter_ns() - started) / len(mix)


def bench_spans(spans: int, rounds: int) -> dict[str, float]:
    setups = {}
    for label, limit in (("sessions off", 0), ("sessions on", 100_000)):
        provider = TracerProvider()
        bizops_otel.install(provider, config=Config(max_sessions=limit))
        setups[label] = provider
    mix = request_mix(spans, visitors=spans // 5)
    samples: dict[str, list[float]] = {name: [] for name in setups}
    for provider in setups.values():
        run_spans(provider, mix[: spans // 10])
    for _ in range(rounds):
        for name, provider in setups.items():
            samples[name].append(run_spans(provider, mix))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    calls, spans, rounds = (50_000, 2_000, 5) if args.quick else (500_000, 20_000, 9)
    implementation = "native" if bizops_otel.NATIVE else "pure"
    print(f"bizops-otel {bizops_otel.__version__} ({implementation} aggregator); medians\n")
    returning = [f"visitor-{(i * 7919) % 50_000}" for i in range(50_000)]
    new = [f"visitor-{i}" for i in range(calls)]
    river = bench_river(calls)
    rows = []
    for shape, ids in (("50k returning visitors", returning), ("a new visitor per span", new)):
        off = bench_aggregator(False, ids, calls)
        on = bench_aggregator(True, ids, calls)
        rows.append((shape, f"{off:.0f}", f"{on:.0f}", f"{on - off:+.0f}", f"{on / off:.2f}×"))
    print("record_span, ns per span (river PearsonCorr.update in the same run: "
          f"{river:.0f} ns)\n")
    print(table(rows, ("traffic", "sessions off", "sessions on", "difference", "ratio")))
    median = bench_spans(spans, rounds)
    off, on = median["sessions off"], median["sessions on"]
    print(f"\nwhole SERVER spans through install(), {spans} spans × {rounds} interleaved "
          f"rounds: sessions off {off / 1e3:.2f} µs, on {on / 1e3:.2f} µs "
          f"({(on - off) / 1e3:+.2f} µs, {(on - off) / off:+.1%})")


if __name__ == "__main__":
    main()
