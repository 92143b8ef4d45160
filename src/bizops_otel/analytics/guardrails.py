"""Guardrails that act: is a feature-flag variant hurting conversion or latency?

A monitor looks at the cumulative state every few seconds, for as long as the service
runs, and compares each variant of each flag with its control. A test repeated at every
look at a fixed level would raise false alarms at a rate that grows with the number of
looks; an alpha-spending rule (O'Brien–Fleming, Pocock) needs the number of looks or the
final sample planned in advance, which a live service does not have. So each comparison
is a **mixture sequential probability ratio test** (mSPRT, one-sided, normal mixture;
:func:`bizops_otel.analytics.significance.harm_e_value`): its chance of ever alerting on a
variant no worse than its control is at most ``alpha``, however many looks there are and
whenever they happen, and a variant that does hurt is caught as soon as its evidence
crosses ``1/alpha``.

Each arm must hold ``minimum_samples`` observations of what its test uses before it is
judged: outcomes (sessions that reached one) for conversion, requests in a page group for
latency (a group enters the latency test once both arms have that many there).
Conversion is compared on the outcomes (as :mod:`.abtest` does), latency within each page
group, the groups combined by inverse-variance weights (:func:`.abtest.combine`), so a
variant that sends more visitors on to slow pages does not look slower. The mixture's scale
is ``effect`` times the control's level: the harm the test is tuned to catch fastest.

An alert carries its evidence (:class:`VariantAlert`) and is raised once per comparison:
the always-valid p-value only falls as evidence accumulates.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .._periodic import Periodic, PeriodicMonitor, call_each
from ..aggregate.snapshot import Snapshot
from ..attributes import FEATURE_FLAG_VARIANT
from ..config import Config
from . import significance
from .abtest import Arm, Moments, combine, every_arm

CONVERSION, LATENCY = "conversion", "latency"
METRICS = (CONVERSION, LATENCY)


@dataclass(frozen=True)
class GuardrailSettings:
    """How variants are judged; validated by :class:`bizops_otel.Config` when they come
    from there (``guardrail_*``)."""

    #: Chance that a variant no worse than its control ever alerts, per comparison and
    #: metric, over every look.
    alpha: float = 0.05
    #: Observations each arm needs before it is judged.
    minimum_samples: int = 200
    #: The relative harm the test is tuned to catch fastest (the mixture's scale, as a
    #: fraction of the control's conversion rate or mean latency).
    effect: float = 0.10
    metrics: tuple[str, ...] = METRICS
    #: The control variant of every flag; None: each flag's alphabetically first variant.
    control: str | None = None

    @staticmethod
    def of(config: Config) -> GuardrailSettings:
        """The settings a configuration gives (its ``guardrail_*`` fields)."""
        return GuardrailSettings(config.guardrail_alpha, config.guardrail_min_samples,
                                 config.guardrail_effect, config.guardrail_metrics,
                                 config.guardrail_control)


@dataclass(frozen=True)
class VariantAlert:
    """The evidence that ``treatment`` is worse than ``control`` on ``metric``."""

    #: The flag (``feature_flag.key``), None when it is not a dimension.
    flag: str | None
    control: str
    treatment: str
    #: "conversion" or "latency".
    metric: str
    #: Treatment minus control: a conversion rate difference (negative hurts) or seconds
    #: of latency (positive hurts), within page groups for latency.
    estimate: float
    #: An always-valid interval for the estimate, at ``confidence``: it holds at every
    #: look at once, so it is wider than a one-look interval.
    interval: tuple[float, float]
    confidence: float
    #: The always-valid p-value: 1 / the largest e-value seen, over every look so far.
    p_value: float
    #: The mSPRT likelihood ratio at this look; the alert fires when it reaches 1/alpha.
    e_value: float
    #: Sessions with an outcome, control and treatment.
    sessions: tuple[int, int]
    #: What the test used: outcomes for conversion, requests for latency.
    samples: tuple[int, int]
    #: The snapshot's time, ns since the epoch.
    time_ns: int

    kind = "variant"


class _Test(NamedTuple):
    """One metric of one comparison at one look."""

    estimate: float  # treatment − control
    harm: float  # the estimate signed so that positive hurts
    variance: float
    scale: float  # the mixture's τ
    samples: tuple[int, int]


def _conversion(control: Arm, treatment: Arm, settings: GuardrailSettings) -> _Test:
    """Difference of the outcomes' conversion rates, unpooled variance."""
    p_c = control.conversions / control.outcomes if control.outcomes else math.nan
    p_t = treatment.conversions / treatment.outcomes if treatment.outcomes else math.nan
    variance = (p_c * (1 - p_c) / control.outcomes + p_t * (1 - p_t) / treatment.outcomes
                if control.outcomes and treatment.outcomes else math.nan)
    return _Test(p_t - p_c, p_c - p_t, variance, settings.effect * p_c,
                 (control.outcomes, treatment.outcomes))


