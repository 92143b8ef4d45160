# Native twin of ``bizops_otel/aggregate/_flow_py.py``: the session-flow recorder, for
# load-test plans. Included by ``_aggregator_c.pyx`` before the session table, which calls
# it. Same counts as the pure twin, which documents them; the arithmetic on times happens
# in the session table, in the same order as there.

from libc.math cimport floor
from libc.stdint cimport int16_t

from bizops_otel.aggregate._layout import (
    ARRIVAL_MINUTES as _ARRIVAL_MINUTES,
    FLOW_ENTRY_EXIT as _FLOW_ENTRY_EXIT,
    FLOW_STATES as _FLOW_STATES,
    THINK_TRANSITIONS as _THINK_TRANSITIONS,
    TIME_BINS as _TIME_BINS,
    TIME_EDGES as _TIME_EDGES,
)
from bizops_otel.aggregate._flow_state import FlowArrays, last_day

DEF FLOW_STATES = 66
DEF THINK_TRANSITIONS = 128
DEF TIME_BINS = 59
DEF ARRIVAL_MINUTES = 1440
DEF MINUTE_LIMIT = 9007199254740992.0  # 2**53, as _flow_py clamps

assert (_FLOW_STATES == FLOW_STATES and _THINK_TRANSITIONS == THINK_TRANSITIONS
        and _TIME_BINS == TIME_BINS and _ARRIVAL_MINUTES == ARRIVAL_MINUTES
        and _FLOW_ENTRY_EXIT == 0 and len(_TIME_EDGES) == TIME_BINS - 1)

cdef double TIME_EDGE[TIME_BINS - 1]
for _i, _edge in enumerate(_TIME_EDGES):
    TIME_EDGE[_i] = _edge


cdef inline int time_bin(double seconds) noexcept nogil:
    """How many edges are at or below ``seconds``: ``bisect_right`` of the pure twin."""
    cdef int low = 0, high = TIME_BINS - 1, middle
    while low < high:
        middle = (low + high) >> 1
        if seconds < TIME_EDGE[middle]:
            high = middle
        else:
            low = middle + 1
    return low


