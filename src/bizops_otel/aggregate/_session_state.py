"""Finalised-session statistics as plain numpy arrays, and how they merge.

Both twins' session tables dump into :class:`SessionArrays`; snapshots, persisted files
and cross-process merges share this code. Rows are page groups by name: row 0 is every
page of the session, row 1 the overflow group, then the named groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ._flow_state import FlowArrays, merge_flows
from ._journey_state import JourneyArrays, merge_journeys
from ._layout import BUCKETS, PAGE_BINS

#: Row names of the two fixed rows. Sanitised page groups never hold control
#: characters, so no real group can take these names.
ALL_PAGES = "\x00all"
OVERFLOW_GROUP = "\x00overflow"

U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SessionArrays:
    """Counts of finalised sessions per page group.

    ``table[row, converted, pages_bin, bucket]`` counts the sessions that visited the
    row's group, by whether the session converted, how many pages it had (bin
    ``min(pages, 16) - 1``) and the latency bucket of its mean latency on the group.
    """

    groups: tuple[str, ...]
    table: U64  # (rows, 2, PAGE_BINS, BUCKETS)
    requests: U64  # (rows,) the sessions' requests on the group
    pages: U64  # (rows,) Σ pages of the sessions that visited the group
    latency_sum: F64  # (rows, 2) Σ session mean latency on the group, by outcome
    revenue: F64  # (rows,) Σ revenue of the sessions that visited the group
    #: finalised, evicted (finalised early, table full), open, truncated (sessions
    #: with more distinct groups than a record tracks).
    counters: U64  # (4,)
    # Journeys (funnels): their own arrays, matched by journey name on merge.
    journeys: JourneyArrays = field(default_factory=JourneyArrays.empty)
    #: How sessions moved through these rows (load-test plans); None from files that
    #: predate it.
    flow: FlowArrays | None = None

    @staticmethod
    def empty() -> SessionArrays:
        return SessionArrays(
            groups=(ALL_PAGES, OVERFLOW_GROUP),
            table=np.zeros((2, 2, PAGE_BINS, BUCKETS), np.uint64),
            requests=np.zeros(2, np.uint64),
            pages=np.zeros(2, np.uint64),
            latency_sum=np.zeros((2, 2), np.float64),
            revenue=np.zeros(2, np.float64),
            counters=np.zeros(4, np.uint64),
        )

    @property
    def rows(self) -> int:
        return len(self.groups)

    def freeze(self) -> SessionArrays:
        for array in (self.table, self.requests, self.pages, self.latency_sum, self.revenue,
                      self.counters):
            array.setflags(write=False)
        self.journeys.freeze()
        if self.flow is not None:
            self.flow.freeze()
        return self


COUNTER_NAMES = ("finalised", "evicted", "open", "truncated")


def merge_sessions(parts: Sequence[SessionArrays]) -> SessionArrays:
    """Add the parts row by row, matching rows by group name (order of first sight)."""
    names: dict[str, int] = {}
    for part in parts:
        for name in part.groups:
            names.setdefault(name, len(names))
    if not names:
        return SessionArrays.empty()
    rows = len(names)
    table = np.zeros((rows, 2, PAGE_BINS, BUCKETS), np.uint64)
    requests = np.zeros(rows, np.uint64)
    pages = np.zeros(rows, np.uint64)
    latency_sum = np.zeros((rows, 2), np.float64)
    revenue = np.zeros(rows, np.float64)
    counters = np.zeros(4, np.uint64)
    for part in parts:
        at = np.array([names[n] for n in part.groups], np.intp)
        table[at] += part.table
        requests[at] += part.requests
        pages[at] += part.pages
        latency_sum[at] += part.latency_sum
        revenue[at] += part.revenue
        counters += part.counters
    journeys = merge_journeys([part.journeys for part in parts])
    flow = merge_flows([(part.groups, part.flow) for part in parts], names)
    return SessionArrays(tuple(names), table, requests, pages, latency_sum, revenue, counters,
                         journeys=journeys, flow=flow)
