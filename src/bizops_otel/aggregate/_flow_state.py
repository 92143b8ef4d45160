"""Session-flow counts as plain numpy arrays, and how they merge.

Both twins' flow recorders dump into :class:`FlowArrays`, which rides on
:class:`~bizops_otel.aggregate._session_state.SessionArrays` (its ``flow``) and shares its
rows: row ``i`` is the page group ``SessionArrays.groups[i]``, and row 0, which stands
for every page in the session statistics, is the entry state as a source and the exit
state as a destination here. What a load-test plan needs and nothing more: counts, no
session and no session id.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._layout import ARRIVAL_MINUTES, TIME_BINS, TIME_EDGES

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def time_bin(seconds: float) -> int:
    """The time bin of ``seconds``: how many of ``TIME_EDGES`` are at or below it. The
    native twin runs the same binary search over the same floats."""
    return bisect_right(TIME_EDGES, seconds)


@dataclass(frozen=True)
class FlowArrays:
    """How sessions move through the site, as counts.

    ``transitions[a, b]`` counts the steps from row ``a`` to row ``b``: ``[0, b]`` the
    sessions that entered on ``b``, ``[a, 0]`` the finalised sessions that left after
    ``a``. ``think[k]`` is the think-time histogram (``TIME_BINS``) of the transition
    ``think_pairs[k]`` (rows), ``think[-1]`` that of every untracked transition, and
    ``think_sum`` their sums of think times (seconds, negative ones counted as 0).
    ``latency_sum`` is the sum of the latencies of every request of a session, so that
    with the think times it gives the time sessions spent, open ones included.
    ``duration`` is the histogram of finalised sessions' durations (first start to last
    end), ``duration_sum`` their sum. ``arrival_minutes``/``arrival_counts``: sessions
    started per span-clock minute (``epoch seconds // 60``), ascending, the last 24 hours
    of the newest; ``late_arrivals`` counts those older than the ring could hold.
    """

    transitions: U64  # (rows, rows)
    think_pairs: I64  # (tracked, 2)
    think: U64  # (tracked + 1, TIME_BINS)
    think_sum: F64  # (tracked + 1,)
    latency_sum: F64  # (1,)
    duration: U64  # (TIME_BINS,)
    duration_sum: F64  # (1,)
    arrival_minutes: I64  # (minutes,)
    arrival_counts: U64  # (minutes,)
    late_arrivals: U64  # (1,)

    @staticmethod
    def empty(rows: int) -> FlowArrays:
        return FlowArrays(
            transitions=np.zeros((rows, rows), np.uint64),
            think_pairs=np.zeros((0, 2), np.int64),
            think=np.zeros((1, TIME_BINS), np.uint64),
            think_sum=np.zeros(1, np.float64),
            latency_sum=np.zeros(1, np.float64),
            duration=np.zeros(TIME_BINS, np.uint64),
            duration_sum=np.zeros(1, np.float64),
            arrival_minutes=np.zeros(0, np.int64),
            arrival_counts=np.zeros(0, np.uint64),
            late_arrivals=np.zeros(1, np.uint64),
        )

    def freeze(self) -> FlowArrays:
        for name in FLOW_FIELDS:
            getattr(self, name).setflags(write=False)
        return self


FLOW_FIELDS = tuple(FlowArrays.__dataclass_fields__)


def last_day(minutes: I64, counts: U64) -> tuple[I64, U64]:
    """The nonzero minutes within ``ARRIVAL_MINUTES`` of the newest, ascending: what a
    ring of that many minutes holds, so that merged parts equal one recorder fed both."""
    keep = counts > 0
    minutes, counts = minutes[keep], counts[keep]
    if minutes.size:
        keep = minutes > minutes.max() - ARRIVAL_MINUTES
        minutes, counts = minutes[keep], counts[keep]
    order = np.argsort(minutes, kind="stable")
    return minutes[order].astype(np.int64), counts[order].astype(np.uint64)


def merge_flows(parts: Sequence[tuple[Sequence[str], FlowArrays | None]],
                rows_of: Mapping[str, int]) -> FlowArrays | None:
    """Add flows whose rows are named by each part's groups into the rows ``rows_of``
    assigns (the merged session groups). Tracked transitions are matched by their two
    names and kept in order of first sight; the merge keeps every one of them (at most
    rows² of them), so it is exact, and "other" histograms add."""
    flows = [(names, flow) for names, flow in parts if flow is not None]
    if not flows:
        return None
    rows = len(rows_of)
    transitions = np.zeros((rows, rows), np.uint64)
    pair_slot: dict[tuple[int, int], int] = {}
    think_rows: list[U64] = []
    think_sums: list[float] = []
    other = np.zeros(TIME_BINS, np.uint64)
    other_sum = 0.0
    duration = np.zeros(TIME_BINS, np.uint64)
    duration_sum = 0.0
    latency_sum = 0.0
    late = 0
    minutes: dict[int, int] = {}
    for names, flow in flows:
        at = np.array([rows_of[name] for name in names], np.intp)
        n = flow.transitions.shape[0]
        transitions[np.ix_(at[:n], at[:n])] += flow.transitions
        for k, (a, b) in enumerate(flow.think_pairs.tolist()):
            pair = (int(at[a]), int(at[b]))
            slot = pair_slot.setdefault(pair, len(pair_slot))
            if slot == len(think_rows):
                think_rows.append(np.zeros(TIME_BINS, np.uint64))
                think_sums.append(0.0)
            think_rows[slot] += flow.think[k]
            think_sums[slot] += float(flow.think_sum[k])
        other += flow.think[-1]
        other_sum += float(flow.think_sum[-1])
        duration += flow.duration
        latency_sum += float(flow.latency_sum[0])
        duration_sum += float(flow.duration_sum[0])
        late += int(flow.late_arrivals[0])
        for minute, count in zip(flow.arrival_minutes.tolist(), flow.arrival_counts.tolist(),
                                 strict=True):
            minutes[minute] = minutes.get(minute, 0) + count
    arrival_minutes, arrival_counts = last_day(np.array(list(minutes), np.int64),
                                               np.array(list(minutes.values()), np.uint64))
    return FlowArrays(
        transitions=transitions,
        think_pairs=np.array(list(pair_slot), np.int64).reshape(-1, 2),
        think=np.array([*think_rows, other], np.uint64).reshape(-1, TIME_BINS),
        think_sum=np.array([*think_sums, other_sum], np.float64),
        latency_sum=np.array([latency_sum], np.float64),
        duration=duration,
        duration_sum=np.array([duration_sum], np.float64),
        arrival_minutes=arrival_minutes,
        arrival_counts=arrival_counts,
        late_arrivals=np.array([late], np.uint64),
    )
