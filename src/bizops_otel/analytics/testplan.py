"""A load-test plan from real traffic: what a load test should look like.

Real traffic knows the page mix, the paths through the site, the think times and the peaks.
From the session-flow counts of a snapshot (see ``aggregate/_flow_state.py``) this module
derives a :class:`TestPlan`:

- **Page mix**: each page group's share of the sessions' requests.
- **Paths**: a Markov chain over page groups from an entry state to an exit state, its
  transition probabilities the observed counts with each row normalised,
  ``P(a → b) = n(a → b) / Σ_c n(a → c)``.
- **Think times** per transition, as the observed histogram in 25% log-spaced bins (the
  histogram itself is what a load generator samples from), with exact means.
- **Session length** (pages) and **duration** (first request's start to last one's end).
- **Arrivals**: sessions started per span-clock minute, and the peak minute.
- **Concurrency**: by Little's law, users in the system ``L = λ W``, with ``λ`` the peak
  minute's arrivals per second and ``W`` the mean session duration, so a closed-loop load
  generator whose users each run sessions back to back reproduces the peak arrival rate
  with ``⌈L⌉`` users.

Sessions still open when the snapshot was taken count in the entry row and the steps
they took, but not yet in the exit row, in durations or in lengths; the chain closes them
where they stand (:meth:`TestPlan.chain`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..aggregate._flow_state import FlowArrays
from ..aggregate._layout import PAGE_BINS, TIME_BINS, TIME_EDGES
from ..aggregate._session_state import OVERFLOW_GROUP, SessionArrays
from ..aggregate.snapshot import Snapshot

#: Names of the chain's two outer states; no page group can take them (page groups are
#: sanitised, and these hold angle brackets only the plan writes).
ENTRY = "<entry>"
EXIT = "<exit>"
#: The overflow row's page groups (past the session table's 64 groups) in a plan.
OTHER_PAGES = "<other pages>"
_EDGES = np.array(TIME_EDGES)
#: The least part of a minute its arrivals are counted over (see ``arrival_rates``).
_MIN_COVERAGE = 10.0 / 60.0


def bin_sampled_means() -> npt.NDArray[np.float64]:
    """The mean of a draw from each time bin, as a plan's think times are drawn: uniform
    in [0, 50 ms) for bin 0 (negative think times, overlapping requests, count as none),
    log-uniform between the edges of an in-range bin (mean ``(hi − lo) / ln(hi/lo)``),
    and the lower edge for the last, open-ended bin."""
    low, high = _EDGES[:-1], _EDGES[1:]
    return np.concatenate(([_EDGES[0] / 2], (high - low) / np.log(high / low), [_EDGES[-1]]))


_BIN_MEANS = bin_sampled_means()


@dataclass(frozen=True)
class ThinkTime:
    """Think times observed on one transition: ``counts`` per time bin (``TIME_EDGES``)
    and their sum in seconds (negative ones as 0)."""

    counts: tuple[int, ...]
    total_s: float

    @property
    def n(self) -> int:
        return sum(self.counts)

    @property
    def mean_s(self) -> float:
        """The exact mean think time (nan without observations)."""
        return self.total_s / self.n if self.n else math.nan

    @property
    def sampled_mean_s(self) -> float:
        """The mean of think times drawn from the histogram, as a load generator draws
        them (:func:`bin_sampled_means`); within a few percent of ``mean_s``."""
        counts = np.array(self.counts, np.float64)
        return float(counts @ _BIN_MEANS / counts.sum()) if self.n else math.nan

    def quantile(self, q: float) -> float:
        """The q-quantile in seconds, log-interpolated inside its bin (nan when empty)."""
        if not self.n:
            return math.nan
        cumulative = np.cumsum(self.counts)
        rank = q * (self.n - 1) + 1
        b = int(np.searchsorted(cumulative, rank))
        if b == 0:
            return float(_EDGES[0])
        if b >= TIME_BINS - 1:
            return float(_EDGES[-1])
        before = cumulative[b - 1]
        inside = (rank - before) / self.counts[b]
        return float(_EDGES[b - 1] * (_EDGES[b] / _EDGES[b - 1]) ** inside)


@dataclass(frozen=True)
class TestPlan:
    """What a load test should reproduce, from observed sessions (see the module)."""

    __test__ = False  # a model, not a test class, for pytest's collector

    #: Page groups, in the session table's order; states 1…n of ``transitions``.
    groups: tuple[str, ...]
    #: Counts ``[a, b]`` over states ``(ENTRY/EXIT, *groups)``: row 0 the entries, column 0
    #: the exits.
    transitions: npt.NDArray[np.uint64]
    #: Think times of tracked transitions, by (from group, to group).
    think: dict[tuple[str, str], ThinkTime]
    #: Think times of the transitions without a histogram of their own.
    other_think: ThinkTime
    #: Finalised sessions by pages: 1, 2, …, 15 and 16 or more.
    session_pages: tuple[int, ...]
    #: Finalised sessions' durations per time bin, and their mean (seconds).
    session_duration: ThinkTime
    #: Seconds all sessions spent, open ones so far: their requests' latencies and the
    #: think times between them.
    session_time_s: float
    #: Sessions started per span-clock minute (epoch minutes, ascending, gaps filled).
    arrival_minutes: tuple[int, ...]
    arrival_counts: tuple[int, ...]
    #: Spans recorded in the snapshot, and its time range (ns, span clock).
    spans: int
    started_ns: int
    taken_ns: int

    @property
    def states(self) -> tuple[str, ...]:
        return (ENTRY, *self.groups)

    @property
    def sessions(self) -> int:
        """Sessions that started (entered), finalised or still open."""
        return int(self.transitions[0].sum())

    @property
    def requests(self) -> int:
        """Requests of sessions: every step into a page group."""
        return int(self.transitions[:, 1:].sum())

    def page_mix(self) -> dict[str, float]:
        """Each page group's share of the sessions' requests."""
        into = self.transitions[:, 1:].sum(axis=0).astype(np.float64)
        return {g: float(n / into.sum()) for g, n in zip(self.groups, into, strict=True)}

    def chain(self) -> npt.NDArray[np.uint64]:
        """The transition counts with every session still open closed where it stands:
        its exit added from the page it is on. An open session's last page is known from
        the counts alone (flow conservation: what entered a group and has not left it,
        ``Σ_b n(b → a) − Σ_c n(a → c)``). Without this the chain would under-state exits,
        since steps count when they happen and exits only after the session timeout, and
        a short recording would send the load test deeper into the site than its visitors
        went. With every path complete, the chain's expected visits per group equal the
        recorded requests, so following it reproduces :meth:`page_mix`."""
        counts = self.transitions.astype(np.int64)
        still_there = counts[:, 1:].sum(axis=0) - counts[1:, :].sum(axis=1)
        chain = self.transitions.copy()
        chain[1:, 0] += np.maximum(still_there, 0).astype(np.uint64)
        return chain

    @property
    def open_sessions(self) -> int:
        """Sessions that had not ended when the snapshot was taken."""
        return int(self.chain()[:, 0].sum() - self.transitions[:, 0].sum())

    def probabilities(self) -> npt.NDArray[np.float64]:
        """Transition probabilities of :meth:`chain`, each row normalised (row 0: where
        sessions enter; column 0: leaving)."""
        counts = self.chain().astype(np.float64)
        out = counts.sum(axis=1, keepdims=True)
        probabilities: npt.NDArray[np.float64] = np.divide(
            counts, out, out=np.zeros_like(counts), where=out > 0)
        return probabilities

    def think_time(self, source: str, target: str) -> ThinkTime:
        """The think times observed from ``source`` to ``target`` (the shared histogram of
        untracked transitions when this one has none of its own)."""
        return self.think.get((source, target), self.other_think)

    @property
    def mean_think_s(self) -> float:
        """The mean think time over every step between two pages (exact)."""
        parts = [*self.think.values(), self.other_think]
        n = sum(t.n for t in parts)
        return sum(t.total_s for t in parts) / n if n else math.nan

    @property
    def sampled_think_s(self) -> float:
        """The mean think time a load generator following this plan waits: each
        transition's sampled mean, weighted by how often it is taken."""
        parts = [t for t in (*self.think.values(), self.other_think) if t.n]
        n = sum(t.n for t in parts)
        return sum(t.n * t.sampled_mean_s for t in parts) / n if n else math.nan

    @property
    def mean_pages(self) -> float:
        """Pages per session, over the sessions that started."""
        return self.requests / self.sessions if self.sessions else math.nan

    @property
    def mean_duration_s(self) -> float:
        """Mean session duration, ``W`` of Little's law: the time sessions spent (their
        latencies and think times) per session, open sessions closed where they stand as
        in :meth:`chain`. The mean over finished sessions alone (``session_duration``)
        favours short sessions in a recording not much longer than they last: long ones
        are still open. (Overlapping requests of one session count their time twice.)"""
        return self.session_time_s / self.sessions if self.sessions else math.nan

    def arrival_rates(self) -> tuple[float, ...]:
        """Sessions started per minute, for each of ``arrival_minutes``. A minute that the
        recording covers only in part (it started or was taken within it, by the
        snapshot's clock) counts its arrivals over the part covered, at least 10 s of it
        so that a sliver does not make a peak; a minute outside that range (replayed
        spans, whose clock is not the recorder's) counts as covered."""
        rates = []
        for minute, count in zip(self.arrival_minutes, self.arrival_counts, strict=True):
            begin, end = minute * 60e9, (minute + 1) * 60e9
            covered = min(end, self.taken_ns) - max(begin, self.started_ns)
            fraction = 1.0 if covered <= 0 else max(covered / 60e9, _MIN_COVERAGE)
            rates.append(count / min(fraction, 1.0))
        return tuple(rates)

    @property
    def peak_minute(self) -> int | None:
        """The epoch minute with the most session arrivals per minute (first of ties)."""
        if not self.arrival_counts:
            return None
        return self.arrival_minutes[int(np.argmax(self.arrival_rates()))]

    @property
    def peak_arrivals(self) -> float:
        """Session arrivals per minute in the peak minute."""
        return max(self.arrival_rates(), default=0.0)

    def concurrency(self, arrivals_per_minute: float | None = None) -> float:
        """Users needed for an arrival rate (default: the peak), by Little's law:
        ``L = λ W``, ``λ`` in sessions per second, ``W`` the mean session duration."""
        rate = self.peak_arrivals if arrivals_per_minute is None else arrivals_per_minute
        return rate / 60.0 * self.mean_duration_s

    @property
    def peak_users(self) -> int:
        """Concurrent users reproducing the peak minute: ``⌈L⌉``, at least 1."""
        users = self.concurrency()
        return max(1, math.ceil(users)) if math.isfinite(users) else 1

    @staticmethod
    def from_snapshot(snapshot: Snapshot) -> TestPlan:
        """The plan of ``snapshot``'s sessions; ``ValueError`` saying why when it holds
        none (sessions off, no ``session.id`` on spans, an empty recording)."""
        return _from_snapshot(snapshot)


