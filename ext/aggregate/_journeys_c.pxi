# Native twin of ``bizops_otel/aggregate/_journeys_py.py``: journey (funnel) progress of
# open sessions and the counts of finalised ones. Included by ``_aggregator_c.pyx`` before
# the session table, which holds one ``JourneyProgress`` per journey beside each record.
# Same rules as the pure twin, which documents them.

from libc.stdint cimport int8_t, uint8_t

from bizops_otel.aggregate._layout import (
    INV_LOG_THINK_GROWTH as _INV_LOG_THINK_GROWTH,
    INV_THINK_LOWEST as _INV_THINK_LOWEST,
    MAX_JOURNEY_STEPS as _MAX_JOURNEY_STEPS,
    MAX_JOURNEYS as _MAX_JOURNEYS,
    MAX_SESSION_GROUPS as _JOURNEY_MAX_GROUPS,
    SESSION_FIXED_ROWS as _JOURNEY_FIXED_ROWS,
    THINK_BINS as _THINK_BINS,
    THINK_HIGHEST as _THINK_HIGHEST,
    THINK_LOWEST as _THINK_LOWEST,
)
from bizops_otel.aggregate._journey_state import JourneyArrays

DEF MAX_JOURNEYS = 8
DEF MAX_JOURNEY_STEPS = 8
DEF THINK_BINS = 48
DEF JOURNEY_TABLE_ROWS = 66     # the session table's rows: 2 fixed + 64 named groups
DEF JOURNEY_BUCKETS = 118
DEF LATENCY_CELLS = 236         # 2 (continued or not) × 118 latency buckets

assert _MAX_JOURNEYS == MAX_JOURNEYS and _MAX_JOURNEY_STEPS == MAX_JOURNEY_STEPS
assert _THINK_BINS == THINK_BINS and _JOURNEY_FIXED_ROWS + _JOURNEY_MAX_GROUPS == JOURNEY_TABLE_ROWS
assert 2 * _BUCKETS == LATENCY_CELLS

cdef double THINK_LOWEST = _THINK_LOWEST
cdef double THINK_HIGHEST = _THINK_HIGHEST
cdef double INV_THINK_LOWEST = _INV_THINK_LOWEST
cdef double INV_LOG_THINK_GROWTH = _INV_LOG_THINK_GROWTH


cdef inline int think_bin_of(double seconds) noexcept nogil:
    """Same arithmetic as ``_layout.think_bin_of``."""
    cdef int index
    if not seconds >= THINK_LOWEST:
        return 0
    if not seconds < THINK_HIGHEST:
        return THINK_BINS - 1
    index = 1 + <int>(log(seconds * INV_THINK_LOWEST) * INV_LOG_THINK_GROWTH)
    return index if index < THINK_BINS - 1 else THINK_BINS - 1


def _think_bin_of(double seconds):
    """The native think-time bin, for tests comparing it to ``_layout.think_bin_of``."""
    return think_bin_of(seconds)


# 24 bytes per journey and open session.
cdef struct JourneyProgress:
    int64_t reached_ns                       # span end of the request reaching ``reached``
    int8_t reached                           # furthest step reached in order; -1: none
    uint8_t bucket[MAX_JOURNEY_STEPS]        # latency bucket of the request reaching step k
    uint8_t think[MAX_JOURNEY_STEPS - 1]     # think bin of the time from step k to k + 1


