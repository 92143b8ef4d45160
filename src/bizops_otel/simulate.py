"""A traffic simulator with planted effects, emitting real spans.

Sessions walk a small shop (landing → product → cart → checkout, with exits), arrive
through campaigns, and are split between feature-flag variants. Latencies are
log-normal. Conversion falls with latency on the pages that are planted as sensitive,
calibrated to published figures: +100 ms costs about 2.4% of desktop conversions and
7% of phone conversions (Akamai, 2017). Campaigns can launch broken (slow or failing).

Every request becomes a real SERVER span through a real TracerProvider, so whatever is
installed on it (bizops-otel's processor above all) sees exactly what production would.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from . import attributes as attr

#: Relative conversion lost per second of extra latency on a sensitive page, by device:
#: 2.4% per 100 ms on desktop and 7% per 100 ms on phones (Akamai 2017).
SENSITIVITY_PER_SECOND = {"desktop": 0.24, "phone": 0.70}


@dataclass(frozen=True)
class Page:
    group: str
    route: str
    median_s: float
    sigma: float = 0.5
    #: Whether slowness here costs conversions (the planted effect).
    sensitive: bool = False


@dataclass(frozen=True)
class Campaign:
    name: str
    share: float
    #: Seconds after the start when the campaign starts sending traffic.
    launch_s: float = 0.0
    latency_factor: float = 1.0
    error_rate: float = 0.0


@dataclass(frozen=True)
class Scenario:
    pages: tuple[Page, ...] = (
        Page("landing", "/", 0.25),
        Page("product", "/product/<id>", 0.45, sensitive=True),
        Page("cart", "/cart", 0.30),
        Page("checkout", "/checkout", 0.70, sensitive=True),
    )
    campaigns: tuple[Campaign, ...] = (Campaign("spring_sale", 0.2), Campaign("newsletter", 0.1))
    #: Probability of going on to the next page, after each page.
    continue_probability: tuple[float, ...] = (0.8, 0.55, 0.7, 0.0)
    #: Conversion of a session that reaches checkout at median latencies.
    base_conversion: float = 0.45
    phone_share: float = 0.55
    #: Variant name -> relative conversion lift (the planted A/B effect).
    variants: dict[str, float] = field(default_factory=lambda: {"A": 0.0, "B": 0.0})
    order_value_mean: float = 80.0


@dataclass
class Request:
    page: Page
    start_s: float
    latency_s: float
    error: bool
    query: str


@dataclass
class Session:
    id: str
    device: str
    campaign: str | None
    variant: str
    requests: list[Request]
    reached_checkout: bool
    converted: bool
    order_value: float | None


class Simulator:
    """Deterministic for a given seed."""

    def __init__(self, scenario: Scenario | None = None, seed: int = 0) -> None:
        self.scenario = scenario if scenario is not None else Scenario()
        self._rng = np.random.default_rng(seed)
        self._count = 0

    def _campaign(self, at_s: float) -> Campaign | None:
        roll = self._rng.random()
        for campaign in self.scenario.campaigns:
            if at_s >= campaign.launch_s:
                if roll < campaign.share:
                    return campaign
                roll -= campaign.share
        return None

    def session(self, start_s: float) -> Session:
        s, rng = self.scenario, self._rng
        self._count += 1
        device = "phone" if rng.random() < s.phone_share else "desktop"
        campaign = self._campaign(start_s)
        variants = list(s.variants)
        variant = variants[int(rng.integers(0, len(variants)))]
        requests: list[Request] = []
        clock = start_s
        penalty = 0.0  # log of the conversion multiplier, from the sensitive pages
        failed = False
        for index, page in enumerate(s.pages):
            factor = campaign.latency_factor if campaign and index == 0 else 1.0
            latency = float(rng.lognormal(math.log(page.median_s * factor), page.sigma))
            error = bool(campaign and index == 0 and rng.random() < campaign.error_rate)
            query = (f"utm_campaign={campaign.name}&utm_source=ads"
                     if campaign and index == 0 else "")
            requests.append(Request(page, clock, latency, error, query))
            clock += latency + float(rng.exponential(8.0))
            if page.sensitive:
                penalty -= SENSITIVITY_PER_SECOND[device] * (latency - page.median_s)
            failed = failed or error
            if failed or rng.random() >= s.continue_probability[index]:
                break
        reached_checkout = len(requests) == len(s.pages) and not failed
        chance = s.base_conversion * math.exp(penalty) * (1.0 + s.variants[variant])
        converted = reached_checkout and bool(rng.random() < min(1.0, chance))
        value = float(rng.gamma(4.0, s.order_value_mean / 4.0)) if converted else None
        return Session(f"s{self._count}", device, campaign.name if campaign else None,
                       variant, requests, reached_checkout, converted, value)

    def sessions(self, count: int, rate_per_s: float = 50.0) -> Iterator[Session]:
        clock = 0.0
        for _ in range(count):
            clock += float(self._rng.exponential(1.0 / rate_per_s))
            yield self.session(clock)


def emit(tracer: Tracer, sessions: Sequence[Session], epoch_ns: int) -> int:
    """Replay ``sessions`` as SERVER spans with explicit timestamps; returns the count."""
    emitted = 0
    for session in sessions:
        last = len(session.requests) - 1
        for index, request in enumerate(session.requests):
            path = request.page.route.replace("<id>", "42")
            attributes = {attr.HTTP_ROUTE: request.page.route, attr.URL_PATH: path,
                          attr.SESSION_ID: session.id,
                          attr.FEATURE_FLAG_KEY: "new-checkout",
                          attr.FEATURE_FLAG_VARIANT: session.variant,
                          "device.class": session.device}
            if request.query:
                attributes[attr.URL_QUERY] = request.query
            start = epoch_ns + int(request.start_s * 1e9)
            span = tracer.start_span(f"GET {request.page.route}", kind=SpanKind.SERVER,
                                     attributes=attributes, start_time=start)
            if index == last and session.reached_checkout:  # the outcome is known here
                span.set_attribute(attr.CONVERSION, session.converted)
                if session.order_value is not None:
                    span.set_attribute(attr.ORDER_VALUE, session.order_value)
            if request.error:
                span.set_status(Status(StatusCode.ERROR))
            span.end(end_time=start + int(request.latency_s * 1e9))
            emitted += 1
    return emitted

