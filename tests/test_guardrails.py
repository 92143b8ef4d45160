"""Guardrails that act: a variant worse than its control alerts, on both twins.

The sequential test is driven look by look with snapshots of simulated traffic (a look
every 250 sessions, as a monitor would see them every few seconds), so the false-alarm
rate over repeated looks and the sessions a harmful variant needs are measured over many
seeds in a few seconds. One test runs the real monitor thread through install().
"""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opentelemetry.sdk.trace import TracerProvider
from scipy import integrate
from scipy import stats as sps

import bizops_otel
from bizops_otel import Config, ConfigError, attributes, load_config
from bizops_otel.alerts import AlertBus, kind_of
from bizops_otel.analytics.guardrails import (
    CONVERSION,
    LATENCY,
    GuardrailSettings,
    VariantAlert,
    VariantGuard,
    VariantMonitor,
)
from bizops_otel.analytics.health import CampaignHealth
from bizops_otel.analytics.significance import confidence_sequence, harm_e_value
from bizops_otel.demo.simulate import Scenario, Session, Simulator
from tests import traffic

EPOCH = 1_700_000_000 * 10**9
LOOK = 250  # sessions between two looks
ALPHA = GuardrailSettings().alpha


def watch(Aggregator: Any, scenario: Scenario, seed: int, looks: int,
          stop_on: str | None = None, settings: GuardrailSettings | None = None,
          ) -> tuple[dict[str, tuple[int, VariantAlert]], list[Session]]:
    """Simulate ``looks`` × LOOK sessions, assessing after each LOOK; returns the first
    alert of each metric with the sessions seen when it fired, and the sessions."""
    aggregator = Aggregator(traffic.config())
    simulator = Simulator(scenario, seed)
    guard = VariantGuard(settings)
    first: dict[str, tuple[int, VariantAlert]] = {}
    sessions: list[Session] = []
    for look in range(1, looks + 1):
        batch = list(simulator.sessions(LOOK))
        sessions += batch
        traffic.record(aggregator, batch)
        for alert in guard.assess(aggregator.snapshot(now_ns=EPOCH + look * 10**9)):
            first.setdefault(alert.metric, (look * LOOK, alert))
        if stop_on in first:
            break
    return first, sessions


def test_a_variant_that_costs_conversion_alerts_within_a_bounded_number_of_sessions(
        Aggregator: Any) -> None:
    """B converts 20% less at checkout. Every seed alerts on conversion within 12,000
    sessions (both arms; 8,500 at most measured, 3,000 the median), with the evidence:
    the always-valid interval lies below zero and covers the planted difference."""
    harmful = Scenario(variants={"A": 0.0, "B": -0.2})
    needed, intervals, control = [], [], []
    for seed in range(20):
        first, sessions = watch(Aggregator, harmful, seed, looks=48, stop_on=CONVERSION)
        assert CONVERSION in first, seed
        at, alert = first[CONVERSION]
        needed.append(at)
        assert (alert.flag, alert.control, alert.treatment) == (traffic.FLAG, "A", "B")
        assert alert.estimate < 0 and alert.interval[1] < 0
        assert alert.e_value >= 1 / ALPHA and alert.p_value <= ALPHA
        assert alert.confidence == pytest.approx(1 - 2 * ALPHA)
        assert min(alert.sessions) >= GuardrailSettings().minimum_samples
        assert alert.samples == alert.sessions  # conversion is judged on outcomes
        assert alert.time_ns == EPOCH + at // LOOK * 10**9
        intervals.append(alert.interval)
        control += [s.converted for s in sessions if s.variant == "A" and s.reached_checkout]
    # B converts 0.8 times as often as A: the planted difference is −0.2 × A's rate.
    planted = -0.2 * float(np.mean(control))
    covered = sum(low <= planted <= high for low, high in intervals)
    assert max(needed) <= 12_000
    assert np.median(needed) <= 5_000
    # 90% always-valid intervals, read at the look they fired: 18 covering expected of 20.
    assert covered >= 16


