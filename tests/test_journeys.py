"""Journeys (funnels) on simulated sessions, in both twins: planted drops, latency effects
and think times come back out of ``snapshot.journeys()``, and out-of-order visits count by
the in-order rule."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bizops_otel import Config, Journey
from bizops_otel.aggregate import persist
from bizops_otel.aggregate._layout import THINK_GROWTH

SECOND = 1_000_000_000
START = 1_700_000_000 * SECOND
STEPS = ("landing", "product", "cart", "checkout", "order")
CONFIG = Config(admission_count=1, max_sessions=20_000, session_timeout=1800.0,
                journeys=(Journey("purchase", STEPS),), campaign_interval=0)
#: Far past every session's last request: a snapshot then finalises them all.
LATER = START + 10**6 * SECOND

#: Whether a session goes on from step k, given the latency of its request there.
GoesOn = Callable[[int, float, np.random.Generator], bool]


def simulate(aggregator: Any, sessions: int, goes_on: GoesOn, seed: int,
             first: int = 0) -> list[list[float]]:
    """Sessions through the purchase journey, one request per step, with log-normal
    latencies and think times; returns each step's think times of those that went on."""
    rng = np.random.default_rng(seed)
    think: list[list[float]] = [[] for _ in STEPS[:-1]]
    for s in range(first, first + sessions):
        # Sessions start a minute apart at most, and interleave.
        clock = START + int(rng.integers(0, 60 * SECOND)) + s * SECOND // 10
        for k, step in enumerate(STEPS):
            latency = float(rng.lognormal(math.log(0.4), 0.6))
            aggregator.record((step, ""), latency, {}, end_ns=clock, session=f"s{s}")
            if k == len(STEPS) - 1 or not goes_on(k, latency, rng):
                break
            seconds = float(rng.lognormal(math.log(20.0 + 10 * k), 0.8))
            think[k].append(seconds)
            clock += int(seconds * SECOND)
    return think


def at_rates(rates: Sequence[float]) -> GoesOn:
    return lambda k, latency, rng: bool(rng.random() < rates[k])


PLANTED = (0.6, 0.6, 0.3, 0.6)


def test_a_planted_drop_is_recovered_and_named(Aggregator: Any) -> None:
    aggregator = Aggregator(CONFIG)
    simulate(aggregator, 4000, at_rates(PLANTED), seed=1)
    funnel = aggregator.snapshot(now_ns=LATER).journeys()["purchase"]
    assert funnel.sessions == 4000
    assert [s.name for s in funnel.steps] == list(STEPS)
    for step, rate in zip(funnel.steps, PLANTED, strict=False):
        assert step.continued is not None and step.dropped is not None
        assert step.continued + step.dropped == step.entered
        assert step.conversion_low <= rate <= step.conversion_high, (step.name, step)
    for step, following in zip(funnel.steps, funnel.steps[1:], strict=False):
        assert following.entered == step.continued
    last = funnel.steps[-1]
    assert last.is_last and last.continued is None and math.isnan(last.conversion)
    assert funnel.completed == last.entered
    drop = funnel.biggest_drop()
    assert drop is not None and drop.step.name == "cart" and drop.next_step == "checkout"
    assert not drop.latency_explains  # nothing here depends on latency
    assert "cart → checkout" in str(drop) and "latency does not explain it" in str(drop)


def test_slow_requests_dropping_at_one_step_show_in_its_correlation_only(
        Aggregator: Any) -> None:
    def goes_on(k: int, latency: float, rng: np.random.Generator) -> bool:
        if k == 2:  # a slow cart loses people: half as likely to go on above 0.4 s
            return bool(rng.random() < (0.8 if latency < 0.4 else 0.25))
        return bool(rng.random() < 0.7)

    aggregator = Aggregator(CONFIG)
    simulate(aggregator, 4000, goes_on, seed=2)
    funnel = aggregator.snapshot(now_ns=LATER).journeys()["purchase"]
    rho = [s.latency_correlation for s in funnel.steps[:-1]]
    assert rho[2] < -0.4, rho
    assert funnel.steps[2].latency_significant
    for k in (0, 1, 3):
        assert abs(rho[k]) < 0.08, rho
    drop = funnel.biggest_drop()
    assert drop is not None and drop.step.name == "cart" and drop.latency_explains
    assert "slow cart requests drop more" in str(drop)


