"""Keep every request countable under head sampling.

The SDK hands processors only *recording* spans, so under ``TraceIdRatioBased(0.1)`` nine
requests in ten never reach the aggregator and business totals shrink tenfold.
:class:`RecordUnsampled` turns a sampler's DROP into RECORD_ONLY: every request is then
recorded and aggregated, the export processors still export only sampled spans, and the
sampled flag propagated downstream is unchanged. The price is a full span object for
requests that would otherwise have been a no-op span.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from typing import Any, NamedTuple

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Tracer
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes


class RecordUnsampled(Sampler):
    """Wraps a sampler; spans it would drop are recorded but not sampled."""

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None,
                      trace_state: TraceState | None = None) -> SamplingResult:
        result = self.inner.should_sample(parent_context, trace_id, name, kind, attributes,
                                          links, trace_state)
        if result.decision is Decision.DROP:
            return SamplingResult(Decision.RECORD_ONLY, result.attributes, result.trace_state)
        return result

    def get_description(self) -> str:
        return f"RecordUnsampled{{{self.inner.get_description()}}}"


class SamplingState(NamedTuple):
    """What the aggregator's counts mean under the provider's sampler."""

    description: str
    #: True when every request reaches the aggregator; False means counts are a sample.
    complete: bool


def sampling_state(provider: Any) -> SamplingState:
    sampler = getattr(provider, "sampler", None)
    if sampler is None:
        return SamplingState("unknown", False)
    description = sampler.get_description()
    complete = isinstance(sampler, RecordUnsampled) or description == "AlwaysOnSampler"
    return SamplingState(description, complete)


def record_unsampled(provider: Any) -> bool:
    """Wrap ``provider``'s sampler in place, including tracers already handed out (they
    keep their own reference to it). Returns False if this SDK's layout is unknown."""
    # Older SDKs keep the sampler behind a read-only property over ``_sampler``.
    slot = "_sampler" if hasattr(provider, "_sampler") else "sampler"
    sampler = getattr(provider, slot, None)
    if sampler is None or not isinstance(sampler, Sampler):
        return False
    if isinstance(sampler, RecordUnsampled):
        return True
    wrapped = RecordUnsampled(sampler)
    setattr(provider, slot, wrapped)
    for tracer in _tracers(provider, sampler):
        if getattr(tracer, "sampler", None) is sampler:
            tracer.sampler = wrapped
    return True


def _tracers(provider: Any, sampler: Sampler) -> list[Any]:
    """The tracers ``provider`` has handed out. SDKs that keep no registry of them (1.25
    for one) give each its own reference to the sampler and the provider's span
    processor: those are found among the sampler's referrers, once, at install."""
    registry = getattr(provider, "_tracers", None)
    if registry is not None:
        return list(registry.values())
    processor = getattr(provider, "_active_span_processor", None)
    return [tracer for tracer in gc.get_referrers(sampler)
            if isinstance(tracer, Tracer) and processor is not None
            and getattr(tracer, "span_processor", None) is processor]
