"""What operation objectives and journeys cost per span: N configured against none.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_business_ops.py [--rounds 15] [--quick]

Whole spans, as a service runs them: one TracerProvider per variant with ``install()``
(``campaign_interval=0``, no exporter), each running the same request mix of SERVER spans
on ten routes with ``http.route`` and ``session.id``, in interleaved rounds (each round runs
every variant once in turn, so a slow spell on this shared machine falls on all alike).
Each span carries its page group and one of 500 session ids, so sessions move through the
groups in the order of the routes below.

- ``operations N``: N operations configured (N = 1, 4, 16, 64), each on a route of its
  own, so one span in ten belongs to one of them when N ≥ 10; the matcher's per-endpoint
  cache makes the configured count cost nothing by itself, only the matches;
- ``all in 2``: two operations that every span belongs to (by span kind), the dearest case;
- ``journeys N``: N journeys (N = 1, 4, 8) of four steps over the page groups, so every
  request of a session can move it a step in each.

Printed: ns per span of each (median over rounds) and its extra over none, as a median of
the per-round ratios with their range.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

sys.path.insert(0, str(Path(__file__).parent))
from _timing import interleaved_ns, table

import bizops_otel
from bizops_otel import Journey, Operation

ROUTES = tuple(f"/shop/{name}/{{id}}" for name in (
    "product", "cart", "checkout", "order", "search", "account", "help", "home", "deals",
    "brand"))


def operations(count: int) -> tuple[Operation, ...]:
    return tuple(Operation(f"op{i}", threshold=0.5, target=0.99,
                           route=ROUTES[i] if i < len(ROUTES) else f"/other/{i}")
                 for i in range(count))


GROUPS = tuple(route.split("/")[2] for route in ROUTES)


def journeys(count: int) -> tuple[Journey, ...]:
    return tuple(Journey(f"journey{i}", steps=tuple(GROUPS[(i + k) % len(GROUPS)]
                                                    for k in range(4)))
                 for i in range(count))


EVERY_SPAN = (Operation("all_fast", threshold=0.5, target=0.99),
              Operation("all_errors", threshold=60.0, target=0.999))


def span_loop(ops: tuple[Operation, ...] = (),
              paths: tuple[Journey, ...] = ()) -> Callable[[int], None]:
    provider = TracerProvider()
    bizops_otel.install(provider, campaign_interval=0, operations=ops, journeys=paths)
    tracer = provider.get_tracer("bench")
    server = SpanKind.SERVER
    mix = [(f"GET {ROUTES[i % 10]}", {"http.route": ROUTES[i % 10],
                                       "bizops.page_group": GROUPS[i % 10],
                                       "session.id": f"s{i % 500}"}) for i in range(1000)]

    def run(n: int) -> None:
        for i in range(n):
            name, attributes = mix[i % 1000]
            with tracer.start_as_current_span(name, kind=server, attributes=attributes):
                pass
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="3 rounds, for a smoke test")
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    runs = {"none": span_loop()}
    for count in (1, 4, 16, 64):
        runs[f"operations {count}"] = span_loop(operations(count))
    runs["all in 2"] = span_loop(EVERY_SPAN)
    for count in (1, 4, 8):
        runs[f"journeys {count}"] = span_loop(paths=journeys(count))
    samples = interleaved_ns(runs, rounds=rounds, run_ms=20.0)
    base = samples["none"]
    rows: list[tuple[Any, ...]] = []
    for name, values in samples.items():
        ratios = [v / b - 1 for v, b in zip(values, base, strict=True)]
        rows.append((name, f"{statistics.median(values):,.0f}",
                     "—" if name == "none" else f"{statistics.median(ratios):+.1%}",
                     "—" if name == "none" else f"{min(ratios):+.1%} … {max(ratios):+.1%}"))
    twin = "native" if bizops_otel.NATIVE else "pure"
    print(f"bizops-otel {bizops_otel.__version__} ({twin}), {rounds} interleaved rounds")
    print(table(rows, ("variant", "ns/span", "over none (median)", "range")))


if __name__ == "__main__":
    main()