def test_median_time_between_steps_matches_numpy_within_a_bin(Aggregator: Any) -> None:
    aggregator = Aggregator(CONFIG)
    think = simulate(aggregator, 3000, at_rates((0.8, 0.7, 0.6, 0.5)), seed=3)
    funnel = aggregator.snapshot(now_ns=LATER).journeys()["purchase"]
    for k, times in enumerate(think):
        step = funnel.steps[k]
        assert step.continued == len(times)
        # Span ends are whole nanoseconds; the bins are 10^0.1 wide.
        error = abs(math.log(step.median_seconds_to_next / float(np.median(times))))
        assert error <= math.log(THINK_GROWTH), (k, step.median_seconds_to_next)


def test_merging_two_aggregators_equals_one_fed_both(Aggregator: Any) -> None:
    one, left, right = Aggregator(CONFIG), Aggregator(CONFIG), Aggregator(CONFIG)
    simulate(one, 600, at_rates(PLANTED), seed=4)
    simulate(one, 600, at_rates((0.9, 0.2, 0.5, 0.5)), seed=5, first=600)
    simulate(left, 600, at_rates(PLANTED), seed=4)
    simulate(right, 600, at_rates((0.9, 0.2, 0.5, 0.5)), seed=5, first=600)
    whole = one.snapshot(now_ns=LATER)
    merged = left.snapshot(now_ns=LATER).merge(right.snapshot(now_ns=LATER))
    assert str(merged.journeys()) == str(whole.journeys())  # nan != nan: as printed
    a, b = whole.session_arrays, merged.session_arrays
    assert a is not None and b is not None
    for name in ("entered", "continued", "think", "latency"):
        np.testing.assert_array_equal(getattr(a.journeys, name), getattr(b.journeys, name))
    # The state file carries the same counts.
    assert str(persist.loads(persist.dumps(merged)).journeys()) == str(whole.journeys())


def test_visits_out_of_order_count_by_the_in_order_rule(Aggregator: Any) -> None:
    aggregator = Aggregator(CONFIG)
    visits = {
        "a": ("product", "cart", "checkout"),  # never landed: reaches nothing
        "b": ("landing", "cart", "product", "cart"),  # landing → product → cart
        "c": ("landing", "product", "landing", "product", "checkout", "cart"),  # to cart
        "d": ("landing", "landing", "about", "product", "order"),  # to product
        "e": STEPS,  # the whole journey
    }
    for s, pages in visits.items():
        for i, page in enumerate(pages):
            aggregator.record((page, ""), 0.2, {}, end_ns=START + i * SECOND, session=s)
    funnel = aggregator.snapshot(now_ns=LATER).journeys()["purchase"]
    assert [s.entered for s in funnel.steps] == [4, 4, 3, 1, 1]
    assert [s.continued for s in funnel.steps] == [4, 3, 1, 1, None]
    # b reached cart at its 4th request, 2 s after product: the think times are exact
    # to their bins, whatever came in between.
    assert funnel.steps[1].median_seconds_to_next > 0.9


def test_journeys_that_share_pages_are_followed_independently(Aggregator: Any) -> None:
    config = Config(admission_count=1, campaign_interval=0, journeys=(
        Journey("purchase", STEPS), Journey("browse", ("product", "cart"))))
    aggregator = Aggregator(config)
    for i, page in enumerate(("product", "cart", "landing", "product")):
        aggregator.record((page, ""), 0.2, {}, end_ns=START + i * SECOND, session="x")
    funnels = aggregator.snapshot(now_ns=LATER).journeys()
    assert [s.entered for s in funnels["browse"].steps] == [1, 1]
    assert [s.entered for s in funnels["purchase"].steps] == [1, 1, 0, 0, 0]
    assert funnels["purchase"].biggest_drop() is not None


def test_without_journeys_there_are_none(Aggregator: Any) -> None:
    aggregator = Aggregator(Config(admission_count=1, campaign_interval=0))
    aggregator.record(("landing", ""), 0.2, {}, end_ns=START, session="x")
    snapshot = aggregator.snapshot(now_ns=LATER)
    assert snapshot.journeys() == {}
    assert Aggregator(Config(max_sessions=0)).snapshot().journeys() == {}


