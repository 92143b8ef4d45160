"""CPU instructions per span, counted by callgrind: bare SDK, empty processor, install().

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_span_path.py [--spans 2000]
        [--mix reference|route-only|landing] [--rounds 9] [--wall-spans 10000]
        [--variant bare|noop|writes|install|rules|objectives|journeys] [--no-wall]
        [--repeat K] [--jobs J] [--json]

Wall time on a shared machine moves by several percent from run to run; instruction
counts do not. For each span mix and each of these TracerProviders

1. ``bare``: the SDK TracerProvider, no span processor;
2. ``noop``: the same with a SpanProcessor whose on_start and on_end do nothing (the
   floor: what merely being a span processor costs);
   ``writes``: the same with a SpanProcessor that writes, in on_start and with the SDK's
   ``set_attribute``, exactly the attributes install() writes on each span (the campaign
   of a landing), computed beforehand: the floor of any processor that writes them
   through the SDK's public API, which install() is measured against on landings;
3. ``install``: the same with ``bizops_otel.install(provider)``, the monitors' threads off
   (``NO_MONITORS``), otherwise the defaults (the targets are set on this one);
4. ``rules``: install() with one page-group rule, ``page_groups=(("/product/*",
   "product"),)``, so every span is given its group at start, as a service with rules has;
5. ``objectives``: install() with the four operations of ``OPERATIONS`` (objectives), two
   of which every span belongs to: the cost of counting good and total per operation;
6. ``journeys``: install() with the four journeys of ``JOURNEYS``, each starting at the
   mixes' page group, so that every span with a session id (the landing mix) follows its
   session in four funnels;

a child process (``--child VARIANT MIX N``, under valgrind) builds the provider, runs
300 warm-up spans (caches, key creation, first-seen paths), then N spans with
``start_as_current_span`` as an instrumentation does, and callgrind counts only those N
(see ``_callgrind.py``). The child runs with PYTHONHASHSEED=0, a seeded ``random`` (the
SDK draws span ids from it), a frozen GC heap, and without the process's ``OTEL_*`` and
``BIZOPS_OTEL_*`` variables (BIZOPS_OTEL_NO_EXTENSIONS apart), so a count repeats to
within a few instructions per span. It checks that it runs the native build (unless
BIZOPS_OTEL_NO_EXTENSIONS is set) and, for ``install`` and ``rules``, that every span was recorded.

The mixes, all SERVER spans named ``GET /product/{id}`` with ``http.route``:

- ``reference``: ``url.query`` and ``http.target`` too; one span in ten is a campaign
  landing (``utm_campaign=spring<k>&x=1``), one in four sets ``bizops.order.value``;
- ``route-only``: nothing but ``http.route``;
- ``landing``: every span a campaign landing (``utm_campaign`` and ``utm_source``), with
  ``session.id`` (a pool of 50) and ``feature_flag.result.variant`` (A or B).

Then, unless ``--no-wall``, wall time in this process: ``--rounds`` rounds of bare, noop
install and rules in turn, each over ``--wall-spans`` spans; the median and range over rounds
of each over bare. A test calls :func:`count_instructions` instead.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and "--layout" in sys.argv:
    # Before anything else is imported: shift where later objects and types land (see
    # ``layout_shift``), so that a count can be repeated over several layouts.
    _shift = int(sys.argv[sys.argv.index("--layout") + 1])
    _padding: list[object] = [type(f"Pad{i}", (), {"__slots__": ()})
                              for i in range(7 * _shift)]
    _padding += [bytearray(24 + 8 * (i % 13)) for i in range(97 * _shift)]

import argparse
import gc
import itertools
import json
import os
import random
import statistics
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

import opentelemetry.sdk.trace as sdk_trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind, Tracer

sys.path.insert(0, str(Path(__file__).parent))
import _callgrind
from _timing import table

import bizops_otel
from bizops_otel import attributes as attr
from bizops_otel._twins import no_extensions
from bizops_otel.span.enrich import parse_utm

VARIANTS = ("bare", "noop", "writes", "install", "rules", "objectives", "journeys")
#: The variants that install bizops-otel, compared with bare.
INSTALLED = ("install", "rules", "objectives", "journeys")
MIXES = ("reference", "route-only", "landing")
#: Spans run before counting starts: every target, campaign and session is seen by then.
WARMUP = 300
PAGE_GROUPS = (("/product/*", "product"),)
NAME = "GET /product/{id}"
ROUTE = "/product/{id}"
SESSIONS = 50
#: The ``objectives`` variant's operations: every span of the mixes is a product page
#: (route) and a server span (all pages); it is neither checkout nor an authorisation.
OPERATIONS = (
    bizops_otel.Operation("product", 0.5, 0.99, route=ROUTE),
    bizops_otel.Operation("pages", 1.0, 0.95),
    bizops_otel.Operation("checkout", 1.0, 0.99, route="/checkout"),
    bizops_otel.Operation("authorise_order", 2.0, 0.999,
                          span_name="POST /api/orders/{id}/authorise"),
)

#: Four journeys whose first step is the mixes' page group (the route, for want of rules):
#: every span with a session id moves its session into each of them.
JOURNEYS = tuple(bizops_otel.Journey(f"journey{i}", (ROUTE, f"step{i}b", f"step{i}c"))
                 for i in range(4))

#: (span name, attributes at start, order value set before the span ends or None)
Spec = tuple[str, dict[str, Any], float | None]


def request_mix(mix: str, count: int) -> list[Spec]:
    """The first ``count`` spans of ``mix``; the same list for every variant."""
    rng = random.Random(7)
    sessions: list[str] = []
    specs: list[Spec] = []
    for i in range(count):
        if mix == "route-only":
            specs.append((NAME, {attr.HTTP_ROUTE: ROUTE}, None))
            continue
        if mix == "reference":
            query = f"utm_campaign=spring{(i // 10) % 5}&x=1" if i % 10 == 0 else "x=1"
        elif mix == "landing":
            query = f"utm_campaign=spring{i % 5}&utm_source=news{i % 3}"
        else:
            raise ValueError(f"unknown mix {mix!r}; known: {', '.join(MIXES)}")
        start = {attr.HTTP_ROUTE: ROUTE, attr.URL_QUERY: query,
                 attr.HTTP_TARGET: f"/product/{i % 97}?{query}"}
        if mix == "landing":
            if not sessions:  # a shuffled pass over the pool: all 50 seen in the warm-up
                sessions = [f"session-{k:02d}" for k in range(SESSIONS)]
                rng.shuffle(sessions)
            start[attr.SESSION_ID] = sessions.pop()
            start[attr.FEATURE_FLAG_VARIANT] = rng.choice("AB")
        specs.append((NAME, start, 49.9 if mix == "reference" and i % 4 == 0 else None))
    return specs


class NoopProcessor(SpanProcessor):
    """The floor: a span processor that does nothing."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        pass


