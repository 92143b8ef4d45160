"""Session flow for load-test plans: transitions, think times, durations and arrivals are
recorded as counts, identically by both twins, merge exactly and survive persistence."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bizops_otel import Config
from bizops_otel import attributes as attr
from bizops_otel.aggregate import persist
from bizops_otel.aggregate._aggregator_py import Aggregator as PureAggregator
from bizops_otel.aggregate._flow_state import FlowArrays
from bizops_otel.aggregate._layout import THINK_TRANSITIONS, TIME_EDGES
from tests.conftest import load
from tests.flow_traffic import CONFIG, EPOCH, SECOND, Request, feed, planted_traffic
from tests.twins import assert_flows_agree, assert_twins_agree


def flow_of(aggregator: Any, now_ns: int) -> tuple[tuple[str, ...], FlowArrays]:
    sessions = aggregator.snapshot(now_ns=now_ns).session_arrays
    assert sessions is not None and sessions.flow is not None
    return sessions.groups, sessions.flow


def by_name(groups: tuple[str, ...], flow: FlowArrays) -> dict[str, Any]:
    """The flow keyed by group names, so that differently ordered rows compare equal."""
    names = ["entry/exit", *groups[1:]]
    transitions = {(names[a], names[b]): int(flow.transitions[a, b])
                   for a, b in zip(*np.nonzero(flow.transitions), strict=True)}
    think = {(names[a], names[b]): flow.think[k].tolist()
             for k, (a, b) in enumerate(flow.think_pairs.tolist())}
    return {"transitions": transitions, "think": think, "other": flow.think[-1].tolist(),
            "duration": flow.duration.tolist(),
            "arrivals": dict(zip(flow.arrival_minutes.tolist(), flow.arrival_counts.tolist(),
                                 strict=True))}


def expected_from_raw(requests: list[Request]) -> dict[str, Any]:
    """The counts computed from the raw requests with numpy, with the twins' arithmetic
    on times (float differences of the int64 ends, minus the float latency)."""
    sessions: dict[str, list[Request]] = {}
    for r in requests:
        sessions.setdefault(r.session, []).append(r)
    transitions: dict[tuple[str, str], int] = {}
    thinks: dict[tuple[str, str], list[float]] = {}
    durations, minutes = [], []
    for walk in sessions.values():
        first = walk[0]
        latency0 = (first.end_ns - first.start_ns) * 1e-9
        minutes.append(int(np.floor((float(first.end_ns) * 1e-9 - latency0) / 60.0)))
        path = ["entry/exit", *(r.group for r in walk), "entry/exit"]
        for a, b in itertools.pairwise(path):
            transitions[a, b] = transitions.get((a, b), 0) + 1
        for before, after in itertools.pairwise(walk):
            latency = (after.end_ns - after.start_ns) * 1e-9
            think = (float(after.end_ns) - float(before.end_ns)) * 1e-9 - latency
            thinks.setdefault((before.group, after.group), []).append(think)
        durations.append((float(walk[-1].end_ns) - float(first.end_ns)) * 1e-9 + latency0)
    edges = np.array(TIME_EDGES)

    def histogram(values: list[float]) -> list[int]:
        bins = np.searchsorted(edges, np.array(values), side="right")
        return np.bincount(bins, minlength=len(edges) + 1).tolist()

    unique, counts = np.unique(minutes, return_counts=True)
    return {"transitions": transitions,
            "think": {pair: histogram(values) for pair, values in thinks.items()},
            "think_sum": {pair: float(np.sum(np.maximum(values, 0.0)))
                          for pair, values in thinks.items()},
            "duration": histogram(durations), "duration_sum": float(np.sum(durations)),
            "arrivals": dict(zip(unique.tolist(), counts.tolist(), strict=True))}


def test_planted_transitions_and_think_times_are_recovered(Aggregator: Any) -> None:
    requests = planted_traffic(1, 400)
    aggregator = Aggregator(CONFIG)
    feed(aggregator, requests)
    groups, flow = flow_of(aggregator, requests[-1].end_ns + 3600 * SECOND)
    got, expected = by_name(groups, flow), expected_from_raw(requests)
    assert got["transitions"] == expected["transitions"]
    assert got["think"] == expected["think"]
    assert sum(got["other"]) == 0
    sums = {pair: float(flow.think_sum[k])
            for k, pair in enumerate(by_name(groups, flow)["think"])}
    assert sums == pytest.approx(expected["think_sum"], rel=1e-9)
    assert got["duration"] == expected["duration"]
    assert float(flow.duration_sum[0]) == pytest.approx(expected["duration_sum"], rel=1e-9)
    assert got["arrivals"] == expected["arrivals"]
    # Entries equal exits equal sessions, and the planted probabilities come back.
    matrix = flow.transitions.astype(float)
    assert matrix[0].sum() == matrix[:, 0].sum() == 400
    home, cart = groups.index("home"), groups.index("cart")
    assert matrix[0, home] / 400 == pytest.approx(0.7, abs=0.07)
    assert matrix[cart, groups.index("checkout")] / matrix[cart].sum() == pytest.approx(
        0.6, abs=0.1)


def test_open_sessions_have_entered_but_not_left(Aggregator: Any) -> None:
    aggregator = Aggregator(CONFIG)
    for i, group in enumerate(("home", "product")):
        end = EPOCH + (i * 10 + 1) * SECOND
        aggregator.record_span({attr.PAGE_GROUP: group, attr.SESSION_ID: "one"},
                               end - SECOND // 2, end)
    groups, flow = flow_of(aggregator, EPOCH + 60 * SECOND)  # within the 30 min timeout
    assert flow.transitions[0].sum() == 1 and flow.transitions[:, 0].sum() == 0
    assert flow.duration.sum() == 0
    # 11 s end, started at 10.5 s; the first ended at 1 s: 9.5 s of thinking.
    assert flow.think_sum[0] == pytest.approx(9.5)
    assert flow.think_pairs.tolist() == [[groups.index("home"), groups.index("product")]]


def test_transitions_past_the_tracked_limit_share_the_other_histogram(Aggregator: Any) -> None:
    aggregator = Aggregator(CONFIG)
    clock = EPOCH
    names = [f"g{i}" for i in range(14)]  # 196 transitions > 128 tracked
    for a in names:
        for b in names:
            for group in (a, b):
                clock += 2 * SECOND
                aggregator.record_span({attr.PAGE_GROUP: group,
                                        attr.SESSION_ID: f"{a}>{b}"}, clock - SECOND, clock)
    _, flow = flow_of(aggregator, clock + 3600 * SECOND)
    assert len(flow.think_pairs) == THINK_TRANSITIONS
    assert flow.think[:-1].sum() == THINK_TRANSITIONS and flow.think[-1].sum() == 196 - 128
    assert flow.transitions[2:, 2:].sum() == 196  # the count matrix stays exact


def test_twins_agree_on_flow_with_many_groups() -> None:
    """Both twins, fed the same mixed traffic (more transitions than are tracked, idle
    timeouts, evictions, requests ending out of order), dump identical flows."""
    config = Config(admission_count=1, max_sessions=30, session_timeout=20.0)
    native, pure = load("native")(config), PureAggregator(config)
    rng = np.random.default_rng(3)
    clock = EPOCH
    for _ in range(6000):
        clock += int(rng.integers(0, SECOND))
        end = clock - int(rng.choice([0, 0, 0, 5, 30])) * SECOND
        start = end - int(rng.lognormal(np.log(0.2), 1.0) * SECOND)
        attributes = {attr.PAGE_GROUP: f"g{rng.integers(0, 16)}",
                      attr.SESSION_ID: f"s{rng.integers(0, 60)}"}
        for aggregator in (native, pure):
            aggregator.record_span(attributes, start, end)
    for now in (clock, clock + 3600 * SECOND):
        a, b = native.snapshot(now_ns=now), pure.snapshot(now_ns=now)
        assert_twins_agree(a, b)
    assert a.session_arrays is not None and a.session_arrays.flow is not None
    assert a.session_arrays.flow.think[-1].sum() > 0  # the "other" histogram was used


def test_two_merged_aggregators_equal_one_fed_both_streams(Aggregator: Any) -> None:
    first, second = planted_traffic(2, 150), planted_traffic(3, 150, minutes=40.0)
    a, b, both = Aggregator(CONFIG), Aggregator(CONFIG), Aggregator(CONFIG)
    feed(a, first)
    feed(b, second)
    feed(both, sorted(first + second, key=lambda r: r.end_ns))
    now = max(first[-1].end_ns, second[-1].end_ns) + 3600 * SECOND
    merged = a.snapshot(now_ns=now).merge(b.snapshot(now_ns=now)).session_arrays
    single = both.snapshot(now_ns=now).session_arrays
    assert merged is not None and single is not None
    assert merged.flow is not None and single.flow is not None
    left, right = by_name(merged.groups, merged.flow), by_name(single.groups, single.flow)
    assert left == right
    assert float(merged.flow.duration_sum[0]) == pytest.approx(
        float(single.flow.duration_sum[0]), rel=1e-9)


def test_flow_survives_the_state_file(Aggregator: Any, tmp_path: Path) -> None:
    aggregator = Aggregator(CONFIG)
    requests = planted_traffic(4, 50)
    feed(aggregator, requests)
    original = aggregator.snapshot(now_ns=requests[-1].end_ns + 3600 * SECOND)
    persist.write(original, tmp_path / "state.npz")
    copy = persist.read(tmp_path / "state.npz")
    assert original.session_arrays is not None and copy.session_arrays is not None
    assert_flows_agree(original.session_arrays.flow, copy.session_arrays.flow)


def test_the_scrape_carries_the_flow_the_raw_requests_give(Aggregator: Any) -> None:
    """``bizops_session_transitions_total`` and ``bizops_session_think_time_mean_seconds``
    in the Prometheus exposition: the transition counts and the mean think times (negative
    ones counted as 0, as the twins do) that numpy computes from the raw requests."""
    from bizops_otel.export.exposition import render

    requests = planted_traffic(3, 200)
    aggregator = Aggregator(CONFIG)
    feed(aggregator, requests)
    text = render(aggregator.snapshot(now_ns=requests[-1].end_ns + 3600 * SECOND)).decode()
    expected = expected_from_raw(requests)

    def series(metric: str) -> dict[tuple[str, str], float]:
        found = {}
        for line in text.splitlines():
            if line.startswith(metric + "{"):
                labels = dict(part.split("=", 1) for part in line[line.index("{") + 1:
                                                                  line.index("}")].split(","))
                pair = tuple(labels[f"bizops_transition_{end}"].strip('"')
                             for end in ("from", "to"))
                found[pair] = float(line.rsplit(" ", 1)[1])
        return found

    def named(pair: tuple[str, str]) -> tuple[str, str]:
        return (pair[0].replace("entry/exit", "(entry)"), pair[1].replace("entry/exit", "(exit)"))

    assert series("bizops_session_transitions_total") == {
        named(pair): float(count) for pair, count in expected["transitions"].items()}
    means = {named(pair): total / sum(expected["think"][pair])
             for pair, total in expected["think_sum"].items()}
    assert series("bizops_session_think_time_mean_seconds") == pytest.approx(means, rel=1e-9)
