"""The demo's live view: page groups, campaigns, the A/B test and what-if, in 80 columns."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..aggregate.snapshot import Snapshot
from ..analytics.abtest import Comparison, compare
from ..analytics.health import CampaignHealth
from ..analytics.sessions import session_stats
from ..attributes import FEATURE_FLAG_VARIANT, PAGE_GROUP

WIDTH = 80


def _ms(seconds: float) -> str:
    return "-" if not math.isfinite(seconds) else f"{seconds * 1e3:,.0f} ms"


def _pct(rate: float) -> str:
    return "-" if not math.isfinite(rate) else f"{rate * 100:.1f}%"


def _points(change: float) -> str:
    """A change of a rate, in percentage points."""
    return "-" if not math.isfinite(change) else f"{change * 100:+.1f} pt"


def _score(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:+.3f}"


def page_table(snapshot: Snapshot) -> list[str]:
    """Page groups by Conversion Impact Score: what slowness costs, where."""
    lines = [f"{'page group':<14}{'requests':>9}{'p95':>10}{'sessions':>9}{'CIS':>8}"
             f"{'best load':>11}{'-100 ms':>10}", "-" * 71]
    sessions = session_stats(snapshot)
    dimensions = snapshot.config.dimensions
    ranked = [g.name for g in sessions.impact_ranking()]
    pages = {key[dimensions.index(PAGE_GROUP)] for key in snapshot} if (
        PAGE_GROUP in dimensions) else set()
    for name in [*ranked, *sorted(pages - set(ranked))]:
        if name is None:
            continue
        requests = snapshot.total(where={PAGE_GROUP: name})
        group = sessions.get(name)
        cis = best = change = math.nan
        finalised = 0
        if group is not None:
            finalised = group.sessions
            cis = group.conversion_impact
            best = group.curve().optimal_load_time
            change = group.whatif(-100).change
        lines.append(f"{name[:13]:<14}{requests.count:>9,}{_ms(requests.quantile(0.95)):>10}"
                     f"{finalised:>9,}{_score(cis):>8}{_ms(best):>11}"
                     f"{_points(change):>10}")
    return lines


def campaign_table(health: Sequence[CampaignHealth]) -> list[str]:
    lines = [f"{'campaign':<14}{'state':<11}{'recent':>7}{'p95':>10}{'errors':>8}  why",
             "-" * 71]
    for campaign in health:
        recent = campaign.recent
        why = campaign.reason if campaign.state != "ok" else ""
        lines.append(f"{campaign.campaign[:13]:<14}{campaign.state.upper():<11}"
                     f"{recent.requests:>7,}{_ms(recent.p95_s):>10}"
                     f"{_pct(recent.error_rate):>8}  {why[:WIDTH - 52]}")
    if not health:
        lines.append("(no campaign traffic yet)")
    return lines


def ab_line(snapshot: Snapshot) -> str:
    dimensions = snapshot.config.dimensions
    if FEATURE_FLAG_VARIANT not in dimensions:
        return ""
    at = dimensions.index(FEATURE_FLAG_VARIANT)
    variants = sorted({key[at] for key in snapshot} - {""})
    if len(variants) < 2:
        return "A/B: waiting for both variants"
    result: Comparison = compare(snapshot, variants[0], variants[1])
    conversion, latency = result.conversion, result.latency
    return (f"A/B {variants[1]} vs {variants[0]}: conversion "
            f"{_points(conversion.difference)} (p={conversion.p_value:.3f}), "
            f"latency {latency.difference * 1e3:+.0f} ms (p={latency.p_value:.2f})")


def whatif_line(snapshot: Snapshot) -> str:
    """What-if for the page where slowness costs most (the most negative CIS)."""
    ranking = [g for g in session_stats(snapshot).impact_ranking() if g.conversion_impact < 0]
    if not ranking:
        return "What-if: waiting for finished sessions with and without orders"
    name = ranking[0].name or ""
    projection = ranking[0].whatif(-100)
    if not math.isfinite(projection.change):
        return f"What-if on {name}: the model does not fit yet"
    return (f"100 ms faster on {name[:13]}: conversion "
            f"{_points(projection.change)} [{projection.low * 100:+.1f}, "
            f"{projection.high * 100:+.1f}], {projection.revenue_change:+,.0f} EUR")


def render(snapshot: Snapshot, health: Sequence[CampaignHealth], header: str) -> str:
    """The whole view as text no wider than 80 columns."""
    lines = [header[:WIDTH], "", *page_table(snapshot), "", *campaign_table(health), "",
             ab_line(snapshot), whatif_line(snapshot)]
    return "\n".join(line[:WIDTH] for line in lines)