#: The monitors' threads off: they run off the span path, and under valgrind's slowness
#: one would run inside the counted loop, counted with it (the objectives' monitor did once,
#: and the run failed its own check of the operations' counts).
NO_MONITORS: dict[str, Any] = {"campaign_interval": 0, "guardrail_interval": 0,
                               "objective_interval": 0}

#: (key, value) pairs a span is given at start
Writes = tuple[tuple[str, str], ...]


def campaign_writes(attributes: Mapping[str, Any]) -> Writes:
    """What install() writes at the start of a span of the mixes: the campaign its query
    names, each key the span does not already carry (``enrich.Enricher.campaign_attributes``
    with the default value length, by the pure functions)."""
    query = attributes.get(attr.URL_QUERY)
    campaign = parse_utm(query) if isinstance(query, str) and "utm_" in query else None
    if campaign is None:
        return ()
    keys = (attr.CAMPAIGN_ID, attr.CAMPAIGN_SOURCE, attr.CAMPAIGN_MEDIUM)
    return tuple((key, value) for key, value in zip(keys, campaign, strict=True)
                 if value is not None and key not in attributes)


class WritesProcessor(SpanProcessor):
    """The floor of writing install()'s attributes: the next span's pairs, precomputed, each
    written with ``set_attribute`` at on_start; nothing else."""

    def __init__(self, writes: Iterator[Writes]) -> None:
        self._writes = writes

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for key, value in next(self._writes):
            span.set_attribute(key, value)

    def on_end(self, span: ReadableSpan) -> None:
        pass