def test_a_variant_that_adds_latency_alerts_within_a_bounded_number_of_sessions(
        Aggregator: Any) -> None:
    """B adds 30 ms to every request. Every seed alerts on latency within 2,500 sessions
    (1,750 at most measured, 750 the median), the interval covering the planted 30 ms."""
    harmful = Scenario(variant_delay_s={"B": 0.030})
    needed, covered = [], 0
    for seed in range(20):
        first, _ = watch(Aggregator, harmful, 100 + seed, looks=10, stop_on=LATENCY)
        assert LATENCY in first, seed
        at, alert = first[LATENCY]
        needed.append(at)
        assert alert.estimate > 0 and alert.interval[0] > 0
        assert min(alert.samples) >= GuardrailSettings().minimum_samples
        covered += bool(alert.interval[0] <= 0.030 <= alert.interval[1])
    assert max(needed) <= 2_500
    assert covered >= 16


@pytest.mark.parametrize("scenario", [
    Scenario(),
    # The confounder: B converts better and draws visitors on to the slow checkout page.
    Scenario(variants={"A": 0.0, "B": 0.15}, variant_depth={"B": 0.15}),
], ids=["null", "converts-better-and-goes-deeper"])
@pytest.mark.pure_pass_covers
def test_a_variant_no_worse_alerts_at_most_at_the_nominal_rate_over_repeated_looks(
        Aggregator: Any, scenario: Scenario) -> None:
    """40 seeds, each looked at 20 times (every 250 sessions up to 5,000): the share of
    seeds that ever alert stays within the nominal 5% per metric: none did. Measured over
    200 other seeds and 40 looks: 1.0% (conversion) and 0% (latency) for the null, 0% and
    1.5% for the confounded one."""
    seeds = 40
    alarms = {CONVERSION: 0, LATENCY: 0}
    for seed in range(seeds):
        first, _ = watch(Aggregator, scenario, 1000 + seed, looks=20)
        for metric in first:
            alarms[metric] += 1
    # Nominal 5%: 2 expected in 40; 6 or more has probability 1.4%.
    assert alarms[CONVERSION] <= 5 and alarms[LATENCY] <= 5, alarms


def test_an_alert_is_the_hand_computed_mixture_test(Aggregator: Any) -> None:
    """The e-value from the recorded outcomes by hand (numpy and scipy), the p-value as
    the smallest 1/e over the looks, and the interval as the mixture's confidence
    sequence at 2α."""
    first, sessions = watch(Aggregator, Scenario(variants={"A": 0.0, "B": -0.3}), 3,
                            looks=40, stop_on=CONVERSION)
    _, alert = first[CONVERSION]
    outcomes = {v: np.array([s.converted for s in sessions if s.variant == v
                             and s.reached_checkout], float) for v in ("A", "B")}
    p_a, p_b = outcomes["A"].mean(), outcomes["B"].mean()
    n_a, n_b = outcomes["A"].size, outcomes["B"].size
    assert alert.sessions == (n_a, n_b)
    variance = p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b
    tau = 0.1 * p_a
    harm = p_a - p_b
    e_value = (2 * np.sqrt(variance / (variance + tau**2))
               * np.exp(harm**2 * tau**2 / (2 * variance * (variance + tau**2)))
               * sps.norm.cdf(harm * tau / np.sqrt(variance * (variance + tau**2))))
    assert alert.estimate == pytest.approx(p_b - p_a, rel=1e-12)
    assert alert.e_value == pytest.approx(e_value, rel=1e-9)
    assert alert.p_value <= 1 / alert.e_value
    half = np.sqrt(variance * (variance + tau**2) / tau**2
                   * (2 * np.log(1 / (2 * ALPHA)) + np.log((variance + tau**2) / variance)))
    assert alert.interval == pytest.approx((p_b - p_a - half, p_b - p_a + half), rel=1e-9)


@pytest.mark.parametrize(("harm", "variance", "scale"),
                         [(0.02, 1e-4, 0.01), (-0.01, 4e-4, 0.05), (0.3, 0.01, 0.1)])
