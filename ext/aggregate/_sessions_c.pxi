# Native twin of ``bizops_otel/aggregate/_sessions_py.py``: the bounded session table.
# Included by ``_aggregator_c.pyx``. Same rules as the pure twin, which documents them: open
# sessions in least-recently-seen order (an intrusive doubly linked list over a record
# array), found by a salted 64-bit hash of the id in an open-addressing index with
# backward-shift deletion, finalised on idle timeout or eviction into per-group counts.

from cpython.object cimport PyObject_Hash

from bizops_otel.aggregate._layout import (
    GROUPS_PER_SESSION as _GROUPS_PER_SESSION,
    MAX_SESSION_GROUPS as _MAX_SESSION_GROUPS,
    PAGE_BINS as _PAGE_BINS,
    SESSION_FIXED_ROWS as _SESSION_FIXED_ROWS,
)
from bizops_otel.aggregate._sessions_py import EXPIRE_PER_SPAN as _EXPIRE_PER_SPAN, GroupTable, new_salt
from bizops_otel.aggregate._session_state import SessionArrays

DEF GROUPS_PER_SESSION = 8
DEF PAGE_BINS = 16
DEF BUCKET_COUNT = 118
DEF SESSION_ROWS = 66           # 2 fixed rows + 64 named groups
DEF SESSION_CELLS = 3776        # 2 outcomes × 16 page bins × 118 buckets

assert _GROUPS_PER_SESSION == GROUPS_PER_SESSION and _PAGE_BINS == PAGE_BINS
assert _SESSION_FIXED_ROWS + _MAX_SESSION_GROUPS == SESSION_ROWS and _BUCKETS == BUCKET_COUNT

cdef int EXPIRE_PER_SPAN = _EXPIRE_PER_SPAN
cdef int64_t INT64_MIN_VALUE = -9223372036854775807 - 1

cdef extern from "Python.h":
    void *PyMem_RawCalloc(size_t nelem, size_t elsize) nogil


cdef inline bint idle_over(int64_t last_ns, int64_t now_ns, int64_t timeout_ns) noexcept nogil:
    """Whether ``now_ns - last_ns >= timeout_ns``, without overflowing int64."""
    return now_ns >= last_ns and <uint64_t>now_ns - <uint64_t>last_ns >= <uint64_t>timeout_ns


cdef struct SessionRecord:
    uint64_t hash
    int64_t last_ns
    int32_t older           # towards the least recently seen; -1 ends the list
    int32_t newer           # towards the most recently seen; also the free-list link
    uint32_t pages
    int32_t n_groups
    int32_t converted
    int32_t truncated
    double revenue
    double latency_sum
    int32_t group[GROUPS_PER_SESSION]
    uint32_t requests[GROUPS_PER_SESSION]
    double group_latency[GROUPS_PER_SESSION]
    # Session flow (load-test plans): the row of the previous request, and the first
    # request's end and latency, for the session's duration.
    int32_t previous_row
    int64_t first_end_ns
    double first_latency


