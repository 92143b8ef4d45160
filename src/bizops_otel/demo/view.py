"""The demo's live view: page groups, campaigns, the A/B test, its guardrails and what-if,
in 80 columns."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..aggregate.snapshot import Snapshot
from ..analytics.abtest import Comparison, compare
from ..analytics.guardrails import CONVERSION, LATENCY, VariantAlert, VariantMonitor
from ..analytics.health import CampaignHealth
from ..analytics.sessions import GroupSessions, session_stats
from ..analytics.significance import trials_to_detect
from ..analytics.testplan import TestPlan
from ..attributes import FEATURE_FLAG_KEY, FEATURE_FLAG_VARIANT, PAGE_GROUP

WIDTH = 80
#: Finished sessions a page group needs before its impact score is shown.
MIN_SESSIONS = 200
#: Widest 95% interval (half-width, in conversion-rate points) a what-if may have to be
#: shown: wider, it says nothing a reader should act on.
WHATIF_HALF_WIDTH = 0.01
#: The lift the A/B line says it has (or lacks) the power to detect: the demo plants 15%.
AB_LIFT = 0.15


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
            if finalised >= MIN_SESSIONS:
                cis = group.conversion_impact
                best = _reliable_optimum(group)
                change = _narrow_whatif(group)
        lines.append(f"{name[:13]:<14}{requests.count:>9,}{_ms(requests.quantile(0.95)):>10}"
                     f"{finalised:>9,}{_score(cis):>8}{_ms(best):>11}"
                     f"{_points(change):>10}")
    lines.append(f"(-: too few sessions, or an interval over ±{WHATIF_HALF_WIDTH * 100:.0f} pt)")
    return lines


def _reliable_optimum(group: GroupSessions) -> float:
    """The optimal load time, when the curve's peak bucket holds enough sessions."""
    curve = group.curve()
    if not math.isfinite(curve.optimal_load_time):
        return math.nan
    bucket = int(np.searchsorted(curve.edges, curve.optimal_load_time, side="right")) - 1
    return curve.optimal_load_time if curve.reliable[bucket] else math.nan


def _narrow_whatif(group: GroupSessions, delta_ms: float = -100.0) -> float:
    """The what-if change, when its interval is narrow enough to act on."""
    projection = group.whatif(delta_ms)
    if not (projection.high - projection.low) / 2.0 <= WHATIF_HALF_WIDTH:
        return math.nan
    return float(projection.change)


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
    line = (f"A/B {variants[1]} vs {variants[0]}: conversion "
            f"{_points(conversion.difference)} (p={conversion.p_value:.3f}), "
            f"page latency {latency.difference * 1e3:+.0f} ms (p={latency.p_value:.2f})")
    if conversion.p_value < 0.05:
        return line
    # Not significant: say whether that means "no effect" or "too few trials yet".
    control = snapshot.total(where={FEATURE_FLAG_VARIANT: variants[0]}).conversion_by_latency()
    trials = float(control.trials.sum())
    rate = float(control.conversions.sum()) / trials if trials else math.nan
    needed = trials_to_detect(rate, AB_LIFT)
    if math.isfinite(needed) and trials < needed:
        return (line + f"\n  underpowered: {trials:,.0f} trials per variant of the "
                f"{needed:,.0f} needed to detect a {AB_LIFT:.0%} lift")
    return line


def _evidence(alert: VariantAlert) -> str:
    low, high = alert.interval
    if alert.metric == CONVERSION:
        return (f"{_points(alert.estimate)} [{low * 100:+.1f}, {high * 100:+.1f}]")
    return f"{alert.estimate * 1e3:+,.0f} ms [{low * 1e3:+,.0f}, {high * 1e3:+,.0f}]"


def guardrail_line(snapshot: Snapshot, monitor: VariantMonitor | None) -> str:
    """The variant guardrails: each alert with its evidence, or the always-valid p-values
    of the first two variants so far."""
    if monitor is None:
        return ""
    if monitor.alerts:
        return "\n".join(
            f"GUARDRAIL {a.treatment} vs {a.control}: worse on {a.metric}, {_evidence(a)}, "
            f"p={a.p_value:.4f}" for a in monitor.alerts[-2:])
    dimensions = snapshot.config.dimensions
    at = dimensions.index(FEATURE_FLAG_VARIANT)
    flag_at = dimensions.index(FEATURE_FLAG_KEY) if FEATURE_FLAG_KEY in dimensions else None
    arms = sorted({(None if flag_at is None else key[flag_at], key[at]) for key in snapshot
                   if key[at]}, key=lambda arm: (arm[0] or "", arm[1]))
    if len(arms) < 2 or arms[0][0] != arms[1][0]:
        return ""
    (flag, control), (_, treatment) = arms[0], arms[1]
    p = {m: monitor.guard.p_value(flag, control, treatment, m) for m in (CONVERSION, LATENCY)}
    return (f"Guardrails {treatment} vs {control}: no alert (always-valid p: conversion "
            f"{p[CONVERSION]:.2f}, latency {p[LATENCY]:.2f})")


