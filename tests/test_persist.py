"""Snapshots survive a trip through a file, for other processes to read and merge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bizops_otel import Config, Kpi
from bizops_otel.aggregate import persist
from bizops_otel.analytics import session_stats
from tests.datasets import traffic
from tests.keys import EVERY_KEY


def test_snapshot_round_trip_keeps_every_number(Aggregator: Any, tmp_path: Path) -> None:
    config = Config(kpis=("order_value", "conversion", Kpi("basket", "shop.basket")),
                    max_keys=3, **EVERY_KEY)
    agg = Aggregator(config)
    data = traffic(21, n=500)
    for i, campaign in enumerate(["a", "b", "c", "d", "e"] * 100):
        agg.record(("checkout", campaign), float(data.latency[i]),
                   {"order_value": float(data.order_value[i]),
                    "conversion": float(data.conversion[i]), "basket": 2.0},
                   end_ns=i, session=f"s{i % 40}")
    agg.record(("checkout", "a"), -1.0)
    original = agg.snapshot(now_ns=10**13)
    path = tmp_path / "state.npz"
    persist.write(original, path)
    copy = persist.read(path)
    assert list(copy) == list(original) == [("checkout", c) for c in "abc"]
    assert copy.overflow is not None and copy.overflow.count == original.overflow.count
    assert dict(copy.dropped) == dict(original.dropped)
    assert copy.config.kpi_names == config.kpi_names
    for key in original:
        a, b = original[key], copy[key]
        np.testing.assert_array_equal(a.histogram, b.histogram)
        assert a.pearson("order_value") == b.pearson("order_value")
        assert a.raw_sums("basket") == b.raw_sums("basket")
    assert copy.recent().total().count == original.recent().total().count
    merged = copy.merge(original)
    assert merged.total().count == 2 * original.total().count
    assert session_stats(original).finalised == 40
    sessions, restored = original.session_arrays, copy.session_arrays
    assert sessions is not None and restored is not None
    assert restored.groups == sessions.groups
    for name in ("table", "requests", "pages", "latency_sum", "revenue", "counters"):
        np.testing.assert_array_equal(getattr(restored, name), getattr(sessions, name))
    assert session_stats(merged).finalised == 80


def test_unknown_formats_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        persist.loads(b"not a snapshot")
