"""Finalised-session journey (funnel) counts as plain numpy arrays, and how they merge.

Both twins' session tables dump these beside the per-group session counts
(:class:`~bizops_otel.aggregate._session_state.SessionArrays` carries them). Row ``j`` is
the ``j``-th journey, column ``k`` its ``k``-th step; steps past a journey's length stay
zero, so every journey has ``MAX_JOURNEY_STEPS`` columns and journeys of different
lengths stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._layout import BUCKETS, MAX_JOURNEY_STEPS, THINK_BINS

U64 = npt.NDArray[np.uint64]

#: Array fields, in storage order (``names`` and ``steps`` are the header).
JOURNEY_ARRAY_FIELDS = ("entered", "continued", "think", "latency")


@dataclass(frozen=True)
class JourneyArrays:
    """Counts of finalised sessions per journey and step.

    - ``entered[j, k]``: sessions that reached step k of journey j (in order);
    - ``continued[j, k]``: of those, the ones that went on to reach step k + 1;
    - ``think[j, k, bin]``: the time from reaching step k to reaching k + 1, binned by
      ``_layout.think_bin_of`` (binned only: a record keeps 24 bytes per journey);
    - ``latency[j, k, continued, bucket]``: the latency bucket of the request that reached
      step k, by whether the session continued (the last step, which has no next, is not
      counted here).
    """

    names: tuple[str, ...]
    steps: tuple[tuple[str, ...], ...]
    entered: U64  # (journeys, MAX_JOURNEY_STEPS)
    continued: U64  # (journeys, MAX_JOURNEY_STEPS)
    think: U64  # (journeys, MAX_JOURNEY_STEPS, THINK_BINS)
    latency: U64  # (journeys, MAX_JOURNEY_STEPS, 2, BUCKETS)

    @staticmethod
    def zeros(names: tuple[str, ...], steps: tuple[tuple[str, ...], ...]) -> JourneyArrays:
        n = len(names)
        return JourneyArrays(
            names=names, steps=steps,
            entered=np.zeros((n, MAX_JOURNEY_STEPS), np.uint64),
            continued=np.zeros((n, MAX_JOURNEY_STEPS), np.uint64),
            think=np.zeros((n, MAX_JOURNEY_STEPS, THINK_BINS), np.uint64),
            latency=np.zeros((n, MAX_JOURNEY_STEPS, 2, BUCKETS), np.uint64),
        )

    @staticmethod
    def empty() -> JourneyArrays:
        return JourneyArrays.zeros((), ())

    def freeze(self) -> JourneyArrays:
        for name in JOURNEY_ARRAY_FIELDS:
            getattr(self, name).setflags(write=False)
        return self


def merge_journeys(parts: Sequence[JourneyArrays]) -> JourneyArrays:
    """Add the parts, matching journeys by name (order of first sight, with the steps
    first seen under that name) and steps by index."""
    steps: dict[str, tuple[str, ...]] = {}
    for part in parts:
        for name, part_steps in zip(part.names, part.steps, strict=True):
            steps.setdefault(name, part_steps)
    merged = JourneyArrays.zeros(tuple(steps), tuple(steps.values()))
    row = {name: j for j, name in enumerate(steps)}
    for part in parts:
        if not part.names:
            continue
        at = np.array([row[n] for n in part.names], np.intp)
        for name in JOURNEY_ARRAY_FIELDS:
            getattr(merged, name)[at] += getattr(part, name)
    return merged
