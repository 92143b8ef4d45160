"""Aggregator behaviour: bad input, keys, windows, concurrency, fork — on both twins."""

from __future__ import annotations

import inspect
import math
import os
import threading
import time
from typing import Any

import numpy as np
import pytest

from bizops_otel import Config
from bizops_otel import attributes as attr
from tests.keys import EVERY_KEY

KEY = ("checkout", "spring_sale")
SECOND = 1_000_000_000


def span(page: object = "checkout", campaign: object = "spring_sale",
         **kpis: object) -> dict[str, object]:
    attributes: dict[str, object] = {attr.PAGE_GROUP: page, attr.CAMPAIGN_ID: campaign}
    names = {"order_value": attr.ORDER_VALUE, "conversion": attr.CONVERSION,
             "items": attr.ORDER_ITEMS}
    attributes.update({names[k]: v for k, v in kpis.items()})
    return attributes


def nonzero(dropped: Any) -> dict[str, int]:
    return {reason: count for reason, count in dropped.items() if count}


def test_span_without_kpis_counts_toward_latency_only(Aggregator: Any) -> None:
    agg = Aggregator(Config(**EVERY_KEY))
    agg.record_span(span(), 0, 250_000_000)
    stats = agg.snapshot()[KEY]
    assert stats.count == 1
    assert stats.latency_sum == pytest.approx(0.25)
    assert stats.pairs("order_value") == 0 and math.isnan(stats.mean("order_value"))
    assert stats.histogram[0].sum() == 1  # outcome "none"
    assert math.isnan(stats.conversion_rate())


def test_bad_kpi_values_are_dropped_and_counted_by_reason(Aggregator: Any) -> None:
    agg = Aggregator(Config(**EVERY_KEY))
    hostile = [
        {"order_value": "abc"}, {"order_value": math.nan}, {"order_value": math.inf},
        {"order_value": -math.inf}, {"order_value": -5.0}, {"order_value": 1e30},
        {"order_value": True}, {"order_value": [1.0, 2.0]}, {"order_value": 10**400},
        {"conversion": 0.5}, {"conversion": 2}, {"conversion": "yes"},
        {"items": -1}, {"items": 1e7},
    ]
    for kpis in hostile:
        agg.record_span(span(**kpis), 0, SECOND)
    agg.record_span(span(order_value=12.5, conversion=True, items=np.int64(3)), 0, SECOND)
    agg.record_span(span(order_value=7, conversion=0), 0, 2 * SECOND)
    snapshot = agg.snapshot()
    assert nonzero(snapshot.dropped) == {
        "kpi_type": 3, "kpi_nan": 1, "kpi_infinite": 2, "kpi_below_minimum": 2,
        "kpi_above_maximum": 3, "kpi_bool": 1, "kpi_not_binary": 2,
    }
    stats = snapshot[KEY]
    assert stats.count == len(hostile) + 2  # the spans themselves still count
    assert stats.pairs("order_value") == 2
    assert stats.mean("order_value") == pytest.approx(9.75)
    assert stats.pairs("items") == 1 and stats.mean("items") == 3.0
    assert stats.conversion_rate() == 0.5


def test_bad_latencies_and_timestamps_are_dropped(Aggregator: Any) -> None:
    agg = Aggregator(Config(**EVERY_KEY))
    agg.record_span(span(), 10, 5)
    agg.record_span(span(), None, 5)
    agg.record_span(span(), 1.5, 5)
    agg.record_span(span(), 0, 2**70)
    for latency in (-0.1, math.nan, math.inf, "fast", True):
        agg.record(KEY, latency)
    snapshot = agg.snapshot()
    assert nonzero(snapshot.dropped) == {"latency_invalid": 9}
    assert len(snapshot) == 0


