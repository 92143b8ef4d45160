"""A short soak (``benchmarks/soak.py``): the FastAPI example shop at full request rate for
about half a minute, with a multi-process directory, Prometheus scrapes and OTLP pushes to a
loopback receiver. Flatness is asserted with generous bounds, never speed: after warm-up,
memory, threads, descriptors and the directory's size stay put."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import soak

#: The subject (the process's resources over time) does not depend on the twin:
#: the native pass runs it, the pure-only pass leaves it out.
pytestmark = pytest.mark.native_pass_only


def test_a_short_soak_stays_flat_with_scrapes_pushes_and_state_writes() -> None:
    run = soak.run(duration=36.0, every=4.0, warmup=12.0, clients=2, scrape_every=2.0,
                   push_every=2.0, max_sessions=1_000, print_rows=False)
    assert run.failures == 0
    assert run.requests > 2_000, run.requests
    assert set(run.statuses) == {200}, run.statuses
    assert run.scrapes >= 15 and run.pushes >= 10, (run.scrapes, run.pushes)
    verdict = run.verdict
    assert verdict.samples >= 5, run.rows
    # Generous: half a minute after warm-up is too short for a slope to mean much (the
    # interpreter's arenas settle for a while), but a leak per request or per export would
    # pass these bounds within seconds at this rate.
    assert verdict.rss_growth_mb < 25, run.rows
    assert verdict.threads_range <= soak.FLAT_THREADS, run.rows
    assert verdict.fds_range <= soak.FLAT_FDS, run.rows
    # One state file of a few hundred KB at most; it does not grow with requests.
    assert all(row["directory_bytes"] < 2_000_000 for row in run.rows), run.rows
    assert verdict.directory_range < 100_000, run.rows