def test_the_metrics_carry_every_step(Aggregator: Any) -> None:
    from bizops_otel.export.exposition import render
    from bizops_otel.export.model import metric_families

    aggregator = Aggregator(CONFIG)
    simulate(aggregator, 500, at_rates(PLANTED), seed=6)
    snapshot = aggregator.snapshot(now_ns=LATER)
    families, _ = metric_families(snapshot)
    by_name = {f.name: f for f in families}
    sessions = dict(by_name["bizops.journey.step.sessions"].loose)
    cart = (("bizops.journey", "purchase"), ("bizops.journey.step", "cart"),
            ("bizops.journey.step_index", "2"))
    funnel = snapshot.journeys()["purchase"]
    assert sessions[(*cart, ("bizops.journey.outcome", "entered"))] == funnel.steps[2].entered
    assert sessions[(*cart, ("bizops.journey.outcome", "dropped"))] == funnel.steps[2].dropped
    assert len(sessions) == 3 * 4 + 1  # the last step has entered only
    medians = dict(by_name["bizops.journey.step.time.quantile"].loose)
    assert medians[(*cart, ("bizops.quantile", "0.5"))] == funnel.steps[2].median_seconds_to_next
    text = render(snapshot).decode()
    assert ('bizops_journey_step_sessions_total{bizops_journey="purchase",'
            'bizops_journey_step="cart",bizops_journey_step_index="2",'
            'bizops_journey_outcome="entered"}') in text
    assert "bizops_journey_step_time_quantile_seconds{" in text
    assert "bizops_journey_step_latency_correlation{" in text


def test_the_demo_view_shows_the_planted_slow_checkout(Aggregator: Any) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from bizops_otel import BizOpsSpanProcessor
    from bizops_otel import attributes as attr
    from bizops_otel.demo import run, view
    from bizops_otel.demo.simulate import Simulator, emit
    from tests.conftest import load_hooks

    scenario = run.demo_scenario(20.0)
    config = Config(dimensions=(attr.PAGE_GROUP,), admission_count=1, campaign_interval=0,
                    page_groups=tuple((page.route.replace("<id>", "*"), page.group)
                                      for page in (*scenario.pages, scenario.confirm)),
                    session_timeout=5.0, journeys=run.DEMO_JOURNEYS)
    aggregator = Aggregator(config)
    provider = TracerProvider()
    provider.add_span_processor(BizOpsSpanProcessor(aggregator, config,
                                                    hooks=load_hooks(Aggregator)))
    emit(provider.get_tracer("t"), list(Simulator(scenario, 1).sessions(4000)), START)
    snapshot = aggregator.snapshot(now_ns=LATER)
    lines = view.journey_lines(snapshot)
    assert lines[0].startswith("journey purchase") and all(len(x) <= view.WIDTH for x in lines)
    checkout = next(line.split() for line in lines if line.split()[1:2] == ["checkout"])
    assert float(checkout[-1]) < -0.4, lines  # ρ(latency, going on) at checkout
    assert any(line.startswith("Slow checkout loses sessions") for line in lines), lines
    # The view shows it whole, below the objectives (only the load-test plan's summary
    # follows), and no line starts with a page group.
    rendered = view.render(snapshot, [], "header").splitlines()
    at = rendered.index(lines[0])
    assert rendered[at:at + len(lines)] == lines
    assert rendered[at + len(lines):] == view.testplan_lines(snapshot)
    assert not any(line.split()[:1] == ["checkout"] for line in lines)


def test_workers_state_files_merge_into_the_funnel_of_all(Aggregator: Any,
                                                          tmp_path: Path) -> None:
    import subprocess
    import sys

    from bizops_otel.export import multiproc

    one, live, gone = Aggregator(CONFIG), Aggregator(CONFIG), Aggregator(CONFIG)
    simulate(one, 400, at_rates(PLANTED), seed=7)
    simulate(one, 400, at_rates((0.9, 0.2, 0.5, 0.5)), seed=8, first=400)
    simulate(live, 400, at_rates(PLANTED), seed=7)
    simulate(gone, 400, at_rates((0.9, 0.2, 0.5, 0.5)), seed=8, first=400)
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # a worker that has exited: its file is folded into the archive
    persist.write(live.snapshot(now_ns=LATER), multiproc.state_file(tmp_path))
    persist.write(gone.snapshot(now_ns=LATER), multiproc.state_file(tmp_path, finished.pid))
    merged = multiproc.merged_snapshot(tmp_path)
    assert merged is not None
    assert str(merged.journeys()) == str(one.snapshot(now_ns=LATER).journeys())
    assert merged.journeys()["purchase"].sessions == 800