def test_record_span_takes_positional_and_keyword_arguments_alike(Aggregator: Any) -> None:
    """The native twin has a fast entry for positional calls and Cython's own for calls
    with keywords: every spelling records the same, and a wrong call is a TypeError."""
    fallback = ("landing", None)
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((span(), 0, SECOND), {}),
        ((span(), 0, SECOND, True), {}),
        ((span(page=None), 0, SECOND, False, fallback), {}),
        ((span(), 0, SECOND), {"error": True}),
        ((span(page=None), 0, SECOND), {"fallback": fallback}),
        ((), {"attributes": span(page=None), "start_ns": 0, "end_ns": SECOND,
              "error": True, "fallback": fallback}),
    ]
    agg = Aggregator(Config(**EVERY_KEY))
    for args, kwargs in calls:
        assert agg.record_span(*args, **kwargs) is None
    snapshot = agg.snapshot()
    assert snapshot[KEY].count == 3 and snapshot[KEY].errors == 2
    assert snapshot[("landing", "spring_sale")].count == 3
    assert snapshot[("landing", "spring_sale")].errors == 1
    for args, kwargs in [((), {}), ((span(),), {}), ((span(), 0, 1, False, None, 6), {}),
                         ((span(), 0, 1), {"bogus": 1}), ((span(), 0, 1), {"start_ns": 0})]:
        with pytest.raises(TypeError):
            agg.record_span(*args, **kwargs)
    assert list(inspect.signature(agg.record_span).parameters) == [
        "attributes", "start_ns", "end_ns", "error", "fallback"]


def test_unreadable_attributes_never_raise(Aggregator: Any) -> None:
    class Exploding(dict[str, object]):
        def get(self, key: str, default: object = None) -> object:
            raise RuntimeError("boom")

    class BadStr:
        def __str__(self) -> str:
            raise RuntimeError("no str")

    agg = Aggregator(Config(**EVERY_KEY))
    agg.record_span(Exploding(span()), 0, SECOND)
    agg.record_span(span(page=BadStr()), 0, SECOND)
    agg.record(("a",), 0.1)
    agg.record(KEY, 0.1, {"revenue": 3.0})
    snapshot = agg.snapshot()
    assert snapshot.dropped["attributes_unreadable"] == 1
    assert snapshot.dropped["dimension_arity"] == 1
    assert snapshot.dropped["kpi_unknown"] == 1
    assert snapshot[("_", "spring_sale")].count == 1  # unprintable str() becomes "_"


def test_dimension_values_are_sanitised_and_capped(Aggregator: Any) -> None:
    agg = Aggregator(Config(**EVERY_KEY))
    agg.record_span(span(page="x" * 10_000, campaign="bad\x00\nname\udcff"), 0, SECOND)
    agg.record_span(span(page=42, campaign=None), 0, SECOND)
    agg.record_span(span(page=b"caf\xc3\xa9", campaign=True), 0, SECOND)
    keys = set(agg.snapshot())
    assert keys == {("x" * 64, "bad__name_"), ("42", ""), ("café", "true")}


