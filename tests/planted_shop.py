"""The simulator's planted scenario as the report tests read it: one sensitive page
(product), a campaign that launches broken (slow and failing landing pages), a variant
that converts better; recorded through the span processor."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from bizops_otel import BizOpsSpanProcessor, Config, attributes
from bizops_otel.analytics.health import CampaignHealth, assess
from bizops_otel.demo.simulate import Campaign, Page, Scenario, Session, Simulator, emit
from tests.conftest import load_hooks
from tests.spans import EPOCH, PAGE_RULES

#: Only the product page is sensitive: landing, cart and checkout are placebos.
PAGES = (Page("landing", "/", 0.25), Page("product", "/product/<id>", 0.45, sensitive=True),
         Page("cart", "/cart", 0.30), Page("checkout", "/checkout", 0.70))
SCENARIO = Scenario(
    pages=PAGES, phone_share=1.0,
    campaigns=(Campaign("spring_sale", 0.2),
               Campaign("flash_sale", 0.15, latency_factor=10.0, error_rate=0.3)),
    variants={"A": 0.0, "B": 0.15})
CONFIG = Config(dimensions=(attributes.PAGE_GROUP, attributes.CAMPAIGN_ID,
                            attributes.FEATURE_FLAG_KEY, attributes.FEATURE_FLAG_VARIANT),
                page_groups=PAGE_RULES, key_ttl=0)  # snapshots come a day after the traffic
#: A day after the traffic every session has been idle past its timeout.
LATER_NS = EPOCH + 86_400 * 10**9


def end_ns(sessions: list[Session]) -> int:
    """When the last request ended, timed as ``simulate.emit`` times its spans."""
    return max(EPOCH + int(r.start_s * 1e9) + int(r.latency_s * 1e9)
               for s in sessions for r in s.requests)


def planted(aggregator_cls: Any, sessions: int = 8000, seed: int = 0,
            config: Config = CONFIG) -> tuple[Any, list[CampaignHealth], list[Session]]:
    """The planted traffic recorded through the span processor: the snapshot with every
    session finalised, and campaign health as it stood when the traffic ended."""
    aggregator = aggregator_cls(config)
    provider = TracerProvider()
    provider.add_span_processor(BizOpsSpanProcessor(aggregator, config,
                                                    hooks=load_hooks(aggregator_cls)))
    simulated = list(Simulator(SCENARIO, seed).sessions(sessions))
    emit(provider.get_tracer("planted"), simulated, EPOCH)
    health = assess(aggregator.snapshot(now_ns=end_ns(simulated)), {})
    return aggregator.snapshot(now_ns=LATER_NS), health, simulated