def _enough(moments: Moments, keep: set[str]) -> Moments:
    """The rows of the page groups in ``keep``."""
    chosen = [i for i, group in enumerate(moments.groups) if group in keep]
    pick = np.array(chosen, np.int64)
    return Moments(tuple(moments.groups[i] for i in chosen), moments.n[pick],
                   moments.mean[pick], moments.variance[pick])


def _latency(control: Arm, treatment: Arm, settings: GuardrailSettings) -> _Test:
    """Latency difference within page groups, combined by inverse-variance weights, over
    the groups where both arms hold ``minimum_samples`` requests: with fewer, skewed
    latencies make a group's variance, and so its weight, move with its mean, which
    biases the combination and inflates early false alarms."""
    minimum = settings.minimum_samples
    counts = [dict(zip(arm.latency.groups, arm.latency.n.tolist(), strict=True))
              for arm in (control, treatment)]
    keep = {g for g, n in counts[0].items() if n >= minimum and counts[1].get(g, 0) >= minimum}
    a, b = _enough(control.latency, keep), _enough(treatment.latency, keep)
    combined = combine(a, b)
    level = float((a.n * a.mean).sum() / a.n.sum()) if keep else math.nan
    samples = (int(a.n.sum()), int(b.n.sum())) if keep else (0, 0)
    return _Test(combined.difference, combined.difference, combined.variance,
                 settings.effect * level, samples)


_TESTS: dict[str, Callable[[Arm, Arm, GuardrailSettings], _Test]] = {
    CONVERSION: _conversion, LATENCY: _latency}
_Name = tuple[str | None, str, str, str]  # flag, control, treatment, metric
#: Alerts a monitor remembers for its ``alerts`` list.
REMEMBERED = 1000


class Look(NamedTuple):
    """One comparison at one snapshot: its test, and the mSPRT e-value of harm (NaN until
    both arms hold ``minimum_samples``, or when the test cannot be computed)."""

    flag: str | None
    control: Arm
    treatment: Arm
    metric: str
    test: _Test
    e_value: float

    @property
    def name(self) -> _Name:
        return (self.flag, self.control.variant, self.treatment.variant, self.metric)


def _pairs(arms: list[Arm], control: str | None) -> list[tuple[Arm, Arm]]:
    """Each flag's control arm with each of its other arms (the control named, else the
    flag's alphabetically first variant)."""
    by_flag: dict[str | None, list[Arm]] = {}
    for arm in arms:
        by_flag.setdefault(arm.flag, []).append(arm)
    pairs = []
    for found in by_flag.values():
        named = {arm.variant: arm for arm in found}
        chosen = min(named) if control is None else control
        if chosen not in named:
            continue
        pairs += [(named[chosen], arm) for v, arm in sorted(named.items()) if v != chosen]
    return pairs


def looks(snapshot: Snapshot, settings: GuardrailSettings) -> list[Look]:
    """Every comparison the guardrails make at ``snapshot``, with its evidence now.

    Stateless: the e-value depends on the snapshot's counts alone. What a look adds to it
    is the running minimum of the p-value, which :class:`VariantGuard` (or Prometheus, from
    the exported e-value: ``1 / max_over_time(...)``) keeps."""
    config = snapshot.config
    if FEATURE_FLAG_VARIANT not in config.dimensions or config.outcome is None:
        return []
    found = []
    for control, treatment in _pairs(every_arm(snapshot), settings.control):
        for metric in settings.metrics:
            test = _TESTS[metric](control, treatment, settings)
            e_value = (math.nan if min(test.samples) < settings.minimum_samples else
                       significance.harm_e_value(test.harm, test.variance, test.scale))
            found.append(Look(control.flag, control, treatment, metric, test, e_value))
    return found