cdef class FlowRecorder:
    """Transition counts, think times, durations and arrivals of sessions (native)."""

    cdef uint64_t transitions[FLOW_STATES * FLOW_STATES]
    cdef int16_t slot_of[FLOW_STATES * FLOW_STATES]   # -1: no histogram of its own yet
    cdef int32_t pair_from[THINK_TRANSITIONS]
    cdef int32_t pair_to[THINK_TRANSITIONS]
    cdef int32_t tracked
    cdef uint64_t think[(THINK_TRANSITIONS + 1) * TIME_BINS]
    cdef double think_sum[THINK_TRANSITIONS + 1]
    cdef uint64_t duration[TIME_BINS]
    cdef double duration_sum
    cdef double latency_sum
    cdef int64_t arrival_minute[ARRIVAL_MINUTES]
    cdef uint64_t arrival_count[ARRIVAL_MINUTES]
    cdef uint64_t late

    def __cinit__(self):
        memset(self.transitions, 0, sizeof(self.transitions))
        memset(self.slot_of, 0xFF, sizeof(self.slot_of))
        memset(self.think, 0, sizeof(self.think))
        memset(self.think_sum, 0, sizeof(self.think_sum))
        memset(self.duration, 0, sizeof(self.duration))
        memset(self.arrival_minute, 0, sizeof(self.arrival_minute))
        memset(self.arrival_count, 0, sizeof(self.arrival_count))
        self.tracked = 0
        self.duration_sum = 0.0
        self.latency_sum = 0.0
        self.late = 0

    cdef inline void arrive(self, int32_t row, double start_s, double latency) noexcept nogil:
        cdef double m = floor(start_s / 60.0)
        cdef int64_t minute
        cdef int64_t slot
        self.transitions[row] += 1  # from the entry state, row 0
        self.latency_sum += latency
        if m > MINUTE_LIMIT:
            m = MINUTE_LIMIT
        elif m < -MINUTE_LIMIT:
            m = -MINUTE_LIMIT
        minute = <int64_t>m
        slot = minute % ARRIVAL_MINUTES  # C's remainder keeps the sign: make it a floor
        if slot < 0:
            slot += ARRIVAL_MINUTES
        if self.arrival_count[slot] and self.arrival_minute[slot] != minute:
            if minute < self.arrival_minute[slot]:
                self.late += 1
                return
            self.arrival_count[slot] = 0
        self.arrival_minute[slot] = minute
        self.arrival_count[slot] += 1

    cdef inline void step(self, int32_t previous, int32_t row, double think_s,
                          double latency) noexcept nogil:
        cdef int32_t cell = previous * FLOW_STATES + row
        cdef int32_t slot = self.slot_of[cell]
        self.transitions[cell] += 1
        self.latency_sum += latency
        if slot < 0:
            slot = THINK_TRANSITIONS  # the shared "other" histogram
            if self.tracked < THINK_TRANSITIONS:
                slot = self.tracked
                self.slot_of[cell] = <int16_t>slot
                self.pair_from[slot] = previous
                self.pair_to[slot] = row
                self.tracked += 1
        self.think[slot * TIME_BINS + time_bin(think_s)] += 1
        if think_s > 0.0:
            self.think_sum[slot] += think_s

    cdef inline void leave(self, int32_t previous, double duration_s) noexcept nogil:
        self.transitions[previous * FLOW_STATES] += 1  # to the exit state, column 0
        self.duration[time_bin(duration_s)] += 1
        self.duration_sum += duration_s

    cdef void copy_from(self, FlowRecorder other) noexcept:
        """Take ``other``'s counts: plain C copies, so no span lands half-way through."""
        memcpy(self.transitions, other.transitions, sizeof(self.transitions))
        memcpy(self.slot_of, other.slot_of, sizeof(self.slot_of))
        memcpy(self.pair_from, other.pair_from, sizeof(self.pair_from))
        memcpy(self.pair_to, other.pair_to, sizeof(self.pair_to))
        memcpy(self.think, other.think, sizeof(self.think))
        memcpy(self.think_sum, other.think_sum, sizeof(self.think_sum))
        memcpy(self.duration, other.duration, sizeof(self.duration))
        memcpy(self.arrival_minute, other.arrival_minute, sizeof(self.arrival_minute))
        memcpy(self.arrival_count, other.arrival_count, sizeof(self.arrival_count))
        self.tracked = other.tracked
        self.duration_sum = other.duration_sum
        self.latency_sum = other.latency_sum
        self.late = other.late

    def dump(self, Py_ssize_t rows):
        """A copy of the counts over the first ``rows`` session rows."""
        cdef Py_ssize_t a, b, k
        transitions = np.empty((rows, rows), np.uint64)
        cdef uint64_t[:, ::1] view = transitions
        for a in range(rows):
            for b in range(rows):
                view[a, b] = self.transitions[a * FLOW_STATES + b]
        kept = [k for k in range(self.tracked)
                if self.pair_from[k] < rows and self.pair_to[k] < rows]
        slots = kept + [THINK_TRANSITIONS]
        think = np.array([[self.think[k * TIME_BINS + b] for b in range(TIME_BINS)]
                          for k in slots], np.uint64)
        minutes, counts = last_day(
            np.array([self.arrival_minute[k] for k in range(ARRIVAL_MINUTES)], np.int64),
            np.array([self.arrival_count[k] for k in range(ARRIVAL_MINUTES)], np.uint64))
        return FlowArrays(
            transitions=transitions,
            think_pairs=np.array([(self.pair_from[k], self.pair_to[k]) for k in kept],
                                 np.int64).reshape(-1, 2),
            think=think,
            think_sum=np.array([self.think_sum[k] for k in slots], np.float64),
            latency_sum=np.array([self.latency_sum], np.float64),
            duration=np.array([self.duration[b] for b in range(TIME_BINS)], np.uint64),
            duration_sum=np.array([self.duration_sum], np.float64),
            arrival_minutes=minutes,
            arrival_counts=counts,
            late_arrivals=np.array([self.late], np.uint64),
        )