cdef class JourneyCounts:
    """The configured journeys: which session-table rows are which steps, and the counts of
    finalised sessions (native implementation)."""

    cdef readonly int count
    cdef int last_step[MAX_JOURNEYS]
    # row * MAX_JOURNEYS + j -> the step of journey j that the row's group is, or -1
    cdef int8_t step_of[JOURNEY_TABLE_ROWS * MAX_JOURNEYS]
    # The counts, laid out as JourneyArrays' (count, ...) arrays, C order.
    cdef uint64_t entered[MAX_JOURNEYS * MAX_JOURNEY_STEPS]
    cdef uint64_t continued[MAX_JOURNEYS * MAX_JOURNEY_STEPS]
    cdef uint64_t think[MAX_JOURNEYS * MAX_JOURNEY_STEPS * THINK_BINS]
    cdef uint64_t *latency
    cdef object names
    cdef object steps
    cdef object step_index

    def __cinit__(self, journeys):
        cdef int j
        self.count = len(journeys)
        if self.count > MAX_JOURNEYS:
            raise ValueError(f"at most {MAX_JOURNEYS} journeys")
        self.names = tuple(journey.name for journey in journeys)
        self.steps = tuple(tuple(journey.steps) for journey in journeys)
        self.step_index = [{step: k for k, step in enumerate(s)} for s in self.steps]
        for j in range(self.count):
            self.last_step[j] = len(self.steps[j]) - 1
        memset(self.step_of, -1, sizeof(self.step_of))
        memset(self.entered, 0, sizeof(self.entered))
        memset(self.continued, 0, sizeof(self.continued))
        memset(self.think, 0, sizeof(self.think))
        self.latency = <uint64_t *>PyMem_RawMalloc(
            MAX_JOURNEYS * MAX_JOURNEY_STEPS * LATENCY_CELLS * sizeof(uint64_t))
        if self.latency == NULL:
            raise MemoryError()
        memset(self.latency, 0, MAX_JOURNEYS * MAX_JOURNEY_STEPS * LATENCY_CELLS
               * sizeof(uint64_t))

    def __dealloc__(self):
        PyMem_RawFree(self.latency)

    def map_row(self, int row, str name):
        """Learn that session-table row ``row`` is page group ``name``."""
        cdef int j
        if not 0 <= row < JOURNEY_TABLE_ROWS:
            return
        for j in range(self.count):
            self.step_of[row * MAX_JOURNEYS + j] = self.step_index[j].get(name, -1)

    cdef inline void start(self, JourneyProgress *progress) noexcept nogil:
        cdef int j
        memset(progress, 0, self.count * sizeof(JourneyProgress))
        for j in range(self.count):
            progress[j].reached = -1

    cdef void advance(self, JourneyProgress *progress, int32_t row, double latency,
                      int64_t end_ns) noexcept nogil:
        """One request of the session on session-table row ``row``."""
        cdef int j, step
        cdef double seconds
        cdef JourneyProgress *p
        if row < 0 or row >= JOURNEY_TABLE_ROWS:
            return
        for j in range(self.count):
            step = self.step_of[row * MAX_JOURNEYS + j]
            p = &progress[j]
            if step < 0 or step != p.reached + 1:
                continue
            if step > 0:
                # Unsigned difference: two int64 span ends never overflow it.
                seconds = (<double>(<uint64_t>end_ns - <uint64_t>p.reached_ns) * 1e-9
                           if end_ns > p.reached_ns else 0.0)
                p.think[step - 1] = <uint8_t>think_bin_of(seconds)
            p.reached = <int8_t>step
            p.reached_ns = end_ns
            p.bucket[step] = <uint8_t>bucket_of(latency)

    cdef void finalise(self, const JourneyProgress *progress) noexcept nogil:
        cdef int j, k, reached
        cdef int at
        for j in range(self.count):
            reached = progress[j].reached
            for k in range(reached + 1):
                at = j * MAX_JOURNEY_STEPS + k
                self.entered[at] += 1
                if k < reached:
                    self.continued[at] += 1
                    self.think[at * THINK_BINS + progress[j].think[k]] += 1
                    self.latency[at * LATENCY_CELLS + JOURNEY_BUCKETS + progress[j].bucket[k]] += 1
                elif k < self.last_step[j]:
                    self.latency[at * LATENCY_CELLS + progress[j].bucket[k]] += 1

    def new_arrays(self):
        """Zeroed arrays of this shape, made before ``copy_into`` (which runs no Python)."""
        return JourneyArrays.zeros(self.names, self.steps)

    cdef void copy_into(self, uint64_t *entered, uint64_t *continued, uint64_t *think,
                        uint64_t *latency) noexcept nogil:
        cdef size_t cells = self.count * MAX_JOURNEY_STEPS
        memcpy(entered, self.entered, cells * sizeof(uint64_t))
        memcpy(continued, self.continued, cells * sizeof(uint64_t))
        memcpy(think, self.think, cells * THINK_BINS * sizeof(uint64_t))
        memcpy(latency, self.latency, cells * LATENCY_CELLS * sizeof(uint64_t))
