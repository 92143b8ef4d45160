"""The span path's budget in CPU instructions: install() against a bare SDK span.

Every request of every service that installs bizops-otel pays for the span path, so a
change that slows it must fail here rather than be found in a benchmark months later.
Wall-clock ratios on a shared 2-core machine move by several points from run to run;
instruction counts do not. valgrind's callgrind counts the instructions of the span loop
only (``benchmarks/bench_span_path.py``, the reference mix: SERVER spans with a route and
a query, one in ten a campaign landing, one in four an order), for a bare TracerProvider
and for one with ``install()``, in child processes with a fixed hash seed, a seeded
``random`` and a frozen GC heap.

How stable: the measuring child gives the SDK a counter for a clock from a fixed instant,
so the aggregator rolls the same sub-windows in every run whatever the machine's load (with
the real clock, counts moved by up to a thousand instructions a span between runs). On the
machine this budget was set on (CPython 3.11.7, opentelemetry-sdk 1.45.2, native build),
repeated counts over 400 spans were equal to the last decimal, loaded or not (bare
167,584, install 175,740: +4.87%), and counts over 400 and 2,000 spans agreed within 0.1
points of the ratio. The budget leaves about 1 point for a different compiler, Python
patch release or SDK release; a change of the span path that costs more fails.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bizops_otel._twins import no_extensions

from .tools import require

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_span_path

#: install() over bare on the reference mix, in instructions per span (the issue's target;
#: it was 12.7% before the span path was reworked, 4.9% to 5.0% after).
BUDGET = 0.06
SPANS = 400


def test_install_stays_within_its_instruction_budget_over_a_bare_span() -> None:
    if no_extensions():
        pytest.skip("the budget is the native span path's; the native pass checks it")
    require("valgrind", package="valgrind")
    with ThreadPoolExecutor(2) as pool:
        bare, installed = pool.map(
            lambda variant: bench_span_path.count_instructions(variant, "reference", SPANS),
            ("bare", "install"))
    overhead = installed / bare - 1
    # Sanity: a count that measured nothing, or the wrong loop, would pass any budget.
    assert 100_000 < bare < 400_000, f"bare span counted as {bare:,.0f} instructions"
    assert installed > bare, "install() cannot cost nothing"
    assert overhead <= BUDGET, (
        f"install() costs {overhead:+.2%} over a bare span ({installed:,.0f} against "
        f"{bare:,.0f} instructions per span, {installed - bare:+,.0f}); the budget is "
        f"{BUDGET:.0%}. Profile with benchmarks/bench_span_path.py.")