def test_the_e_value_is_the_half_normal_mixture_of_likelihood_ratios(
        harm: float, variance: float, scale: float) -> None:
    """Λ⁺ = ∫₀^∞ 2 φ_τ(θ) exp(θ θ̂ / V − θ² / (2V)) dθ, by numerical integration."""
    def integrand(theta: float) -> float:
        return float(2 * sps.norm.pdf(theta, 0, scale)
                     * np.exp(theta * harm / variance - theta**2 / (2 * variance)))

    expected, _ = integrate.quad(integrand, 0, np.inf, epsabs=0, epsrel=1e-11, limit=200)
    assert harm_e_value(harm, variance, scale) == pytest.approx(expected, rel=1e-7)
    low, high = confidence_sequence(harm, variance, scale, 0.1)
    assert harm - low == pytest.approx(high - harm)
    assert math.isnan(harm_e_value(harm, 0.0, scale))


def test_an_alert_fires_once_and_the_guard_forgets_comparisons_that_left(
        Aggregator: Any) -> None:
    aggregator = Aggregator(traffic.config())
    traffic.record(aggregator, Simulator(Scenario(variant_delay_s={"B": 0.2}), 1)
                   .sessions(800))
    guard = VariantGuard(GuardrailSettings(metrics=(LATENCY,)))
    snapshot = aggregator.snapshot()
    (alert,) = guard.assess(snapshot)
    assert alert.metric == LATENCY and alert.estimate == pytest.approx(0.2, abs=0.03)
    assert guard.assess(snapshot) == []  # already raised
    assert guard.p_value(traffic.FLAG, "A", "B", LATENCY) == alert.p_value
    assert guard.assess(Aggregator(traffic.config()).snapshot()) == []
    assert guard.p_value(traffic.FLAG, "A", "B", LATENCY) == 1.0  # forgotten


def test_the_control_is_configurable_and_defaults_to_the_first_variant(
        Aggregator: Any) -> None:
    """With control "B", the slower-by-default arm A is the treatment; an absent control
    leaves the flag unjudged."""
    aggregator = Aggregator(traffic.config())
    traffic.record(aggregator, Simulator(Scenario(variant_delay_s={"A": 0.2}), 2)
                   .sessions(800))
    snapshot = aggregator.snapshot()
    assert VariantGuard(GuardrailSettings(metrics=(LATENCY,))).assess(snapshot) == []
    (alert,) = VariantGuard(GuardrailSettings(metrics=(LATENCY,), control="B")).assess(snapshot)
    assert (alert.control, alert.treatment) == ("B", "A")
    assert VariantGuard(GuardrailSettings(control="C")).assess(snapshot) == []


def test_callbacks_that_raise_are_counted_and_logged_never_raised(
        Aggregator: Any, caplog: pytest.LogCaptureFixture) -> None:
    bus = AlertBus()
    monitor = VariantMonitor(lambda: None, settings=GuardrailSettings(metrics=(LATENCY,)))
    monitor.on_variant_alert(bus.publish)
    heard: list[Any] = []

    @bus.on_alert
    def explode(alert: Any) -> None:
        raise RuntimeError("flag service down")

    bus.on_alert(heard.append, kinds=("variant",))
    bus.on_alert(lambda alert: heard.append("campaign only"), kinds="campaign")
    aggregator = Aggregator(traffic.config())
    traffic.record(aggregator, Simulator(Scenario(variant_delay_s={"B": 0.2}), 4)
                   .sessions(800))
    with caplog.at_level(logging.ERROR, logger="bizops_otel"):
        alerts = monitor.check(aggregator.snapshot())
    assert len(alerts) == 1 and heard == alerts and monitor.alerts == alerts
    assert bus.errors == {"campaign": 0, "variant": 1, "objective": 0}
    assert "a variant alert callback raised" in caplog.text
    assert kind_of(alerts[0]) == "variant" == alerts[0].kind
    with pytest.raises(ValueError, match="alert kinds"):
        bus.on_alert(print, kinds=("campaigns",))


