"""Planted session traffic for the session-flow and test-plan tests: sessions walking a
known Markov chain over four page groups with log-normal think times."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bizops_otel import Config
from bizops_otel import attributes as attr

SECOND = 1_000_000_000
EPOCH = 1_700_000_000 * SECOND
GROUPS = ("home", "product", "cart", "checkout")
#: The planted chain: from entry (row 0) and from each group, to each group or exit (-1).
CHAIN = {
    "entry": {"home": 0.7, "product": 0.3},
    "home": {"product": 0.6, "cart": 0.1, "exit": 0.3},
    "product": {"product": 0.3, "cart": 0.4, "exit": 0.3},
    "cart": {"checkout": 0.6, "product": 0.2, "exit": 0.2},
    "checkout": {"exit": 1.0},
}
#: Median think time per source group, seconds (log-normal, σ = 0.8).
THINK_MEDIAN = {"home": 3.0, "product": 8.0, "cart": 15.0, "checkout": 1.0}
CONFIG = Config(admission_count=1)


@dataclass
class Request:
    session: str
    group: str
    start_ns: int
    end_ns: int


def planted_traffic(seed: int, sessions: int, minutes: float = 20.0) -> list[Request]:
    """Sessions walking the planted chain, arriving uniformly over ``minutes``, sorted by
    end time as spans finish."""
    rng = np.random.default_rng(seed)
    requests: list[Request] = []
    for s in range(sessions):
        state, clock = "entry", EPOCH + int(rng.uniform(0, minutes * 60) * SECOND)
        while True:
            targets = CHAIN[state]
            state = str(rng.choice(list(targets), p=list(targets.values())))
            if state == "exit":
                break
            latency = int(rng.lognormal(np.log(0.2), 0.5) * SECOND)
            requests.append(Request(f"s{seed}-{s}", state, clock, clock + latency))
            clock += latency + int(rng.lognormal(np.log(THINK_MEDIAN[state]), 0.8) * SECOND)
    return sorted(requests, key=lambda r: r.end_ns)


def feed(aggregator: Any, requests: list[Request]) -> None:
    for r in requests:
        aggregator.record_span({attr.PAGE_GROUP: r.group, attr.SESSION_ID: r.session},
                               r.start_ns, r.end_ns)
