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

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from .._periodic import Periodic
from ..aggregate.snapshot import KeyStats, Snapshot
from ..attributes import CAMPAIGN_ID, MISSING, PAGE_GROUP

_logger = logging.getLogger("bizops_otel")
OK, DEGRADED, FAILING, WARMING_UP = "ok", "degraded", "failing", "warming_up"


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


class CampaignHealth(NamedTuple):
    campaign: str
    state: str
    reason: str
    first_seen_ns: int
    recent: Figures
    own_baseline: Figures
    site_baseline: Figures


def figures(stats: KeyStats) -> Figures:
    count = stats.count
    return Figures(count, stats.quantile(0.95) if count else math.nan,
                   stats.errors / count if count else math.nan, stats.conversion_rate())


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


def assess(snapshot: Snapshot, first_seen: dict[str, int],
           limits: Thresholds | None = None,
           previous: Mapping[str, str] | None = None) -> list[CampaignHealth]:
    """Health of every campaign in ``snapshot``; ``first_seen`` (campaign -> ns) is kept
    up to date with campaigns seen for the first time, and ``previous`` (campaign ->
    state) gives the states of the last assessment, for hysteresis."""
    limits = limits or Thresholds()
    dimensions = snapshot.config.dimensions
    if CAMPAIGN_ID not in dimensions:
        return []
    at = dimensions.index(CAMPAIGN_ID)
    page_at = dimensions.index(PAGE_GROUP) if PAGE_GROUP in dimensions else None
    recent_snapshot = snapshot.recent()
    # One pass over the keys groups them by campaign and organic traffic by page, so a
    # pass costs O(keys), not O(campaigns × keys): a bot sending thousands of campaigns
    # must not buy the service's CPU.
    own_rows = snapshot.rows_by(lambda key: _campaign_of(key, at))
    recent_rows = recent_snapshot.rows_by(lambda key: _campaign_of(key, at))
    organic_rows = snapshot.rows_by(
        lambda key: (key[page_at] if page_at is not None else "") if key[at] == MISSING
        else None)
    pages_of: dict[str, set[str]] = {}
    if page_at is not None:
        for key in snapshot:
            if key[at] != MISSING:
                pages_of.setdefault(key[at], set()).add(key[page_at])
    campaigns = sorted({key[at] for key in snapshot} - {MISSING})
    site_of: dict[frozenset[str], Figures] = {}
    result = []
    for campaign in campaigns:
        first_seen.setdefault(campaign, snapshot.taken_ns)
        # The baseline is organic traffic (no campaign) on the pages this campaign's
        # traffic lands on: a campaign sends visitors to landing pages, which are faster
        # and convert differently than the site as a whole.
        pages = frozenset(pages_of.get(campaign, ()))
        site = site_of.get(pages)
        if site is None:
            chosen = ([row for page in pages for row in organic_rows.get(page, ())]
                      if page_at is not None else organic_rows.get("", []))
            site = site_of[pages] = figures(snapshot.total_of(chosen))
        recent_stats = recent_snapshot.total_of(recent_rows.get(campaign, []))
        recent = figures(recent_stats)
        histogram = recent_stats.histogram
        trials = int(histogram[1].sum() + histogram[2].sum())
        state, reason = _judge(recent, site, trials, limits,
                               (previous or {}).get(campaign, OK))
        own = figures(snapshot.total_of(own_rows.get(campaign, [])))
        result.append(CampaignHealth(campaign, state, reason, first_seen[campaign], recent,
                                     own, site))
    return result


def _campaign_of(key: tuple[str, ...], at: int) -> str | None:
    return key[at] if key[at] != MISSING else None


AlertCallback = Callable[[CampaignHealth], Any]


class CampaignMonitor:
    """Evaluates campaign health every ``interval`` seconds in a thread of its own and
    calls the callbacks when a campaign changes state. Callbacks never run on the
    request path, and one that raises is logged and does not stop the others."""

    def __init__(self, source: Callable[[], Snapshot | None], interval: float = 5.0,
                 limits: Thresholds | None = None) -> None:
        self._source = source
        self._limits = limits or Thresholds()
        self._callbacks: list[AlertCallback] = []
        self._states: dict[str, str] = {}
        self._first_seen: dict[str, int] = {}
        self._task = Periodic("bizops-otel-campaigns", interval, self.check,
                              "campaign health check failed")
        self.latest: list[CampaignHealth] = []

    def on_campaign_alert(self, callback: AlertCallback) -> AlertCallback:
        """Register ``callback(health)``; usable as a decorator."""
        self._callbacks.append(callback)
        return callback

    def check(self, snapshot: Snapshot | None = None) -> list[CampaignHealth]:
        """Evaluate once (the thread calls this); returns the campaigns' health."""
        snapshot = snapshot if snapshot is not None else self._source()
        if snapshot is None:
            return []
        self.latest = assess(snapshot, self._first_seen, self._limits, self._states)
        # A campaign whose keys all expired retires: forget its state, so the monitor's
        # memory follows the live keys and a return starts afresh.
        live = {health.campaign for health in self.latest}
        for retired in [c for c in self._first_seen if c not in live]:
            del self._first_seen[retired]
            self._states.pop(retired, None)
        for health in self.latest:
            previous = self._states.get(health.campaign, OK)
            if health.state == WARMING_UP:
                # Too little recent traffic to judge says nothing new: keep the last
                # verdict, so a lull does not reset it and re-alert afterwards.
                continue
            self._states[health.campaign] = health.state
            if health.state != previous:
                for callback in self._callbacks:
                    try:
                        callback(health)
                    except Exception:
                        _logger.exception("bizops-otel: a campaign alert callback raised")
        return self.latest

    def start(self) -> None:
        self._task.start()

    def restart_after_fork(self) -> None:
        """In a forked child: the parent's thread does not exist here; start a new one."""
        self._task = Periodic("bizops-otel-campaigns", self._task.interval, self.check,
                              "campaign health check failed")
        self._task.start()

    def stop(self) -> None:
        self._task.stop()