def test_install_runs_guardrails_in_their_thread_and_routes_every_kind_through_on_alert(
        ) -> None:
    """End to end through the real threads: a harmful variant and a failing campaign
    reach on_alert, on_variant_alert and the old on_campaign_alert, and shutdown stops
    both threads."""
    import time

    config = Config(dimensions=(attributes.PAGE_GROUP, attributes.CAMPAIGN_ID,
                                attributes.FEATURE_FLAG_KEY, attributes.FEATURE_FLAG_VARIANT),
                    kpis=("conversion", "order_value"), campaign_interval=0.05,
                    guardrail_interval=0.05, guardrail_metrics=(LATENCY,),
                    **traffic.FIRST_SIGHTING)
    handle = bizops_otel.install(TracerProvider(), config=config)
    everything: list[Any] = []
    variants: list[VariantAlert] = []
    campaigns: list[CampaignHealth] = []
    done = threading.Event()
    handle.on_alert(everything.append)
    handle.on_variant_alert(variants.append)
    handle.on_campaign_alert(campaigns.append)
    handle.on_alert(lambda alert: done.set() if len(everything) >= 2 else None)
    assert handle.aggregator is not None
    now = time.time_ns()
    by_key = traffic.batches(Simulator(Scenario(variant_delay_s={"B": 0.2}), 5).sessions(800))
    for (page, flag, variant), batch in by_key.items():
        latency, conversion, _ = batch.arrays()
        handle.aggregator.record_many((page, "", flag, variant), latency,
                                      {"conversion": conversion}, end_ns=now)
    handle.aggregator.record_many(("landing", "bad", traffic.FLAG, "A"), np.full(40, 0.2),
                                  errors=np.arange(40) % 2 == 0, end_ns=now)
    done.wait(10)
    handle.shutdown()
    assert sorted(kind_of(alert) for alert in everything) == ["campaign", "variant"]
    assert [(a.treatment, a.metric) for a in variants] == [("B", LATENCY)]
    assert [(h.campaign, h.state) for h in campaigns] == [("bad", "failing")]
    assert handle.variant_alerts() == variants
    assert handle.alerts.errors == {"campaign": 0, "variant": 0, "objective": 0}
    names = {t.name for t in threading.enumerate()}
    assert not names & {"bizops-otel-guardrails", "bizops-otel-campaigns"}


def test_variant_alerts_need_the_variant_dimension() -> None:
    handle = bizops_otel.install(TracerProvider(), config=Config(campaign_interval=0))
    with pytest.raises(ValueError, match=r"feature_flag\.result\.variant"):
        handle.on_variant_alert(print)
    handle.on_alert(print)  # every kind: fine, whatever runs
    assert handle.variant_alerts() == []
    handle.shutdown()


@pytest.mark.parametrize(("variable", "text", "message"), [
    ("GUARDRAIL_ALPHA", "0.7", "guardrail_alpha: must be a probability in (0, 0.5]"),
    ("GUARDRAIL_MIN_SAMPLES", "1", "guardrail_min_samples: must be an integer"),
    ("GUARDRAIL_METRICS", "conversion,speed", "guardrail_metrics: must name some of"),
    ("GUARDRAIL_EFFECT", "0", "guardrail_effect: must be a relative effect"),
    ("GUARDRAIL_INTERVAL", "0.001", "guardrail_interval: must be 0 or seconds"),
    ("GUARDRAIL_MIN_SAMPLES", "many", "BIZOPS_OTEL_GUARDRAIL_MIN_SAMPLES"),
])
def test_bad_guardrail_settings_fail_at_configuration_time_naming_the_variable(
        variable: str, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="BIZOPS_OTEL_" + variable) as error:
        load_config(environ={"BIZOPS_OTEL_" + variable: text})
    assert message in str(error.value)


