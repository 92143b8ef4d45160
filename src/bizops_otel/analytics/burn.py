"""Objective alerts in process: the SRE workbook's multi-window, multi-burn-rate rules,
judged on the operation counts this process sees, for the application to act on.

Prometheus evaluates the same rules fleet-wide (``deploy/prometheus/bizops-rules.yml``);
this monitor is for the service itself: shed load, switch a feature off, page from the
application. Every ``interval`` seconds it reads each operation's cumulative requests and
good ones (:meth:`Snapshot.objectives`) and keeps a bounded history of them, from which
the burn rate over any window is a difference of two readings:

    burn(W) = (bad in W / requests in W) / (1 − target)

A rule (:class:`BurnRule`) fires when the burn over both its long and its short window is
at least its factor: the long window makes it significant, the short one makes it stop
soon after the burning stops. The defaults are the workbook's (chapter 5, "Alerting on
SLOs"): 14.4× over 1 h and 5 min, 6× over 6 h and 30 min (pages), 1× over 3 days and
6 h (a ticket). A window longer than the history held is read over the history held, and
a rule is not judged before the history covers its short window, so a process that just
started cannot page on its first bad second.

An :class:`ObjectiveAlert` is published when an operation starts firing, when the rule it
fires changes, and when it stops (``firing`` False).
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .._periodic import Periodic, PeriodicMonitor, call_each
from ..aggregate.snapshot import Objective, Snapshot

#: Alerts remembered (``ObjectiveMonitor.alerts``).
REMEMBERED = 256


@dataclass(frozen=True)
class BurnRule:
    """Fire when the burn rate over ``long_s`` and over ``short_s`` both reach
    ``factor``; ``severity`` names what it calls for ("page", "ticket")."""

    factor: float
    long_s: float
    short_s: float
    severity: str

    def __post_init__(self) -> None:
        if not (self.factor > 0 and 0 < self.short_s < self.long_s):
            raise ValueError(f"bizops-otel: a burn rule needs factor > 0 and 0 < short "
                             f"window < long window, got {self}")


#: The SRE workbook's multiwindow, multi-burn-rate scheme, most urgent first.
WORKBOOK_RULES = (
    BurnRule(14.4, 3600.0, 300.0, "page"),
    BurnRule(6.0, 21600.0, 1800.0, "page"),
    BurnRule(1.0, 259200.0, 21600.0, "ticket"),
)


@dataclass(frozen=True)
class ObjectiveAlert:
    """An operation's objective started or stopped burning its error budget too fast.

    ``rule`` is the rule firing (or, when ``firing`` is False, the one that stopped);
    ``burn_long`` and ``burn_short`` its burn rates now; ``objective`` the operation's
    counts at that moment (compliance, budget left); ``at`` the wall-clock time and
    ``at_monotonic`` the monitor's clock of the reading."""

    operation: str
    firing: bool
    rule: BurnRule
    burn_long: float
    burn_short: float
    objective: Objective
    at: float
    at_monotonic: float


class _History:
    """Readings of one operation, oldest first: monotonic times, requests, good ones,
    in compact arrays (a 3-day history at 10 s spacing is about 600 KB)."""

    def __init__(self) -> None:
        self.times = array("d")
        self.totals = array("q")
        self.goods = array("q")
        self.firing: BurnRule | None = None

    def add(self, now: float, total: int, good: int, spacing: float, keep_s: float) -> None:
        if self.totals and total < self.totals[-1]:
            # Counts went back (a reset): what came before says nothing of what follows.
            del self.times[:], self.totals[:], self.goods[:]
        if len(self.times) >= 2 and now - self.times[-2] < spacing:
            # Thinning: the newest reading moves on while the one before is recent.
            self.times[-1], self.totals[-1], self.goods[-1] = now, total, good
        else:
            self.times.append(now)
            self.totals.append(total)
            self.goods.append(good)
        # Readings older than the longest window (but the one starting it) go.
        old = bisect.bisect_right(self.times, now - keep_s) - 1
        if old > 0:
            del self.times[:old], self.totals[:old], self.goods[:old]

    def span(self) -> float:
        return self.times[-1] - self.times[0] if self.times else 0.0

    def burn(self, window_s: float, target: float) -> float:
        """The burn rate over the last ``window_s`` seconds (or the whole history if
        shorter), from the last reading at or before its start; 0 without requests."""
        start = max(0, bisect.bisect_right(self.times, self.times[-1] - window_s) - 1)
        requests = self.totals[-1] - self.totals[start]
        if requests <= 0:
            return 0.0
        bad = requests - (self.goods[-1] - self.goods[start])
        return (bad / requests) / (1.0 - target)