cdef inline uint64_t splitmix(uint64_t h) noexcept nogil:
    h = (h ^ (h >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    h = (h ^ (h >> 27)) * <uint64_t>0x94D049BB133111EB
    return h ^ (h >> 31)


cdef class SessionTable:
    """Open sessions and the counts of finalised ones (native implementation)."""

    cdef SessionRecord *records
    cdef int32_t allocated      # records allocated
    cdef int32_t high_water     # records ever handed out
    cdef int32_t free_head
    cdef int32_t *index         # record position + 1; 0 marks an empty slot
    cdef size_t index_mask
    cdef int32_t open_count
    cdef int32_t oldest
    cdef int32_t newest
    cdef int32_t capacity
    cdef int64_t timeout_ns
    cdef int64_t clock
    cdef uint64_t salt
    cdef uint64_t *table
    cdef uint64_t requests[SESSION_ROWS]
    cdef uint64_t pages[SESSION_ROWS]
    cdef double latency_sum[SESSION_ROWS * 2]
    cdef double revenue[SESSION_ROWS]
    cdef uint64_t finalised
    cdef uint64_t evicted
    cdef uint64_t truncated
    cdef readonly object groups
    # Journeys: progress per journey beside each record (n_journeys per record), or none.
    cdef JourneyCounts journeys
    cdef int n_journeys
    cdef JourneyProgress *progress
    cdef FlowRecorder flow

    def __cinit__(self, int32_t capacity, int64_t timeout_ns, journeys=()):
        cdef size_t slots = 16
        while slots < <size_t>capacity * 2:
            slots *= 2
        self.capacity = capacity
        self.timeout_ns = timeout_ns
        self.clock = INT64_MIN_VALUE
        self.salt = <uint64_t>new_salt()
        self.groups = GroupTable()
        self.records = NULL
        self.allocated = 0
        self.high_water = 0
        self.free_head = -1
        self.oldest = -1
        self.newest = -1
        self.open_count = 0
        # calloc: pages of the table that no group touches are never made resident.
        self.index = <int32_t *>PyMem_RawCalloc(slots, sizeof(int32_t))
        self.index_mask = slots - 1
        self.table = <uint64_t *>PyMem_RawCalloc(SESSION_ROWS * SESSION_CELLS, sizeof(uint64_t))
        if self.index == NULL or self.table == NULL:
            raise MemoryError()
        memset(self.requests, 0, sizeof(self.requests))
        memset(self.pages, 0, sizeof(self.pages))
        memset(self.latency_sum, 0, sizeof(self.latency_sum))
        memset(self.revenue, 0, sizeof(self.revenue))
        self.finalised = 0
        self.evicted = 0
        self.truncated = 0
        self.progress = NULL
        self.journeys = JourneyCounts(journeys) if journeys else None
        self.n_journeys = self.journeys.count if journeys else 0

        self.flow = FlowRecorder()

    def group_row(self, str name):
        """The session-table row of page group ``name`` (see ``GroupTable.row``)."""
        row = self.groups.row(name)
        if self.n_journeys and row >= _SESSION_FIXED_ROWS:
            self.journeys.map_row(row, name)
        return row

    def __dealloc__(self):
        PyMem_RawFree(self.progress)
        PyMem_RawFree(self.records)
        PyMem_RawFree(self.index)
        PyMem_RawFree(self.table)

    # The index ---------------------------------------------------------------------------
    cdef inline int32_t find(self, uint64_t h) noexcept nogil:
        cdef size_t i = h & self.index_mask
        cdef int32_t entry
        while True:
            entry = self.index[i]
            if entry == 0:
                return -1
            if self.records[entry - 1].hash == h:
                return entry - 1
            i = (i + 1) & self.index_mask

    cdef inline void place(self, uint64_t h, int32_t position) noexcept nogil:
        cdef size_t i = h & self.index_mask
        while self.index[i] != 0:
            i = (i + 1) & self.index_mask
        self.index[i] = position + 1

    cdef void unplace(self, uint64_t h) noexcept nogil:
        """Remove ``h`` by backward-shift deletion (Knuth, TAOCP 6.4, Algorithm R), so
        that probe chains stay unbroken without tombstones."""
        cdef size_t mask = self.index_mask
        cdef size_t i = h & mask
        cdef size_t j, home
        while self.records[self.index[i] - 1].hash != h:
            i = (i + 1) & mask
        j = i
        while True:
            j = (j + 1) & mask
            if self.index[j] == 0:
                break
            home = self.records[self.index[j] - 1].hash & mask
            # The entry at j may fill the hole at i only if its home slot is not in (i, j].
            if (i <= j and i < home <= j) or (i > j and (home > i or home <= j)):
                continue
            self.index[i] = self.index[j]
            i = j
        self.index[i] = 0

    # The least-recently-seen list --------------------------------------------------------
    cdef inline void unlink(self, int32_t p) noexcept nogil:
        cdef SessionRecord *r = &self.records[p]
        if r.older >= 0:
            self.records[r.older].newer = r.newer
        else:
            self.oldest = r.newer
        if r.newer >= 0:
            self.records[r.newer].older = r.older
        else:
            self.newest = r.older

    cdef inline void push_newest(self, int32_t p) noexcept nogil:
        cdef SessionRecord *r = &self.records[p]
        r.older = self.newest
        r.newer = -1
        if self.newest >= 0:
            self.records[self.newest].newer = p
        else:
            self.oldest = p
        self.newest = p

    cdef int32_t allocate(self) noexcept nogil:
        """A free record position, or -1 without memory."""
        cdef int32_t p
        cdef int32_t grown
        cdef SessionRecord *fresh
        cdef JourneyProgress *progress
        if self.free_head >= 0:
            p = self.free_head
            self.free_head = self.records[p].newer
            return p
        if self.high_water == self.allocated:
            grown = self.allocated * 2 if self.allocated else 1024
            if grown > self.capacity:
                grown = self.capacity
            if self.n_journeys:
                progress = <JourneyProgress *>PyMem_RawRealloc(
                    self.progress, grown * self.n_journeys * sizeof(JourneyProgress))
                if progress == NULL:
                    return -1
                self.progress = progress
            fresh = <SessionRecord *>PyMem_RawRealloc(self.records,
                                                     grown * sizeof(SessionRecord))
            if fresh == NULL:
                return -1
            self.records = fresh
            self.allocated = grown
        p = self.high_water
        self.high_water += 1
        return p

    cdef void close(self, int32_t p) noexcept nogil:
        """Finalise the open session at ``p`` and free its record."""
        self.unlink(p)
        self.unplace(self.records[p].hash)
        self.open_count -= 1
        self.finalise(&self.records[p])
        if self.n_journeys:
            self.journeys.finalise(&self.progress[p * self.n_journeys])
        self.records[p].newer = self.free_head
        self.free_head = p

    # Statistics --------------------------------------------------------------------------
    cdef inline void add(self, int32_t row, int outcome, int pages_bin, uint32_t pages,
                         uint32_t requests, double latency_sum, double revenue) noexcept nogil:
        cdef double mean = latency_sum / requests
        self.table[row * SESSION_CELLS + (outcome * PAGE_BINS + pages_bin) * BUCKET_COUNT
                   + bucket_of(mean)] += 1
        self.requests[row] += requests
        self.pages[row] += pages
        self.latency_sum[row * 2 + outcome] += mean
        self.revenue[row] += revenue

    cdef void finalise(self, SessionRecord *r) noexcept nogil:
        cdef int pages_bin = (r.pages if r.pages < PAGE_BINS else PAGE_BINS) - 1
        cdef int outcome = 1 if r.converted else 0
        cdef int g
        self.finalised += 1
        self.flow.leave(r.previous_row, (<double>r.last_ns - <double>r.first_end_ns) * 1e-9
                        + r.first_latency)
        self.add(0, outcome, pages_bin, r.pages, r.pages, r.latency_sum, r.revenue)
        for g in range(r.n_groups):
            self.add(r.group[g], outcome, pages_bin, r.pages, r.requests[g],
                     r.group_latency[g], r.revenue)

    cdef void expire(self, int64_t now_ns, int limit) noexcept nogil:
        cdef int done = 0
        cdef SessionRecord *r
        while self.oldest >= 0 and (limit < 0 or done < limit):
            r = &self.records[self.oldest]
            if not idle_over(r.last_ns, now_ns, self.timeout_ns):
                return
            self.close(self.oldest)
            done += 1

    # Recording ---------------------------------------------------------------------------
    cdef int touch(self, uint64_t session_hash, int32_t group, double latency, bint converted,
                   double revenue, int64_t end_ns) noexcept nogil:
        """Add one request on session row ``group``; -1 without memory."""
        cdef uint64_t h = splitmix(session_hash ^ self.salt)
        cdef int32_t p
        cdef int g
        cdef SessionRecord *r
        if end_ns > self.clock:
            self.clock = end_ns
        self.expire(self.clock, EXPIRE_PER_SPAN)
        p = self.find(h)
        if p >= 0 and idle_over(self.records[p].last_ns, end_ns, self.timeout_ns):
            self.close(p)   # back after the idle timeout: that visit is over
            p = -1
        if p < 0:
            if self.open_count >= self.capacity:
                self.close(self.oldest)
                self.evicted += 1
            p = self.allocate()
            if p < 0:
                return -1
            r = &self.records[p]
            memset(r, 0, sizeof(SessionRecord))
            r.hash = h
            r.last_ns = end_ns
            if self.n_journeys:
                self.journeys.start(&self.progress[p * self.n_journeys])
            self.place(h, p)
            self.open_count += 1
            # Session flow: the same float arithmetic, in the same order, as the pure twin.
            r.previous_row = group
            r.first_end_ns = end_ns
            r.first_latency = latency
            self.flow.arrive(group, <double>end_ns * 1e-9 - latency, latency)
        else:
            self.unlink(p)
            r = &self.records[p]
            # This request's start minus the session's latest end so far.
            self.flow.step(r.previous_row, group,
                           (<double>end_ns - <double>r.last_ns) * 1e-9 - latency, latency)
            r.previous_row = group
        self.push_newest(p)
        if end_ns > r.last_ns:
            r.last_ns = end_ns
        r.pages += 1
        r.latency_sum += latency
        if converted:
            r.converted = 1
        r.revenue += revenue
        if self.n_journeys:
            self.journeys.advance(&self.progress[p * self.n_journeys], group, latency, end_ns)
        for g in range(r.n_groups):
            if r.group[g] == group:
                r.requests[g] += 1
                r.group_latency[g] += latency
                return 0
        if r.n_groups < GROUPS_PER_SESSION:
            g = r.n_groups
            r.n_groups += 1
            r.group[g] = group
            r.requests[g] = 1
            r.group_latency[g] = latency
        elif not r.truncated:
            r.truncated = 1
            self.truncated += 1
        return 0

    def dump(self, int64_t now_ns):
        """Finalise the sessions idle as of ``now_ns``, then copy the counts."""
        # The names first: allocating the arrays runs Python code, during which another
        # thread may create a key, and with it a group row these arrays would not hold.
        names = tuple(self.groups.names)
        rows = len(names)
        table = np.empty((rows, 2, PAGE_BINS, BUCKET_COUNT), np.uint64)
        requests = np.empty(rows, np.uint64)
        pages = np.empty(rows, np.uint64)
        latency_sum = np.empty((rows, 2), np.float64)
        revenue = np.empty(rows, np.float64)
        counters = np.empty(4, np.uint64)
        journeys = self.journeys.new_arrays() if self.n_journeys else JourneyArrays.empty()
        cdef uint64_t[:, ::1] entered_view = journeys.entered
        cdef uint64_t[:, ::1] continued_view = journeys.continued
        cdef uint64_t[:, :, ::1] think_view = journeys.think
        cdef uint64_t[:, :, :, ::1] journey_latency_view = journeys.latency
        cdef FlowRecorder flow = FlowRecorder()
        cdef uint64_t[:, :, :, ::1] table_view = table
        cdef uint64_t[::1] requests_view = requests, pages_view = pages, counters_view = counters
        cdef double[:, ::1] latency_view = latency_sum
        cdef double[::1] revenue_view = revenue
        cdef Py_ssize_t n = rows
        # No Python code runs from here to the end, so no span lands half-way through.
        self.expire(now_ns, -1)
        memcpy(&table_view[0, 0, 0, 0], self.table, n * SESSION_CELLS * sizeof(uint64_t))
        memcpy(&requests_view[0], self.requests, n * sizeof(uint64_t))
        memcpy(&pages_view[0], self.pages, n * sizeof(uint64_t))
        memcpy(&latency_view[0, 0], self.latency_sum, n * 2 * sizeof(double))
        memcpy(&revenue_view[0], self.revenue, n * sizeof(double))
        counters_view[0] = self.finalised
        counters_view[1] = self.evicted
        counters_view[2] = <uint64_t>self.open_count
        counters_view[3] = self.truncated
        if self.n_journeys:
            self.journeys.copy_into(&entered_view[0, 0], &continued_view[0, 0],
                                    &think_view[0, 0, 0], &journey_latency_view[0, 0, 0, 0])
        flow.copy_from(self.flow)
        return SessionArrays(names, table, requests, pages, latency_sum,
                             revenue, counters, journeys=journeys, flow=flow.dump(rows))
