"""The shop's past, replayed before the live part of the demo.

Session statistics need thousands of finished sessions before they say anything true: a
minute of live visitors is too little. So the demo opens on the previous hour of the same
shop (its healthy campaign, its A/B split, its planted slow pages), simulated and sent as
real SERVER spans through the same TracerProvider and install(), in about a second. The
live visitors and the campaign that launches broken then show the real-time part.
"""

from __future__ import annotations

import dataclasses
import time

from opentelemetry.sdk.trace import TracerProvider

from .simulate import Scenario, Simulator, emit

#: How far back the replayed past starts, in seconds.
HISTORY_SPAN_S = 3600.0


def past_scenario(scenario: Scenario) -> Scenario:
    """The shop as it was: the same pages and variants, only the campaigns already
    running (a campaign that launches during the live run is not in its past)."""
    return dataclasses.replace(
        scenario, campaigns=tuple(c for c in scenario.campaigns if c.launch_s <= 0.0))


def replay(provider: TracerProvider, scenario: Scenario, sessions: int, seed: int) -> int:
    """Replay ``sessions`` sessions of the past hour as spans; returns how many spans."""
    if sessions <= 0:
        return 0
    past = past_scenario(scenario)
    simulated = list(Simulator(past, seed + 1_000_003).sessions(
        sessions, rate_per_s=sessions / HISTORY_SPAN_S))
    epoch = time.time_ns() - int((HISTORY_SPAN_S + 60.0) * 1e9)
    return emit(provider.get_tracer("bizops-otel-demo-history"), simulated, epoch)
