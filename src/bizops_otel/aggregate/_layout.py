"""The fixed shape of aggregator state, shared by the native and the pure twin.

Latency buckets are log-spaced: bucket ``b`` (1 ≤ b ≤ 116) covers
``[LOWEST·GROWTH^(b-1), LOWEST·GROWTH^b)``, so every in-range bucket is exactly 10%
wide relative to its lower edge, from 1 ms to 63.2 s. Bucket 0 holds everything below
1 ms and bucket 117 everything from 63.2 s up; values there are clamped, and the edge
buckets' counts are how many were clamped.

The histogram of one key is stored in blocks of 16 buckets per outcome, allocated on
first use, because a key's latencies usually span a decade or two: most of the 3 × 118
counters would stay zero, and dense storage would cost 2.8 KiB per key per window.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

# The bucket geometry is shared with the configuration (export bounds are checked against
# it), so it lives below every stage; re-exported here with the rest of the state's shape.
from ..latency_buckets import BUCKETS as BUCKETS
from ..latency_buckets import GROWTH as GROWTH
from ..latency_buckets import HIGHEST as HIGHEST
from ..latency_buckets import IN_RANGE_BUCKETS as IN_RANGE_BUCKETS
from ..latency_buckets import INV_LOG_GROWTH as INV_LOG_GROWTH
from ..latency_buckets import INV_LOWEST as INV_LOWEST
from ..latency_buckets import LOWEST as LOWEST
from ..latency_buckets import bucket_edges as bucket_edges
from ..latency_buckets import bucket_of as bucket_of

BLOCK: Final = 16
BLOCKS_PER_OUTCOME: Final = 8  # 8 × 16 = 128 ≥ 118 buckets
OUTCOMES: Final = ("none", "not_converted", "converted")
OUTCOME_NONE: Final = 0
OUTCOME_NOT_CONVERTED: Final = 1
OUTCOME_CONVERTED: Final = 2
BLOCK_CODES: Final = len(OUTCOMES) * BLOCKS_PER_OUTCOME

# Per-KPI float fields, in storage order. The first five are Welford co-moments (with
# the count kept separately as an integer), the last five raw sums for export.
KPI_FIELDS: Final = (
    "mean_t", "mean_v", "m2_t", "m2_v", "c_tv",
    "sum_t", "sum_t2", "sum_v", "sum_v2", "sum_tv",
)
KPI_FIELD_COUNT: Final = len(KPI_FIELDS)

# Sessions. Finalised sessions are counted per page group in a table of
# (session outcome, pages in the session, the session's mean latency on the group's
# bucket). Pages per session are binned 1, 2, …, 15 and "16 or more".
PAGE_BINS: Final = 16
#: Distinct page groups tracked inside one session; more still count for "all pages".
GROUPS_PER_SESSION: Final = 8
#: Page groups with session statistics of their own; later ones share the overflow row.
MAX_SESSION_GROUPS: Final = 64
#: Session-table rows before the named groups: every page, and the overflow group.
SESSION_ROW_ALL: Final = 0
SESSION_ROW_OVERFLOW: Final = 1
SESSION_FIXED_ROWS: Final = 2
SESSION_CELLS: Final = 2 * PAGE_BINS * BUCKETS

# Journeys (funnels) ----------------------------------------------------------------------
# Each configured journey is an ordered list of page groups. A session record follows its
# furthest step reached in order; at finalisation the step counts, the time to the next
# step and the latency of the request that reached each step are added per journey.
#: Journeys a Config holds at most, and steps per journey: they bound a record's extra
#: memory (24 bytes per journey) and the per-request work (one look-up per journey).
MAX_JOURNEYS: Final = 8
MAX_JOURNEY_STEPS: Final = 8
#: Time from one step to the next ("think time") is binned log-spaced, 10 bins a decade
#: (each bin 25.9% wide relative to its lower edge), from 0.1 s to 3981 s (just past an
#: hour): people read, compare and type between pages, so seconds to minutes matter and
#: 10% latency buckets would be needlessly fine. Bin 0 holds everything below 0.1 s
#: (including steps whose spans ended out of order), the last bin everything from 3981 s.
THINK_LOWEST: Final = 0.1
THINK_BINS_PER_DECADE: Final = 10
THINK_IN_RANGE_BINS: Final = 46
THINK_BINS: Final = THINK_IN_RANGE_BINS + 2
THINK_GROWTH: Final = 10.0 ** (1.0 / THINK_BINS_PER_DECADE)
THINK_HIGHEST: Final = THINK_LOWEST * 10.0 ** (THINK_IN_RANGE_BINS / THINK_BINS_PER_DECADE)
INV_THINK_LOWEST: Final = 1.0 / THINK_LOWEST
INV_LOG_THINK_GROWTH: Final = THINK_BINS_PER_DECADE / math.log(10.0)


def think_bin_of(seconds: float) -> int:
    """Bin of one step-to-step time; both twins use exactly this arithmetic."""
    if not seconds >= THINK_LOWEST:
        return 0
    if not seconds < THINK_HIGHEST:
        return THINK_BINS - 1
    index = 1 + int(math.log(seconds * INV_THINK_LOWEST) * INV_LOG_THINK_GROWTH)
    return index if index < THINK_BINS - 1 else THINK_BINS - 1


def think_edges() -> npt.NDArray[np.float64]:
    """The ``THINK_BINS + 1`` edges: 0, 0.1 s, …, 3981 s, +inf."""
    inner = THINK_LOWEST * 10.0 ** (np.arange(THINK_IN_RANGE_BINS + 1, dtype=np.float64)
                                    / THINK_BINS_PER_DECADE)
    return np.concatenate(([0.0], inner, [math.inf]))


# Session flow, for load-test plans (``bizops-otel testplan``). Kept as counts, never as
# sessions: a dense matrix of page-group transitions over the session rows, where state 0
# (the "every page" row, never a page of its own) is the entry as a source and the exit as
# a destination; think times (a request's start minus the session's previous end) and
# session durations in log-spaced bins; session arrivals per span-clock minute.
#: Time bins: bin 0 below 50 ms (overlapping requests, negative think times, too), bin i
#: (1 ≤ i ≤ 57) ``[TIME_EDGES[i-1], TIME_EDGES[i])``, each 25% wide, bin 58 from 4.65 h.
#: 25% is coarse beside the latency buckets' 10%, and plenty for think times, which people
#: spread over orders of magnitude; 59 bins keep a tracked transition at 472 bytes.
TIME_LOWEST: Final = 0.05
TIME_GROWTH: Final = 1.25
TIME_IN_RANGE_BINS: Final = 57
TIME_EDGES: Final = tuple(TIME_LOWEST * TIME_GROWTH ** i for i in range(TIME_IN_RANGE_BINS + 1))
TIME_BINS: Final = TIME_IN_RANGE_BINS + 2
#: Transitions with a think-time histogram of their own, in order of first sight; the rest
#: share one "other" histogram. A dense 66 × 66 × 59 array would be 2 MiB per table, and a
#: site's sessions walk a few dozen of the 4,356 possible transitions.
THINK_TRANSITIONS: Final = 128
#: Session arrivals are counted per span-clock minute in a ring of the last 24 hours.
ARRIVAL_MINUTES: Final = 1440
#: Flow states: the session rows, row 0 standing for entry (source) and exit (destination).
FLOW_STATES: Final = SESSION_FIXED_ROWS + MAX_SESSION_GROUPS
FLOW_ENTRY_EXIT: Final = SESSION_ROW_ALL
