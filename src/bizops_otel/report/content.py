"""What the report shows, read from a snapshot through the analytics functions.

Nothing here computes a statistic: impact scores, curves, what-ifs, campaign health and
A/B tests come from ``bizops_otel.analytics``; this module only chooses which of them a
reader needs, in which order, and says the headline in words.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from ..aggregate.snapshot import KeyStats, Snapshot
from ..analytics.abtest import Comparison, compare, pairings
from ..analytics.health import FAILING, CampaignHealth
from ..analytics.sessions import (
    DEFAULT_DELTAS_MS,
    GroupSessions,
    Projection,
    SessionStats,
    session_stats,
)
from ..attributes import PAGE_GROUP

#: Finished sessions a page group needs before its scores are ranked and its what-if told.
MIN_SESSIONS = 200
#: Seconds in a day, for revenue at the observed traffic.
DAY_S = 86_400.0
#: The shortest observed period whose traffic is scaled to a day.
MIN_PERIOD_S = 600.0
#: A campaign state change: (Unix ns, state).
StateChange = tuple[int, str]


class Group(NamedTuple):
    """A page group (or, with ``name`` None, all pages) as the report shows it."""

    name: str | None
    sessions: GroupSessions
    requests: KeyStats
    projections: tuple[Projection, ...]

    @property
    def label(self) -> str:
        return "all pages" if self.name is None else self.name

    @property
    def enough(self) -> bool:
        return self.sessions.sessions >= MIN_SESSIONS


class Variants(NamedTuple):
    """One treatment against the control, within one flag (None: variants alone)."""

    flag: str | None
    comparison: Comparison


class Report(NamedTuple):
    title: str
    snapshot: Snapshot
    stats: SessionStats
    overall: Group
    #: Page groups by Conversion Impact Score, most costly slowness first.
    ranked: tuple[Group, ...]
    campaigns: tuple[CampaignHealth, ...]
    #: Campaign -> its state changes, oldest first, where the source kept them.
    timeline: Mapping[str, Sequence[StateChange]]
    variants: tuple[Variants, ...]
    #: Seconds of traffic the data covers (nan: unknown), for revenue per day.
    period_s: float
    summary: tuple[str, ...]


def _group(snapshot: Snapshot, sessions: GroupSessions) -> Group:
    name = sessions.name
    requests = (snapshot.total() if name is None or PAGE_GROUP not in snapshot.config.dimensions
                else snapshot.total(where={PAGE_GROUP: name}))
    projections = (tuple(sessions.whatif(delta) for delta in DEFAULT_DELTAS_MS)
                   if sessions.sessions and sessions.fit().converged else ())
    return Group(name, sessions, requests, projections)


def variant_comparisons(snapshot: Snapshot) -> tuple[Variants, ...]:
    """Each variant against the control (the alphabetically first), per flag when
    ``feature_flag.key`` is a dimension, as the exported A/B families pair them."""
    return tuple(Variants(p.flag, compare(snapshot, p.control, p.treatment, flag=p.flag))
                 for p in pairings(snapshot))


def build(snapshot: Snapshot, health: Sequence[CampaignHealth], title: str,
          period_s: float = math.nan,
          timeline: Mapping[str, Sequence[StateChange]] | None = None) -> Report:
    """The report of ``snapshot``, with the campaign ``health`` judged on it."""
    stats = session_stats(snapshot)
    overall = _group(snapshot, stats.overall)
    ranked = tuple(_group(snapshot, g) for g in stats.impact_ranking())
    variants = variant_comparisons(snapshot)
    report = Report(title, snapshot, stats, overall, ranked, tuple(health), timeline or {},
                    variants, period_s, ())
    return report._replace(summary=tuple(summarise(report)))


# The summary ------------------------------------------------------------------------------
def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.0f} ms"


def _money(amount: float) -> str:
    return f"{amount:+,.0f} EUR"


def costliest(report: Report) -> Group | None:
    """The page group where slowness costs most conversions: the most negative impact
    score among the groups with enough sessions and a fitted what-if."""
    for group in report.ranked:
        score = group.sessions.conversion_impact
        if group.enough and group.projections and math.isfinite(score) and score < 0:
            return group
    return None


def _revenue_phrase(report: Report, projection: Projection) -> str:
    if not math.isfinite(projection.revenue_change):
        return ""
    if math.isfinite(report.period_s) and report.period_s >= MIN_PERIOD_S:
        per_day = projection.revenue_change * DAY_S / report.period_s
        return f", roughly {_money(per_day)} per day at the traffic observed"
    return (f", roughly {_money(projection.revenue_change)} over the "
            f"{projection.sessions:,} sessions observed")


def summarise(report: Report) -> list[str]:
    """The headline in plain words: where slowness costs most and what 100 ms is worth,
    where visitors convert best, campaigns in trouble, and the A/B verdict."""
    lines = []
    group = costliest(report)
    if group is None:
        lines.append("No page group shows yet that slowness costs conversions: too few "
                     "finished sessions with and without orders, or no effect.")
    else:
        faster = next(p for p in group.projections if p.delta_s == -0.1)
        lines.append(f"{group.label.capitalize()} is where slowness costs most: 100 ms faster "
                     f"would add about {faster.change * 100:+.1f} points of conversion "
                     f"(95% interval {faster.low * 100:+.1f} to {faster.high * 100:+.1f})"
                     f"{_revenue_phrase(report, faster)}.")
    optimal = report.overall.sessions.curve().optimal_load_time
    if math.isfinite(optimal):
        lines.append(f"Across all pages, visitors convert best at about {_ms(optimal)} of "
                     f"load time.")
    failing = [c for c in report.campaigns if c.state == FAILING]
    for campaign in failing:
        lines.append(f"Campaign {campaign.campaign} is failing: {campaign.reason}.")
    if report.campaigns and not failing:
        lines.append(f"{len(report.campaigns)} campaign(s) watched, none failing.")
    for variants in report.variants:
        result = variants.comparison
        test = result.conversion
        if not math.isfinite(test.p_value):
            continue
        verdict = ("a significant" if test.p_value < 0.05 else "no significant")
        p = "p < 0.001" if test.p_value < 0.001 else f"p = {test.p_value:.3f}"
        lines.append(f"Variant {result.treatment} against {result.control}: {verdict} "
                     f"difference in conversion ({test.difference * 100:+.1f} points, {p}).")
    return lines
