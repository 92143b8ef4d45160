"""A traffic simulator with planted effects, emitting real spans.

Sessions walk a small shop (landing → product → cart → checkout, with exits), arrive
through campaigns, and are split between feature-flag variants. Latencies are
log-normal. A session that reaches checkout confirms or abandons its order (a
``POST /checkout/confirm`` carrying the outcome), and whether it buys depends on the
latencies it met on the pages planted as sensitive. The effect is logistic and calibrated
to published figures: +100 ms costs about 2.4% of desktop conversions and 7% of phone
conversions (Akamai, 2017). Campaigns can launch broken (slow or failing).

Sessions can be replayed offline as real SERVER spans through a real TracerProvider
(:func:`emit`), so whatever is installed on it sees exactly what production would; or
driven live, one request at a time, by a ``visit`` function that performs each request
(over HTTP, in the demo) and reports the latency the visitor experienced.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from .. import attributes as attr

#: Relative conversion lost per second of extra latency on a sensitive page, by device:
#: 2.4% per 100 ms on desktop and 7% per 100 ms on phones (Akamai 2017).
SENSITIVITY_PER_SECOND = {"desktop": 0.24, "phone": 0.70}


def logistic_slope(device: str, base_conversion: float) -> float:
    """The planted log-odds slope per second on a sensitive page: near the base rate p,
    d ln(rate)/dx = β(1 − p), so β = −sensitivity / (1 − p) gives the published
    relative loss per second."""
    return -SENSITIVITY_PER_SECOND[device] / (1.0 - base_conversion)


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
    #: Variant name -> relative lift of the probability of going on after each page: a
    #: variant that draws visitors deeper into the shop, so that more of its sessions
    #: reach the slow checkout page with no page any slower (the A/B confounder).
    variant_depth: dict[str, float] = field(default_factory=dict)
    #: Variant name -> seconds added to every one of its requests (a planted latency
    #: effect, the same on every page).
    variant_delay_s: dict[str, float] = field(default_factory=dict)
    order_value_mean: float = 80.0
    #: Mean pause between two pages of a session, in seconds (exponential).
    think_time_s: float = 8.0
    #: The order confirmation (``POST /checkout/confirm``), a page group of its own so
    #: that its latency does not blur the checkout page's.
    confirm: Page = Page("order", "/checkout/confirm", 0.35)
    #: Page group -> impatience per second: a request there slower than the page's median
    #: by x seconds multiplies the chance of going on by exp(−impatience · x) (the planted
    #: funnel effect). On checkout it is the chance of confirming the order at all.
    impatience: dict[str, float] = field(default_factory=dict)

    def patience(self, page: Page, latency_s: float) -> float:
        """The factor a request's slowness puts on going on from its page (1: none)."""
        rate = self.impatience.get(page.group, 0.0)
        return math.exp(-rate * max(0.0, latency_s - page.median_s)) if rate else 1.0

    def campaign(self, name: str | None) -> Campaign | None:
        return next((c for c in self.campaigns if c.name == name), None)

    def draw(self, page: Page, campaign: str | None, landing: bool,
             rng: np.random.Generator, variant: str | None = None) -> tuple[float, bool]:
        """Latency and error of one request: the page's log-normal latency, made slower
        or failing on the landing request of a broken campaign, plus the variant's
        planted delay. The demo shop serves requests with this same function."""
        broken = self.campaign(campaign) if landing else None
        factor = broken.latency_factor if broken else 1.0
        latency = float(rng.lognormal(math.log(page.median_s * factor), page.sigma))
        latency += self.variant_delay_s.get(variant, 0.0) if variant is not None else 0.0
        error = bool(broken and rng.random() < broken.error_rate)
        return latency, error



@dataclass
class Request:
    page: Page
    start_s: float
    latency_s: float
    error: bool
    query: str
    #: Set on the order confirmation only: whether the session bought, and for how much.
    confirm: bool = False
    converted: bool = False
    order_value: float | None = None

    @property
    def method(self) -> str:
        return "POST" if self.confirm else "GET"

    @property
    def path(self) -> str:
        return self.page.route.replace("<id>", "42")


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


#: Performs one request of a session and returns (latency seconds, error) as the visitor
#: experienced them. Offline, the simulator draws them; live, the demo sends the request.
Visit = Callable[["Session", Request], tuple[float, bool]]