def tracer_provider(variant: str, writes: Iterator[Writes] | None = None
                    ) -> tuple[TracerProvider, bizops_otel.BizOps | None]:
    """A fresh provider set up as ``variant``, and the bizops-otel handle for install.
    ``writes`` gives the ``writes`` variant each span's pairs, in the order spans start."""
    provider = TracerProvider()
    if variant == "bare":
        return provider, None
    if variant == "noop":
        provider.add_span_processor(NoopProcessor())
        return provider, None
    if variant == "writes":
        if writes is None:
            raise ValueError("the writes variant needs each span's writes")
        provider.add_span_processor(WritesProcessor(writes))
        return provider, None
    if variant == "install":
        return provider, bizops_otel.install(provider, **NO_MONITORS)
    if variant == "rules":
        return provider, bizops_otel.install(provider, page_groups=PAGE_GROUPS, **NO_MONITORS)
    if variant == "objectives":
        return provider, bizops_otel.install(provider, operations=OPERATIONS, **NO_MONITORS)
    if variant == "journeys":
        return provider, bizops_otel.install(provider, journeys=JOURNEYS, **NO_MONITORS)
    raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")


def run_spans(tracer: Tracer, specs: Sequence[Spec]) -> None:
    """The span loop, the same for every variant, counted and timed."""
    start_span = tracer.start_as_current_span
    server = SpanKind.SERVER
    for name, attributes, order in specs:
        with start_span(name, kind=server, attributes=attributes) as span:
            if order is not None:
                span.set_attribute(attr.ORDER_VALUE, order)


def recorded(handle: bizops_otel.BizOps | None, now_ns: int) -> int | None:
    if handle is None or handle.aggregator is None:
        return None
    snapshot = handle.aggregator.snapshot(now_ns=now_ns)
    count = snapshot.total().count
    # With operations, every request counts in "product" and "pages" and in no other.
    totals = snapshot.operation_counts[:, 0].tolist()
    return count if totals in ([], [count, count, 0, 0]) else -1


#: Where the measured child's span clock starts (2026-01-01T00:00:00Z), and how far it
#: moves at each reading: a service at 500 requests a second.
CLOCK_START_NS = 1_767_225_600 * 10**9
CLOCK_STEP_NS = 1_000_000


def child(variant: str, mix: str, spans: int) -> int:
    """The workload run under callgrind: warm up, then ``spans`` counted spans."""
    random.seed(0)  # the SDK's RandomIdGenerator draws from the global random
    # The SDK's clock, in this measuring child only: a builtin counter, as cheap to call as
    # time.time_ns. With the real clock, how many sub-windows the aggregator rolled during
    # the loop depended on how long valgrind took, i.e. on the machine's load, and the
    # count moved by about a thousand instructions a span from one run to the next.
    clock = itertools.count(CLOCK_START_NS, CLOCK_STEP_NS)
    setattr(sdk_trace, "time_ns", clock.__next__)  # noqa: B010 (not a re-export of ours)
    specs = request_mix(mix, WARMUP + spans)
    provider, handle = tracer_provider(
        variant, iter([campaign_writes(attributes) for _, attributes, _ in specs]))
    tracer = provider.get_tracer("bench")
    run_spans(tracer, specs[:WARMUP])
    gc.collect()
    gc.freeze()  # collections inside the loop then scan only what the loop made
    _callgrind.measured(lambda: run_spans(tracer, specs[WARMUP:]))
    count = recorded(handle, next(clock))
    print(json.dumps({"native": bizops_otel.NATIVE, "no_extensions": no_extensions(),
                      "recorded": count}))
    if not bizops_otel.NATIVE and not no_extensions():
        print("the native build did not load (and BIZOPS_OTEL_NO_EXTENSIONS is not set)",
              file=sys.stderr)
        return 1
    if variant in INSTALLED and count != WARMUP + spans:
        print(f"{variant} recorded {count} spans, expected {WARMUP + spans}", file=sys.stderr)
        return 1
    return 0


