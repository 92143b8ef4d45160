"""The native and pure twins, fed identical random streams, give identical snapshots."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest

from bizops_otel import Config, Journey
from bizops_otel import attributes as attr
from bizops_otel.aggregate._aggregator_py import Aggregator as PureAggregator
from bizops_otel.aggregate._layout import think_bin_of, think_edges
from tests.conftest import load, native_module
from tests.twins import assert_twins_agree

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


def both_twins_after(config: Config, events: list[Any]) -> tuple[Any, Any]:
    """Both twins fed ``events``, their snapshots at the last event checked to agree."""
    native = load("native")(config)
    pure = PureAggregator(config)
    replay(native, events)
    replay(pure, events)
    now = max(args[2] if kind == "span" else args[3] for kind, args in events)
    a, b = native.snapshot(now_ns=now), pure.snapshot(now_ns=now)
    assert_twins_agree(a, b)
    return a, b


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_twins_agree_on_random_streams(seed: int) -> None:
    a, _ = both_twins_after(CONFIG, stream(seed, 3000))
    assert sum(a.dropped.values()) > 100  # the garbage really was exercised
    assert a.overflow is not None  # 60 campaigns × pages exceed max_keys=40
    sessions_a = a.session_arrays
    assert sessions_a is not None
    finalised, evicted, still_open, _ = (int(c) for c in sessions_a.counters)
    assert evicted > 50 and finalised > 500 and 0 < still_open <= 50  # all rules exercised
    assert a.dropped["session_invalid"] > 50


def assert_same_state(native: Any, pure: Any, now: int) -> None:
    """The two twins' snapshots at ``now`` hold the same drops, keys and statistics."""
    a, b = native.snapshot(now_ns=now), pure.snapshot(now_ns=now)
    assert dict(a.dropped) == dict(b.dropped)
    for left, right in ((a, b), (a.recent(), b.recent())):
        assert list(left) == list(right)
        sa, sb = left.state, right.state
        for name in ("key_ids", "count", "errors", "kpi_n", "block_row", "block_code",
                     "block_counts"):
            np.testing.assert_array_equal(getattr(sa, name), getattr(sb, name), err_msg=name)
        np.testing.assert_allclose(sa.latency_sum, sb.latency_sum, rtol=1e-12)
        np.testing.assert_allclose(sa.kpi_f, sb.kpi_f, rtol=1e-9, atol=1e-9)


def test_native_bucketing_matches_the_definition() -> None:
    """The native code takes most buckets from a table instead of log(); every bucket must
    still be the one latency_buckets.bucket_of defines: on both sides of every edge, at the
    exact float where the defining arithmetic changes bucket, and on random latencies."""
    from bizops_otel.latency_buckets import BUCKETS, bucket_edges, bucket_of

    native_bucket_of = native_module("aggregate._aggregator_c")._bucket_of
    values = [0.0, 5e-324, 1e-300, 1e-3, math.nextafter(1e-3, 0.0), 63.2, 1e4, 9.3e9, 1e300]
    for edge in bucket_edges()[1:-1]:
        below = above = float(edge)
        for _ in range(300):
            below, above = math.nextafter(below, 0.0), math.nextafter(above, math.inf)
            values += [below, above]
    bits = np.array([0.0], np.float64).view(np.int64)
    as_float = bits.view(np.float64)
    for bucket in range(1, BUCKETS):
        # The float where bucket_of reaches ``bucket``, by bisection on the bit patterns
        # (ordered like the values for positive floats), and its neighbours.
        low, high = int(np.float64(1e-5).view(np.int64)), int(np.float64(1e3).view(np.int64))
        while high - low > 1:
            bits[0] = (low + high) // 2
            if bucket_of(float(as_float[0])) >= bucket:
                high = int(bits[0])
            else:
                low = int(bits[0])
        values += [float(v) for v in np.arange(high - 50, high + 50).view(np.float64)]
    values += [float(v) for v in np.random.default_rng(5).lognormal(-1.5, 2.0, 100_000)]
    mismatches = [v for v in values if native_bucket_of(v) != bucket_of(v)]
    assert mismatches == []


