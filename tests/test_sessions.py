"""The session table and the session statistics, on both twins, against numpy and scipy."""

from __future__ import annotations

import gc
import math
import tracemalloc
from typing import Any

import numpy as np
import pytest
from scipy import stats as scipy_stats

from bizops_otel import Config
from bizops_otel.aggregate import persist
from bizops_otel.aggregate._layout import PAGE_BINS, bucket_of
from bizops_otel.analytics import session_stats
from bizops_otel.export.exposition import render
from bizops_otel.stats import spearman_table
from tests.keys import EVERY_KEY

SECOND = 1_000_000_000
T0 = 1_800_000_000 * SECOND
GROUPS = ("landing", "product", "cart", "checkout", "search")


def simulate(aggregator: Any, sessions: int, seed: int) -> dict[str, Any]:
    """Record ``sessions`` complete sessions, one after another, and return what a
    perfect observer would compute from them."""
    rng = np.random.default_rng(seed)
    Row = tuple[float, int, int, float, int]  # mean latency, converted, pages, revenue, hits
    truth: dict[str, list[Row]] = {g: [] for g in GROUPS}
    everyone: list[Row] = []
    clock = T0
    for index in range(sessions):
        pages = int(rng.integers(1, 21))
        visits = rng.choice(len(GROUPS), size=pages)
        latencies = rng.lognormal(np.log(0.3), 0.6, size=pages)
        product = latencies[visits == 1]
        logit = 0.5 - (3.0 * (product.mean() - 0.3) if product.size else 0.0)
        converted = int(rng.random() < 1.0 / (1.0 + math.exp(-logit)))
        revenue = float(rng.gamma(4.0, 20.0)) if converted else 0.0
        sid = f"user-{seed}-{index}"
        for page, (group, latency) in enumerate(zip(visits, latencies, strict=True)):
            clock += int(rng.integers(1, 5 * SECOND))
            last = page == pages - 1
            kpis = {"conversion": bool(converted), "order_value": revenue} if (
                last and converted) else {}
            aggregator.record((GROUPS[group], ""), float(latency), kpis, end_ns=clock,
                              session=sid)
        for g, name in enumerate(GROUPS):
            on_group = latencies[visits == g]
            if on_group.size:
                # Same arithmetic as the table: the sum in visiting order, then the mean.
                total = 0.0
                for x in on_group:
                    total += float(x)
                truth[name].append((total / on_group.size, converted, pages, revenue,
                                    on_group.size))
        total = 0.0
        for x in latencies:
            total += float(x)
        everyone.append((total / pages, converted, pages, revenue, pages))
        clock += 3600 * SECOND  # the next session starts after this one timed out
    return {"groups": truth, "all": everyone, "end": clock}


def check_group(stats: Any, rows: list[tuple[float, int, int, float, int]],
                total_requests: int) -> None:
    mean_latency = np.array([r[0] for r in rows])
    converted = np.array([r[1] for r in rows])
    pages = np.array([r[2] for r in rows])
    buckets = np.array([bucket_of(x) for x in mean_latency])
    assert stats.sessions == len(rows)
    assert stats.requests == sum(r[4] for r in rows)
    assert stats.revenue == pytest.approx(sum(r[3] for r in rows), rel=1e-9)
    assert stats.converted == int(converted.sum())
    assert stats.pages_per_session == pytest.approx(pages.mean(), rel=1e-12)
    for outcome in (True, False):
        chosen = mean_latency[converted == int(outcome)]
        assert stats.mean_latency(outcome) == pytest.approx(chosen.mean(), rel=1e-9)
    rho_conversion = scipy_stats.spearmanr(buckets, converted).statistic
    rho_pages = scipy_stats.spearmanr(buckets, np.minimum(pages, PAGE_BINS)).statistic
    assert stats.spearman_conversion() == pytest.approx(rho_conversion, rel=1e-9, abs=1e-12)
    assert stats.spearman_pages() == pytest.approx(rho_pages, rel=1e-9, abs=1e-12)
    assert stats.conversion_impact == pytest.approx(
        stats.requests / total_requests * rho_conversion, rel=1e-9, abs=1e-12)
    curve = stats.curve()
    np.testing.assert_array_equal(curve.sessions, np.bincount(buckets, minlength=118))
    np.testing.assert_array_equal(curve.conversions,
                                  np.bincount(buckets, weights=converted, minlength=118))