def child_env() -> dict[str, str]:
    """A fixed, minimal environment: PATH, PYTHONHASHSEED=0, OPENBLAS_NUM_THREADS=1 and
    BIZOPS_OTEL_NO_EXTENSIONS when set. Nothing of this process's own: the environment's
    size moves where the child's first objects are allocated, and with them every hash
    taken from an object's address (a ContextVar's, for one), which moved the counts by
    about a thousand instructions a span between two shells."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": "0",
           "OPENBLAS_NUM_THREADS": "1"}
    if "BIZOPS_OTEL_NO_EXTENSIONS" in os.environ:
        env["BIZOPS_OTEL_NO_EXTENSIONS"] = os.environ["BIZOPS_OTEL_NO_EXTENSIONS"]
    return env


def count_run(variant: str, mix: str, spans: int,
              layout: int = 0) -> tuple[float, dict[str, Any]]:
    """Instructions per span, and what the child reported (native, recorded)."""
    if spans <= 0:
        raise ValueError("spans must be positive")
    total, stdout = _callgrind.count(
        [sys.executable, str(Path(__file__).resolve()), "--layout", str(layout),
         "--child", variant, mix, str(spans)],
        env=child_env())
    report: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return total / spans, report


def count_instructions(variant: str, mix: str = "reference", spans: int = 2000,
                       layout: int = 0) -> float:
    """CPU instructions per span of ``variant`` ("bare", "noop", "install", "rules") on ``mix``
    ("reference", "route-only", "landing"), counted by callgrind over ``spans`` spans
    after the warm-up, in memory layout ``layout``. Deterministic for a given layout."""
    return count_run(variant, mix, spans, layout)[0]


def install_overhead(mix: str = "reference", spans: int = 400, layouts: int = 5,
                     jobs: int = 2) -> tuple[float, list[tuple[float, float]]]:
    """install() over bare on ``mix``: the median over ``layouts`` memory layouts of the
    per-layout ratio, and each layout's (bare, install) counts.

    Why several layouts: CPython's type attribute cache is indexed by the address of the
    attribute's name and the type's version tag, so which lookups collide (and then walk
    the MRO) depends on everything allocated and every type created before, down to the
    command line. One layout's ratio moved between +4.9% and +5.6% on the same build."""
    runs = [(variant, layout) for layout in range(layouts) for variant in ("bare", "install")]
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        counts = list(pool.map(lambda run: count_instructions(run[0], mix, spans, run[1]),
                               runs))
    pairs = [(counts[2 * k], counts[2 * k + 1]) for k in range(layouts)]
    return statistics.median(i / b - 1 for b, i in pairs), pairs


def wall_ratios(mix: str, spans: int, rounds: int) -> dict[str, list[float]]:
    """Per round: each variant's time per span over bare, and bare ns/span."""
    specs = request_mix(mix, WARMUP + spans)
    writes = [campaign_writes(attributes) for _, attributes, _ in specs]
    tracers = {}
    for variant in VARIANTS:
        # the rounds run the measured spans again and again, after the warm-up ones
        provider, _ = tracer_provider(variant, itertools.chain(
            writes[:WARMUP], itertools.cycle(writes[WARMUP:])))
        tracers[variant] = provider.get_tracer("bench")
        run_spans(tracers[variant], specs[:WARMUP])
    measured = specs[WARMUP:]
    result: dict[str, list[float]] = {v: [] for v in (*VARIANTS[1:], "bare_ns")}
    for _ in range(rounds):
        ns = {}
        for variant, tracer in tracers.items():
            started = time.perf_counter()
            run_spans(tracer, measured)
            ns[variant] = (time.perf_counter() - started) * 1e9 / spans
        for variant in VARIANTS[1:]:
            result[variant].append(ns[variant] / ns["bare"])
        result["bare_ns"].append(ns["bare"])
    return result


def ratio_cell(values: Sequence[float]) -> str:
    return (f"{statistics.median(values):.3f} "
            f"({min(values):.3f}–{max(values):.3f})")