class ObjectiveBurn:
    """The rules' verdicts over a history of readings (no thread: see ObjectiveMonitor)."""

    def __init__(self, rules: Sequence[BurnRule] = WORKBOOK_RULES) -> None:
        if not rules:
            raise ValueError("bizops-otel: objective alerts need at least one burn rule")
        self.rules = tuple(rules)
        self._keep_s = max(rule.long_s for rule in self.rules)
        # Readings a thirtieth of the shortest window apart read it to within 3%.
        self._spacing = min(rule.short_s for rule in self.rules) / 30
        self._history: dict[str, _History] = {}

    def observe(self, objectives: dict[str, Objective], now: float,
                wall: float | None = None) -> list[ObjectiveAlert]:
        """Add one reading per operation at monotonic time ``now``; the alerts it causes."""
        alerts = []
        for name, objective in objectives.items():
            history = self._history.setdefault(name, _History())
            history.add(now, objective.total, objective.good, self._spacing, self._keep_s)
            firing, burns = self._judge(history, objective.target)
            if firing is history.firing:
                continue
            rule = firing if firing is not None else history.firing
            assert rule is not None
            burn_long, burn_short = burns.get(rule, self._burns(history, rule,
                                                                 objective.target))
            alerts.append(ObjectiveAlert(name, firing is not None, rule, burn_long,
                                         burn_short, objective,
                                         time.time() if wall is None else wall, now))
            history.firing = firing
        return alerts

    def _burns(self, history: _History, rule: BurnRule, target: float) -> tuple[float, float]:
        return history.burn(rule.long_s, target), history.burn(rule.short_s, target)

    def _judge(self, history: _History, target: float
               ) -> tuple[BurnRule | None, dict[BurnRule, tuple[float, float]]]:
        burns: dict[BurnRule, tuple[float, float]] = {}
        if not target < 1.0:
            return None, burns
        for rule in self.rules:
            if history.span() < rule.short_s:
                continue
            burns[rule] = self._burns(history, rule, target)
            if min(burns[rule]) >= rule.factor:
                return rule, burns
        return None, burns

    def burn_rates(self, operation: str, target: float) -> dict[BurnRule, tuple[float, float]]:
        """Each rule's (long, short) burn rates for ``operation`` now (NaN before any
        reading)."""
        history = self._history.get(operation)
        if history is None or not history.times:
            return {rule: (math.nan, math.nan) for rule in self.rules}
        return {rule: self._burns(history, rule, target) for rule in self.rules}


ObjectiveCallback = Callable[[ObjectiveAlert], object]


class ObjectiveMonitor(PeriodicMonitor):
    """Reads the objectives every ``interval`` seconds in a thread of its own and calls
    the callbacks with each alert. Callbacks never run on the request path; one that
    raises is logged and does not stop the others."""

    def __init__(self, source: Callable[[], Snapshot | None], interval: float = 5.0,
                 rules: Sequence[BurnRule] = WORKBOOK_RULES) -> None:
        self._source = source
        self.burn = ObjectiveBurn(rules)
        self._callbacks: list[ObjectiveCallback] = []
        self._lock = threading.Lock()
        self._task = Periodic("bizops-otel-objectives", interval, self.check,
                              "objective burn check failed")
        #: The alerts raised so far, oldest first (the last REMEMBERED).
        self.alerts: list[ObjectiveAlert] = []

    def on_objective_alert(self, callback: ObjectiveCallback) -> ObjectiveCallback:
        """Register ``callback(alert)``; usable as a decorator."""
        self._callbacks.append(callback)
        return callback

    def check(self, snapshot: Snapshot | None = None,
              now: float | None = None) -> list[ObjectiveAlert]:
        """Read once (the thread calls this); returns the new alerts."""
        snapshot = snapshot if snapshot is not None else self._source()
        if snapshot is None:
            return []
        with self._lock:
            alerts = self.burn.observe(snapshot.objectives(),
                                       time.monotonic() if now is None else now)
            self.alerts = (self.alerts + alerts)[-REMEMBERED:]
        for alert in alerts:
            call_each(self._callbacks, alert, "an objective alert")
        return alerts



__all__ = ["WORKBOOK_RULES", "BurnRule", "ObjectiveAlert", "ObjectiveBurn",
           "ObjectiveMonitor"]
