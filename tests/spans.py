"""Real SDK TracerProviders with bizops-otel's processor: an in-memory pipeline, and the
simulated shop's sessions replayed through one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from bizops_otel import BizOpsSpanProcessor, Config, Journey, Operation, attributes
from bizops_otel.analytics import session_stats
from bizops_otel.demo.simulate import Scenario, Session, Simulator, emit
from tests.conftest import load_hooks
from tests.keys import EVERY_KEY


@dataclass
class Pipeline:
    provider: TracerProvider
    tracer: Tracer
    exporter: InMemorySpanExporter
    aggregator: Any
    processor: BizOpsSpanProcessor

    def spans(self) -> dict[str, ReadableSpan]:
        return {span.name: span for span in self.exporter.get_finished_spans()}


def pipeline(aggregator_cls: Any, config: Config | None = None, **provider_args: Any) -> Pipeline:
    config = config if config is not None else Config(**EVERY_KEY)
    provider = TracerProvider(**provider_args)
    exporter = InMemorySpanExporter()
    aggregator = aggregator_cls(config)
    processor = BizOpsSpanProcessor(aggregator, config, hooks=load_hooks(aggregator_cls))
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Pipeline(provider, provider.get_tracer("tests"), exporter, aggregator, processor)


EPOCH = 1_700_000_000 * 10**9
#: The simulated shop's routes as page groups.
PAGE_RULES = (("/", "landing"), ("/product/*", "product"), ("/cart", "cart"),
              ("/checkout", "checkout"), ("/checkout/confirm", "order"))


def replay(aggregator_cls: Any, scenario: Scenario, sessions: int,
           seed: int) -> tuple[Any, list[Session]]:
    config = Config(**EVERY_KEY, dimensions=(attributes.PAGE_GROUP,), page_groups=PAGE_RULES)
    aggregator = aggregator_cls(config)
    provider = TracerProvider()
    provider.add_span_processor(BizOpsSpanProcessor(aggregator, config,
                                                    hooks=load_hooks(aggregator_cls)))
    simulated = list(Simulator(scenario, seed).sessions(sessions))
    emit(provider.get_tracer("simulator"), simulated, EPOCH)
    # A day later every session has been idle for longer than the timeout.
    snapshot = aggregator.snapshot(now_ns=EPOCH + 86_400 * 10**9)
    assert session_stats(snapshot).finalised == sessions and session_stats(snapshot).open == 0
    return snapshot, simulated


def run(aggregator_cls: Any, scenario: Scenario, sessions: int, seed: int,
        dimensions: tuple[str, ...] = (attributes.PAGE_GROUP, attributes.CAMPAIGN_ID),
        operations: tuple[Operation, ...] = (), journeys: tuple[Journey, ...] = ()) -> Any:
    config = Config(**EVERY_KEY, dimensions=dimensions, page_groups=PAGE_RULES, max_keys=100,
                    operations=operations, journeys=journeys)
    aggregator = aggregator_cls(config)
    provider = TracerProvider()
    provider.add_span_processor(BizOpsSpanProcessor(aggregator, config,
                                                    hooks=load_hooks(aggregator_cls)))
    simulated = list(Simulator(scenario, seed).sessions(sessions))
    count = emit(provider.get_tracer("simulator"), simulated, EPOCH)
    assert aggregator.snapshot().total().count == count
    return aggregator.snapshot(now_ns=EPOCH), simulated