def test_twins_agree_on_timestamps_at_the_edges_of_int64() -> None:
    """The native twin reads timestamps of up to three 30-bit digits from the int itself
    and the rest through the C API; both must match the pure twin's checks."""
    edges = [0, 1, 2**30 - 1, 2**30, 2**60 - 1, 2**60, 2**62, 2**63 - 2**31, 2**63 - 1,
             2**63, 2**64, 2**90, -1, -(2**30), -(2**62), -(2**63), -(2**63) - 1, -(2**90)]
    native, pure = load("native")(Config()), PureAggregator(Config())
    attributes = {attr.PAGE_GROUP: "checkout", attr.ORDER_VALUE: 10.0}
    for agg in (native, pure):
        for start in edges:  # some spans last longer than 2**63 ns
            for end in edges:
                agg.record_span(attributes, start, end)
                agg.record_span(attributes, start, end, error=True)
        for bad in (True, 1.0, None, np.int64(5), "1"):
            agg.record_span(attributes, bad, 10)
            agg.record_span(attributes, 0, bad)
    assert_same_state(native, pure, 2**63 - 1)
    assert native.snapshot().dropped["latency_invalid"] > 100


def test_twins_agree_when_spans_end_out_of_order() -> None:
    """Spans ending in the newest sub-window, in older ones still in the window, before the
    whole window, far ahead, before 1970, with batches and a reset in between: the native
    twin's shortcut to the newest sub-window must send each where the pure twin does."""
    config = Config(window=60.0, window_slots=6, max_sessions=0)  # 10 s sub-windows
    native, pure = load("native")(config), PureAggregator(config)
    base = 1_700_000_000 * SECOND
    rng = np.random.default_rng(9)
    ends = [base + o * SECOND for o in (0, 1, 9, 10, 11, -1, -10, -11, -59, -60, -61, -600)]
    ends += [5 * SECOND, -5 * SECOND, -(2**62), base + 3600 * SECOND, base + 7 * SECOND]
    clock = base + 3600 * SECOND
    for _ in range(600):  # mostly the newest sub-window, some stragglers and jumps
        clock += int(rng.integers(0, 3 * SECOND))
        lag = int(rng.choice([0, 0, 0, 0, 5, 15, 55, 65, 700])) * SECOND
        ends.append(clock - lag + int(rng.integers(0, SECOND)))
    batches = {i: ends[i] + SECOND for i in range(25, len(ends), 50)}
    for i, end in enumerate(ends):
        for agg in (native, pure):
            attributes = {attr.PAGE_GROUP: f"p{i % 3}", attr.ORDER_VALUE: float(i % 17)}
            agg.record_span(attributes, end - SECOND // 4, end)
            if i in batches:
                agg.record_many(("cart", ""), np.array([0.2, 0.3]),
                                {"order_value": np.array([5.0, 6.0])}, end_ns=batches[i])
        # While the sub-window written to is live, and seen from the sub-window before.
        assert_same_state(native, pure, end)
        assert_same_state(native, pure, end - 10 * SECOND)
    newest = max(*ends, *batches.values())
    moments = [base, base + 45 * SECOND, newest - 30 * SECOND, newest, newest + 3600 * SECOND]
    for now in moments:
        assert_same_state(native, pure, now)
    for agg in (native, pure):  # first in the sub-window that was the newest before
        agg.reset()
        for end in [newest, *ends[-40:]]:
            agg.record_span({attr.PAGE_GROUP: "after"}, end - 1, end)
    for now in moments:
        assert_same_state(native, pure, now)


# Journeys over the stream's pages, one sharing pages with the other, so that every rule
# of the in-order walk (restarts, skips, out-of-order span ends, evicted and expired
# sessions mid-journey) runs in both twins.
JOURNEY_CONFIG = dataclasses.replace(CONFIG, journeys=(
    Journey("purchase", ("home", "product", "cart", "checkout")),
    Journey("basket", ("cart", "checkout")),
    Journey("odd", ("x_y", "/route/1", "product"))))


@pytest.mark.parametrize("seed", [5, 6])
def test_twins_agree_on_journeys_over_random_streams(seed: int) -> None:
    a, b = both_twins_after(JOURNEY_CONFIG, stream(seed, 3000))
    journeys = a.session_arrays.journeys if a.session_arrays is not None else None
    assert journeys is not None and journeys.names == ("purchase", "basket", "odd")
    # Every kind of count was exercised: steps reached, gone on from, and timed.
    assert journeys.entered[:, 0].min() > 50 and journeys.continued[:2, 0].min() > 0
    assert journeys.think.sum() > 5 and journeys.latency[:, :, 0].sum() > 100
    assert str(a.journeys()) == str(b.journeys())  # nan != nan: compare as printed


def test_native_think_bins_match_the_definition() -> None:
    native_bin = native_module("aggregate._aggregator_c")._think_bin_of
    edges = think_edges()[1:-1]
    values = [0.0, -1.0, math.nan, math.inf, 1e-300, 1e300, *edges,
              *np.nextafter(edges, 0), *np.nextafter(edges, np.inf),
              *np.random.default_rng(7).lognormal(2, 3, 2000)]
    for value in values:
        assert native_bin(float(value)) == think_bin_of(float(value)), value
