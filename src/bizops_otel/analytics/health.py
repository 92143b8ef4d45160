"""Live campaign health: is the campaign that launched minutes ago slow, broken, or fine?

For each campaign, its recent window (requests, p95 latency, error rate, conversion rate)
is judged against the site's baseline: organic traffic (no campaign), all time, on the
page groups the campaign lands on. The campaign's own history is reported beside it.
A campaign needs a minimum of traffic before it is judged. A failing campaign recovers
only once its figures are back under half the failing thresholds (hysteresis), so a
campaign whose error rate hovers near one threshold does not flap. A monitor thread evaluates
the aggregator periodically, off the request path, and calls back on every change of
state, so an application can act: switch a flag off, roll back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .. import stats
from .._periodic import Periodic, PeriodicMonitor, call_each
from ..aggregate._layout import OUTCOME_CONVERTED, OUTCOME_NOT_CONVERTED, bucket_edges
from ..aggregate._state import StateArrays, group_rows, span_histograms, take_rows
from ..aggregate.snapshot import KeyStats, Snapshot
from ..attributes import CAMPAIGN_ID, MISSING, PAGE_GROUP

OK, DEGRADED, FAILING, WARMING_UP = "ok", "degraded", "failing", "warming_up"
_EDGES = bucket_edges()


@dataclass(frozen=True)
class Thresholds:
    """When a campaign's recent traffic counts as degraded or failing."""

    minimum_requests: int = 20
    failing_error_rate: float = 0.20
    degraded_error_rate: float = 0.05
    failing_latency_ratio: float = 5.0  # recent p95 over the site-wide p95
    degraded_latency_ratio: float = 2.0
    degraded_conversion_ratio: float = 0.5  # recent conversion over the site-wide one
    minimum_trials: int = 30
    #: A failing campaign stays failing until its figures fall under this fraction of
    #: the failing thresholds.
    recovery_fraction: float = 0.5


class Figures(NamedTuple):
    requests: int
    p95_s: float
    error_rate: float
    conversion_rate: float


#: Figures of a campaign with no traffic in the window.
_NOTHING = Figures(0, math.nan, math.nan, math.nan)
#: Rank of the verdicts that keep a quiet campaign judged; the rest rank after them.
_SEVERITY = {FAILING: 0, DEGRADED: 1}


class CampaignHealth(NamedTuple):
    campaign: str
    state: str
    reason: str
    first_seen_ns: int
    recent: Figures
    own_baseline: Figures
    site_baseline: Figures


def figures(stats: KeyStats) -> Figures:
    """The figures of one key or total; :func:`figures_of` gives the same for many."""
    count = stats.count
    return Figures(count, stats.quantile(0.95) if count else math.nan,
                   stats.errors / count if count else math.nan, stats.conversion_rate())


def figures_of(state: StateArrays) -> tuple[list[Figures], list[int]]:
    """:func:`figures` of every row of ``state`` at once (a total per campaign, per set
    of pages), and each row's trials (requests with an outcome, converted or not: what
    conversion is judged on). The same arithmetic: p95 by
    ``stats.histogram_quantiles_many`` over the rows' dense histograms, rates as ratios
    of the summed counts, nan where there is nothing to divide by."""
    counts, lo = span_histograms(state.block_row, state.block_code, state.block_counts,
                                 state.rows)
    count = state.count.astype(np.float64)
    converted = counts[:, OUTCOME_CONVERTED].sum(axis=1)
    trials = converted + counts[:, OUTCOME_NOT_CONVERTED].sum(axis=1)
    width = counts.shape[2]
    with np.errstate(invalid="ignore", divide="ignore"):
        errors = np.where(count > 0, state.errors / count, np.nan)
        conversion = np.where(trials > 0, converted / trials, np.nan)
        p95 = (stats.histogram_quantiles_many(counts.sum(axis=1), _EDGES[lo:lo + width + 1],
                                              (0.95,), lo)[0]
               if width else np.full(state.rows, np.nan))
    table = list(map(Figures._make, zip(state.count.tolist(),
                                        np.where(count > 0, p95, np.nan).tolist(),
                                        errors.tolist(), conversion.tolist(), strict=True)))
    return table, trials.astype(np.int64).tolist()


def _figures_of_rows(state: StateArrays, rows: list[int | None]
                     ) -> tuple[list[Figures], list[int]]:
    """:func:`figures_of` the given rows of ``state``; None: a campaign without any."""
    table, trials = figures_of(take_rows(state, np.array([r for r in rows if r is not None],
                                                         np.int64)))
    found = iter(zip(table, trials, strict=True))
    pairs = [(_NOTHING, 0) if row is None else next(found) for row in rows]
    return [f for f, _ in pairs], [t for _, t in pairs]


