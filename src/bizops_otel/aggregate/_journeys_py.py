"""Pure-Python twin of the native journey tracking (``ext/aggregate/_journeys_c.pxi``).

Each open session record carries, per configured journey, its progress: the furthest
step reached in order (-1: none), when it was reached (span end, on the span clock), the
latency bucket of the request that reached each step and the binned time from each step
to the next. A request on page group g moves journey j from step k to k + 1 only when g
is step k + 1 of j (and to step 0 when g is its first step and nothing was reached), so
out-of-order visits never count. At finalisation the progress becomes counts in
:class:`~bizops_otel.aggregate._journey_state.JourneyArrays`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..config import Journey
from ._journey_state import JourneyArrays
from ._layout import bucket_of, think_bin_of


class JourneyProgress:
    """One session's progress on one journey."""

    __slots__ = ("buckets", "reached", "reached_ns", "thinks")

    def __init__(self) -> None:
        self.reached = -1  # the furthest step reached in order; -1: none
        self.reached_ns = 0  # span end of the request that reached it
        self.buckets: list[int] = []  # latency bucket of the request reaching each step
        self.thinks: list[int] = []  # think bin of the time from each step to the next


Progress = list[JourneyProgress]


class JourneyCounts:
    """The configured journeys: which session-table rows are which steps, and the counts of
    finalised sessions (pure-Python implementation)."""

    def __init__(self, journeys: Sequence[Journey]) -> None:
        self.count = len(journeys)
        self._step_index = [{step: k for k, step in enumerate(j.steps)} for j in journeys]
        self._last_step = [len(j.steps) - 1 for j in journeys]
        #: session-table row -> (journey, step) pairs of the row's page group
        self._steps_of_row: list[tuple[tuple[int, int], ...]] = []
        self._arrays = JourneyArrays.zeros(tuple(j.name for j in journeys),
                                           tuple(j.steps for j in journeys))

    def map_row(self, row: int, name: str) -> None:
        """Learn that session-table row ``row`` is page group ``name``."""
        while len(self._steps_of_row) <= row:
            self._steps_of_row.append(())
        self._steps_of_row[row] = tuple(
            (j, index[name]) for j, index in enumerate(self._step_index) if name in index)

    def start(self) -> Progress:
        return [JourneyProgress() for _ in range(self.count)]

    def advance(self, progress: Progress, row: int, latency_s: float, end_ns: int) -> None:
        """One request of the session on session-table row ``row``."""
        if row >= len(self._steps_of_row):
            return
        for j, step in self._steps_of_row[row]:
            state = progress[j]
            if step != state.reached + 1:
                continue
            if step > 0:
                # Spans may end out of order: a step reached "before" the previous one
                # took no time (and the native twin's difference cannot overflow).
                seconds = ((end_ns - state.reached_ns) * 1e-9 if end_ns > state.reached_ns
                           else 0.0)
                state.thinks.append(think_bin_of(seconds))
            state.reached = step
            state.reached_ns = end_ns
            state.buckets.append(bucket_of(latency_s))

    def finalise(self, progress: Progress) -> None:
        arrays = self._arrays
        for j, state in enumerate(progress):
            reached = state.reached
            for k in range(reached + 1):
                arrays.entered[j, k] += 1
                if k < reached:
                    arrays.continued[j, k] += 1
                    arrays.think[j, k, state.thinks[k]] += 1
                    arrays.latency[j, k, 1, state.buckets[k]] += 1
                elif k < self._last_step[j]:
                    arrays.latency[j, k, 0, state.buckets[k]] += 1

    def dump(self) -> JourneyArrays:
        a = self._arrays
        return JourneyArrays(a.names, a.steps, a.entered.copy(), a.continued.copy(),
                             a.think.copy(), a.latency.copy())
