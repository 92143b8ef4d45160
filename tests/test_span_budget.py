"""The span path's budget in CPU instructions: install() against a bare SDK span.

Every request of every service that installs bizops-otel pays for the span path, so a
change that slows it must fail here rather than be found in a benchmark months later.
Wall-clock ratios on a shared 2-core machine move by several points from run to run;
instruction counts do not. valgrind's callgrind counts the instructions of the span loop
only (``benchmarks/bench_span_path.py``, the reference mix: SERVER spans with a route and
a query, one in ten a campaign landing, one in four an order), for a bare TracerProvider
and for one with ``install()``, in child processes with a fixed hash seed, a seeded
``random`` and a frozen GC heap.

How stable: the measuring child gives the SDK a counter for a clock from a fixed instant
(with the real clock, how many sub-windows the aggregator rolled depended on the machine's
load), so a count repeats to the last decimal for a given build and memory layout. The
layout still matters: CPython's type attribute cache is indexed by the address of each
attribute name and each type's version tag, so which lookups collide depends on all that
was allocated before; on one build the ratio moved between +4.9% and +5.6% over layouts,
and an unrelated change of the imported code moved one layout's count by 4,000
instructions. The test therefore counts three layouts (the child allocates a little padding
first) and holds the median ratio to the budget. Measured on the machine this budget was
set on (CPython 3.11.7, opentelemetry-sdk 1.45.2, native build): +4.90%, +5.59%, +5.20%,
+5.00% over four layouts of 400 spans. The budget leaves about 0.8 points; a change of the
span path that costs more fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bizops_otel import attributes
from bizops_otel._twins import no_extensions

from .tools import require

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_span_path

#: install() over bare, in instructions per span, by mix: the reference mix's target (it was
#: 12.7% before the span path was reworked, 4.9% to 5.0% after); route-only spans, whose
#: target is 4% (3.9% to 4.1% over layouts when this guard was added), with the layouts'
#: spread on top.
BUDGETS = {"reference": 0.06, "route-only": 0.045}
SPANS = 400
#: Memory layouts counted; the median ratio is held to the budget.
LAYOUTS = 3


@pytest.mark.parametrize("mix", sorted(BUDGETS))
def test_install_stays_within_its_instruction_budget_over_a_bare_span(mix: str) -> None:
    if no_extensions():
        pytest.skip("the budget is the native span path's; the native pass checks it")
    require("valgrind", package="valgrind")
    budget = BUDGETS[mix]
    overhead, pairs = bench_span_path.install_overhead(mix, SPANS, LAYOUTS)
    # Sanity: a count that measured nothing, or the wrong loop, would pass any budget.
    assert all(100_000 < b < 400_000 for b, _ in pairs), f"bare spans counted as {pairs}"
    assert all(i > b for b, i in pairs), "install() cannot cost nothing"
    assert overhead <= budget, (
        f"install() costs {overhead:+.2%} over a bare {mix} span (median over {LAYOUTS} "
        f"memory layouts; bare and install per layout: {pairs}); the budget is "
        f"{budget:.1%}. Profile with benchmarks/bench_span_path.py.")


def test_the_writing_floor_writes_what_install_writes() -> None:
    """The benchmark's ``writes`` provider is the floor install() is held to on landings:
    a processor that only writes install()'s attributes with the SDK's set_attribute. It is
    a fair floor only if it writes exactly what install() writes, span for span: checked
    here on every mix, the spans exported by the real SDK."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    for mix in bench_span_path.MIXES:
        specs = bench_span_path.request_mix(mix, 60)
        written = {}
        for variant in ("writes", "install"):
            provider, handle = bench_span_path.tracer_provider(variant, iter(
                [bench_span_path.campaign_writes(attrs) for _, attrs, _ in specs]))
            exporter = InMemorySpanExporter()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            bench_span_path.run_spans(provider.get_tracer("t"), specs)
            written[variant] = [
                {k: v for k, v in span.attributes.items() if k not in start}
                for span, (_, start, _) in zip(exporter.get_finished_spans(), specs,
                                               strict=True)]
            if handle is not None:
                handle.shutdown()
        assert written["writes"] == written["install"], mix
        landings = sum(1 for pairs in written["install"] if attributes.CAMPAIGN_ID in pairs)
        assert landings == {"reference": 6, "route-only": 0, "landing": 60}[mix]