def test_guardrail_settings_load_from_variables_and_a_file(tmp_path: Path) -> None:
    file = tmp_path / "bizops.toml"
    file.write_text('guardrail_metrics = ["latency"]\nguardrail_control = "off"\n'
                    'guardrail_alpha = 0.01\n')
    config = load_config(environ={"BIZOPS_OTEL_CONFIG": str(file),
                                  "BIZOPS_OTEL_GUARDRAIL_MIN_SAMPLES": "500",
                                  "BIZOPS_OTEL_GUARDRAIL_EFFECT": "0.05",
                                  "BIZOPS_OTEL_GUARDRAIL_INTERVAL": "0"})
    assert (config.guardrail_metrics, config.guardrail_control, config.guardrail_alpha,
            config.guardrail_min_samples, config.guardrail_effect,
            config.guardrail_interval) == (("latency",), "off", 0.01, 500, 0.05, 0.0)
    file.write_text('guardrail_metrics = ["latency", "revenue"]\n')
    with pytest.raises(ConfigError, match=f"guardrail_metrics.*{file}"):
        load_config(environ={"BIZOPS_OTEL_CONFIG": str(file)})
    assert Config().guardrail_control is None and Config().guardrail_metrics == (
        CONVERSION, LATENCY)


def test_the_demo_view_shows_the_guardrails_in_80_columns(Aggregator: Any) -> None:
    from bizops_otel.demo import view

    config = Config(dimensions=(attributes.PAGE_GROUP, attributes.FEATURE_FLAG_VARIANT),
                    kpis=("conversion", "order_value"), **traffic.FIRST_SIGHTING)
    aggregator = Aggregator(config)
    by_key = traffic.batches(Simulator(Scenario(variant_delay_s={"B": 0.2}), 6).sessions(800))
    for (page, _, variant), batch in by_key.items():
        latency, conversion, _ = batch.arrays()
        aggregator.record_many((page, variant), latency, {"conversion": conversion})
    snapshot = aggregator.snapshot()
    monitor = VariantMonitor(lambda: None)
    assert view.guardrail_line(snapshot, monitor).startswith(
        "Guardrails B vs A: no alert (always-valid p: conversion 1.00, latency 1.00)")
    (alert,) = monitor.check(snapshot)
    line = view.guardrail_line(snapshot, monitor)
    assert line == (f"GUARDRAIL B vs A: worse on latency, {alert.estimate * 1e3:+,.0f} ms "
                    f"[{alert.interval[0] * 1e3:+,.0f}, {alert.interval[1] * 1e3:+,.0f}], "
                    f"p={alert.p_value:.4f}")
    assert len(line) <= view.WIDTH and line in view.render(snapshot, [], "h", monitor)
    assert view.guardrail_line(snapshot, None) == ""


def test_the_evidence_is_exported_as_the_monitor_saw_it(Aggregator: Any) -> None:
    """The scrape's ``bizops_guardrail_e_value`` at the look where the guard alerted is the
    alert's own e-value, at least 1/alpha; Prometheus can then alert on it, and keep the
    always-valid p-value as 1 / its running maximum."""
    from bizops_otel.export.exposition import render

    aggregator = Aggregator(traffic.config())
    simulator = Simulator(Scenario(variants={"A": 0.0, "B": -0.3}), 3)
    guard = VariantGuard()
    alerts: list[VariantAlert] = []
    for look in range(1, 41):
        traffic.record(aggregator, list(simulator.sessions(LOOK)))
        snapshot = aggregator.snapshot(now_ns=EPOCH + look * 10**9)
        alerts = [a for a in guard.assess(snapshot) if a.metric == CONVERSION]
        if alerts:
            break
    assert alerts, "the harmful variant never alerted"
    lines = [line for line in render(snapshot).decode().splitlines()
             if line.startswith("bizops_guardrail_e_value{")]
    exported = {line.split('bizops_guardrail_metric="')[1].split('"')[0]:
                float(line.rsplit(" ", 1)[1]) for line in lines}
    assert 'feature_flag_result_variant="B"' in lines[0]
    assert exported[CONVERSION] == pytest.approx(alerts[0].e_value, rel=1e-9)
    assert exported[CONVERSION] >= 1 / ALPHA
