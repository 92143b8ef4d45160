"""Pure-Python twin of the native session-flow recorder (``ext/aggregate/_flow_c.pxi``).

The session table calls it at three moments of a session: its first request
(:meth:`FlowRecorder.arrive`), every later one (:meth:`FlowRecorder.step`) and its end
(:meth:`FlowRecorder.leave`). Each is a counter increment or two and a histogram bin,
so the hot path stays cheap. Both twins do the same float arithmetic in the same order
(the table computes the times), so their arrays are identical.
"""

from __future__ import annotations

import math

import numpy as np

from ._flow_state import FlowArrays, last_day, time_bin
from ._layout import (
    ARRIVAL_MINUTES,
    FLOW_ENTRY_EXIT,
    FLOW_STATES,
    THINK_TRANSITIONS,
    TIME_BINS,
)

#: Minutes are clamped to ±2⁵³ so that absurd timestamps (a latency of 1e300 s given to
#: ``record``) land on a minute both twins can represent.
_MINUTE_LIMIT = 2**53


def arrival_minute(start_s: float) -> int:
    """The span-clock minute of a start time in epoch seconds (floor, clamped)."""
    minute = math.floor(start_s / 60.0)
    return max(-_MINUTE_LIMIT, min(_MINUTE_LIMIT, minute))


class FlowRecorder:
    """Transition counts, think times, durations and arrivals of sessions."""

    def __init__(self) -> None:
        self._transitions = np.zeros((FLOW_STATES, FLOW_STATES), np.uint64)
        self._slot_of: dict[tuple[int, int], int] = {}
        self._think = np.zeros((THINK_TRANSITIONS + 1, TIME_BINS), np.uint64)
        self._think_sum = [0.0] * (THINK_TRANSITIONS + 1)
        self._duration = np.zeros(TIME_BINS, np.uint64)
        self._duration_sum = 0.0
        self._latency_sum = 0.0
        self._arrival_minute = [0] * ARRIVAL_MINUTES
        self._arrival_count = [0] * ARRIVAL_MINUTES
        self._late = 0

    def arrive(self, row: int, start_s: float, latency_s: float) -> None:
        """A session starts with a request on ``row`` that started at ``start_s``."""
        self._transitions[FLOW_ENTRY_EXIT, row] += 1
        self._latency_sum += latency_s
        minute = arrival_minute(start_s)
        slot = minute % ARRIVAL_MINUTES
        if self._arrival_count[slot] and self._arrival_minute[slot] != minute:
            if minute < self._arrival_minute[slot]:
                self._late += 1  # older than the ring holds: its minute is gone
                return
            self._arrival_count[slot] = 0
        self._arrival_minute[slot] = minute
        self._arrival_count[slot] += 1

    def step(self, previous: int, row: int, think_s: float, latency_s: float) -> None:
        """A session goes from ``previous`` to ``row`` after ``think_s`` seconds."""
        self._transitions[previous, row] += 1
        self._latency_sum += latency_s
        slot = self._slot_of.get((previous, row))
        if slot is None:
            slot = THINK_TRANSITIONS  # the shared "other" histogram
            if len(self._slot_of) < THINK_TRANSITIONS:
                slot = self._slot_of[previous, row] = len(self._slot_of)
        self._think[slot, time_bin(think_s)] += 1
        if think_s > 0.0:
            self._think_sum[slot] += think_s

    def leave(self, previous: int, duration_s: float) -> None:
        """A session that lasted ``duration_s`` ends after a request on ``previous``."""
        self._transitions[previous, FLOW_ENTRY_EXIT] += 1
        self._duration[time_bin(duration_s)] += 1
        self._duration_sum += duration_s

    def dump(self, rows: int) -> FlowArrays:
        """A copy of the counts over the first ``rows`` session rows."""
        pairs = [pair for pair in self._slot_of if pair[0] < rows and pair[1] < rows]
        slots = [self._slot_of[pair] for pair in pairs] + [THINK_TRANSITIONS]
        minutes, counts = last_day(np.array(self._arrival_minute, np.int64),
                                   np.array(self._arrival_count, np.uint64))
        return FlowArrays(
            transitions=self._transitions[:rows, :rows].copy(),
            think_pairs=np.array(pairs, np.int64).reshape(-1, 2),
            think=self._think[slots].copy(),
            think_sum=np.array([self._think_sum[s] for s in slots], np.float64),
            latency_sum=np.array([self._latency_sum], np.float64),
            duration=self._duration.copy(),
            duration_sum=np.array([self._duration_sum], np.float64),
            arrival_minutes=minutes,
            arrival_counts=counts,
            late_arrivals=np.array([self._late], np.uint64),
        )
