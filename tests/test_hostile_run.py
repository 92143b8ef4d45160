"""A short hostile run (``benchmarks/hostile_run.py``) against the FastAPI example shop on
127.0.0.1: unique campaigns, session cookies and 404 paths on every request, 8 KB queries,
refused order values; then a legitimate campaign during the attack.

Real parts only: uvicorn, the FastAPI instrumentation, the shop of ``examples/``, HTTP over
loopback. Figures, not timings, are asserted: the attack's values take no keys (admission),
every refused value counted by reason, no session id in a scrape, memory, threads and
descriptors within a bound, and the legitimate campaign measured under its own name.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import hostile_run

MAX_KEYS = 300
#: What a refused order value is counted as.
REASONS = {"nan": "kpi_nan", "inf": "kpi_infinite", "-5": "kpi_below_minimum",
           "1e30": "kpi_above_maximum"}


def test_a_short_attack_leaves_the_shop_bounded_and_every_refused_value_counted() -> None:
    run = hostile_run.run(duration=24.0, every=6.0, clients=2, max_keys=MAX_KEYS,
                          legit_at=0.4, legit_every=1.0, seed=5, print_rows=False)
    final, baseline = run.final, run.final["baseline"]
    served = sum(run.statuses.values())
    assert served > 2_000, f"only {served} requests answered"
    assert run.failures == 0
    assert set(run.statuses) <= {200, 404}, run.statuses  # nothing raised into the shop
    assert 0.35 < run.statuses[404] / served < 0.49  # 42% of paths match no route
    # Values seen once are not admitted: the attack's thousands of campaigns take no keys
    # (a count-min false positive may admit a few), and its 404 paths share one page group.
    # Every span is counted somewhere, the attack's in the overflow key.
    assert final["keys"] is not None and final["keys"] <= 40, final
    assert final["recorded"] >= served
    assert not final["session_leak"]
    # Every refused order value is in the scrape, by reason, exactly.
    for value, reason in REASONS.items():
        assert final["dropped"].get(reason, 0.0) == run.bad_orders[value], (value, final)
    assert all(run.bad_orders[value] > 0 for value in REASONS)
    # Memory: the key, raw-value and session tables are bounded; what grows is the
    # interpreter's own (caches, arenas). 24 s of attack must not come near the bound.
    assert final["rss_mb"] - baseline["rss_mb"] < 150, (baseline, final)
    assert final["threads"] <= baseline["threads"] + 4
    assert final["fds"] <= baseline["fds"] + 4
    # The legitimate campaign, one landing a second, got a key of its own at its second
    # landing: within a few seconds, scrape polling included, during the attack.
    assert run.legit_first_sent is not None
    assert run.legit_keyed_after is not None and run.legit_keyed_after < 6.0, run
