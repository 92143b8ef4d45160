"""The native and pure twins, fed identical random streams, give identical snapshots."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from bizops_otel import Config
from bizops_otel import attributes as attr
from bizops_otel.aggregate._aggregator_py import Aggregator as PureAggregator
from tests.conftest import load

SECOND = 1_000_000_000
# Few sessions and a short timeout, so that evictions and expiries happen all the time;
# keys are admitted at their second sighting within 20 s and expire after 30 idle seconds,
# so admissions, halvings, expiries and reused key ids happen all the time too.
CONFIG = Config(max_keys=40, window=30.0, window_slots=6, max_sessions=50,
                session_timeout=20.0, admission_window=20.0, key_ttl=30.0)


def random_session(rng: np.random.Generator) -> object:
    """Mostly ids from a pool larger than the table, some garbage, some absent."""
    choice = rng.integers(0, 20)
    if choice < 16:
        return f"session-{rng.integers(0, 120)}"
    return [None, "", 42, b"bytes"][choice - 16]


def random_value(rng: np.random.Generator) -> object:
    """Mostly valid KPI values, with every kind of garbage mixed in."""
    choice = rng.integers(0, 14)
    return [
        float(rng.lognormal(3, 1)), int(rng.integers(0, 500)), None, None,
        float(rng.normal(0, 50)), math.nan, math.inf, "12.5", True, False,
        1e30, [1.0], 0.0, 1.0,
    ][choice]


def stream(seed: int, n: int) -> list[tuple[str, tuple[Any, ...]]]:
    rng = np.random.default_rng(seed)
    pages = ["home", "product", "cart", "checkout", None, 7, "x\x00y"]
    events: list[tuple[str, tuple[Any, ...]]] = []
    clock = 1_700_000_000 * SECOND
    for _ in range(n):
        clock += int(rng.integers(0, SECOND // 5))
        kind = rng.integers(0, 10)
        page = pages[rng.integers(0, len(pages))]
        campaign = f"c{rng.integers(0, 60)}" if rng.random() < 0.5 else None
        if kind < 7:
            attributes = {attr.PAGE_GROUP: page, attr.CAMPAIGN_ID: campaign,
                          attr.ORDER_VALUE: random_value(rng),
                          attr.CONVERSION: random_value(rng),
                          attr.ORDER_ITEMS: random_value(rng),
                          attr.SESSION_ID: random_session(rng)}
            duration = int(rng.lognormal(np.log(0.3), 1.2) * SECOND)
            if rng.random() < 0.01:
                duration = -duration
            fallback = None
            if rng.random() < 0.3:
                fallback = (f"/route/{rng.integers(0, 5)}", None)
                attributes.pop(attr.PAGE_GROUP)
            events.append(("span", (attributes, clock - duration, clock,
                                    bool(rng.random() < .1), fallback)))
        elif kind < 9:
            kpis = {"order_value": random_value(rng), "conversion": random_value(rng)}
            if rng.random() < 0.05:
                kpis["bogus"] = 1.0
            events.append(("record", ((page, campaign), float(rng.lognormal(-1, 1)), kpis,
                                      clock, random_session(rng))))
        else:
            size = int(rng.integers(1, 200))
            latency = rng.lognormal(-1, 1, size)
            latency[rng.random(size) < 0.02] = np.nan
            value = rng.normal(40, 30, size)
            value[rng.random(size) < 0.1] = np.nan
            conversion = (rng.random(size) < 0.3).astype(float)
            events.append(("batch", (("cart", campaign), latency,
                                     {"order_value": value, "conversion": conversion}, clock)))
    return events


def replay(agg: Any, events: list[tuple[str, tuple[Any, ...]]]) -> None:
    for kind, args in events:
        if kind == "span":
            attributes, start, end, error, fallback = args
            agg.record_span(attributes, start, end, error=error, fallback=fallback)
        elif kind == "record":
            dims, latency, kpis, end, session = args
            agg.record(dims, latency, kpis, end_ns=end, session=session)
        else:
            dims, latency, kpis, end = args
            agg.record_many(dims, latency, kpis, end_ns=end)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_twins_agree_on_random_streams(seed: int) -> None:
    native = load("native")(CONFIG)
    pure = PureAggregator(CONFIG)
    events = stream(seed, 3000)
    replay(native, events)
    replay(pure, events)
    now = max(args[2] if kind == "span" else args[3] for kind, args in events)
    a, b = native.snapshot(now_ns=now), pure.snapshot(now_ns=now)
    assert dict(a.dropped) == dict(b.dropped)
    assert sum(a.dropped.values()) > 100  # the garbage really was exercised
    for left, right in ((a, b), (a.recent(), b.recent())):
        assert list(left) == list(right)  # same keys, created in the same order
        assert (left.overflow is None) == (right.overflow is None)
        sa, sb = left.state, right.state
        for name in ("key_ids", "count", "errors", "kpi_n", "block_row", "block_code",
                     "block_counts"):
            np.testing.assert_array_equal(getattr(sa, name), getattr(sb, name), err_msg=name)
        np.testing.assert_allclose(sa.latency_sum, sb.latency_sum, rtol=1e-12)
        np.testing.assert_allclose(sa.kpi_f, sb.kpi_f, rtol=1e-9, atol=1e-9)
    assert a.overflow is not None  # 60 campaigns × pages exceed max_keys=40
    sessions_a, sessions_b = a.session_arrays, b.session_arrays
    assert sessions_a is not None and sessions_b is not None
    assert sessions_a.groups == sessions_b.groups
    for name in ("table", "requests", "pages", "counters"):
        np.testing.assert_array_equal(getattr(sessions_a, name), getattr(sessions_b, name),
                                      err_msg=name)
    for name in ("latency_sum", "revenue"):
        np.testing.assert_allclose(getattr(sessions_a, name), getattr(sessions_b, name),
                                   rtol=1e-9, err_msg=name)
    finalised, evicted, still_open, _ = (int(c) for c in sessions_a.counters)
    assert evicted > 50 and finalised > 500 and 0 < still_open <= 50  # all rules exercised
    assert a.dropped["session_invalid"] > 50