def _judge(recent: Figures, site: Figures, trials: int, limits: Thresholds,
           previous: str) -> tuple[str, str]:
    if recent.requests < limits.minimum_requests:
        return WARMING_UP, f"{recent.requests} requests so far"
    # Hysteresis: a failing campaign is held to lower thresholds until it recovers.
    scale = limits.recovery_fraction if previous == FAILING else 1.0
    if recent.error_rate >= scale * limits.failing_error_rate:
        return FAILING, f"error rate {recent.error_rate:.0%}"
    if site.p95_s > 0 and recent.p95_s >= scale * limits.failing_latency_ratio * site.p95_s:
        return FAILING, f"p95 {recent.p95_s * 1e3:.0f} ms, {recent.p95_s / site.p95_s:.1f}× site"
    if recent.error_rate >= max(limits.degraded_error_rate, 2 * site.error_rate):
        return DEGRADED, f"error rate {recent.error_rate:.0%}"
    if site.p95_s > 0 and recent.p95_s >= limits.degraded_latency_ratio * site.p95_s:
        return DEGRADED, f"p95 {recent.p95_s * 1e3:.0f} ms, {recent.p95_s / site.p95_s:.1f}× site"
    if (trials >= limits.minimum_trials and site.conversion_rate > 0
            and recent.conversion_rate < limits.degraded_conversion_ratio * site.conversion_rate):
        return DEGRADED, (f"conversion {recent.conversion_rate:.1%} against "
                          f"{site.conversion_rate:.1%} site-wide")
    return OK, "within baseline"


def rank(recent_requests: Mapping[str, int], previous: Mapping[str, str],
         limit: int | None = None) -> list[str]:
    """The campaigns a pass judges, best first: those with traffic in the recent window
    and those found degraded or failing before (whose verdict stands until traffic says
    otherwise), ranked by recent requests, most first, then failing before degraded before
    the rest, then by name; the first ``limit`` of them (None: all).

    Traffic ranks first because a campaign's traffic is what its breakage costs, and
    because traffic is what an attacker must pay for: one-off bot campaigns sit at the
    bottom and a campaign that recurs climbs above them. A campaign with neither recent
    traffic nor a bad verdict retires from the monitor; it comes back with its traffic.
    """
    names = list(recent_requests)
    requests = np.fromiter(recent_requests.values(), np.int64, len(names))
    flagged = {c: level for c, state in previous.items()
               if (level := _SEVERITY.get(state)) is not None}
    quiet = [c for c in flagged if c not in recent_requests]
    names += quiet
    requests = np.concatenate([requests, np.zeros(len(quiet), np.int64)])
    if not names:
        return []
    severity = np.full(len(names), len(_SEVERITY), np.int64)
    if flagged:
        position = {c: i for i, c in enumerate(names)}
        for campaign, level in flagged.items():
            severity[position[campaign]] = level
    # np.lexsort sorts by its last key first; names are unique, so the order is total.
    name_rank = np.argsort(np.argsort(np.array(names), kind="stable"), kind="stable")
    order = np.lexsort((name_rank, severity, -requests))[:limit]
    return [names[i] for i in order.tolist()]


def assess(snapshot: Snapshot, first_seen: dict[str, int],
           limits: Thresholds | None = None,
           previous: Mapping[str, str] | None = None,
           limit: int | None = None) -> list[CampaignHealth]:
    """Health of the campaigns of ``snapshot`` that :func:`rank` picks (``limit`` of them
    at most, None: no cap), in campaign order. ``previous`` (campaign -> state) gives the
    verdicts of the last assessment, for hysteresis and ranking. ``first_seen`` (campaign
    -> ns) is kept up to date: campaigns seen for the first time are added, and those no
    longer in the snapshot forgotten, so it stays as small as the key space.

    A pass costs O(keys) in vectorised work and O(``limit``) in Python, however many
    campaigns the snapshot holds: a bot sending thousands of campaigns must not buy the
    service's CPU.
    """
    limits = limits or Thresholds()
    previous = previous or {}
    config = snapshot.config
    if CAMPAIGN_ID not in config.dimensions:
        return []
    # Each grouping reads every key once and merges in one vectorised step.
    campaigns, own_state = snapshot.totals_by(CAMPAIGN_ID)
    own_row = {c: i for i, c in enumerate(campaigns) if c != MISSING}
    _remember(first_seen, own_row, snapshot.taken_ns)
    recent_campaigns, recent_state = snapshot.recent().totals_by(CAMPAIGN_ID)
    recent_row = {c: i for i, c in enumerate(recent_campaigns) if c != MISSING}
    requests = recent_state.count.tolist()
    chosen = rank({c: requests[i] for c, i in recent_row.items()},
                  {c: s for c, s in previous.items() if c in own_row}, limit)
    if not chosen:
        return []
    # Figures only for the campaigns judged: O(limit), whatever the number of campaigns.
    recent, trials = _figures_of_rows(recent_state, [recent_row.get(c) for c in chosen])
    own, _ = _figures_of_rows(own_state, [own_row[c] for c in chosen])
    if PAGE_GROUP in config.dimensions:
        sites = _site_baselines(snapshot, chosen)
    else:
        organic, _ = _figures_of_rows(own_state, [campaigns.index(MISSING)
                                                  if MISSING in campaigns else None])
        sites = organic * len(chosen)
    result = []
    for i, campaign in enumerate(chosen):
        state, reason = _judge(recent[i], sites[i], trials[i], limits,
                               previous.get(campaign, OK))
        result.append(CampaignHealth(campaign, state, reason, first_seen[campaign],
                                     recent[i], own[i], sites[i]))
    result.sort(key=lambda health: health.campaign)
    return result


