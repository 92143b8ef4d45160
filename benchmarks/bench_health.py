"""Campaign monitor cost as campaigns grow: one assess() pass against the snapshot it reads.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_health.py

Hostile traffic brings thousands of one-off campaigns. Each campaign here is a key with
three requests on the landing page, beside organic traffic on three pages. The peer is
the aggregator's own snapshot of the same state, measured in the same run: a pass of the
monitor should cost a small multiple of it, growing linearly with the keys.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import millis, table

import bizops_otel
from bizops_otel import Config
from bizops_otel.analytics.health import assess


def fed(campaigns: int) -> bizops_otel.Aggregator:
    aggregator = bizops_otel.Aggregator(Config(max_keys=campaigns + 100))
    rng = np.random.default_rng(1)
    now = time.time_ns()
    for campaign in range(campaigns):
        for request in range(3):
            aggregator.record(("landing", f"junk-{campaign}"), float(rng.lognormal(-1, 0.5)),
                              {"conversion": float(request % 2)}, end_ns=now - request * 10**9)
    for page in ("landing", "product", "cart"):
        for request in range(50):
            aggregator.record((page, ""), float(rng.lognormal(-1, 0.5)),
                              {"conversion": float(request % 2)}, end_ns=now - request * 10**8)
    return aggregator


def main() -> None:
    rows = []
    for campaigns in (200, 1000, 2000, 5000):
        aggregator = fed(campaigns)
        snapshot = aggregator.snapshot()
        snapshot_ms = millis(aggregator.snapshot, repeats=3)
        assess_ms = millis(lambda snapshot=snapshot: assess(snapshot, {}), repeats=3)
        rows.append((f"{campaigns}", f"{snapshot_ms:.1f}", f"{assess_ms:.1f}",
                     f"{assess_ms * 1e3 / campaigns:.0f}",
                     f"{assess_ms / snapshot_ms:.1f}×"))
    implementation = "native" if bizops_otel.NATIVE else "pure"
    print(f"bizops-otel {bizops_otel.__version__} ({implementation})\n")
    print(table(rows, ("campaigns", "snapshot ms (peer)", "assess ms", "µs per campaign",
                       "assess / snapshot")))


if __name__ == "__main__":
    main()