def test_session_statistics_match_numpy_and_scipy(Aggregator: Any) -> None:
    aggregator = Aggregator(Config(**EVERY_KEY, session_timeout=600.0))
    truth = simulate(aggregator, 1500, seed=3)
    sessions = session_stats(aggregator.snapshot(now_ns=truth["end"]))
    assert (sessions.finalised, sessions.open, sessions.evicted) == (1500, 0, 0)
    assert sorted(sessions) == sorted(GROUPS)
    everyone = truth["all"]
    total_requests = sum(r[2] for r in everyone)
    assert sessions.overall.requests == total_requests
    check_group(sessions.overall, everyone, total_requests)
    for name, rows in truth["groups"].items():
        check_group(sessions[name], rows, total_requests)
    # The planted page: slower product pages, fewer conversions.
    ranking = sessions.impact_ranking()
    assert ranking[0].name == "product" and ranking[0].conversion_impact < -0.02


def test_spearman_table_matches_scipy_on_expanded_data() -> None:
    rng = np.random.default_rng(5)
    table = rng.integers(0, 30, size=(12, 7))
    table[3] = 0  # empty rows and columns must not matter
    table[:, 5] = 0
    rows, columns = np.nonzero(table)
    x = np.repeat(rows, table[rows, columns])
    y = np.repeat(columns, table[rows, columns])
    assert spearman_table(table) == pytest.approx(scipy_stats.spearmanr(x, y).statistic,
                                                  rel=1e-12)
    assert math.isnan(spearman_table(np.zeros((3, 3))))


def test_idle_timeout_finalises_sessions_and_a_return_starts_a_new_one(
        Aggregator: Any) -> None:
    aggregator = Aggregator(Config(**EVERY_KEY, session_timeout=60.0))
    aggregator.record(("landing", ""), 0.2, end_ns=T0, session="a")
    aggregator.record(("product", ""), 0.4, end_ns=T0 + 30 * SECOND, session="a")
    snapshot = aggregator.snapshot(now_ns=T0 + 89 * SECOND)
    assert (session_stats(snapshot).open, session_stats(snapshot).finalised) == (1, 0)
    # Idle for exactly the timeout: over.
    snapshot = aggregator.snapshot(now_ns=T0 + 90 * SECOND)
    assert (session_stats(snapshot).open, session_stats(snapshot).finalised) == (0, 1)
    assert session_stats(snapshot).overall.pages_per_session == 2.0
    # The same id two hours later is a second visit, not a continuation.
    aggregator.record(("landing", ""), 0.2, end_ns=T0 + 7200 * SECOND, session="b")
    aggregator.record(("landing", ""), 0.2, end_ns=T0 + 7201 * SECOND, session="b")
    aggregator.record(("cart", ""), 0.2, end_ns=T0 + 9000 * SECOND, session="b")
    sessions = session_stats(aggregator.snapshot(now_ns=T0 + 20000 * SECOND))
    assert sessions.finalised == 3
    assert sessions.overall.sessions == 3
    assert sessions["landing"].pages_per_session == pytest.approx(2.0)  # a: 2, b: 2
    assert sessions["cart"].pages_per_session == 1.0


def test_spans_expire_idle_sessions_without_a_snapshot(Aggregator: Any) -> None:
    aggregator = Aggregator(Config(**EVERY_KEY, session_timeout=10.0))
    for index in range(100):
        aggregator.record(("landing", ""), 0.1, end_ns=T0 + index * SECOND, session=f"s{index}")
    # A snapshot dated before every span expires nothing itself: what is finalised, the
    # spans finalised (those idle for 10 s by the latest span's clock).
    sessions = session_stats(aggregator.snapshot(now_ns=T0))
    assert sessions.open == 10 and sessions.finalised == 90


def test_capacity_evicts_the_least_recently_seen(Aggregator: Any) -> None:
    aggregator = Aggregator(Config(**EVERY_KEY, max_sessions=100, session_timeout=3600.0))
    for index in range(1000):
        aggregator.record(("landing", ""), 0.1, end_ns=T0 + index, session=f"s{index}")
        aggregator.record(("landing", ""), 0.1, end_ns=T0 + index, session="loyal")
    sessions = session_stats(aggregator.snapshot(now_ns=T0 + 1000))
    assert sessions.open == 100
    assert sessions.evicted == sessions.finalised == 901  # 1001 sessions, 100 open
    # The session seen on every request was never the least recently seen one.
    final = session_stats(aggregator.snapshot(now_ns=T0 + 10**13))
    assert final.overall.table[0, PAGE_BINS - 1].sum() == 1  # one session of 16+ pages


