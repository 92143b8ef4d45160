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

from bizops_otel._twins import no_extensions

from .tools import require

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_span_path

#: install() over bare on the reference mix, in instructions per span (the issue's target;
#: it was 12.7% before the span path was reworked, 4.9% to 5.0% after).
BUDGET = 0.06
SPANS = 400
#: Memory layouts counted; the median ratio is held to the budget.
LAYOUTS = 3


def test_install_stays_within_its_instruction_budget_over_a_bare_span() -> None:
    if no_extensions():
        pytest.skip("the budget is the native span path's; the native pass checks it")
    require("valgrind", package="valgrind")
    overhead, pairs = bench_span_path.install_overhead("reference", SPANS, LAYOUTS)
    # Sanity: a count that measured nothing, or the wrong loop, would pass any budget.
    assert all(100_000 < b < 400_000 for b, _ in pairs), f"bare spans counted as {pairs}"
    assert all(i > b for b, i in pairs), "install() cannot cost nothing"
    assert overhead <= BUDGET, (
        f"install() costs {overhead:+.2%} over a bare span (median over {LAYOUTS} memory "
        f"layouts; bare and install per layout: {pairs}); the budget is {BUDGET:.0%}. "
        f"Profile with benchmarks/bench_span_path.py.")
