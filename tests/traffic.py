"""The simulated shop's sessions recorded straight into an aggregator, key by key in
batches (``record_many``): tens of thousands of sessions a second on either twin, for the
statistics that need many seeds. The span path is the other tests' business
(``tests/spans.py`` replays sessions through a real TracerProvider)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from bizops_otel import Config
from bizops_otel.attributes import FEATURE_FLAG_KEY, FEATURE_FLAG_VARIANT, PAGE_GROUP
from bizops_otel.demo.simulate import Session

FLAG = "new-checkout"
DIMENSIONS = (PAGE_GROUP, FEATURE_FLAG_KEY, FEATURE_FLAG_VARIANT)
F64 = npt.NDArray[np.float64]


#: Admit a key on its first sighting, where the aggregator can be told so (its
#: ``admission_count``): these tests record each key in a few batches and account for
#: every request, so none may wait in the overflow key for a second sighting.
FIRST_SIGHTING: dict[str, Any] = (
    {"admission_count": 1} if "admission_count" in {f.name for f in dataclasses.fields(Config)}
    else {})


def config(**overrides: Any) -> Config:
    return Config(dimensions=DIMENSIONS, kpis=("conversion", "order_value"),
                  **{**FIRST_SIGHTING, **overrides})


@dataclass
class Batch:
    """The requests of one key: latency, and the outcome and order value (nan: none)."""

    latency: list[float] = field(default_factory=list)
    conversion: list[float] = field(default_factory=list)
    order_value: list[float] = field(default_factory=list)

    def arrays(self) -> tuple[F64, F64, F64]:
        return (np.array(self.latency), np.array(self.conversion),
                np.array(self.order_value))


Key = tuple[str, str, str]


def batches(sessions: Iterable[Session], flag: str = FLAG) -> dict[Key, Batch]:
    """The sessions' requests by key (page group, flag, variant), in order."""
    by_key: dict[Key, Batch] = {}
    for session in sessions:
        for request in session.requests:
            batch = by_key.setdefault((request.page.group, flag, session.variant), Batch())
            batch.latency.append(request.latency_s)
            batch.conversion.append(float(request.converted) if request.confirm else np.nan)
            batch.order_value.append(np.nan if request.order_value is None
                                     else request.order_value)
    return by_key


def record(aggregator: Any, sessions: Iterable[Session], flag: str = FLAG,
           end_ns: int | None = None) -> dict[Key, Batch]:
    """Record the sessions' requests; returns what was recorded, by key."""
    by_key = batches(sessions, flag)
    for key, batch in by_key.items():
        latency, conversion, order_value = batch.arrays()
        aggregator.record_many(key, latency, {"conversion": conversion,
                                              "order_value": order_value}, end_ns=end_ns)
    return by_key


def latencies(by_key: dict[Key, Batch], variant: str, page: str | None = None) -> F64:
    """Every recorded latency of ``variant`` (on ``page`` only, when given)."""
    parts = [np.array(b.latency) for (group, _, v), b in by_key.items()
             if v == variant and (page is None or group == page)]
    return np.concatenate(parts) if parts else np.zeros(0)
