"""Journeys (funnels) read from the finalised-session counts: where sessions drop out,
how long they take between steps, and whether slowness at a step goes with dropping.

``Snapshot.journeys()`` returns these. Every figure is computed from the counts of
:class:`~bizops_otel.aggregate._journey_state.JourneyArrays`, so a merged snapshot (workers,
state files) gives the funnel of all its sessions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .. import stats
from ._journey_state import JourneyArrays
from ._layout import think_edges

#: Two-sided 95%: the level of the conversion intervals and of "latency explains it".
CONFIDENCE = 0.95
_THINK_EDGES = think_edges()


@dataclass(frozen=True)
class FunnelStep:
    """One step of a journey, over the finalised sessions that reached it in order.

    - ``entered``: sessions that reached the step; ``continued`` of those, the ones that
      reached the next step, and ``dropped`` the others (both None at the last step,
      which has no next);
    - ``conversion``: step-to-step conversion ``continued / entered``, with its Wilson
      95% interval ``conversion_low`` … ``conversion_high`` (nan without sessions);
    - ``median_seconds_to_next``: median time from reaching this step to reaching the
      next, over the sessions that continued, interpolated geometrically inside its
      think-time bin (each bin is 26% wide; nan without any);
    - ``latency_correlation``: Spearman ρ of the latency of the request that reached the
      step (its 10% latency bucket) with continuing, from mid-ranks of the bucketed table
      as scipy ranks ties. It is the step's own correlation, not weighted by a share of
      requests as the page-group impact scores are: a funnel step is one request per
      session. Negative: sessions whose step was slow went on less often.
    """

    journey: str
    index: int
    name: str
    entered: int
    continued: int | None
    dropped: int | None
    conversion: float
    conversion_low: float
    conversion_high: float
    median_seconds_to_next: float
    latency_correlation: float
    #: Sessions that continued, by think-time bin (``_layout.think_edges``), read-only.
    think_counts: npt.NDArray[np.uint64] = field(compare=False, repr=False,
                                                 default_factory=lambda: np.zeros(0, np.uint64))

    def seconds_to_next(self, q: float) -> float:
        """Quantile ``q`` of the time from reaching this step to reaching the next, over
        the sessions that continued, interpolated geometrically inside its bin (nan
        without any)."""
        if self.think_counts.size == 0:
            return math.nan
        return stats.histogram_quantile(self.think_counts.astype(np.float64), _THINK_EDGES, q)

    @property
    def is_last(self) -> bool:
        return self.continued is None

    @property
    def latency_significant(self) -> bool:
        """Whether ρ differs from 0 at the 5% level: under no association, ρ of n pairs
        is about normal with variance 1/(n − 1), so |ρ|·√(n − 1) > 1.96 rejects."""
        rho, n = self.latency_correlation, self.entered
        if math.isnan(rho) or n < 3:
            return False
        return abs(rho) * math.sqrt(n - 1) > stats.z_critical(CONFIDENCE)


@dataclass(frozen=True)
class BiggestDrop:
    """The step that loses the largest share of the sessions reaching it, and whether
    its latency explains it: slower requests there went with dropping (ρ < 0,
    significant at 5%)."""

    step: FunnelStep
    next_step: str
    latency_explains: bool

    def __str__(self) -> str:
        step = self.step
        text = (f"{step.name} → {self.next_step}: {step.dropped:,} of {step.entered:,} "
                f"sessions drop ({1 - step.conversion:.0%}; conversion {step.conversion:.1%}, "
                f"95% CI {step.conversion_low:.1%}–{step.conversion_high:.1%})")
        if self.latency_explains:
            return text + (f"; slow {step.name} requests drop more "
                           f"(Spearman ρ = {step.latency_correlation:+.2f})")
        return text + (f"; latency does not explain it "
                       f"(Spearman ρ = {step.latency_correlation:+.2f})")


@dataclass(frozen=True)
class JourneyFunnel:
    """A configured journey's steps, first to last."""

    name: str
    steps: tuple[FunnelStep, ...]

    @property
    def sessions(self) -> int:
        """Sessions that reached the first step."""
        return self.steps[0].entered

    @property
    def completed(self) -> int:
        """Sessions that reached the last step in order."""
        return self.steps[-1].entered

    def biggest_drop(self) -> BiggestDrop | None:
        """The step (not the last) with the lowest step-to-step conversion among the
        steps some session reached; None when no session did. Lowest conversion rather
        than most sessions lost: the first steps lose the most sessions in number only
        because the most sessions reach them."""
        reached = [s for s in self.steps if not s.is_last and s.entered > 0]
        if not reached:
            return None
        worst = min(reached, key=lambda s: s.conversion)
        explains = worst.latency_significant and worst.latency_correlation < 0
        return BiggestDrop(worst, self.steps[worst.index + 1].name, explains)

    def __str__(self) -> str:
        lines = [f"journey {self.name}: {self.sessions:,} sessions, "
                 f"{self.completed:,} completed"]
        for step in self.steps:
            if step.is_last:
                lines.append(f"  {step.index} {step.name:<12} {step.entered:>8,}")
                continue
            lines.append(
                f"  {step.index} {step.name:<12} {step.entered:>8,}  → {step.conversion:6.1%}"
                f" [{step.conversion_low:.1%}, {step.conversion_high:.1%}]"
                f"  median {step.median_seconds_to_next:7.1f} s"
                f"  ρ(latency, continue) {step.latency_correlation:+.2f}")
        return "\n".join(lines)


def journey_funnels(arrays: JourneyArrays) -> dict[str, JourneyFunnel]:
    """Every journey in ``arrays``, by name."""
    result: dict[str, JourneyFunnel] = {}
    for j, (name, names) in enumerate(zip(arrays.names, arrays.steps, strict=True)):
        entered = arrays.entered[j].astype(np.float64)
        continued = arrays.continued[j].astype(np.float64)
        low, high = stats.wilson_interval(continued, entered, CONFIDENCE)
        steps = []
        for k, step_name in enumerate(names):
            last = k == len(names) - 1
            n = int(entered[k])
            went_on = int(continued[k])
            steps.append(FunnelStep(
                journey=name, index=k, name=step_name, entered=n,
                continued=None if last else went_on,
                dropped=None if last else n - went_on,
                conversion=math.nan if last or n == 0 else went_on / n,
                conversion_low=math.nan if last else float(low[k]),
                conversion_high=math.nan if last else float(high[k]),
                median_seconds_to_next=(math.nan if last else stats.histogram_quantile(
                    arrays.think[j, k].astype(np.float64), _THINK_EDGES, 0.5)),
                # table rows: latency buckets; columns: dropped, continued
                latency_correlation=(math.nan if last else stats.spearman_table(
                    arrays.latency[j, k].T)),
                think_counts=_read_only(arrays.think[j, k]) if not last else _read_only(
                    np.zeros(0, np.uint64)),
            ))
        result[name] = JourneyFunnel(name, tuple(steps))
    return result


def _read_only(counts: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    copy = np.array(counts, np.uint64)
    copy.setflags(write=False)
    return copy