class VariantGuard:
    """The state of the sequential tests between looks: each comparison's smallest
    always-valid p-value and whether it alerted. It keeps only comparisons present in
    the last snapshot, so it never outgrows the key space."""

    def __init__(self, settings: GuardrailSettings | None = None) -> None:
        self.settings = settings or GuardrailSettings()
        self._lowest_p: dict[_Name, float] = {}
        self._alerted: set[_Name] = set()

    def assess(self, snapshot: Snapshot) -> list[VariantAlert]:
        """One look: the comparisons that cross the alert threshold now, each once."""
        settings = self.settings
        threshold = 1.0 / settings.alpha
        seen: set[_Name] = set()
        alerts = []
        for look in looks(snapshot, settings):
            name, test, e_value = look.name, look.test, look.e_value
            seen.add(name)
            if math.isnan(e_value):
                continue
            lowest = min(self._lowest_p.get(name, 1.0), 1.0 / e_value if e_value > 0 else 1.0)
            self._lowest_p[name] = lowest
            if e_value < threshold or name in self._alerted:
                continue
            self._alerted.add(name)
            confidence = max(0.0, 1.0 - 2.0 * settings.alpha)
            interval = significance.confidence_sequence(
                test.estimate, test.variance, test.scale, 2.0 * settings.alpha)
            control, treatment = look.control, look.treatment
            alerts.append(VariantAlert(
                control.flag, control.variant, treatment.variant, look.metric, test.estimate,
                interval, confidence, lowest, e_value,
                (control.outcomes, treatment.outcomes), test.samples, snapshot.taken_ns))
        self._lowest_p = {k: v for k, v in self._lowest_p.items() if k in seen}
        self._alerted &= seen
        return alerts

    def p_value(self, flag: str | None, control: str, treatment: str, metric: str) -> float:
        """The comparison's always-valid p-value so far (1.0 before any evidence)."""
        return self._lowest_p.get((flag, control, treatment, metric), 1.0)


VariantCallback = Callable[[VariantAlert], Any]


class VariantMonitor(PeriodicMonitor):
    """Looks at the variants every ``interval`` seconds in a thread of its own and calls
    the callbacks with each new alert. Callbacks never run on the request path; one that
    raises is logged and does not stop the others."""

    def __init__(self, source: Callable[[], Snapshot | None], interval: float = 5.0,
                 settings: GuardrailSettings | None = None) -> None:
        self._source = source
        self.guard = VariantGuard(settings)
        self._callbacks: list[VariantCallback] = []
        self._lock = threading.Lock()
        self._task = Periodic("bizops-otel-guardrails", interval, self.check,
                              "variant guardrail check failed")
        #: The alerts raised so far, oldest first (the last REMEMBERED).
        self.alerts: list[VariantAlert] = []
        #: Seconds the last pass took, snapshot included (None before the first).
        self.last_pass_seconds: float | None = None

    def on_variant_alert(self, callback: VariantCallback) -> VariantCallback:
        """Register ``callback(alert)``; usable as a decorator."""
        self._callbacks.append(callback)
        return callback

    def check(self, snapshot: Snapshot | None = None) -> list[VariantAlert]:
        """Look once (the thread calls this); returns the new alerts."""
        started = time.perf_counter()
        snapshot = snapshot if snapshot is not None else self._source()
        if snapshot is None:
            return []
        with self._lock:  # the thread and a caller may look at once; each alert once
            alerts = self.guard.assess(snapshot)
            self.alerts = (self.alerts + alerts)[-REMEMBERED:]
        for alert in alerts:
            call_each(self._callbacks, alert, "a variant alert")
        self.last_pass_seconds = time.perf_counter() - started
        return alerts

