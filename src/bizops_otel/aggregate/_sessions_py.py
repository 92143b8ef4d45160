"""Pure-Python twin of the native session table (``ext/aggregate/_sessions_c.pxi``).

A bounded table of open sessions, keyed by a salted 64-bit hash of ``session.id`` (the
raw id is never stored). Each record holds the session's pages, conversion, revenue and,
for up to ``GROUPS_PER_SESSION`` page groups, its requests and latency there.

Sessions are kept in least-recently-seen order. A session is finalised when it has been
idle for ``timeout`` (measured on the span clock: the latest span end seen), or when the
table is full and it is the least recently seen one. Finalising adds the session to the
per-group counts of :class:`~bizops_otel._session_state.SessionArrays`.

Expiry is lazy and bounded: each recorded span finalises at most two idle sessions, and
a snapshot finalises every session idle as of its own time. Both twins follow exactly
these rules, so they finalise the same sessions in the same order.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from ..config import Journey
from ._flow_py import FlowRecorder
from ._journey_state import JourneyArrays
from ._journeys_py import JourneyCounts, Progress
from ._layout import (
    BUCKETS,
    GROUPS_PER_SESSION,
    MAX_SESSION_GROUPS,
    PAGE_BINS,
    SESSION_FIXED_ROWS,
    SESSION_ROW_ALL,
    SESSION_ROW_OVERFLOW,
    bucket_of,
)
from ._session_state import ALL_PAGES, OVERFLOW_GROUP, SessionArrays

_MASK64 = (1 << 64) - 1
#: Idle sessions finalised per recorded span, at most: bounded work on the hot path.
EXPIRE_PER_SPAN = 2


def session_hash(session_id: str, salt: int) -> int:
    """The 64-bit key of a session: Python's (SipHash) string hash, mixed with a
    per-table random salt by the splitmix64 finaliser, so that ids chosen to collide
    in one process do not collide in another."""
    h = (hash(session_id) ^ salt) & _MASK64
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _MASK64
    return h ^ (h >> 31)


def new_salt() -> int:
    return secrets.randbits(64)


class _Session:
    __slots__ = (
        "converted",
        "first_end_ns",
        "first_latency",
        "groups",
        "journeys",
        "last_ns",
        "latency_sum",
        "pages",
        "previous_row",
        "revenue",
    )  # journeys: funnels; first_end_ns, first_latency, previous_row: flow

    def __init__(self, end_ns: int) -> None:
        self.last_ns = end_ns
        self.pages = 0
        self.converted = False
        self.revenue = 0.0
        self.latency_sum = 0.0
        # group row -> [requests, latency sum], in order of first visit
        self.groups: dict[int, list[float]] = {}
        # Progress on the configured journeys, made on the first request (None: none).
        self.journeys: Progress | None = None
        # Session flow (load-test plans): the row of the previous request, and the first
        # request's end and latency, for the session's duration.
        self.previous_row = 0
        self.first_end_ns = end_ns
        self.first_latency = 0.0


class GroupTable:
    """Page-group names to session-table rows, bounded by ``MAX_SESSION_GROUPS``."""

    def __init__(self) -> None:
        self.names: list[str] = [ALL_PAGES, OVERFLOW_GROUP]
        self._row_of: dict[str, int] = {}

    def row(self, name: str) -> int:
        row = self._row_of.get(name)
        if row is None:
            if len(self.names) - SESSION_FIXED_ROWS >= MAX_SESSION_GROUPS:
                return SESSION_ROW_OVERFLOW
            row = self._row_of[name] = len(self.names)
            self.names.append(name)
        return row


class SessionTable:
    """Open sessions and the counts of finalised ones (pure-Python implementation)."""

    def __init__(self, capacity: int, timeout_ns: int,
                 journeys: Sequence[Journey] = ()) -> None:
        self.capacity = capacity
        self.timeout_ns = timeout_ns
        self.salt = new_salt()
        self.groups = GroupTable()
        self._open: OrderedDict[int, _Session] = OrderedDict()  # least recent first
        self._clock = -(2**63)
        rows = SESSION_FIXED_ROWS + MAX_SESSION_GROUPS
        self._table = np.zeros((rows, 2, PAGE_BINS, BUCKETS), np.uint64)
        self._requests = [0] * rows
        self._pages = [0] * rows
        self._latency_sum = [[0.0, 0.0] for _ in range(rows)]
        self._revenue = [0.0] * rows
        self._finalised = 0
        self._evicted = 0
        self._truncated = 0
        self.journeys = JourneyCounts(journeys) if journeys else None

        self.flow = FlowRecorder()

    def group_row(self, name: str) -> int:
        """The session-table row of page group ``name`` (see ``GroupTable.row``)."""
        row = self.groups.row(name)
        if self.journeys is not None and row >= SESSION_FIXED_ROWS:
            self.journeys.map_row(row, name)
        return row

    def touch(self, session_id: str, group: int, latency_s: float, converted: bool,
              revenue: float, end_ns: int) -> None:
        """Add one request of ``session_id`` on session row ``group``."""
        h = session_hash(session_id, self.salt)
        if end_ns > self._clock:
            self._clock = end_ns
        self._expire(self._clock, EXPIRE_PER_SPAN)
        record = self._open.get(h)
        if record is not None and record.last_ns + self.timeout_ns <= end_ns:
            # Back after the idle timeout: that visit is over, this one is new.
            del self._open[h]
            self._finalise(record)
            record = None
        if record is None:
            if len(self._open) >= self.capacity:
                _, oldest = self._open.popitem(last=False)
                self._finalise(oldest)
                self._evicted += 1
            record = self._open[h] = _Session(end_ns)
            self._flow_arrive(record, group, latency_s, end_ns)
        else:
            self._open.move_to_end(h)
            self._flow_step(record, group, latency_s, end_ns)
        if end_ns > record.last_ns:
            record.last_ns = end_ns
        record.pages += 1
        record.latency_sum += latency_s
        if converted:
            record.converted = True
        record.revenue += revenue
        if self.journeys is not None:
            if record.journeys is None:
                record.journeys = self.journeys.start()
            self.journeys.advance(record.journeys, group, latency_s, end_ns)
        cell = record.groups.get(group)
        if cell is not None:
            cell[0] += 1
            cell[1] += latency_s
        elif len(record.groups) < GROUPS_PER_SESSION:
            record.groups[group] = [1, latency_s]
        elif len(record.groups) == GROUPS_PER_SESSION:
            # The first group past the limit marks the session truncated, once.
            record.groups[-1] = [0, 0.0]
            self._truncated += 1

    # Session flow: the same float arithmetic, in the same order, as the native twin.
    def _flow_arrive(self, record: _Session, group: int, latency_s: float,
                     end_ns: int) -> None:
        record.previous_row = group
        record.first_latency = latency_s
        self.flow.arrive(group, float(end_ns) * 1e-9 - latency_s, latency_s)

    def _flow_step(self, record: _Session, group: int, latency_s: float,
                   end_ns: int) -> None:
        # This request's start minus the session's latest end so far (last_ns, not yet
        # moved by this request).
        think_s = (float(end_ns) - float(record.last_ns)) * 1e-9 - latency_s
        self.flow.step(record.previous_row, group, think_s, latency_s)
        record.previous_row = group

    def _flow_leave(self, record: _Session) -> None:
        duration_s = ((float(record.last_ns) - float(record.first_end_ns)) * 1e-9
                      + record.first_latency)
        self.flow.leave(record.previous_row, duration_s)

    def _expire(self, now_ns: int, limit: int) -> None:
        done = 0
        while self._open and (limit < 0 or done < limit):
            h, oldest = next(iter(self._open.items()))
            if oldest.last_ns + self.timeout_ns > now_ns:
                return
            del self._open[h]
            self._finalise(oldest)
            done += 1

    def _finalise(self, record: _Session) -> None:
        pages_bin = min(record.pages, PAGE_BINS) - 1
        outcome = 1 if record.converted else 0
        self._finalised += 1
        self._flow_leave(record)
        self._add(SESSION_ROW_ALL, outcome, pages_bin, record.pages, record.pages,
                  record.latency_sum, record.revenue)
        for row, (requests, latency_sum) in record.groups.items():
            if row >= 0:
                self._add(row, outcome, pages_bin, record.pages, int(requests), latency_sum,
                          record.revenue)
        if self.journeys is not None and record.journeys is not None:
            self.journeys.finalise(record.journeys)

    def _add(self, row: int, outcome: int, pages_bin: int, pages: int, requests: int,
             latency_sum: float, revenue: float) -> None:
        mean = latency_sum / requests
        self._table[row, outcome, pages_bin, bucket_of(mean)] += 1
        self._requests[row] += requests
        self._pages[row] += pages
        self._latency_sum[row][outcome] += mean
        self._revenue[row] += revenue

    def dump(self, now_ns: int) -> SessionArrays:
        """Finalise the sessions idle as of ``now_ns``, then copy the counts."""
        self._expire(now_ns, -1)
        rows = len(self.groups.names)
        return SessionArrays(
            groups=tuple(self.groups.names),
            table=self._table[:rows].copy(),
            requests=np.array(self._requests[:rows], np.uint64),
            pages=np.array(self._pages[:rows], np.uint64),
            latency_sum=np.array(self._latency_sum[:rows], np.float64),
            revenue=np.array(self._revenue[:rows], np.float64),
            counters=np.array([self._finalised, self._evicted, len(self._open),
                               self._truncated], np.uint64),
            journeys=(self.journeys.dump() if self.journeys is not None
                      else JourneyArrays.empty()),
            flow=self.flow.dump(rows),
        )
