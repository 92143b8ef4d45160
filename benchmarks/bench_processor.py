"""Span throughput with and without bizops-otel, against what a user would hand-write.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_processor.py [--quick]

Four TracerProviders run the same realistic request mix, interleaved round by round so
that machine noise hits them alike:

1. the bare SDK TracerProvider;
2. the same with ``bizops_otel.install()``;
3. the same with a hand-written processor that records an OTel SDK Histogram with the
   same two attributes in ``on_end`` (what one writes without bizops-otel);
4. the same with ``SimpleSpanProcessor(InMemorySpanExporter)``.

The mix: SERVER spans with http.route and http.target; one request in ten is a campaign
landing (utm parameters in the URL); one in five converts, one in twenty places an order.
Targets: (2)'s overhead over (1) at most 5% of the bare span cost, and at most 1/8 of (3)'s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

sys.path.insert(0, str(Path(__file__).parent))
from _timing import table, verdict

import bizops_otel
from bizops_otel import attributes as attr

ROUTES = ["/", "/product/<id>", "/cart", "/checkout", "/search"]


def request_mix(count: int) -> list[tuple[str, dict[str, Any], bool, float | None]]:
    """(span name, start attributes, converted, order value) per request."""
    mix = []
    for i in range(count):
        route = ROUTES[i % len(ROUTES)]
        target = route.replace("<id>", str(i % 97))
        if i % 10 == 0:
            target += f"?utm_campaign=campaign-{i % 7}&utm_source=newsletter"
        start = {attr.HTTP_ROUTE: route, attr.HTTP_TARGET: target, "http.method": "GET"}
        mix.append((f"GET {route}", start, i % 5 == 0, 49.9 if i % 20 == 0 else None))
    return mix


class HistogramProcessor(SpanProcessor):
    """What a user writes without bizops-otel: an SDK histogram fed in on_end."""

    def __init__(self, meter_provider: MeterProvider) -> None:
        self._histogram = meter_provider.get_meter("hand-written").create_histogram(
            "request.duration", unit="s")

    def on_end(self, span: ReadableSpan) -> None:
        attributes = span.attributes or {}
        self._histogram.record((span.end_time - span.start_time) * 1e-9, {
            attr.PAGE_GROUP: attributes.get(attr.HTTP_ROUTE, ""),
            attr.CAMPAIGN_ID: attributes.get(attr.CAMPAIGN_ID, ""),
        })


class EmptyProcessor(SpanProcessor):
    """The floor: what merely being a span processor costs."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        pass


def providers() -> dict[str, TracerProvider]:
    bare = TracerProvider()
    ours = TracerProvider()
    bizops_otel.install(ours, config=bizops_otel.Config())
    hand = TracerProvider()
    hand.add_span_processor(HistogramProcessor(MeterProvider(
        metric_readers=[InMemoryMetricReader()])))
    memory = TracerProvider()
    memory.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    empty = TracerProvider()
    empty.add_span_processor(EmptyProcessor())
    return {"bare SDK": bare, "with install()": ours, "hand-written Histogram": hand,
            "SimpleSpanProcessor(InMemory)": memory, "empty processor (floor)": empty}


def run(provider: TracerProvider, mix: list[tuple[str, dict[str, Any], bool, float | None]]
        ) -> float:
    tracer = provider.get_tracer("bench")
    start_span = tracer.start_as_current_span
    server = SpanKind.SERVER
    started = time.perf_counter_ns()
    for name, attributes, converted, order in mix:
        with start_span(name, kind=server, attributes=attributes) as span:
            if converted:
                span.set_attribute(attr.CONVERSION, True)
            if order is not None:
                span.set_attribute(attr.ORDER_VALUE, order)
    return (time.perf_counter_ns() - started) / len(mix)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    spans, rounds = (2_000, 5) if args.quick else (20_000, 9)
    mix = request_mix(spans)
    setups = providers()
    samples: dict[str, list[float]] = {name: [] for name in setups}
    for provider in setups.values():
        run(provider, mix[: spans // 10])  # warm-up
    for _ in range(rounds):
        for name, provider in setups.items():
            samples[name].append(run(provider, mix))
    median = {name: statistics.median(values) for name, values in samples.items()}
    bare = median["bare SDK"]
    ours = median["with install()"] - bare
    hand = median["hand-written Histogram"] - bare
    implementation = "native" if bizops_otel.NATIVE else "pure"
    print(f"bizops-otel {bizops_otel.__version__} ({implementation} aggregator); "
          f"{spans} spans × {rounds} interleaved rounds; medians\n")
    rows = [(name, f"{value / 1e3:.2f}", f"{1e9 / value:,.0f}",
             "-" if name == "bare SDK" else f"{(value - bare) / 1e3:+.2f}")
            for name, value in median.items()]
    print(table(rows, ("setup", "µs/span", "spans/s", "overhead µs")))
    print(f"\nbizops-otel overhead: {ours / bare:.1%} of a bare span; "
          f"{hand / ours if ours > 0 else float('inf'):.1f}× less than the hand-written "
          "Histogram processor")
    print(f"- overhead ≤ 5% of bare span: {verdict(ours <= 0.05 * bare)}")
    print(f"- overhead ≤ 1/8 of hand-written: {verdict(ours * 8 <= hand)}")


if __name__ == "__main__":
    main()
