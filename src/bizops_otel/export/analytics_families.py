"""Business analytics as metric families: sessions, impact scores, what-if, campaign
health and A/B tests.

These are derived per-process gauges (plus two session counters), a handful of points per
page group, campaign or variant, so they are plain labelled points. The session families
label the all-pages row with ``bizops.session.scope="all"`` and page groups with
``"page_group"``; groups past the session-table limit carry ``otel.metric.overflow``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..aggregate._session_state import OVERFLOW_GROUP
from ..aggregate.snapshot import Snapshot
from ..analytics.abtest import compare, pairings
from ..analytics.guardrails import GuardrailSettings, looks
from ..analytics.health import DEGRADED, FAILING, OK, WARMING_UP, CampaignHealth
from ..analytics.sessions import DEFAULT_DELTAS_MS, GroupSessions, session_stats
from ..attributes import CAMPAIGN_ID, FEATURE_FLAG_KEY, FEATURE_FLAG_VARIANT, PAGE_GROUP
from .family import (
    BASELINE_LABEL,
    BOUND_LABEL,
    DELTA_LABEL,
    OUTCOME_LABEL,
    OVERFLOW_LABEL,
    QUANTILE_LABEL,
    SCOPE_LABEL,
    Family,
    Kind,
    Labels,
)

STATES = (OK, DEGRADED, FAILING, WARMING_UP)

# Journeys (funnels) ---------------------------------------------------------------------
JOURNEY_LABEL = "bizops.journey"
STEP_LABEL = "bizops.journey.step"
STEP_INDEX_LABEL = "bizops.journey.step_index"
#: entered / continued / dropped; not ``bizops.outcome``, which is a request's conversion.
JOURNEY_OUTCOME_LABEL = "bizops.journey.outcome"
#: Quantiles of the time to the next step, exported as gauges (as the latency quantiles).
STEP_TIME_QUANTILES = (0.5, 0.9)

JOURNEY_SPECS: tuple[tuple[str, Kind, str, str], ...] = (
    ("bizops.journey.step.sessions", "counter", "{session}",
     "Finalised sessions that reached the journey step in order (entered), and of those "
     "the ones that reached the next step (continued) or not (dropped)"),
    ("bizops.journey.step.time.quantile", "gauge", "s",
     "Quantiles of the time from reaching the step to reaching the next one"),
    ("bizops.journey.step.latency_correlation", "gauge", "{coefficient}",
     "Spearman correlation of the latency of the request reaching the step with going on "
     "to the next step; negative: slow steps lose sessions"),
)

#: (OTel name, kind, unit, description) of every analytics family.
SPECS: tuple[tuple[str, Kind, str, str], ...] = (
    ("bizops.sessions", "counter", "{session}", "Sessions finalised, by page group visited"),
    ("bizops.session.conversions", "counter", "{session}",
     "Finalised sessions that converted, by page group visited"),
    ("bizops.session.conversion_impact", "gauge", "{score}",
     "Conversion Impact Score: share of requests × Spearman(session latency, converted)"),
    ("bizops.session.activity_impact", "gauge", "{score}",
     "Activity Impact Score: share of requests × Spearman(session latency, pages)"),
    ("bizops.session.optimal_load_time", "gauge", "s",
     "Session latency at the peak of the conversion curve"),
    ("bizops.session.latency.mean", "gauge", "s",
     "Mean over sessions of their mean latency on the page group, by session outcome"),
    ("bizops.session.pages.mean", "gauge", "{page}",
     "Pages per session, over the sessions that visited the page group"),
    ("bizops.internal.sessions.open", "gauge", "{session}", "Sessions open in the table"),
    ("bizops.internal.sessions.evicted", "counter", "{session}",
     "Sessions finalised early because the session table was full"),
    ("bizops.whatif.conversion.change", "gauge", "{ratio}",
     "Projected change of the session conversion rate for a latency shift"),
    ("bizops.whatif.revenue.change", "gauge", "{currency}",
     "Projected revenue change for a latency shift, in the base currency"),
    ("bizops.campaign.health", "gauge", "{state}",
     "1 for the campaign's current health state, 0 for the others"),
    ("bizops.campaign.first_seen", "gauge", "s", "When the campaign was first seen (Unix time)"),
    ("bizops.campaign.requests", "gauge", "{request}",
     "Campaign requests in the recent window, or in its baseline"),
    ("bizops.campaign.latency.p95", "gauge", "s", "Campaign p95 latency, recent or baseline"),
    ("bizops.campaign.error.rate", "gauge", "{ratio}", "Campaign error rate, recent or baseline"),
    ("bizops.campaign.conversion.rate", "gauge", "{ratio}",
     "Campaign conversion rate, recent or baseline"),
    ("bizops.ab.difference", "gauge", "{difference}",
     "Variant minus control: conversion rate, latency (s), order value, or correlation"),
    ("bizops.ab.p_value", "gauge", "{p}", "Two-sided p-value of the variant's difference"),
    ("bizops.session.transitions", "counter", "{step}",
     "Steps of sessions from one page group to the next, entering and leaving included"),
    ("bizops.session.think_time.mean", "gauge", "s",
     "Mean think time of a transition between page groups (request start minus the "
     "previous end)"),
    ("bizops.guardrail.e_value", "gauge", "{ratio}",
     "Guardrail evidence that the variant is worse than its control (mSPRT e-value); "
     "alerts at 1/alpha"),
    *JOURNEY_SPECS,
)


def _point(families: dict[str, Family], name: str, labels: Labels, value: float) -> None:
    if math.isfinite(value):
        families[name].loose.append((labels, float(value)))


def _group_labels(group: GroupSessions) -> Labels:
    if group.name is None:
        return ((PAGE_GROUP, ""), (SCOPE_LABEL, "all"), (OVERFLOW_LABEL, ""))
    if group.name == OVERFLOW_GROUP:
        return ((PAGE_GROUP, ""), (SCOPE_LABEL, "page_group"), (OVERFLOW_LABEL, "true"))
    return ((PAGE_GROUP, group.name), (SCOPE_LABEL, "page_group"), (OVERFLOW_LABEL, ""))


def add_sessions(families: dict[str, Family], snapshot: Snapshot) -> None:
    if snapshot.session_arrays is None:
        return
    sessions = session_stats(snapshot)
    _point(families, "bizops.internal.sessions.open", (), sessions.open)
    _point(families, "bizops.internal.sessions.evicted", (), sessions.evicted)
    groups = [sessions.overall, *(sessions[name] for name in sessions)]
    if sessions.overflow is not None:
        groups.append(sessions.overflow)
    for group in groups:
        labels = _group_labels(group)
        _point(families, "bizops.sessions", labels, group.sessions)
        _point(families, "bizops.session.conversions", labels, group.converted)
        if group.sessions == 0:
            continue
        _point(families, "bizops.session.conversion_impact", labels, group.conversion_impact)
        _point(families, "bizops.session.activity_impact", labels, group.activity_impact)
        _point(families, "bizops.session.optimal_load_time", labels,
               group.curve().optimal_load_time)
        _point(families, "bizops.session.pages.mean", labels, group.pages_per_session)
        for outcome, converted in (("converted", True), ("not_converted", False)):
            _point(families, "bizops.session.latency.mean",
                   (*labels, (OUTCOME_LABEL, outcome)), group.mean_latency(converted))
        if not group.fit().converged:
            continue
        for delta in DEFAULT_DELTAS_MS:
            projection = group.whatif(delta)
            for bound, change, revenue in (
                    ("estimate", projection.change, projection.revenue_change),
                    ("low", projection.low, projection.revenue_low),
                    ("high", projection.high, projection.revenue_high)):
                extra = (*labels, (DELTA_LABEL, f"{delta:g}"), (BOUND_LABEL, bound))
                _point(families, "bizops.whatif.conversion.change", extra, change)
                _point(families, "bizops.whatif.revenue.change", extra, revenue)


def add_campaigns(families: dict[str, Family], health: Sequence[CampaignHealth]) -> None:
    for campaign in health:
        who = ((CAMPAIGN_ID, campaign.campaign),)
        for state in STATES:
            _point(families, "bizops.campaign.health", (*who, ("state", state)),
                   1.0 if campaign.state == state else 0.0)
        _point(families, "bizops.campaign.first_seen", who, campaign.first_seen_ns / 1e9)
        for baseline, figures in (("recent", campaign.recent), ("own", campaign.own_baseline),
                                  ("site", campaign.site_baseline)):
            labels = (*who, (BASELINE_LABEL, baseline))
            _point(families, "bizops.campaign.requests", labels, figures.requests)
            _point(families, "bizops.campaign.latency.p95", labels, figures.p95_s)
            _point(families, "bizops.campaign.error.rate", labels, figures.error_rate)
            _point(families, "bizops.campaign.conversion.rate", labels,
                   figures.conversion_rate)


def add_variants(families: dict[str, Family], snapshot: Snapshot) -> None:
    """Each variant against the control, the alphabetically first variant; per flag when
    ``feature_flag.key`` is a dimension too."""
    for flag, control, treatment in pairings(snapshot):
        result = compare(snapshot, control, treatment, flag=flag)
        flag_labels = ((FEATURE_FLAG_KEY, flag),) if flag is not None else ()
        tests = {"conversion": result.conversion, "latency": result.latency,
                 "order_value": result.order_value,
                 "correlation": result.latency_conversion_correlation}
        for test, outcome in tests.items():
            labels = (*flag_labels, (FEATURE_FLAG_VARIANT, treatment),
                      ("bizops.ab.control", control), ("bizops.ab.test", test))
            _point(families, "bizops.ab.difference", labels, outcome.difference)
            _point(families, "bizops.ab.p_value", labels, outcome.p_value)


def add_guardrails(families: dict[str, Family], snapshot: Snapshot) -> None:
    """Each guardrail comparison's evidence now, under the configuration's settings: the
    variant monitor alerts when it first reaches 1 / ``guardrail_alpha``, and its always-valid
    p-value is 1 / the largest value seen, which Prometheus can keep too."""
    for look in looks(snapshot, GuardrailSettings.of(snapshot.config)):
        flag_labels = ((FEATURE_FLAG_KEY, look.flag),) if look.flag is not None else ()
        labels = (*flag_labels, (FEATURE_FLAG_VARIANT, look.treatment.variant),
                  ("bizops.ab.control", look.control.variant),
                  ("bizops.guardrail.metric", look.metric))
        _point(families, "bizops.guardrail.e_value", labels, look.e_value)


def add_journeys(families: dict[str, Family], snapshot: Snapshot) -> None:
    """Every configured journey's steps: the session counters always (zero ones too, so
    that rates start at once), the derived gauges where they are defined."""
    for funnel in snapshot.journeys().values():
        for step in funnel.steps:
            labels = ((JOURNEY_LABEL, funnel.name), (STEP_LABEL, step.name),
                      (STEP_INDEX_LABEL, str(step.index)))
            counts = {"entered": step.entered}
            if step.continued is not None and step.dropped is not None:
                counts.update(continued=step.continued, dropped=step.dropped)
            for outcome, count in counts.items():
                _point(families, "bizops.journey.step.sessions",
                       (*labels, (JOURNEY_OUTCOME_LABEL, outcome)), count)
            if step.is_last:
                continue
            for q in STEP_TIME_QUANTILES:
                _point(families, "bizops.journey.step.time.quantile",
                       (*labels, (QUANTILE_LABEL, f"{q:g}")), step.seconds_to_next(q))
            _point(families, "bizops.journey.step.latency_correlation", labels,
                   step.latency_correlation)


#: Labels of a session-flow transition; the entry, the exit and the page groups past the
#: tracked ones are named as below.
FROM_LABEL, TO_LABEL = "bizops.transition.from", "bizops.transition.to"
ENTRY, EXIT, OTHER_GROUPS = "(entry)", "(exit)", "(overflow)"


def add_flow(families: dict[str, Family], snapshot: Snapshot) -> None:
    """The session flow the load-test plan is made of: every transition seen between page
    groups (from the entry, to the exit) as a counter, and the mean think time of each
    transition that has a histogram of its own. At most (64 + 2)² series, in practice the
    few dozen transitions a site's sessions take."""
    arrays = snapshot.session_arrays
    flow = None if arrays is None else arrays.flow
    if arrays is None or flow is None:
        return

    def name(row: int, end: str) -> str:
        group = arrays.groups[row]
        return end if row == 0 else OTHER_GROUPS if group == OVERFLOW_GROUP else group

    for a, b in zip(*np.nonzero(flow.transitions), strict=True):
        labels = ((FROM_LABEL, name(int(a), ENTRY)), (TO_LABEL, name(int(b), EXIT)))
        _point(families, "bizops.session.transitions", labels, float(flow.transitions[a, b]))
    for k, (a, b) in enumerate(flow.think_pairs.tolist()):
        count = float(flow.think[k].sum())
        if count:
            labels = ((FROM_LABEL, name(a, ENTRY)), (TO_LABEL, name(b, EXIT)))
            _point(families, "bizops.session.think_time.mean", labels,
                   float(flow.think_sum[k]) / count)