def print_counts(counts: Mapping[str, Mapping[str, list[float]]]) -> None:
    variants = [v for v in VARIANTS if v in next(iter(counts.values()))]
    repeated = any(len(values) > 1 for per in counts.values() for values in per.values())
    rows = []
    for mix, per in counts.items():
        value = {variant: statistics.median(per[variant]) for variant in variants}
        bare = value.get("bare")
        row = (mix, *(f"{value[v]:,.0f}" for v in variants))
        if bare is not None:
            row += tuple(f"{value[v] / bare - 1:+.2%}" for v in variants if v != "bare")
            if "install" in value:
                row += (f"{value['install'] - bare:+,.0f}",)
        if "install" in value and "writes" in value:
            row += (f"{value['install'] - value['writes']:+,.0f}",)
        if repeated:
            row += (" / ".join(f"{max(per[v]) - min(per[v]):.1f}" for v in variants),)
        rows.append(row)
    header: tuple[str, ...] = ("mix", *(f"{v} instr/span" for v in variants))
    if "bare" in variants:
        header += tuple("noop over bare (floor)" if v == "noop" else f"{v} over bare"
                        for v in variants if v != "bare")
        if "install" in variants:
            header += ("install extra instr/span",)
    if "install" in variants and "writes" in variants:
        header += ("install over writes instr/span",)
    if repeated:
        header += (f"spread instr/span ({' / '.join(variants)})",)
    print(table(rows, header))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--child", nargs=3, metavar=("VARIANT", "MIX", "N"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--layout", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--spans", type=int, default=2000,
                        help="counted spans per callgrind run (default 2000)")
    parser.add_argument("--mix", choices=MIXES, action="append",
                        help="a mix to run (repeatable; default all)")
    parser.add_argument("--variant", choices=VARIANTS, action="append",
                        help="a provider to count (repeatable; default all)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="memory layouts per count (default 3; see install_overhead): "
                             "the median is shown, and the spread when > 1")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="callgrind runs at once (counts do not depend on it)")
    parser.add_argument("--rounds", type=int, default=9, help="wall-time rounds (default 9)")
    parser.add_argument("--wall-spans", type=int, default=10_000,
                        help="spans per variant per wall-time round (default 10000)")
    parser.add_argument("--no-wall", action="store_true", help="skip the wall-time part")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args()
    if args.child:
        variant, mix, spans = args.child
        sys.exit(child(variant, mix, int(spans)))

    mixes = tuple(dict.fromkeys(args.mix)) if args.mix else MIXES
    variants = tuple(v for v in VARIANTS if v in args.variant) if args.variant else VARIANTS
    jobs = [(mix, variant, layout) for mix in mixes for variant in variants
            for layout in range(args.repeat)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        results = list(pool.map(lambda job: count_run(job[1], job[0], args.spans, job[2]),
                                jobs))
    elapsed = time.perf_counter() - started
    counts: dict[str, dict[str, list[float]]] = {m: {v: [] for v in variants} for m in mixes}
    for (mix, variant, _), (per_span, _) in zip(jobs, results, strict=True):
        counts[mix][variant].append(per_span)
    native = all(report["native"] for _, report in results)
    wall = ({} if args.no_wall
            else {mix: wall_ratios(mix, args.wall_spans, args.rounds) for mix in mixes})

    if args.json:
        print(json.dumps({
            "bizops_otel": bizops_otel.__version__, "native": native, "spans": args.spans,
            "warmup": WARMUP,
            "instructions_per_span": {m: {v: statistics.median(values)
                                          for v, values in per.items()}
                                      for m, per in counts.items()},
            "runs": counts,
            "wall_ratios": {m: {k: v for k, v in w.items() if k != "bare_ns"}
                            for m, w in wall.items()},
        }, indent=2))
        return
    build = ("native" if native else
             "pure, BIZOPS_OTEL_NO_EXTENSIONS set" if no_extensions() else "pure")
    print(f"bizops-otel {bizops_otel.__version__} ({build}), opentelemetry-sdk "
          f"{metadata.version('opentelemetry-sdk')}, Python {sys.version.split()[0]}")
    print(f"callgrind: instructions per span over {args.spans} spans after {WARMUP} "
          f"warm-up spans; {len(jobs)} runs in {elapsed:.0f} s\n")
    print_counts(counts)
    if wall:
        print(f"\nwall time: {args.rounds} interleaved rounds of {args.wall_spans} spans "
              "per variant; median (min–max) over rounds\n")
        rows: list[tuple[str, ...]] = [
            (mix, *(ratio_cell(w[v]) for v in VARIANTS[1:]),
             f"{statistics.median(w['bare_ns']) / 1e3:.2f}") for mix, w in wall.items()]
        print(table(rows, ("mix", *(f"{v} / bare" for v in VARIANTS[1:]), "bare µs/span")))


if __name__ == "__main__":
    main()
