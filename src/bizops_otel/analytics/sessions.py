"""Session-level analytics per page group: impact scores, the conversion curve, what-if.

A request's outcome says little about a page: the purchase happens at checkout, however
slow the product page was. A session's outcome does. From finalised sessions (see the
session table in the aggregator) this module derives, per page group g:

- **Conversion Impact Score** ``CIS_g = share_of_requests_g × ρ(latency_g, converted)``,
  with ρ Spearman's correlation between the session's mean latency on g and whether the
  session converted. In [−1, 1]; negative means slowness on g costs conversions, and the
  most negative score is the page to make faster first.
- **Activity Impact Score**: the same with pages per session as the outcome.
- **Conversion against load time**: sessions and conversions per latency bucket, with the
  optimal load time at the peak of the curve.
- **What-if**: a logistic model of conversion on latency, shifted by Δ.

The all-pages row (``overall``) uses the session's mean latency over every page it saw.
That mixes speed with the pages a session visits: sessions that go deeper usually meet
slower pages (checkout) and are also the ones that buy, so on most sites its curve rises
before it falls (mPulse's "optimal load time" is that peak), and its what-if is no
causal estimate. Per-group what-ifs compare sessions on the same page and are the ones to
act on.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from .. import stats
from ..aggregate._layout import BUCKETS, HIGHEST, LOWEST, bucket_edges
from ..aggregate._session_state import ALL_PAGES, COUNTER_NAMES, OVERFLOW_GROUP, SessionArrays
from ..aggregate.snapshot import Snapshot
from .whatif import LogisticFit, fit_logistic, project

#: Latency shifts reported by default, in milliseconds.
DEFAULT_DELTAS_MS = (-500.0, -100.0, 100.0, 500.0)
#: Sessions a curve point needs before it counts as reliable.
MIN_CURVE_SESSIONS = 30
#: Buckets on each side pooled into a curve point for the optimal load time: ±2 buckets
#: of 10% span a factor of 1.6 in latency, enough to smooth single-bucket noise.
_SMOOTHING = 2

_EDGES = bucket_edges()
#: A representative latency per bucket: the geometric middle of its edges (the clamp
#: buckets take their inner edge's neighbourhood).
REPRESENTATIVE = np.concatenate((
    [LOWEST / 2.0],
    np.sqrt(_EDGES[1:-2] * _EDGES[2:-1]),
    [HIGHEST],
))
REPRESENTATIVE.setflags(write=False)
assert REPRESENTATIVE.shape == (BUCKETS,)


class SessionCurve(NamedTuple):
    """Conversion of sessions against their latency on a group, per latency bucket.

    Bucket b covers ``[edges[b], edges[b+1])``; ``reliable[b]`` says whether it holds at
    least the minimum number of sessions to be read on its own.
    """

    edges: npt.NDArray[np.float64]
    sessions: npt.NDArray[np.uint64]
    conversions: npt.NDArray[np.uint64]
    reliable: npt.NDArray[np.bool_]
    #: Latency (s) at the peak of the smoothed curve, among points with enough
    #: sessions; nan when none has.
    optimal_load_time: float

    @property
    def rate(self) -> npt.NDArray[np.float64]:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.conversions / self.sessions.astype(np.float64)


class Projection(NamedTuple):
    """Conversion and revenue if latency on a group (or everywhere) moved by ``delta_s``.

    ``low``/``high`` bound the conversion-rate change (95% by default, delta method).
    Revenue change = sessions × change × average revenue per converted session; its
    bounds scale the rate bounds the same way (the average order value is taken as known).
    """

    page_group: str | None
    delta_s: float
    sessions: int
    rate: float
    projected: float
    change: float
    low: float
    high: float
    revenue_change: float
    revenue_low: float
    revenue_high: float


class GroupSessions:
    """Finalised sessions that visited one page group (or, for ``overall``, any page)."""

    __slots__ = ("_arrays", "_fit", "_revenue_per_conversion", "_row", "_total_requests",
                 "name")

    def __init__(self, arrays: SessionArrays, row: int, name: str | None) -> None:
        self._arrays = arrays
        self._row = row
        self.name = name
        self._fit: LogisticFit | None = None
        self._total_requests = float(arrays.requests[0])
        everyone = arrays.table[0]
        converted = float(everyone[1].sum())
        self._revenue_per_conversion = (float(arrays.revenue[0]) / converted if converted
                                        else math.nan)

    def __repr__(self) -> str:
        return f"GroupSessions({self.name!r}, sessions={self.sessions})"

    @property
    def table(self) -> npt.NDArray[np.uint64]:
        """Counts by (converted, pages bin, latency bucket)."""
        table: npt.NDArray[np.uint64] = self._arrays.table[self._row]
        return table

    @property
    def sessions(self) -> int:
        return int(self.table.sum())

    @property
    def converted(self) -> int:
        return int(self.table[1].sum())

    @property
    def conversion_rate(self) -> float:
        return stats.conversion_rate(self.converted, self.sessions)

    @property
    def requests(self) -> int:
        return int(self._arrays.requests[self._row])

    @property
    def share_of_requests(self) -> float:
        total = self._total_requests
        return self.requests / total if total else math.nan

    @property
    def revenue(self) -> float:
        return float(self._arrays.revenue[self._row])

    @property
    def pages_per_session(self) -> float:
        sessions = self.sessions
        return float(self._arrays.pages[self._row]) / sessions if sessions else math.nan

    def mean_latency(self, converted: bool) -> float:
        """Mean over sessions of their mean latency on the group, for converted sessions
        or for the others."""
        outcome = 1 if converted else 0
        count = float(self.table[outcome].sum())
        total = float(self._arrays.latency_sum[self._row, outcome])
        return total / count if count else math.nan

    # Scores -------------------------------------------------------------------------------
    def spearman_conversion(self) -> float:
        """Spearman ρ of the session's latency on the group and its conversion."""
        by_outcome = self.table.sum(axis=1)  # (2, buckets)
        return stats.spearman_table(by_outcome.T)

    def spearman_pages(self) -> float:
        """Spearman ρ of the session's latency on the group and its pages (bins 1…16+)."""
        by_pages = self.table.sum(axis=0)  # (pages bins, buckets)
        return stats.spearman_table(by_pages.T)

    @property
    def conversion_impact(self) -> float:
        """Conversion Impact Score: share of requests × Spearman(latency, converted)."""
        return self.share_of_requests * self.spearman_conversion()

    @property
    def activity_impact(self) -> float:
        """Activity Impact Score: share of requests × Spearman(latency, pages)."""
        return self.share_of_requests * self.spearman_pages()

    # Curve and what-if ---------------------------------------------------------------------
    def curve(self, min_sessions: int = MIN_CURVE_SESSIONS) -> SessionCurve:
        """Conversion rate against the sessions' latency on the group."""
        sessions = self.table.sum(axis=(0, 1))
        conversions = self.table[1].sum(axis=0)
        window = np.ones(2 * _SMOOTHING + 1)
        pooled_sessions = np.convolve(sessions.astype(np.float64), window, mode="same")
        pooled_conversions = np.convolve(conversions.astype(np.float64), window, mode="same")
        enough = (pooled_sessions >= min_sessions) & (sessions > 0)
        optimal = math.nan
        if enough.any():
            with np.errstate(invalid="ignore", divide="ignore"):
                smoothed = np.where(enough, pooled_conversions / pooled_sessions, -1.0)
            optimal = float(REPRESENTATIVE[int(np.argmax(smoothed))])
        return SessionCurve(_EDGES, sessions, conversions, sessions >= min_sessions, optimal)

    def fit(self) -> LogisticFit:
        """Logistic fit of conversion on latency, by IRLS on the bucketed sessions
        (fitted once; the counts are immutable)."""
        if self._fit is None:
            sessions = self.table.sum(axis=(0, 1))
            conversions = self.table[1].sum(axis=0)
            self._fit = fit_logistic(REPRESENTATIVE, sessions, conversions)
        return self._fit

    def whatif(self, delta_ms: float = -100.0, confidence: float = 0.95) -> Projection:
        """Projected conversion and revenue if latency on the group moved by ``delta_ms``."""
        sessions = self.table.sum(axis=(0, 1)).astype(np.float64)
        result = project(self.fit(), REPRESENTATIVE, sessions, delta_ms / 1e3, confidence)
        scale = self.sessions * self._revenue_per_conversion
        return Projection(self.name, result.delta_s, self.sessions, result.rate,
                          result.projected, result.change, result.low, result.high,
                          result.change * scale, result.low * scale, result.high * scale)