def _from_snapshot(snapshot: Snapshot) -> TestPlan:
    sessions = snapshot.session_arrays
    if sessions is None or sessions.flow is None:
        raise ValueError("no session flow recorded: sessions were off (max_sessions=0) or "
                         "the state predates load-test plans")
    flow = sessions.flow
    if not flow.transitions.size or int(flow.transitions[0].sum()) == 0:
        raise ValueError("no sessions in this traffic: a plan needs request spans with a "
                         "session id (session.id, e.g. from a session cookie)")
    return _plan(snapshot, sessions, flow)


def _plan(snapshot: Snapshot, sessions: SessionArrays, flow: FlowArrays) -> TestPlan:
    counts = flow.transitions
    # Rows that some session visited; row 0 is entry and exit, kept always.
    visited = counts.sum(axis=0) + counts.sum(axis=1)
    rows = [0] + [r for r in range(1, counts.shape[0]) if visited[r]]
    names = tuple(OTHER_PAGES if sessions.groups[r] == OVERFLOW_GROUP else sessions.groups[r]
                  for r in rows[1:])
    state_name = dict(zip(rows, (ENTRY, *names), strict=True))
    think: dict[tuple[str, str], ThinkTime] = {}
    for k, (a, b) in enumerate(flow.think_pairs.tolist()):
        if a in state_name and b in state_name:
            think[state_name[a], state_name[b]] = ThinkTime(
                tuple(int(c) for c in flow.think[k]), float(flow.think_sum[k]))
    minutes, arrivals = _filled(flow)
    total = snapshot.total()
    finalised = int(flow.duration.sum())
    return TestPlan(
        groups=names,
        transitions=counts[np.ix_(rows, rows)].copy(),
        think=think,
        other_think=ThinkTime(tuple(int(c) for c in flow.think[-1]), float(flow.think_sum[-1])),
        session_pages=tuple(int(c) for c in sessions.table[0].sum(axis=(0, 2))[:PAGE_BINS]),
        session_duration=ThinkTime(tuple(int(c) for c in flow.duration),
                                   float(flow.duration_sum[0]) if finalised else 0.0),
        session_time_s=float(flow.think_sum.sum() + flow.latency_sum[0]),
        arrival_minutes=minutes,
        arrival_counts=arrivals,
        spans=total.count,
        started_ns=snapshot.started_ns,
        taken_ns=snapshot.taken_ns,
    )


def _filled(flow: FlowArrays) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Arrivals per minute from the first to the last, minutes without one as 0."""
    if not flow.arrival_minutes.size:
        return (), ()
    first, last = int(flow.arrival_minutes[0]), int(flow.arrival_minutes[-1])
    counts = np.zeros(last - first + 1, np.int64)
    counts[flow.arrival_minutes - first] = flow.arrival_counts.astype(np.int64)
    return tuple(range(first, last + 1)), tuple(int(c) for c in counts)