class Simulator:
    """Deterministic for a given seed."""

    def __init__(self, scenario: Scenario | None = None,
                 seed: int | Sequence[int] = 0) -> None:
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

    def _draw(self, session: Session, request: Request) -> tuple[float, bool]:
        landing = not session.requests
        return self.scenario.draw(request.page, session.campaign, landing, self._rng,
                                  session.variant)

    def session(self, start_s: float, visit: Visit | None = None,
                session_id: str | None = None) -> Session:
        """One session starting at ``start_s``; ``visit`` performs its requests (by
        default they are drawn from the scenario)."""
        s, rng = self.scenario, self._rng
        perform = visit if visit is not None else self._draw
        self._count += 1
        device = "phone" if rng.random() < s.phone_share else "desktop"
        campaign = self._campaign(start_s)
        variants = list(s.variants)
        variant = variants[int(rng.integers(0, len(variants)))]
        session = Session(session_id or f"s{self._count}", device,
                          campaign.name if campaign else None, variant, [], False, False, None)
        clock = start_s
        base = s.base_conversion
        logit = math.log(base / (1.0 - base))
        slope = logistic_slope(device, base)
        for index, page in enumerate(s.pages):
            query = (f"utm_campaign={campaign.name}&utm_source=ads"
                     if campaign and index == 0 else "")
            request = Request(page, clock, 0.0, False, query)
            request.latency_s, request.error = perform(session, request)
            session.requests.append(request)
            clock += request.latency_s + float(rng.exponential(s.think_time_s))
            if page.sensitive:
                logit += slope * (request.latency_s - page.median_s)
            going_on = s.continue_probability[index] * (1.0 + s.variant_depth.get(variant, 0.0))
            going_on *= s.patience(page, request.latency_s)
            if request.error or rng.random() >= going_on:
                break
        last = session.requests[-1]
        session.reached_checkout = (len(session.requests) == len(s.pages)
                                    and not last.error)
        # An impatient visitor leaves a slow checkout without confirming (a draw only when
        # planted, so that other scenarios keep their random streams).
        leaves = (session.reached_checkout and last.page.group in s.impatience
                  and rng.random() >= s.patience(last.page, last.latency_s))
        if session.reached_checkout and not leaves:
            chance = (1.0 + s.variants[variant]) / (1.0 + math.exp(-logit))
            session.converted = bool(rng.random() < min(1.0, chance))
            if session.converted:
                session.order_value = float(rng.gamma(4.0, s.order_value_mean / 4.0))
            confirm = Request(s.confirm, clock, 0.0, False, "", confirm=True,
                              converted=session.converted, order_value=session.order_value)
            confirm.latency_s, confirm.error = perform(session, confirm)
            session.requests.append(confirm)
        return session

    def arrivals(self, rate_per_s: float = 50.0) -> Iterator[float]:
        """Session start times of a Poisson process, forever."""
        clock = 0.0
        while True:
            clock += float(self._rng.exponential(1.0 / rate_per_s))
            yield clock

    def sessions(self, count: int, rate_per_s: float = 50.0) -> Iterator[Session]:
        for _, start in zip(range(count), self.arrivals(rate_per_s), strict=False):
            yield self.session(start)


def emit(tracer: Tracer, sessions: Sequence[Session], epoch_ns: int) -> int:
    """Replay ``sessions`` as SERVER spans with explicit timestamps; returns the count."""
    emitted = 0
    for session in sessions:
        for request in session.requests:
            attributes = {attr.HTTP_ROUTE: request.page.route, attr.URL_PATH: request.path,
                          attr.SESSION_ID: session.id,
                          attr.FEATURE_FLAG_KEY: "new-checkout",
                          attr.FEATURE_FLAG_VARIANT: session.variant,
                          "device.class": session.device}
            if request.query:
                attributes[attr.URL_QUERY] = request.query
            start = epoch_ns + int(request.start_s * 1e9)
            span = tracer.start_span(f"{request.method} {request.page.route}",
                                     kind=SpanKind.SERVER, attributes=attributes,
                                     start_time=start)
            if request.confirm:  # the outcome is known here
                span.set_attribute(attr.CONVERSION, request.converted)
                if request.order_value is not None:
                    span.set_attribute(attr.ORDER_VALUE, request.order_value)
            if request.error:
                span.set_status(Status(StatusCode.ERROR))
            span.end(end_time=start + int(request.latency_s * 1e9))
            emitted += 1
    return emitted