def test_groups_past_the_per_session_limit_are_counted_as_truncated(
        Aggregator: Any) -> None:
    aggregator = Aggregator(Config(**EVERY_KEY))
    for index in range(10):
        aggregator.record((f"g{index}", ""), 0.1 * (index + 1), end_ns=T0 + index,
                          session="wanderer")
    sessions = session_stats(aggregator.snapshot(now_ns=T0 + 10**13))
    assert sessions.truncated == 1
    assert sorted(sessions) == [f"g{i}" for i in range(8)]
    assert sessions.overall.requests == 10
    assert sessions.overall.mean_latency(False) == pytest.approx(0.55)


def test_bad_session_ids_are_counted_and_the_request_still_recorded(Aggregator: Any) -> None:
    aggregator = Aggregator(Config(**EVERY_KEY))
    for bad in ("", 42, b"id", 1.5, ["x"]):
        aggregator.record(("landing", ""), 0.1, end_ns=T0, session=bad)
        aggregator.record_span({"session.id": bad, "bizops.page_group": "landing"}, T0, T0 + 1)
    snapshot = aggregator.snapshot(now_ns=T0 + 10**13)
    assert snapshot.dropped["session_invalid"] == 10
    assert snapshot[("landing", "")].count == 10
    assert session_stats(snapshot).finalised == 0


def test_sessions_off(Aggregator: Any) -> None:
    aggregator = Aggregator(Config(**EVERY_KEY, max_sessions=0))
    aggregator.record(("landing", ""), 0.1, end_ns=T0, session="a")
    snapshot = aggregator.snapshot(now_ns=T0 + 10**13)
    assert snapshot.session_arrays is None
    assert session_stats(snapshot).finalised == 0 and len(session_stats(snapshot)) == 0
    assert snapshot.dropped["session_invalid"] == 0


@pytest.mark.pure_pass_covers
def test_million_distinct_ids_stay_bounded_and_never_leave_the_process(
        Aggregator: Any) -> None:
    """Memory is measured with tracemalloc, which sees the native table too (it
    allocates with PyMem_Raw*). The pure twin runs a quarter of the ids: under
    tracemalloc, a million of its Python-level records take a minute."""
    total = 1_000_000 if Aggregator.implementation == "native" else 250_000
    warm = total // 5
    config = Config(**EVERY_KEY, max_sessions=20_000, session_timeout=3600.0)
    aggregator = Aggregator(config)
    ids = [f"secret-session-{i:07d}" for i in range(total)]
    tracemalloc.start()
    try:
        for index, sid in enumerate(ids[:warm]):
            aggregator.record(("landing", ""), 0.1, end_ns=T0 + index, session=sid)
        gc.collect()
        after_warm = tracemalloc.get_traced_memory()[0]
        for index, sid in enumerate(ids[warm:], start=warm):
            aggregator.record(("landing", ""), 0.1, end_ns=T0 + index, session=sid)
        gc.collect()
        after_all = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after_all - after_warm < 256 * 1024
    snapshot = aggregator.snapshot(now_ns=T0 + total)
    assert session_stats(snapshot).open == 20_000
    assert session_stats(snapshot).evicted == total - 20_000
    exported = persist.dumps(snapshot) + render(snapshot)
    for sid in (ids[0], ids[total // 2], ids[-1]):
        assert sid.encode() not in exported


def test_snapshot_merge_adds_sessions(Aggregator: Any) -> None:
    left, right = Aggregator(Config(**EVERY_KEY)), Aggregator(Config(**EVERY_KEY))
    for aggregator, groups in ((left, ("landing", "cart")), (right, ("search", "landing"))):
        for index, group in enumerate(groups):
            aggregator.record((group, ""), 0.2, end_ns=T0 + index, session="s")
    a = left.snapshot(now_ns=T0 + 10**13)
    b = right.snapshot(now_ns=T0 + 10**13)
    merged = session_stats(a.merge(b))
    assert merged.finalised == 2
    assert sorted(merged) == ["cart", "landing", "search"]
    assert merged["landing"].sessions == 2 and merged["search"].sessions == 1