def whatif_line(snapshot: Snapshot) -> str:
    """What-if for the page where slowness costs most (the most negative CIS)."""
    ranking = [g for g in session_stats(snapshot).impact_ranking() if g.conversion_impact < 0]
    if not ranking:
        return "What-if: waiting for finished sessions with and without orders"
    name = ranking[0].name or ""
    projection = ranking[0].whatif(-100)
    if not math.isfinite(projection.change):
        return f"What-if on {name}: the model does not fit yet"
    half_width = (projection.high - projection.low) / 2.0
    if not half_width <= WHATIF_HALF_WIDTH:
        return (f"What-if on {name[:13]}: interval ±{half_width * 100:.1f} pt, wider than "
                f"±{WHATIF_HALF_WIDTH * 100:.0f} pt; waiting for more sessions")
    return (f"100 ms faster on {name[:13]}: conversion "
            f"{_points(projection.change)} [{projection.low * 100:+.1f}, "
            f"{projection.high * 100:+.1f}], {projection.revenue_change:+,.0f} EUR")


def objective_lines(snapshot: Snapshot) -> list[str]:
    """One line per configured operation: compliance against its objective, the error
    budget left, and how fast the recent window burns it."""
    lines = []
    for objective in snapshot.objectives().values():
        if not objective.total:
            lines.append(f"objective {objective.name}: no requests yet")
            continue
        burn = objective.burn_rate
        lines.append(
            f"objective {objective.name}: {objective.compliance:.2%} ≤ "
            f"{objective.threshold:g} s (target {objective.target:.1%}), budget "
            f"{objective.budget_left:+.0%}, burn {'-' if math.isnan(burn) else f'{burn:.1f}'}")
    return lines


def journey_lines(snapshot: Snapshot) -> list[str]:
    """Each journey's funnel: sessions per step, how many go on (95% interval), the
    median time to the next step and the step latency's correlation with going on; then
    the step losing the largest share, and whether its slowness goes with it."""
    lines: list[str] = []
    for funnel in snapshot.journeys().values():
        lines += [f"{'journey ' + funnel.name[:22]:<30}{'sessions':>9}{'go on':>8}"
                  f"{'95% CI':>15}{'next in':>9}{'ρ lat':>8}", "-" * 79]
        for step in funnel.steps:
            name = f"  {step.index} {step.name[:24]}"
            if step.is_last:
                lines.append(f"{name:<30}{step.entered:>9,}")
                continue
            interval = (f"{step.conversion_low * 100:.1f}–{step.conversion_high * 100:.1f}%"
                        if step.entered else "-")
            median = step.median_seconds_to_next
            lines.append(f"{name:<30}{step.entered:>9,}{_pct(step.conversion):>8}"
                         f"{interval:>15}{'-' if math.isnan(median) else f'{median:.1f} s':>9}"
                         f"{_score(step.latency_correlation):>8}")
        drop = funnel.biggest_drop()
        if drop is not None and drop.step.entered >= MIN_SESSIONS:
            why = ("slow requests there drop more" if drop.latency_explains
                   else "latency does not explain it")
            lines.append(f"Biggest drop: {drop.step.name[:16]} → {drop.next_step[:16]}, "
                         f"{1 - drop.step.conversion:.0%} leave; {why}")
        # Where slowness goes with leaving, which need not be where most leave.
        costly = [s for s in funnel.steps if not s.is_last and s.entered >= MIN_SESSIONS
                  and s.latency_significant and s.latency_correlation < 0]
        if costly:
            worst = min(costly, key=lambda s: s.latency_correlation)
            lines.append(f"Slow {worst.name[:16]} loses sessions: {1 - worst.conversion:.0%} "
                         f"leave, ρ(latency, going on) {worst.latency_correlation:+.2f}")
    return lines


def testplan_lines(snapshot: Snapshot) -> list[str]:
    """The load-test plan in brief: page mix, peak arrivals and the users to reproduce it
    (the Locust file itself is at /bizops/testplan)."""
    try:
        plan = TestPlan.from_snapshot(snapshot)
    except ValueError:
        return []
    mix = " · ".join(f"{group[:10]} {share * 100:.0f}%" for group, share in
                     sorted(plan.page_mix().items(), key=lambda item: -item[1]))
    users = f"{plan.peak_users:,} users"
    return [f"Load test plan: {mix}",
            f"  peak {plan.peak_arrivals:,.0f} sessions/min, {plan.mean_pages:.1f} pages, think "
            f"{plan.mean_think_s:.1f} s: {users} (/bizops/testplan)"]


def render(snapshot: Snapshot, health: Sequence[CampaignHealth], header: str,
           guardrails: VariantMonitor | None = None) -> str:
    """The whole view as text no wider than 80 columns."""
    lines = [*header.splitlines(), "", *page_table(snapshot), "", *campaign_table(health), "",
             *ab_line(snapshot).splitlines(), *guardrail_line(snapshot, guardrails).splitlines(),
             whatif_line(snapshot), *objective_lines(snapshot)]
    funnels = journey_lines(snapshot)
    if funnels:
        lines += ["", *funnels]
    lines += testplan_lines(snapshot)
    return "\n".join(line[:WIDTH] for line in lines)