def _remember(first_seen: dict[str, int], campaigns: Mapping[str, int], now_ns: int) -> None:
    for campaign in campaigns.keys() - first_seen.keys():
        first_seen[campaign] = now_ns
    if len(first_seen) > len(campaigns):
        for campaign in first_seen.keys() - campaigns.keys():
            del first_seen[campaign]


def _site_baselines(snapshot: Snapshot, chosen: list[str]) -> list[Figures]:
    """The baseline of each chosen campaign: organic traffic (no campaign), all time, on
    the page groups the campaign's traffic lands on. A campaign sends visitors to landing
    pages, which are faster and convert differently than the site as a whole. Campaigns
    landing on the same pages share one total."""
    dimensions = snapshot.config.dimensions
    at, page_at = dimensions.index(CAMPAIGN_ID), dimensions.index(PAGE_GROUP)
    pages, organic = snapshot.totals_by(PAGE_GROUP, where={CAMPAIGN_ID: MISSING})
    page_row = {page: i for i, page in enumerate(pages)}
    wanted = set(chosen)
    lands_on: dict[str, set[str]] = {}
    for key in snapshot:
        if key[at] in wanted:
            lands_on.setdefault(key[at], set()).add(key[page_at])
    set_index: dict[frozenset[str], int] = {}
    set_of = [set_index.setdefault(frozenset(lands_on.get(c, ())), len(set_index))
              for c in chosen]
    members = [(s, page_row[page]) for s, pages_of_set in enumerate(set_index)
               for page in pages_of_set if page in page_row]
    merged = group_rows(organic, np.array([row for _, row in members], np.int64),
                        np.array([s for s, _ in members], np.int64), organic.kpi_n.shape[1])
    table, _ = figures_of(merged)
    # A set of pages without organic traffic has no row of its own.
    row_of = {s: i for i, s in enumerate(merged.key_ids.tolist())}
    per_set = [table[row_of[s]] if s in row_of else _NOTHING for s in range(len(set_index))]
    return [per_set[s] for s in set_of]


AlertCallback = Callable[[CampaignHealth], Any]


class CampaignMonitor(PeriodicMonitor):
    """Evaluates campaign health every ``interval`` seconds in a thread of its own and
    calls the callbacks when a campaign changes state. Callbacks never run on the
    request path, and one that raises is logged and does not stop the others.

    A pass judges at most ``limit`` campaigns (see :func:`rank`); a campaign without
    recent traffic and without a bad verdict retires, and its state goes with it.
    """

    def __init__(self, source: Callable[[], Snapshot | None], interval: float = 5.0,
                 limits: Thresholds | None = None, limit: int | None = None) -> None:
        self._source = source
        self._limits = limits or Thresholds()
        self._limit = limit
        self._callbacks: list[AlertCallback] = []
        self._states: dict[str, str] = {}
        self._first_seen: dict[str, int] = {}
        self._task = Periodic("bizops-otel-campaigns", interval, self.check,
                              "campaign health check failed")
        self.latest: list[CampaignHealth] = []
        #: Seconds the last pass took, snapshot included (None before the first).
        self.last_pass_seconds: float | None = None

    def on_campaign_alert(self, callback: AlertCallback) -> AlertCallback:
        """Register ``callback(health)``; usable as a decorator."""
        self._callbacks.append(callback)
        return callback

    def check(self, snapshot: Snapshot | None = None) -> list[CampaignHealth]:
        """Evaluate once (the thread calls this); returns the campaigns' health."""
        started = time.perf_counter()
        snapshot = snapshot if snapshot is not None else self._source()
        if snapshot is None:
            return []
        self.latest = assess(snapshot, self._first_seen, self._limits, self._states,
                             self._limit)
        judged = set()
        for health in self.latest:
            judged.add(health.campaign)
            previous = self._states.get(health.campaign, OK)
            if health.state == WARMING_UP:
                # Too little recent traffic to judge says nothing new: keep the last
                # verdict, so a lull does not reset it and re-alert afterwards.
                continue
            self._states[health.campaign] = health.state
            if health.state != previous:
                call_each(self._callbacks, health, "a campaign alert")
        # Retired campaigns leave: an ok verdict not renewed is the default anyway, and a
        # campaign gone from the snapshot (its keys expired) has nothing left to judge.
        # So the states, like first_seen, never outgrow the key space.
        self._states = {c: s for c, s in self._states.items()
                        if c in self._first_seen and (s != OK or c in judged)}
        self.last_pass_seconds = time.perf_counter() - started
        return self.latest