class SessionStats(Mapping[str, GroupSessions]):
    """Session statistics of a snapshot, by page group.

    Iteration yields the page groups with finalised sessions; the overflow group (groups
    past the limit) is :attr:`overflow`, all pages together :attr:`overall`.
    """

    def __init__(self, arrays: SessionArrays) -> None:
        self._arrays = arrays.freeze()
        self._row_of = {name: row for row, name in enumerate(arrays.groups)}
        counters = dict(zip(COUNTER_NAMES, (int(c) for c in arrays.counters), strict=True))
        #: Sessions finalised so far (idle timeout or eviction).
        self.finalised = counters["finalised"]
        #: Of those, sessions finalised early because the table was full.
        self.evicted = counters["evicted"]
        #: Sessions still open when the snapshot was taken (not in any statistic yet).
        self.open = counters["open"]
        #: Sessions that visited more page groups than a record tracks.
        self.truncated = counters["truncated"]

    @property
    def arrays(self) -> SessionArrays:
        return self._arrays

    def _group(self, row: int, name: str | None) -> GroupSessions:
        return GroupSessions(self._arrays, row, name)

    def __getitem__(self, name: str) -> GroupSessions:
        if name in (ALL_PAGES, OVERFLOW_GROUP):
            raise KeyError(name)
        return self._group(self._row_of[name], name)

    def __iter__(self) -> Iterator[str]:
        table = self._arrays.table
        return (name for row, name in enumerate(self._arrays.groups)
                if name not in (ALL_PAGES, OVERFLOW_GROUP) and table[row].any())

    def __len__(self) -> int:
        return sum(1 for _ in self)

    @property
    def overall(self) -> GroupSessions:
        return self._group(self._row_of[ALL_PAGES], None)

    @property
    def overflow(self) -> GroupSessions | None:
        row = self._row_of.get(OVERFLOW_GROUP)
        if row is None or not self._arrays.table[row].any():
            return None
        return self._group(row, OVERFLOW_GROUP)

    def impact_ranking(self) -> list[GroupSessions]:
        """Page groups by Conversion Impact Score, most costly slowness first; groups
        whose score is undefined (no conversions, or no spread in latency) come last."""
        groups = [self[name] for name in self]
        return sorted(groups, key=lambda g: (math.isnan(g.conversion_impact),
                                             g.conversion_impact))

    def whatif(self, delta_ms: float = -100.0, page_group: str | None = None,
               confidence: float = 0.95) -> Projection:
        """Conversion and revenue if latency moved by ``delta_ms`` on ``page_group``
        (every page when None)."""
        group = self.overall if page_group is None else self[page_group]
        return group.whatif(delta_ms, confidence)


def session_stats(snapshot: Snapshot) -> SessionStats:
    """Finalised sessions of ``snapshot`` by page group: impact scores, conversion curves,
    what-if (empty when the aggregator kept no sessions)."""
    arrays = snapshot.session_arrays
    return SessionStats(arrays if arrays is not None else SessionArrays.empty())


def whatif_projection(snapshot: Snapshot, delta_ms: float = -100.0,
                      page_group: str | None = None, confidence: float = 0.95) -> Projection:
    """Conversion and revenue if latency moved by ``delta_ms`` on ``page_group`` (on every
    page when None), from the logistic model of session conversion."""
    return session_stats(snapshot).whatif(delta_ms, page_group, confidence)


__all__ = ["DEFAULT_DELTAS_MS", "GroupSessions", "Projection", "SessionCurve", "SessionStats",
           "session_stats", "whatif_projection"]
