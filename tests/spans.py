"""A real SDK TracerProvider with an in-memory exporter and bizops-otel's processor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from bizops_otel import BizOpsSpanProcessor, Config
from tests.conftest import load_hooks


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
    config = config if config is not None else Config()
    provider = TracerProvider(**provider_args)
    exporter = InMemorySpanExporter()
    aggregator = aggregator_cls(config)
    processor = BizOpsSpanProcessor(aggregator, config, hooks=load_hooks(aggregator_cls))
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Pipeline(provider, provider.get_tracer("tests"), exporter, aggregator, processor)
