"""Objective alerts in process: the SRE workbook's multi-window burn-rate rules, judged on
the counts the aggregator keeps, published on the application's alert bus.

Hours of traffic are simulated by reading the real aggregator's snapshot at simulated
monotonic times (the monitor takes ``now``); spans go through the real SDK, span
processor and aggregator of each twin. Nothing is mocked.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

from bizops_otel import Config, Objective, Operation, install
from bizops_otel.alerts import OBJECTIVE, kind_of
from bizops_otel.analytics.burn import (
    WORKBOOK_RULES,
    BurnRule,
    ObjectiveAlert,
    ObjectiveBurn,
    ObjectiveMonitor,
)
from tests.keys import EVERY_KEY
from tests.spans import pipeline

MINUTE = 60.0
EPOCH = 1_700_000_000 * 10**9
CHECKOUT = Operation("checkout", threshold=1.0, target=0.99, route="/checkout")
PAGE_FAST, PAGE_SLOW, TICKET = WORKBOOK_RULES


def run(Aggregator: Any, minutes: int, bad_share: Any, per_minute: int = 120,
        seed: int = 1) -> tuple[list[ObjectiveAlert], ObjectiveMonitor]:
    """``minutes`` of checkout requests through the SDK, ``bad_share(minute)`` of them
    slower than the threshold; the monitor reads the objectives every 10 s of simulated
    time."""
    line = pipeline(Aggregator, Config(**EVERY_KEY, operations=(CHECKOUT,)))
    monitor = ObjectiveMonitor(line.aggregator.snapshot)
    rng = np.random.default_rng(seed)
    alerts: list[ObjectiveAlert] = []
    for minute in range(minutes):
        for tick in range(6):  # a reading every 10 s
            requests = per_minute // 6
            slow = rng.random(requests) < bad_share(minute)
            for i, is_slow in enumerate(slow):
                end = EPOCH + int((minute * MINUTE + tick * 10 + i * 0.01) * 1e9)
                latency = int((2.0 if is_slow else 0.2) * 1e9)
                span = line.tracer.start_span("POST /checkout", kind=SpanKind.SERVER,
                                              start_time=end - latency,
                                              attributes={"http.route": "/checkout",
                                                          "http.request.method": "POST"})
                span.end(end_time=end)
            alerts += monitor.check(now=minute * MINUTE + (tick + 1) * 10)
    return alerts, monitor


def test_an_outage_pages_after_the_workbooks_detection_time_and_resolves(
        Aggregator: Any) -> None:
    """Three quiet hours at 0.1% bad (a burn of 0.1), then every request bad for 20
    minutes. The 14.4× rule over 1 h needs 14.4% of the hour bad: 8.6 minutes of total
    outage (the workbook's detection time). It stops when the 5-minute window falls below
    14.4×, 4.3 minutes after the outage ends; by then the 6× rule over 6 h and 30 min
    fires instead (20 bad minutes in 30), until the outage leaves 6% of its 30 minutes:
    28.2 minutes after the outage ends."""
    outage = range(180, 200)
    alerts, monitor = run(Aggregator, 235,
                          lambda minute: 1.0 if minute in outage else 0.001)
    assert [(a.firing, a.rule) for a in alerts] == [
        (True, PAGE_FAST), (True, PAGE_SLOW), (False, PAGE_SLOW)]
    fired, slower, resolved = (a.at_monotonic / MINUTE for a in alerts)
    assert 180 + 8.6 - 0.2 <= fired <= 180 + 8.6 + 0.4, fired
    assert 200 + 4.3 - 0.2 <= slower <= 200 + 4.3 + 0.4, slower
    assert 200 + 28.2 - 0.2 <= resolved <= 200 + 28.2 + 0.4, resolved
    first = alerts[0]
    assert first.burn_long >= 14.4 and first.burn_short >= 14.4
    assert first.objective.name == "checkout" and first.objective.target == 0.99
    # The evidence is the aggregator's own counts at that reading: 20 requests a reading.
    assert first.objective.total == round(first.at_monotonic / 10) * 20
    assert monitor.alerts == alerts


def test_a_blip_and_steady_burning_under_budget_never_alert(Aggregator: Any) -> None:
    """Two minutes of total outage spend 3.3× over an hour, under 14.4×; a steady 0.5%
    bad (half the budget) burns 0.5×, under every rule."""
    blip, _ = run(Aggregator, 90, lambda minute: 1.0 if minute in (60, 61) else 0.0)
    assert blip == []
    steady, monitor = run(Aggregator, 90, lambda minute: 0.005)
    assert steady == []
    # 7,200 requests in the hour, 36 bad expected: the burn is 0.5 ± 0.08.
    rates = monitor.burn.burn_rates("checkout", 0.99)
    assert rates[PAGE_FAST][0] == pytest.approx(0.5, abs=0.2)


def test_the_burn_rate_is_the_bad_share_over_the_window_against_numpy() -> None:
    """Readings of cumulative counts at known times: every rule's burn over its windows is
    what numpy computes from the same per-reading counts."""
    rng = np.random.default_rng(7)
    burn = ObjectiveBurn((BurnRule(2.0, 600.0, 60.0, "page"),))
    times = np.arange(1, 181) * 10.0
    requests = rng.integers(50, 150, times.size)
    bad = rng.binomial(requests, 0.02)
    total = good = 0
    for t, n, b in zip(times, requests, bad, strict=True):
        total, good = total + int(n), good + int(n - b)
        burn.observe({"op": Objective("op", 1.0, 0.99, total, good, 0, 0)}, float(t))
    (long_burn, short_burn), = burn.burn_rates("op", 0.99).values()
    for window, found in ((600, long_burn), (60, short_burn)):
        inside = times > times[-1] - window
        assert found == pytest.approx(bad[inside].sum() / requests[inside].sum() / 0.01)


def test_the_alerts_reach_the_bus_of_an_installed_provider() -> None:
    """install() starts the monitor when operations are configured; its alerts come to
    ``on_objective_alert`` and ``on_alert`` with the kind "objective"."""
    provider = TracerProvider()
    handle = install(provider, config=Config(**EVERY_KEY, operations=(CHECKOUT,),
                                             objective_interval=3600, campaign_interval=0))
    try:
        assert handle.objectives is not None
        mine: list[ObjectiveAlert] = []
        every: list[Any] = []
        handle.on_objective_alert(mine.append)
        handle.on_alert(every.append)
        tracer = provider.get_tracer("t")
        for minute in range(12):
            for i in range(20):
                end = EPOCH + int((minute * MINUTE + i) * 1e9)
                span = tracer.start_span("POST /checkout", kind=SpanKind.SERVER,
                                         start_time=end - int(0.1e9),
                                         attributes={"http.route": "/checkout"})
                if minute >= 2:
                    span.set_status(Status(StatusCode.ERROR))
                span.end(end_time=end)
            handle.objectives.check(now=(minute + 1) * MINUTE)
        assert [a.firing for a in mine] == [True] and every == mine
        assert kind_of(mine[0]) == OBJECTIVE and mine[0].rule == PAGE_FAST
        assert handle.alerts.errors[OBJECTIVE] == 0
    finally:
        handle.shutdown()


def test_bad_rules_and_intervals_are_refused() -> None:
    with pytest.raises(ValueError, match="short window"):
        BurnRule(14.4, 300.0, 3600.0, "page")
    with pytest.raises(ValueError, match="objective_interval"):
        Config(objective_interval=-1)
    with pytest.raises(ValueError, match="at least one"):
        ObjectiveBurn(())
    assert math.isnan(ObjectiveBurn().burn_rates("none", 0.99)[PAGE_FAST][0])