def test_overflow_key_absorbs_new_campaigns(Aggregator: Any) -> None:
    agg = Aggregator(Config(**EVERY_KEY, max_keys=50))
    for i in range(100_000):
        agg.record_span(span(campaign=f"campaign-{i}"), 0, SECOND // 10)
    snapshot = agg.snapshot()
    assert len(snapshot) == 50
    assert snapshot.overflow is not None
    assert snapshot.overflow.count == 100_000 - 50
    assert snapshot.total().count == 100_000
    assert ("checkout", "campaign-0") in snapshot
    assert ("checkout", "campaign-99999") not in snapshot
    # An existing key keeps its own row after the bound is reached.
    agg.record_span(span(campaign="campaign-3"), 0, SECOND)
    assert agg.snapshot()[("checkout", "campaign-3")].count == 2


def test_hostile_keys_keep_memory_bounded() -> None:
    """100k distinct campaigns cost no more than the first few thousand (native only:
    its state is plain C memory that tracemalloc reports exactly)."""
    import tracemalloc

    from tests.conftest import load
    aggregator_cls = load("native")
    agg = aggregator_cls(Config(**EVERY_KEY, max_keys=1000))
    for i in range(5_000):
        agg.record_span(span(campaign=f"c{i}"), 0, SECOND)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(5_000, 100_000):
        agg.record_span(span(campaign=f"c{i}"), 0, SECOND)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown < 64 * 1024, grown
    assert len(agg.snapshot()) == 1000


def test_windows_slide_and_recent_covers_only_the_window(Aggregator: Any) -> None:
    config = Config(**EVERY_KEY, window=60.0, window_slots=6)  # 10 s sub-windows
    agg = Aggregator(config)
    base = 1_700_000_000 * SECOND
    for second in range(0, 120):
        end = base + second * SECOND
        agg.record_span(span(order_value=float(second)), end - SECOND // 10, end)
    snapshot = agg.snapshot(now_ns=base + 119 * SECOND)
    assert snapshot.total().count == 120
    recent = snapshot.recent().total()
    # Sub-window k covers epochs; at now = base+119 s the window holds the last 6 slots.
    epoch_now = (base + 119 * SECOND) // (10 * SECOND)
    expected = [s for s in range(120) if (base + s * SECOND) // (10 * SECOND) > epoch_now - 6]
    assert recent.count == len(expected)
    assert recent.mean("order_value") == pytest.approx(np.mean(expected))
    # Much later, nothing is recent any more, but the cumulative state is unchanged.
    later = agg.snapshot(now_ns=base + 1000 * SECOND)
    assert later.recent().total().count == 0
    assert later.total().count == 120


def test_straggler_older_than_window_goes_to_cumulative_only(Aggregator: Any) -> None:
    agg = Aggregator(Config(**EVERY_KEY, window=60.0, window_slots=6))
    now = 1_700_000_000 * SECOND
    agg.record_span(span(), now - SECOND, now)
    agg.record_span(span(), 0, 60 * SECOND)  # from 1970, lands on the same ring slot maybe
    agg.record_span(span(), now - 120 * SECOND - SECOND, now - 120 * SECOND)
    snapshot = agg.snapshot(now_ns=now)
    assert snapshot.total().count == 3
    assert snapshot.recent().total().count == 1


def test_record_many_equals_record_loop(Aggregator: Any) -> None:
    rng = np.random.default_rng(3)
    latency = rng.lognormal(-1.0, 0.7, 3000)
    value = rng.normal(50.0, 20.0, 3000)
    conversion = (rng.random(3000) < 0.3).astype(float)
    value[::50] = np.nan  # absent on those rows
    value[1::97] = -3.0  # below minimum
    conversion[2::101] = 0.5  # not binary
    latency[3::211] = -1.0  # invalid
    errors = rng.random(3000) < 0.05
    batch, loop = Aggregator(Config(**EVERY_KEY)), Aggregator(Config(**EVERY_KEY))
    batch.record_many(KEY, latency, {"order_value": value, "conversion": conversion},
                      errors=errors, end_ns=5 * SECOND)
    for i in range(3000):
        kpis = {"order_value": None if np.isnan(value[i]) else float(value[i]),
                "conversion": float(conversion[i])}
        loop.record(KEY, float(latency[i]), kpis, error=bool(errors[i]), end_ns=5 * SECOND)
    a, b = batch.snapshot(now_ns=5 * SECOND), loop.snapshot(now_ns=5 * SECOND)
    assert nonzero(a.dropped) == nonzero(b.dropped)
    assert a.dropped["latency_invalid"] == len(range(3, 3000, 211))
    sa, sb = a[KEY], b[KEY]
    assert (sa.count, sa.errors) == (sb.count, sb.errors)
    np.testing.assert_array_equal(sa.histogram, sb.histogram)
    for kpi in ("order_value", "conversion"):
        assert sa.pairs(kpi) == sb.pairs(kpi)
        np.testing.assert_allclose(sa.raw_sums(kpi), sb.raw_sums(kpi), rtol=1e-9)
        assert sa.pearson(kpi).r == pytest.approx(sb.pearson(kpi).r, rel=1e-9)
    assert a.recent().total().count == sa.count


def test_record_many_rejects_malformed_batches(Aggregator: Any) -> None:
    agg = Aggregator(Config(**EVERY_KEY))
    with pytest.raises(ValueError, match="dimension values"):
        agg.record_many(("only-one",), [0.1])
    with pytest.raises(ValueError, match="unknown KPI 'revenue'"):
        agg.record_many(KEY, [0.1], {"revenue": [1.0]})
    with pytest.raises(ValueError, match="has 2 values for 1"):
        agg.record_many(KEY, [0.1], {"order_value": [1.0, 2.0]})


def test_snapshot_is_immutable_and_independent_of_later_records(Aggregator: Any) -> None:
    agg = Aggregator(Config(**EVERY_KEY))
    agg.record_span(span(order_value=10.0), 0, SECOND)
    snapshot = agg.snapshot()
    agg.record_span(span(order_value=30.0), 0, SECOND)
    assert snapshot[KEY].count == 1 and snapshot[KEY].mean("order_value") == 10.0
    with pytest.raises(ValueError):
        snapshot.state.count[0] = 5
    with pytest.raises(TypeError):
        snapshot.dropped["kpi_nan"] = 3  # type: ignore[index]
    assert agg.snapshot()[KEY].count == 2


def test_reset_forgets_everything(Aggregator: Any) -> None:
    agg = Aggregator(Config(**EVERY_KEY, max_keys=1))
    agg.record_span(span(order_value="bad"), 0, SECOND)
    agg.record_span(span(campaign="other"), 0, SECOND)
    agg.reset()
    snapshot = agg.snapshot()
    assert len(snapshot) == 0 and snapshot.overflow is None and snapshot.dropped_total == 0
    agg.record_span(span(campaign="other"), 0, SECOND)
    assert list(agg.snapshot()) == [("checkout", "other")]


def test_concurrent_record_span_loses_no_update(Aggregator: Any) -> None:
    threads, per_thread = 8, 50_000
    agg = Aggregator(Config(**EVERY_KEY))
    barrier = threading.Barrier(threads + 1)
    snapshots = []

    def worker(index: int) -> None:
        pages = [f"page-{index % 4}", f"page-{(index + 1) % 4}"]
        barrier.wait()
        for i in range(per_thread):
            agg.record_span(span(page=pages[i & 1], order_value=float(i % 100),
                                 conversion=i % 3 == 0), 0, 1_000_000 * (1 + i % 500))

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    barrier.wait()
    while any(thread.is_alive() for thread in workers):
        snapshots.append(agg.snapshot())
        time.sleep(0.05)
    for thread in workers:
        thread.join()
    total = agg.snapshot().total()
    n = threads * per_thread
    assert total.count == n
    assert total.pairs("order_value") == n and total.pairs("conversion") == n
    assert total.raw_sums("order_value").sum_v == threads * sum(float(i % 100)
                                                                 for i in range(per_thread))
    assert int(total.histogram.sum()) == n
    assert int(total.histogram[2].sum()) == threads * len(range(0, per_thread, 3))
    # Every snapshot taken during the run was internally consistent.
    for snapshot in snapshots:
        t = snapshot.total()
        assert int(t.histogram.sum()) == t.count == t.pairs("order_value")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_starts_empty(Aggregator: Any) -> None:
    agg = Aggregator(Config(**EVERY_KEY))
    agg.record_span(span(order_value=5.0), 0, SECOND)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report what it sees, then leave without running pytest's atexit
        try:
            before = agg.snapshot().total().count
            agg.record_span(span(order_value=5.0), 0, SECOND)
            after = agg.snapshot().total().count
            os.write(write, f"{before},{after}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        result = pipe.read()
    os.waitpid(pid, 0)
    assert result == "0,1"
    assert agg.snapshot().total().count == 1  # the parent is untouched


def test_fallback_fills_only_absent_dimensions(Aggregator: Any) -> None:
    agg = Aggregator(Config(**EVERY_KEY))
    fallback = ("/product/<id>", "")
    agg.record_span({attr.CAMPAIGN_ID: "spring"}, 0, SECOND, fallback=fallback)
    agg.record_span(span(page="checkout", campaign="spring"), 0, SECOND, fallback=fallback)
    agg.record_span({attr.CAMPAIGN_ID: "spring"}, 0, SECOND, fallback=(None, 7))
    agg.record_span(MappingWrapper({attr.CAMPAIGN_ID: "x"}), 0, SECOND, fallback=fallback)
    agg.record_span({}, 0, SECOND, fallback=("short",))
    snapshot = agg.snapshot()
    assert {key: snapshot[key].count for key in snapshot} == {
        ("/product/<id>", "spring"): 1, ("checkout", "spring"): 1, ("", "spring"): 1,
        ("/product/<id>", "x"): 1,
    }
    assert snapshot.dropped["attributes_unreadable"] == 1


class KeyText(str):
    """A str subclass as an attribute key: equal to the plain key, hashed alike."""


def test_values_are_found_whatever_the_dict_holds_besides(Aggregator: Any) -> None:
    """The native twin finds a span's attributes by one walk over a small dict and by
    lookups in a large one or one with keys that are not exact str; each way must read
    the same values as the pure twin's ``get``."""
    from bizops_otel import Kpi

    agg = Aggregator(Config(**EVERY_KEY))
    noise = {f"http.noise.{i}": i for i in range(40)}
    agg.record_span(span(order_value=10.0), 0, SECOND)  # 3 entries: walked
    agg.record_span({**noise, **span(order_value=20.0)}, 0, SECOND)  # 43 entries: looked up
    agg.record_span({(1, 2): "tuple key", **span(order_value=30.0)}, 0, SECOND)
    agg.record_span({KeyText(attr.PAGE_GROUP): "checkout", attr.CAMPAIGN_ID: "spring_sale",
                     KeyText(attr.ORDER_VALUE): 40.0}, 0, SECOND)
    stats = agg.snapshot()[KEY]
    assert stats.count == 4
    assert stats.pairs("order_value") == 4 and stats.mean("order_value") == 25.0
    # An attribute wanted twice (a KPI that is also a dimension) fills both.
    both = Aggregator(Config(**EVERY_KEY, dimensions=(attr.PAGE_GROUP, "shop.tier"),
                             kpis=(Kpi("tier", "shop.tier"),)))
    both.record_span({attr.PAGE_GROUP: "cart", "shop.tier": 3}, 0, SECOND)
    assert both.snapshot()[("cart", "3")].mean("tier") == 3.0


class MappingWrapper:
    """A read-only mapping that is not a dict, like the SDK's MappingProxyType view."""

    def __init__(self, data: dict[str, object]) -> None:
        self._data = data

    def get(self, key: str, default: object = None) -> object:
        return self._data.get(key, default)


def grouped_snapshot(Aggregator: Any) -> Any:
    """Keys over pages, campaigns and variants, with three KPIs, errors, outcomes, old and
    recent spans and an overflow key."""
    rng = np.random.default_rng(11)
    agg = Aggregator(Config(dimensions=(attr.PAGE_GROUP, attr.CAMPAIGN_ID,
                                        attr.FEATURE_FLAG_VARIANT), max_keys=60))
    now = 1_700_000_000 * SECOND
    for i in range(3000):
        key = (f"p{rng.integers(0, 5)}", "" if i % 3 == 0 else f"c{rng.integers(0, 20)}",
               str(rng.choice(["A", "B", ""])))
        kpis = {"order_value": float(rng.lognormal(3, 1)), "items": int(rng.integers(1, 5)),
                **({} if i % 4 == 0 else {"conversion": float(rng.random() < 0.3)})}
        agg.record(key, float(rng.lognormal(-1.5, 1.2)), kpis, error=bool(i % 13 == 0),
                   end_ns=now - int(rng.integers(0, 600)) * SECOND)
    snapshot = agg.snapshot(now_ns=now)
    assert snapshot.overflow is not None
    return snapshot


def assert_row_equals(state: Any, row: int, expected: Any, config: Config) -> None:
    """Row ``row`` of a merged state holds what ``expected`` (a KeyStats) does."""
    from bizops_otel.aggregate._state import span_histograms

    assert int(state.count[row]) == expected.count
    assert int(state.errors[row]) == expected.errors
    assert float(state.latency_sum[row]) == pytest.approx(expected.latency_sum, rel=1e-12)
    counts, lo = span_histograms(state.block_row, state.block_code, state.block_counts,
                                 state.rows)
    dense = np.zeros(expected.histogram.shape)
    dense[:, lo:lo + counts.shape[2]] = counts[row]
    np.testing.assert_array_equal(dense, expected.histogram)
    for j, kpi in enumerate(config.kpi_names):
        assert int(state.kpi_n[row, j]) == expected.pairs(kpi)
        np.testing.assert_allclose(state.kpi_f[row, j, :5], expected.moments(kpi)[1:],
                                   rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(state.kpi_f[row, j, 5:], expected.raw_sums(kpi)[1:],
                                   rtol=1e-12)


def test_totals_by_equals_a_total_per_value(Aggregator: Any) -> None:
    """One vectorised grouping gives, per value of a dimension, what a scan of the
    snapshot for that value gives, in both windows; the overflow key joins no value."""
    snapshot = grouped_snapshot(Aggregator)
    config = snapshot.config
    for view in (snapshot, snapshot.recent()):
        for at, dimension in enumerate(config.dimensions):
            labels, state = view.totals_by(dimension)
            assert sorted(labels) == sorted({key[at] for key in view})
            assert state.key_ids.tolist() == list(range(len(labels)))
            for row, label in enumerate(labels):
                assert_row_equals(state, row, view.total(where={dimension: label}), config)
            assert int(state.count.sum()) == view.total().count - view.overflow.count
        labels, state = view.totals_by(attr.PAGE_GROUP, where={attr.CAMPAIGN_ID: ""})
        for row, label in enumerate(labels):
            assert_row_equals(state, row, view.total(
                where={attr.PAGE_GROUP: label, attr.CAMPAIGN_ID: ""}), config)
    with pytest.raises(KeyError, match="not dimensions"):
        snapshot.totals_by("bizops.nope")


def test_group_rows_lets_a_row_join_several_groups(Aggregator: Any) -> None:
    from bizops_otel.aggregate._state import group_rows, take_rows

    snapshot = grouped_snapshot(Aggregator)
    state, table = snapshot.state, snapshot.key_table
    keys = [table[k] for k in state.key_ids.tolist()]
    rows = np.array([0, 3, 3, 7, 5, 0], np.int64)
    groups = np.array([4, 4, 9, 9, 9, 2], np.int64)
    merged = group_rows(state, rows, groups, len(snapshot.config.kpis))
    assert merged.key_ids.tolist() == [2, 4, 9]
    for row, group in enumerate((2, 4, 9)):
        members = {keys[r] for r, g in zip(rows.tolist(), groups.tolist(), strict=True)
                   if g == group}
        expected = snapshot.total(keys=lambda key, members=members: key in members)
        assert_row_equals(merged, row, expected, snapshot.config)
    taken = take_rows(state, np.array([5, 5, 1], np.int64))
    assert taken.key_ids.tolist() == state.key_ids[[5, 5, 1]].tolist()
    assert taken.rows == 3 and take_rows(state, np.zeros(0, np.int64)).rows == 0
    for row, original in enumerate((5, 5, 1)):
        assert_row_equals(taken, row, snapshot[keys[original]], snapshot.config)
