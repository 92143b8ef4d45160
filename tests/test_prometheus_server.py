"""A real Prometheus server scrapes two processes and evaluates the fleet rules."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest

from bizops_otel.aggregate._layout import bucket_edges, bucket_of
from tests.apps.metrics_app import SPANS
from tests.datasets import traffic
from tests.processes import free_port, running
from tests.real_prometheus import scraping, wait_for

APP = Path(__file__).parent / "apps" / "metrics_app.py"
SEEDS = (41, 42)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[int]:
    with ExitStack() as stack:
        ports = []
        for seed in SEEDS:
            port = free_port()
            app = stack.enter_context(running([sys.executable, str(APP), str(seed), str(port)],
                                              stdout=subprocess.PIPE, text=True))
            assert app.stdout is not None and app.stdout.readline().strip() == "serving"
            ports.append(port)
        yield stack.enter_context(scraping([f"127.0.0.1:{port}" for port in ports], tmp_path))


def test_fleet_pearson_and_conversion_curve_from_a_real_prometheus(prometheus: int) -> None:
    union = [traffic(seed, n=SPANS) for seed in SEEDS]
    latency = np.concatenate([d.latency for d in union])
    value = np.concatenate([d.order_value for d in union])
    converted = np.concatenate([d.conversion for d in union])
    wait_for(prometheus, 'sum(bizops_kpi_pairs_total{bizops_kpi="order_value"})',
             lambda r: r and float(r[0]["value"][1]) == 2 * SPANS)
    expected = float(np.corrcoef(latency, value)[0, 1])
    (pearson,) = wait_for(prometheus, 'bizops:kpi_pearson:total{bizops_kpi="order_value"}',
                          lambda r: len(r) == 1 and abs(float(r[0]["value"][1]) - expected)
                          < 1e-6 * abs(expected))
    assert float(pearson["value"][1]) == pytest.approx(expected, rel=1e-6)
    assert pearson["metric"]["bizops_page_group"] == "checkout"

    # Rules evaluate on their own clock: wait for an evaluation that saw both processes.
    overall = float(converted.mean())
    curve = wait_for(prometheus, 'bizops:conversion_rate_by_le:total', lambda r: any(
        s["metric"]["le"] == "+Inf" and abs(float(s["value"][1]) - overall) < 1e-12 for s in r))
    edges = bucket_edges()
    buckets = np.array([bucket_of(float(t)) for t in latency])
    checked = 0
    for series in curve:
        le = series["metric"]["le"]
        # The label carries the internal edge to 6 significant digits: take the nearest.
        nearest = int(np.argmin(np.abs(edges[1:-1] - float(le)))) + 1
        below = np.ones_like(buckets, bool) if le == "+Inf" else buckets < nearest
        if below.sum() == 0:
            continue
        rate = float(series["value"][1])
        assert rate == pytest.approx(converted[below].mean(), rel=1e-9), le
        checked += 1
    assert checked >= 5
