# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Native twin of ``bizops_otel/aggregate/_aggregator_py.py``: aggregator state in C arrays.

Same classes, same semantics and the same dumps as the pure twin, which is the readable
reference. Thread safety comes from the GIL: every state update is C code that runs no
Python code, so no other thread can interleave with it. Attribute reads, which may run
Python code, all happen before the update starts. Key creation, the one step that does
allocate Python objects, takes a lock.

Memory comes from ``PyMem_Raw*`` so that tracemalloc sees it.
"""

import heapq
import threading
import time

import numpy as np

cimport cython

from cpython.pycapsule cimport PyCapsule_New
from cpython.tuple cimport PyTuple_GET_ITEM
from cpython.long cimport PyLong_AsLongAndOverflow
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.mem cimport PyMem_RawFree, PyMem_RawMalloc, PyMem_RawRealloc
from cpython.exc cimport PyErr_Clear, PyErr_ExceptionMatches, PyErr_Occurred
from cpython.ref cimport PyObject, Py_XDECREF, Py_XINCREF
from libc.math cimport isinf, isnan, log, log1p
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

cdef extern from *:
    """
    /* Span timestamps: an exact int as int64, 0 when the value is not an exact int or does
       not fit. Every timestamp of this era is a non-negative int of three 30-bit digits
       (about 2**60.6 ns), which is read from its digits directly: a few instructions where
       PyLong_AsLongLongAndOverflow, which every other value takes, costs some sixty. The
       digit layout is that of CPython 3.11 to 3.13 (ob_size; then lv_tag from 3.12);
       other versions and interpreters take the generic path only. */
    static inline int bizops_int64_of(PyObject *o, int64_t *out) {
        int overflow;
        long long value;
        if (Py_TYPE(o) != &PyLong_Type)
            return 0;
    #if !defined(PYPY_VERSION) && !defined(Py_LIMITED_API) && PyLong_SHIFT == 30 \
        && PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030E0000
        {
            const digit *d;
            Py_ssize_t n;
    #if PY_VERSION_HEX >= 0x030C0000
            uintptr_t tag = ((PyLongObject *)o)->long_value.lv_tag;
            n = (tag & _PyLong_SIGN_MASK) == 2 ? -1 : (Py_ssize_t)(tag >> _PyLong_NON_SIZE_BITS);
            d = ((PyLongObject *)o)->long_value.ob_digit;
    #else
            n = Py_SIZE(o);
            d = ((PyLongObject *)o)->ob_digit;
    #endif
            if (n == 3 && d[2] < 8) {  /* below 2**63 */
                *out = (int64_t)(((uint64_t)d[2] << 60) | ((uint64_t)d[1] << 30) | d[0]);
                return 1;
            }
            if (n == 2) {
                *out = (int64_t)(((uint64_t)d[1] << 30) | d[0]);
                return 1;
            }
            if (n == 1 || n == 0) {
                *out = n ? (int64_t)d[0] : 0;
                return 1;
            }
        }
    #endif
        value = PyLong_AsLongLongAndOverflow(o, &overflow);  /* cannot fail on an exact int */
        if (overflow)
            return 0;
        *out = (int64_t)value;
        return 1;
    }

    /* The hash of a dimension value. An exact str caches its hash in the object, so this
       reads it there instead of reaching it through PyObject_Hash and str's tp_hash. */
    static inline Py_hash_t bizops_hash(PyObject *o) {
    #if !defined(PYPY_VERSION) && !defined(Py_LIMITED_API)
        if (PyUnicode_CheckExact(o) && ((PyASCIIObject *)o)->hash != -1)
            return ((PyASCIIObject *)o)->hash;
    #endif
        return PyObject_Hash(o);
    }
    """
    bint int64_of "bizops_int64_of"(object value, int64_t *out) noexcept
    Py_hash_t hash_of "bizops_hash"(PyObject *value) except? -1

cdef extern from "Python.h":
    # Lookups with borrowed arguments: a key held as a PyObject* in a C array needs no
    # reference counting around the call, as an ``object`` argument would. Unlike
    # PyDict_GetItem, PyDict_GetItemWithError does not save and restore the error state
    # on every call, which is measurable on the hot path.
    PyObject *dict_lookup "PyDict_GetItemWithError"(PyObject *mapping,
                                                    PyObject *key) except? NULL
    # Without an exception clause: its one error, OverflowError, is a drop reason here.
    double int_as_double "PyLong_AsDouble"(PyObject *value) noexcept

from bizops_otel.aggregate import _fork
from bizops_otel.aggregate._batch import batch_end, batch_inputs, end_timestamp
from bizops_otel.aggregate._layout import (
    BLOCK as _BLOCK,
    BLOCKS_PER_OUTCOME as _BLOCKS_PER_OUTCOME,
    BUCKETS as _BUCKETS,
    HIGHEST as _HIGHEST,
    INV_LOG_GROWTH as _INV_LOG_GROWTH,
    INV_LOWEST as _INV_LOWEST,
    KPI_FIELD_COUNT as _KPI_FIELD_COUNT,
    LOWEST as _LOWEST,
)
from bizops_otel.aggregate._state import StateArrays, expired_rows, sort_rows
from bizops_otel.attributes import (
    DROP_INDEX,
    DROP_REASONS,
    MISSING,
    PAGE_GROUP,
    SESSION_ID,
    classify_kpi,
    huge_integer_reason,
    sanitize_dimension,
)
from bizops_otel.config import Config
from bizops_otel.aggregate.snapshot import Snapshot

DEF BLOCK = 16
DEF BLOCKS_PER_OUTCOME = 8
DEF BLOCK_CODES = 24          # 3 outcomes × 8 blocks
DEF HIST_SLOTS = 384          # 3 outcomes × 128
DEF F = 10                    # per-KPI float fields
DEF MAX_KPIS = 16
DEF MAX_REASONS = 32
DEF MAX_DIMS = 8

assert _BLOCK == BLOCK and _BLOCKS_PER_OUTCOME == BLOCKS_PER_OUTCOME
assert _KPI_FIELD_COUNT == F and len(DROP_REASONS) <= MAX_REASONS

cdef double LOWEST = _LOWEST
cdef double HIGHEST = _HIGHEST
cdef double INV_LOWEST = _INV_LOWEST
cdef double INV_LOG_GROWTH = _INV_LOG_GROWTH
cdef int TOP_BUCKET = _BUCKETS - 1

cdef int R_LATENCY = DROP_INDEX["latency_invalid"]
cdef int R_NAN = DROP_INDEX["kpi_nan"]
cdef int R_BOOL = DROP_INDEX["kpi_bool"]
cdef int R_INF = DROP_INDEX["kpi_infinite"]
cdef int R_BELOW = DROP_INDEX["kpi_below_minimum"]
cdef int R_ABOVE = DROP_INDEX["kpi_above_maximum"]
cdef int R_NOT_BINARY = DROP_INDEX["kpi_not_binary"]
cdef int R_UNKNOWN = DROP_INDEX["kpi_unknown"]
cdef int R_ARITY = DROP_INDEX["dimension_arity"]
cdef int R_UNREADABLE = DROP_INDEX["attributes_unreadable"]
cdef int R_MEMORY = DROP_INDEX["out_of_memory"]
cdef int R_SESSION = DROP_INDEX["session_invalid"]
cdef int N_REASONS = len(DROP_REASONS)

RAW_ENTRIES_PER_KEY = 4
# ``last_seen`` of a free key id (never used, or expired); as ``_aggregator_py.FREE``.
cdef int64_t FREE = -9223372036854775807 - 1
cdef object MISSING_VALUE = MISSING
cdef object SESSION_KEY = SESSION_ID


cdef bint _truthy(object flag) noexcept:
    try:
        return bool(flag)
    except Exception:
        return False


def _is_compiled():
    return True


cdef int bucket_by_log(double t) noexcept nogil:
    """Same arithmetic as ``_layout.bucket_of``: the definition of a latency's bucket."""
    cdef int index
    if t < LOWEST:
        return 0
    if not t < HIGHEST:  # past it, the cast below would overflow an int (latency_buckets)
        return TOP_BUCKET
    index = 1 + <int>(log(t * INV_LOWEST) * INV_LOG_GROWTH)
    return index if index < TOP_BUCKET else TOP_BUCKET


# log() is the slowest step of a span's update: some 50 instructions on a dependency chain
# of a few dozen cycles. bucket_of finds the same bucket from a table for nearly every
# latency. With u = t / LOWEST = m · 2**e (1 ≤ m < 2), the value that bucket_by_log
# truncates is y = log(u) · INV_LOG_GROWTH = e · LOG_STEP + log(m) · INV_LOG_GROWTH, and the
# top LOG_TABLE_BITS bits of m's mantissa place m in [1 + i/256, 1 + (i+1)/256), so that
# y lies between LOG_TABLE[i] + e · LOG_STEP and LOG_TABLE[i + 1] + e · LOG_STEP. When one
# integer n is the whole part of both ends, widened by LOG_SLACK, the bucket is n + 1: the
# log's own rounding (under an ulp), the product's and the table's move y by under 1e-12,
# far inside the slack. When the ends straddle an integer, that is when m's table cell
# (0.4% wide) holds a bucket edge, which happens to a few percent of latencies,
# bucket_by_log decides.
DEF LOG_TABLE_BITS = 8
DEF LOG_TABLE_SIZE = 257        # (1 << LOG_TABLE_BITS) + 1
cdef double LOG_TABLE[LOG_TABLE_SIZE]
cdef double LOG_STEP = log(2.0) * INV_LOG_GROWTH
cdef double LOG_SLACK = 1e-9
cdef double LOG_TABLE_TOP = 2.0 ** 64   # a bound that keeps e and y small


cdef void fill_log_table() noexcept nogil:
    cdef int i
    for i in range(LOG_TABLE_SIZE):
        LOG_TABLE[i] = log1p(i / <double>(1 << LOG_TABLE_BITS)) * INV_LOG_GROWTH


fill_log_table()


cdef inline int bucket_of(double t) noexcept nogil:
    """``bucket_by_log(t)``, taken from LOG_TABLE when the table decides (see above)."""
    cdef double u = t * INV_LOWEST
    cdef double low, high, whole
    cdef uint64_t bits
    cdef int i, n
    if t >= LOWEST and u >= 1.0 and u < LOG_TABLE_TOP:  # also false for NaN
        memcpy(&bits, &u, sizeof(double))
        whole = <double>(<int>(bits >> 52) - 1023) * LOG_STEP
        i = <int>((bits >> (52 - LOG_TABLE_BITS)) & ((1 << LOG_TABLE_BITS) - 1))
        low = whole + LOG_TABLE[i] - LOG_SLACK
        high = whole + LOG_TABLE[i + 1] + LOG_SLACK
        n = <int>low
        if low >= 0.0 and n == <int>high:
            return n + 1 if n + 1 < TOP_BUCKET else TOP_BUCKET
    return bucket_by_log(t)


def _bucket_of(double latency_s):
    """The bucket of one latency as the native code finds it; for the tests, which hold it
    to ``latency_buckets.bucket_of``."""
    return bucket_of(latency_s)


cdef inline double span_seconds(int64_t start, int64_t end) noexcept nogil:
    """``(end - start) * 1e-9`` for ``end >= start``, as the pure twin computes it.

    The difference of two int64 can exceed int64 (a span from before 1970 to after 2262)
    but not uint64, where it is exact; its conversion to double rounds as Python's
    int-to-float does.
    """
    return <double>(<uint64_t>end - <uint64_t>start) * 1e-9


cdef inline int64_t floor_div(int64_t a, int64_t b) noexcept nogil:
    cdef int64_t q = a // b
    if (a % b != 0) and ((a < 0) != (b < 0)):
        q -= 1
    return q


# --------------------------------------------------------------------------------------
# One state: rows allocated on first touch, histogram blocks from a per-state pool.

cdef struct Row:
    # One key's statistics, followed in memory by one KpiCell per KPI. Keeping a key's
    # data contiguous means a span touches a few adjacent cache lines, which is what
    # keeps the cost flat as the number of keys grows.
    uint64_t count
    uint64_t errors
    double latency_sum
    int32_t key
    int32_t blocktab[BLOCK_CODES]   # histogram block index per (outcome, block), or -1


cdef struct KpiCell:
    uint64_t n
    double f[F]                     # Welford co-moments, then raw sums (see _layout)


cdef struct State:
    int32_t *slot_of        # key id -> row index, -1 if absent; key_cap entries
    int32_t key_cap
    int32_t n_slots
    int32_t cap_slots
    char *rows              # cap_slots rows of row_bytes(m) each
    int32_t n_blocks
    int32_t cap_blocks
    uint64_t *blocks        # [block][BLOCK]


cdef struct Batch:
    uint64_t count
    uint64_t errors
    double latency_sum
    uint64_t kpi_n[MAX_KPIS]
    double kpi_f[MAX_KPIS * F]
    uint64_t hist[HIST_SLOTS]
    uint64_t drops[MAX_REASONS]


cdef inline size_t row_bytes(int m) noexcept nogil:
    return sizeof(Row) + m * sizeof(KpiCell)


cdef inline Row *row_at(const State *s, int32_t slot, int m) noexcept nogil:
    return <Row *>(s.rows + <size_t>slot * row_bytes(m))


cdef inline KpiCell *cell_at(Row *row, int j) noexcept nogil:
    return (<KpiCell *>(<char *>row + sizeof(Row))) + j


cdef int grow(void **pointer, size_t nbytes) noexcept nogil:
    cdef void *fresh = PyMem_RawRealloc(pointer[0], nbytes if nbytes else 1)
    if fresh == NULL:
        return -1
    pointer[0] = fresh
    return 0


cdef void state_free(State *s) noexcept nogil:
    PyMem_RawFree(s.slot_of)
    PyMem_RawFree(s.rows)
    PyMem_RawFree(s.blocks)
    memset(s, 0, sizeof(State))


cdef void state_clear(State *s, int m) noexcept nogil:
    """Empty the state but keep its memory for the next sub-window."""
    cdef int32_t i
    for i in range(s.n_slots):
        s.slot_of[row_at(s, i, m).key] = -1
    s.n_slots = 0
    s.n_blocks = 0


cdef int state_reserve_rows(State *s, int32_t rows, int m) noexcept nogil:
    if rows <= s.cap_slots:
        return 0
    cdef int32_t cap = s.cap_slots * 2 if s.cap_slots else 8
    while cap < rows:
        cap *= 2
    if grow(<void **>&s.rows, <size_t>cap * row_bytes(m)) < 0:
        return -1
    s.cap_slots = cap
    return 0


cdef inline int32_t state_slot(State *s, int32_t key, int m) noexcept nogil:
    """Row of ``key``, created empty if absent; -1 when memory runs out.

    The lookup of an existing row is inline (every span makes one); creating one is not.
    """
    if key < s.key_cap and s.slot_of[key] >= 0:
        return s.slot_of[key]
    return state_new_slot(s, key, m)


cdef int32_t state_new_slot(State *s, int32_t key, int m) noexcept nogil:
    cdef int32_t cap, i, slot
    cdef Row *row
    if key >= s.key_cap:
        cap = s.key_cap * 2 if s.key_cap else 16
        while cap <= key:
            cap *= 2
        if grow(<void **>&s.slot_of, cap * sizeof(int32_t)) < 0:
            return -1
        for i in range(s.key_cap, cap):
            s.slot_of[i] = -1
        s.key_cap = cap
    slot = s.slot_of[key]
    if slot >= 0:
        return slot
    if state_reserve_rows(s, s.n_slots + 1, m) < 0:
        return -1
    slot = s.n_slots
    s.n_slots += 1
    s.slot_of[key] = slot
    row = row_at(s, slot, m)
    memset(row, 0, row_bytes(m))
    row.key = key
    for i in range(BLOCK_CODES):
        row.blocktab[i] = -1
    return slot


cdef inline uint64_t *row_block(State *s, Row *row, int code) noexcept nogil:
    """The histogram block ``code`` of ``row``, allocated on first use (NULL: no memory).

    The block pool may move when it grows, but rows never point into it: they hold
    indices, so ``row`` stays valid.
    """
    cdef int32_t index = row.blocktab[code]
    if index >= 0:
        return &s.blocks[index * BLOCK]
    return row_new_block(s, row, code)


cdef uint64_t *row_new_block(State *s, Row *row, int code) noexcept nogil:
    cdef int32_t index, cap
    if s.n_blocks == s.cap_blocks:
        cap = s.cap_blocks * 2 if s.cap_blocks else 16
        if grow(<void **>&s.blocks, cap * BLOCK * sizeof(uint64_t)) < 0:
            return NULL
        s.cap_blocks = cap
    index = s.n_blocks
    s.n_blocks += 1
    row.blocktab[code] = index
    memset(&s.blocks[index * BLOCK], 0, BLOCK * sizeof(uint64_t))
    return &s.blocks[index * BLOCK]


cdef int state_add(State *s, int32_t key, double t, int bucket, int outcome,
                   const double *values, uint32_t mask, int m, bint error) noexcept nogil:
    """Add one observation; mirrors ``_aggregator_py._State.add`` operation for operation."""
    cdef int32_t slot = state_slot(s, key, m)
    cdef int j
    cdef double *f
    cdef double inverse, dt, dv, mean_t, mean_v, v
    cdef uint64_t *block
    cdef Row *row
    cdef KpiCell *cell
    if slot < 0:
        return -1
    row = row_at(s, slot, m)
    block = row_block(s, row, outcome * BLOCKS_PER_OUTCOME + bucket // BLOCK)
    if block == NULL:
        return -1
    row.count += 1
    row.errors += 1 if error else 0
    row.latency_sum += t
    for j in range(m):
        if not (mask >> j) & 1:
            continue
        v = values[j]
        cell = cell_at(row, j)
        cell.n += 1
        inverse = 1.0 / <double>cell.n
        f = cell.f
        # Welford's update of the co-moments (Welford 1962; Knuth TAOCP 4.2.2).
        dt = t - f[0]
        mean_t = f[0] + dt * inverse
        dv = v - f[1]
        mean_v = f[1] + dv * inverse
        f[2] += dt * (t - mean_t)
        f[3] += dv * (v - mean_v)
        f[4] += dt * (v - mean_v)
        f[0] = mean_t
        f[1] = mean_v
        f[5] += t
        f[6] += t * t
        f[7] += v
        f[8] += v * v
        f[9] += t * v
    block[bucket % BLOCK] += 1
    return 0


cdef void fold_kpi(KpiCell *cell, const double *g, uint64_t n_other) noexcept nogil:
    """Fold another state's co-moments into ``cell``: Chan et al. (1979)."""
    cdef double *f = cell.f
    cdef double na = <double>cell.n
    cdef double nb = <double>n_other
    cdef double n = na + nb
    cdef double dt = g[0] - f[0]
    cdef double dv = g[1] - f[1]
    cdef double weight = na * nb / n
    cdef int k
    f[0] += dt * nb / n
    f[1] += dv * nb / n
    f[2] += g[2] + dt * dt * weight
    f[3] += g[3] + dv * dv * weight
    f[4] += g[4] + dt * dv * weight
    for k in range(5, F):
        f[k] += g[k]
    cell.n += n_other


cdef int row_add_hits(State *s, Row *row, int code, int offset, uint64_t hits) noexcept nogil:
    cdef uint64_t *block = row_block(s, row, code)
    if block == NULL:
        return -1
    block[offset] += hits
    return 0


cdef int state_add_batch(State *s, int32_t key, Batch *b, int m) noexcept nogil:
    """Fold a reduced batch in; mirrors ``_aggregator_py._State.add_batch``."""
    cdef int32_t slot = state_slot(s, key, m)
    cdef int j, code, bucket
    cdef Row *row
    if slot < 0:
        return -1
    row = row_at(s, slot, m)
    for code in range(HIST_SLOTS):
        if b.hist[code]:
            bucket = code % 128
            if row_add_hits(s, row, (code // 128) * BLOCKS_PER_OUTCOME + bucket // BLOCK,
                            bucket % BLOCK, b.hist[code]) < 0:
                return -1
    row.count += b.count
    row.errors += b.errors
    row.latency_sum += b.latency_sum
    for j in range(m):
        if b.kpi_n[j]:
            fold_kpi(cell_at(row, j), &b.kpi_f[j * F], b.kpi_n[j])
    return 0


cdef int state_merge(State *dst, const State *src, int m) noexcept nogil:
    """Add every row of ``src`` (a retiring sub-window) into ``dst``;
    mirrors ``_aggregator_py._State.merge_from``."""
    return state_merge_rows(dst, src, m, NULL)


cdef int state_merge_rows(State *dst, const State *src, int m,
                          const int64_t *only_free) noexcept nogil:
    """``state_merge``, or with ``only_free`` only the rows of keys whose entry there is
    FREE (expiring keys, whose final rows the sweep keeps)."""
    cdef int32_t i, slot
    cdef int j, code, offset, index
    cdef Row *row
    cdef Row *source
    cdef KpiCell *cell
    cdef uint64_t *block
    cdef const uint64_t *counts
    for i in range(src.n_slots):
        source = row_at(src, i, m)
        if only_free != NULL and only_free[source.key] != FREE:
            continue
        slot = state_slot(dst, source.key, m)
        if slot < 0:
            return -1
        row = row_at(dst, slot, m)
        row.count += source.count
        row.errors += source.errors
        row.latency_sum += source.latency_sum
        for j in range(m):
            cell = cell_at(source, j)
            if cell.n:
                fold_kpi(cell_at(row, j), cell.f, cell.n)
        for code in range(BLOCK_CODES):
            index = source.blocktab[code]
            if index < 0:
                continue
            # A source block is allocated by its first count, so it is never all zero.
            block = row_block(dst, row, code)
            if block == NULL:
                return -1
            counts = &src.blocks[index * BLOCK]
            for offset in range(BLOCK):
                block[offset] += counts[offset]
    return 0


cdef void state_drop(State *s, const int64_t *last_seen, int m) noexcept nogil:
    """Forget the rows of keys whose ``last_seen`` is FREE (expired), keeping the others in
    their order; mirrors ``_aggregator_py._State.drop``. The block pool is compacted into
    fresh memory; without memory for it, the freed blocks stay unused until the state is
    cleared."""
    cdef int32_t i, kept = 0, index
    cdef int code
    cdef int32_t n_blocks = 0
    cdef uint64_t *blocks
    cdef Row *row
    for i in range(s.n_slots):
        if last_seen[row_at(s, i, m).key] == FREE:
            break
    else:
        return
    blocks = <uint64_t *>PyMem_RawMalloc((s.n_blocks if s.n_blocks else 1)
                                         * BLOCK * sizeof(uint64_t))
    for i in range(s.n_slots):
        row = row_at(s, i, m)
        if last_seen[row.key] == FREE:
            s.slot_of[row.key] = -1
            continue
        if kept != i:
            memcpy(row_at(s, kept, m), row, row_bytes(m))
            row = row_at(s, kept, m)
        s.slot_of[row.key] = kept
        kept += 1
        if blocks == NULL:
            continue
        for code in range(BLOCK_CODES):
            index = row.blocktab[code]
            if index >= 0:
                memcpy(&blocks[n_blocks * BLOCK], &s.blocks[index * BLOCK],
                       BLOCK * sizeof(uint64_t))
                row.blocktab[code] = n_blocks
                n_blocks += 1
    s.n_slots = kept
    if blocks != NULL:
        PyMem_RawFree(s.blocks)
        s.blocks = blocks
        s.cap_blocks = s.n_blocks if s.n_blocks else 1
        s.n_blocks = n_blocks


cdef object state_dump(const State *s, int m):
    """Arrays in the twin-neutral :class:`StateArrays` layout."""
    cdef int32_t rows = s.n_slots
    cdef int32_t i, code, index, out = 0
    cdef int j
    cdef Row *row
    cdef KpiCell *cell
    key_ids = np.empty(rows, np.int64)
    count = np.empty(rows, np.uint64)
    errors = np.empty(rows, np.uint64)
    latency_sum = np.empty(rows, np.float64)
    kpi_n = np.empty((rows, m), np.uint64)
    kpi_f = np.empty((rows, m, F), np.float64)
    block_row = np.empty(s.n_blocks, np.int64)
    block_code = np.empty(s.n_blocks, np.int64)
    block_counts = np.empty((s.n_blocks, BLOCK), np.uint64)
    cdef int64_t[::1] ids_view = key_ids
    cdef uint64_t[::1] count_view = count
    cdef uint64_t[::1] errors_view = errors
    cdef double[::1] latency_view = latency_sum
    cdef uint64_t[:, ::1] n_view = kpi_n
    cdef double[:, :, ::1] f_view = kpi_f
    cdef int64_t[::1] row_view = block_row
    cdef int64_t[::1] code_view = block_code
    cdef uint64_t[:, ::1] counts_view = block_counts
    for i in range(rows):
        row = row_at(s, i, m)
        ids_view[i] = row.key
        count_view[i] = row.count
        errors_view[i] = row.errors
        latency_view[i] = row.latency_sum
        for j in range(m):
            cell = cell_at(row, j)
            n_view[i, j] = cell.n
            memcpy(&f_view[i, j, 0], cell.f, F * sizeof(double))
        for code in range(BLOCK_CODES):
            index = row.blocktab[code]
            if index >= 0:
                row_view[out] = i
                code_view[out] = code
                memcpy(&counts_view[out, 0], &s.blocks[index * BLOCK], BLOCK * sizeof(uint64_t))
                out += 1
    return StateArrays(key_ids, count, errors, latency_sum, kpi_n, kpi_f,
                       block_row, block_code, block_counts)


# --------------------------------------------------------------------------------------
# Raw dimension values -> key id. An open-addressing table of borrowed-then-owned ``str``
# references: a hit costs the values' cached hashes and one probe, and allocates nothing.

cdef struct Entry:
    uint64_t hash
    int32_t key
    int32_t used
    # followed by ``d`` owned PyObject* references to exact ``str`` values


cdef struct KeyTable:
    char *entries
    size_t capacity         # a power of two, or 0
    size_t used
    int d


cdef inline size_t entry_bytes(int d) noexcept nogil:
    return sizeof(Entry) + d * sizeof(PyObject *)


cdef inline Entry *entry_at(const KeyTable *t, size_t i) noexcept nogil:
    return <Entry *>(t.entries + i * entry_bytes(t.d))


cdef inline PyObject **entry_values(Entry *e) noexcept nogil:
    return <PyObject **>(<char *>e + sizeof(Entry))


cdef inline uint64_t mix_hashes(PyObject **values, int d) except? 0:
    cdef uint64_t h = 0x243F6A8885A308D3
    cdef int i
    for i in range(d):
        h ^= <uint64_t>hash_of(values[i])
        h *= <uint64_t>0x9E3779B97F4A7C15
        h ^= h >> 29
    return h | 1  # never 0, so 0 can mean "error" to Cython


cdef inline int32_t table_find(const KeyTable *t, PyObject **values,
                               uint64_t h) except -2:
    """Key id of ``values``, or -1 when absent."""
    cdef size_t mask, i
    cdef Entry *e
    cdef PyObject **stored
    cdef int k
    cdef bint same
    if t.capacity == 0:
        return -1
    mask = t.capacity - 1
    i = h & mask
    while True:
        e = entry_at(t, i)
        if not e.used:
            return -1
        if e.hash == h:
            stored = entry_values(e)
            same = True
            for k in range(t.d):
                if stored[k] != values[k] and <str>stored[k] != <str>values[k]:
                    same = False
                    break
            if same:
                return e.key
        i = (i + 1) & mask


cdef int table_place(KeyTable *t, PyObject **values, uint64_t h, int32_t key) noexcept nogil:
    cdef size_t i = h & (t.capacity - 1)
    cdef Entry *e
    while entry_at(t, i).used:
        i = (i + 1) & (t.capacity - 1)
    e = entry_at(t, i)
    e.hash = h
    e.key = key
    e.used = 1
    memcpy(entry_values(e), values, t.d * sizeof(PyObject *))
    return 0


cdef int table_insert(KeyTable *t, PyObject **values, uint64_t h, int32_t key) noexcept:
    """Remember ``values`` -> ``key``, owning references to the values; -1: no memory."""
    cdef KeyTable bigger
    cdef size_t i
    cdef Entry *e
    cdef int k
    if (t.used + 1) * 2 > t.capacity:
        bigger.d = t.d
        bigger.used = t.used
        bigger.capacity = t.capacity * 2 if t.capacity else 64
        bigger.entries = <char *>PyMem_RawMalloc(bigger.capacity * entry_bytes(t.d))
        if bigger.entries == NULL:
            return -1
        memset(bigger.entries, 0, bigger.capacity * entry_bytes(t.d))
        for i in range(t.capacity):
            e = entry_at(t, i)
            if e.used:
                table_place(&bigger, entry_values(e), e.hash, e.key)
        PyMem_RawFree(t.entries)
        t.entries = bigger.entries
        t.capacity = bigger.capacity
    for k in range(t.d):
        Py_XINCREF(values[k])
    table_place(t, values, h, key)
    t.used += 1
    return 0


cdef void table_free(KeyTable *t) noexcept:
    cdef size_t i
    cdef int k
    cdef Entry *e
    for i in range(t.capacity):
        e = entry_at(t, i)
        if e.used:
            for k in range(t.d):
                Py_XDECREF(entry_values(e)[k])
    PyMem_RawFree(t.entries)
    t.entries = NULL
    t.capacity = 0
    t.used = 0


cdef int table_keep(KeyTable *t, const int64_t *last_seen, int32_t overflow) noexcept:
    """Forget the entries that lead to a free key id or to the overflow key (after keys
    expired: those values may fit now); -1 and nothing changed when memory runs out."""
    cdef KeyTable kept
    cdef size_t i
    cdef int k
    cdef Entry *e
    kept.d = t.d
    kept.used = 0
    kept.capacity = t.capacity
    if t.capacity == 0:
        return 0
    kept.entries = <char *>PyMem_RawMalloc(t.capacity * entry_bytes(t.d))
    if kept.entries == NULL:
        return -1
    memset(kept.entries, 0, t.capacity * entry_bytes(t.d))
    for i in range(t.capacity):
        e = entry_at(t, i)
        if not e.used:
            continue
        if e.key == overflow or last_seen[e.key] == FREE:
            for k in range(t.d):
                Py_XDECREF(entry_values(e)[k])
        else:
            table_place(&kept, entry_values(e), e.hash, e.key)
            kept.used += 1
    PyMem_RawFree(t.entries)
    t.entries = kept.entries
    t.used = kept.used
    return 0


# --------------------------------------------------------------------------------------

include "_journeys_c.pxi"
include "_flow_c.pxi"
include "_sessions_c.pxi"
include "../_attribute_scan.pxi"
include "_admission_c.pxi"


def _admission_hash(tuple values):
    """The admission sketch's hash of sanitised values (``_admission_py.key_hash``), for
    the test that holds the twins to one hash."""
    return sketch_hash(values)


# --------------------------------------------------------------------------------------

cdef class Aggregator:
    """Streaming latency–KPI statistics per key (native implementation).

    >>> from bizops_otel import Config
    >>> agg = Aggregator(Config(kpis=("order_value",), dimensions=("page",), outcome=None))
    >>> for latency, value in [(0.1, 10.0), (0.2, 20.0), (0.3, 30.0)]:
    ...     agg.record(("checkout",), latency, {"order_value": value})
    >>> round(agg.snapshot()[("checkout",)].pearson("order_value").r, 6)
    1.0
    """

    implementation = "native"

    cdef readonly object config
    cdef object _keys           # key id -> key, None where the id is free
    cdef object _key_of
    cdef object _free           # heap of free key ids, smallest first
    cdef int64_t *_last_seen    # key id -> end of its newest span, FREE if the id is free
    cdef int64_t _ttl_ns
    cdef int64_t _sweep_due     # start of the newest sub-window, once a sweep is due
    cdef int64_t _swept
    cdef Sketch _sketch
    cdef object _expired        # see ``_aggregator_py.Aggregator.snapshot_and_expired``
    cdef KeyTable _raw
    cdef object _lock
    cdef object _dim_keys
    cdef object _kpi_attrs
    cdef object _kpi_index
    cdef object _kpi_binary_obj
    cdef Py_ssize_t _raw_cap
    cdef int _m
    cdef int _d
    cdef int _outcome
    cdef int _revenue
    cdef int _page_at
    cdef SessionTable _sessions
    cdef int32_t *_key_group     # key id -> session-table row of its page group
    cdef int _slots
    cdef int64_t _started_ns     # when counting (re)started: construction, reset, fork
    cdef int32_t _max_keys
    cdef int _value_length
    cdef int64_t _slot_ns
    cdef int _kpi_binary[MAX_KPIS]
    cdef double _kpi_min[MAX_KPIS]
    cdef double _kpi_max[MAX_KPIS]
    cdef State _retired
    cdef State *_ring
    cdef int64_t *_ring_epoch
    cdef int64_t _newest_epoch
    cdef State *_hot             # the newest sub-window's state (see _target), or NULL
    cdef int64_t _hot_start_ns   # where that sub-window starts
    # The attribute names of the dimensions and KPIs, borrowed from _dim_keys and
    # _kpi_attrs, for the span path's dict lookups.
    cdef PyObject *_dim_attr[MAX_DIMS]
    cdef PyObject *_kpi_attr[MAX_KPIS]
    # The span path's keys in one scan of an attribute dict: the KPIs' attributes, the
    # session id, then the dimensions (``_scan_keys`` keeps them alive).
    cdef KeyScan _scan
    cdef tuple _scan_keys
    cdef int _scan_session       # 1 when the session id is among the keys scanned for
    cdef uint64_t _dropped[MAX_REASONS]
    cdef uint64_t _recorded      # observations committed, for ``changes()``
    # Operations (objectives): thresholds, whether errors are bad, and per operation the
    # requests and good ones (2i, 2i + 1) in a ring of sub-windows of their own and the
    # retired sum (see ``_aggregator_py``).
    cdef int _n_ops
    cdef int64_t *_op_threshold
    cdef char *_op_errors
    cdef uint64_t *_op_retired
    cdef uint64_t *_op_ring
    cdef int64_t *_op_epoch
    cdef int64_t _op_newest
    cdef object __weakref__

    def __cinit__(self):
        self._ring = NULL
        self._ring_epoch = NULL
        self._hot = NULL
        self._key_group = NULL
        self._last_seen = NULL
        self._op_threshold = NULL
        self._op_errors = NULL
        self._op_retired = NULL
        self._op_ring = NULL
        self._op_epoch = NULL
        memset(&self._sketch, 0, sizeof(Sketch))
        memset(&self._retired, 0, sizeof(State))
        memset(&self._raw, 0, sizeof(KeyTable))

    def __init__(self, config=None):
        cfg = config if config is not None else Config()
        if not isinstance(cfg, Config):
            raise TypeError(f"config must be a bizops_otel.Config, got {type(cfg).__name__}")
        self.config = cfg
        self._m = len(cfg.kpis)
        self._d = len(cfg.dimensions)
        self._dim_keys = tuple(cfg.dimensions)
        self._kpi_attrs = tuple(k.attribute for k in cfg.kpis)
        self._kpi_index = {k.name: j for j, k in enumerate(cfg.kpis)}
        self._kpi_binary_obj = tuple(bool(k.binary) for k in cfg.kpis)
        for j in range(self._d):
            self._dim_attr[j] = PyTuple_GET_ITEM(self._dim_keys, j)
        for j, k in enumerate(cfg.kpis):
            self._kpi_attr[j] = PyTuple_GET_ITEM(self._kpi_attrs, j)
            self._kpi_binary[j] = 1 if k.binary else 0
            self._kpi_min[j] = k.minimum
            self._kpi_max[j] = k.maximum
        # The session id only when sessions are counted: a key is looked up only when it
        # is used, as in the pure twin (a hostile key's __eq__ runs on a lookup).
        self._scan_session = 1 if cfg.max_sessions > 0 else 0
        self._scan_keys = tuple(str(key) for key in (
            *self._kpi_attrs, *((SESSION_KEY,) if self._scan_session else ()),
            *self._dim_keys))
        key_scan_init(&self._scan, self._scan_keys)
        self._outcome = cfg.outcome_index
        self._revenue = cfg.revenue_index
        self._page_at = cfg.dimensions.index(PAGE_GROUP) if PAGE_GROUP in cfg.dimensions else -1
        self._slots = cfg.window_slots
        self._max_keys = cfg.max_keys
        self._value_length = cfg.max_value_length
        self._slot_ns = cfg.window_slot_ns
        self._raw_cap = RAW_ENTRIES_PER_KEY * (cfg.max_keys + 1)
        self._lock = threading.Lock()
        self._ring = <State *>PyMem_RawMalloc(self._slots * sizeof(State))
        self._ring_epoch = <int64_t *>PyMem_RawMalloc(self._slots * sizeof(int64_t))
        if self._ring == NULL or self._ring_epoch == NULL:
            raise MemoryError()
        memset(self._ring, 0, self._slots * sizeof(State))
        self._key_group = <int32_t *>PyMem_RawMalloc((cfg.max_keys + 1) * sizeof(int32_t))
        self._last_seen = <int64_t *>PyMem_RawMalloc((cfg.max_keys + 1) * sizeof(int64_t))
        if self._key_group == NULL or self._last_seen == NULL:
            raise MemoryError()
        self._ttl_ns = cfg.key_ttl_ns
        self._n_ops = len(cfg.operations)
        self._op_threshold = <int64_t *>PyMem_RawMalloc((self._n_ops + 1) * sizeof(int64_t))
        self._op_errors = <char *>PyMem_RawMalloc(self._n_ops + 1)
        self._op_retired = <uint64_t *>PyMem_RawMalloc((2 * self._n_ops + 1) * sizeof(uint64_t))
        self._op_ring = <uint64_t *>PyMem_RawMalloc(
            (2 * self._n_ops * self._slots + 1) * sizeof(uint64_t))
        self._op_epoch = <int64_t *>PyMem_RawMalloc(self._slots * sizeof(int64_t))
        if (self._op_threshold == NULL or self._op_errors == NULL or self._op_retired == NULL
                or self._op_ring == NULL or self._op_epoch == NULL):
            raise MemoryError()
        for j, operation in enumerate(cfg.operations):
            self._op_threshold[j] = operation.threshold_ns
            self._op_errors[j] = 1 if operation.errors else 0
        self._clear()
        _fork.track(self)

    def __dealloc__(self):
        cdef int i
        table_free(&self._raw)
        state_free(&self._retired)
        if self._ring != NULL:
            for i in range(self._slots):
                state_free(&self._ring[i])
            PyMem_RawFree(self._ring)
        PyMem_RawFree(self._ring_epoch)
        PyMem_RawFree(self._key_group)
        PyMem_RawFree(self._last_seen)
        PyMem_RawFree(self._op_threshold)
        PyMem_RawFree(self._op_errors)
        PyMem_RawFree(self._op_retired)
        PyMem_RawFree(self._op_ring)
        PyMem_RawFree(self._op_epoch)
        sketch_free(&self._sketch)

    # Life cycle -------------------------------------------------------------------------
    cdef int _clear(self) except -1:
        cdef int i
        self._keys = []
        self._key_of = {}
        self._free = []
        self._expired = []
        for i in range(self._max_keys + 1):
            self._last_seen[i] = FREE
        self._sweep_due = FREE
        self._swept = FREE
        sketch_free(&self._sketch)
        sketch_init(&self._sketch, self.config.admission_count,
                    self.config.admission_window_ns)
        table_free(&self._raw)
        self._raw.d = self._d
        state_free(&self._retired)
        for i in range(self._slots):
            state_free(&self._ring[i])
            self._ring_epoch[i] = -1
        self._newest_epoch = -1
        self._hot = NULL
        memset(self._dropped, 0, sizeof(self._dropped))
        self._recorded = 0
        memset(self._op_retired, 0, 2 * self._n_ops * sizeof(uint64_t))
        memset(self._op_ring, 0, 2 * self._n_ops * self._slots * sizeof(uint64_t))
        for i in range(self._slots):
            self._op_epoch[i] = -1
        self._op_newest = -1
        self._started_ns = time.time_ns()
        cfg = self.config
        self._sessions = (SessionTable(cfg.max_sessions, cfg.session_timeout_ns, cfg.journeys)
                          if cfg.max_sessions else None)
        for i in range(self._max_keys + 1):
            self._key_group[i] = 1  # the overflow row, until a key is created
        return 0

    def reset(self):
        """Forget everything: keys, statistics, windows and drop counters."""
        with self._lock:
            self._clear()

    def _after_fork_in_child(self):
        self._lock = threading.Lock()  # the parent's lock may have been held at fork
        self._clear()

    # Keys -------------------------------------------------------------------------------
    def _key_id(self, tuple raw, int64_t end_ns, int64_t sightings=1):
        """Key id of raw dimension values (exact ``str`` or already sanitised), seen in a
        span ending at ``end_ns``; as ``_aggregator_py.Aggregator._key_id``."""
        cdef PyObject *values[MAX_DIMS]
        cdef Py_ssize_t i
        cdef int32_t key_id
        for i in range(self._d):
            values[i] = PyTuple_GET_ITEM(raw, i)
        key_id = table_find(&self._raw, values, mix_hashes(values, self._d))
        if key_id >= 0 and not (key_id == self._max_keys and self._sweep_due > self._swept):
            return key_id
        return self._create_key(raw, end_ns, sightings)

    def _create_key(self, tuple raw, int64_t end_ns, int64_t sightings=1):
        """The slow path of ``_key_id``: as ``_aggregator_py.Aggregator._key_id``."""
        cdef PyObject *values[MAX_DIMS]
        cdef Py_ssize_t i
        limit = self._value_length
        clean = tuple([sanitize_dimension(v, limit) for v in raw])
        with self._lock:
            self._sweep_if_due()
            key_id = self._key_of.get(clean)
            if key_id is None:
                key_id = self._new_key(clean, end_ns, sightings)
                if key_id < 0:  # not admitted yet: every sighting must reach the sketch
                    return self._max_keys
            for i in range(self._d):
                values[i] = PyTuple_GET_ITEM(raw, i)
            hashed = mix_hashes(values, self._d)
            if (<Py_ssize_t>self._raw.used < self._raw_cap
                    and table_find(&self._raw, values, hashed) < 0):
                table_insert(&self._raw, values, hashed, key_id)
        return key_id

    cdef int32_t _new_key(self, tuple clean, int64_t end_ns, int64_t sightings) except -2:
        """As ``_aggregator_py.Aggregator._create_key``; called with the lock."""
        cdef int32_t key_id
        if not sketch_admit(&self._sketch, clean, end_ns, sightings):
            return -1
        if len(self._keys) - len(self._free) >= self._max_keys:
            return self._max_keys  # the overflow key
        if self._free:
            key_id = heapq.heappop(self._free)
            self._keys[key_id] = clean
        else:
            key_id = len(self._keys)
            self._keys.append(clean)
        self._key_of[clean] = key_id
        self._last_seen[key_id] = end_ns
        if self._sessions is not None:
            page = clean[self._page_at] if self._page_at >= 0 else MISSING
            self._key_group[key_id] = self._sessions.group_row(page)
        return key_id

    # Expiry -----------------------------------------------------------------------------
    cdef int _sweep_if_due(self) except -1:
        """As ``_aggregator_py.Aggregator._sweep_if_due``; called with the lock."""
        if self._sweep_due > self._swept:
            self._sweep(self._sweep_due)
        return 0

    cdef int _sweep(self, int64_t now_ns) except -1:
        """As ``_aggregator_py.Aggregator._sweep``; called with the lock. From the first
        row dropped to the last lookup forgotten, nothing runs Python code, so recording
        threads see the states before the sweep or after it, never between."""
        cdef int32_t key_id, n = len(self._keys)
        cdef int64_t horizon
        cdef int i, failed = 0
        cdef list gone = []
        cdef bint keep = self.config.multiproc_dir is not None
        cdef State final
        if now_ns > self._swept:
            self._swept = now_ns
        if self._ttl_ns == 0:
            return 0
        horizon = now_ns - self._ttl_ns
        for key_id in range(n):
            if self._last_seen[key_id] != FREE and self._last_seen[key_id] <= horizon:
                gone.append(key_id)
        if not gone:
            return 0
        names = {key_id: self._keys[key_id] for key_id in gone}
        memset(&final, 0, sizeof(State))
        try:
            for key_id in gone:
                self._last_seen[key_id] = FREE
            if keep:
                failed |= state_merge_rows(&final, &self._retired, self._m, self._last_seen)
                for i in range(self._slots):
                    failed |= state_merge_rows(&final, &self._ring[i], self._m,
                                               self._last_seen)
            state_drop(&self._retired, self._last_seen, self._m)
            for i in range(self._slots):
                state_drop(&self._ring[i], self._last_seen, self._m)
            if table_keep(&self._raw, self._last_seen, self._max_keys) < 0:
                # No memory to rebuild the lookups: forget them all rather than keep any
                # that leads to a free id.
                table_free(&self._raw)
                self._raw.d = self._d
            for key_id in gone:
                del self._key_of[self._keys[key_id]]
                self._keys[key_id] = None
                heapq.heappush(self._free, key_id)
            if keep and not failed:
                self._keep_expired(state_dump(&final, self._m), names, gone)
        finally:
            state_free(&final)
        return 0

    cdef int _keep_expired(self, object final, dict names, list gone) except -1:
        """As ``_aggregator_py.Aggregator._keep_expired``, from the expiring keys' rows
        merged in ``final``."""
        self._expired.append(expired_rows([final], self._m, names, gone))
        while sum([e.state.rows for e in self._expired]) > self._max_keys:
            self._expired.pop(0)
        return 0

    cdef inline object _raw_value(self, object value):
        if value is None:
            return MISSING
        if type(value) is str:
            return value
        return sanitize_dimension(value, self._value_length)

    # The methods below run for every span. @cython.final makes their calls plain C calls,
    # which the C compiler can inline, instead of calls through the class's method table.
    @cython.final
    cdef Py_ssize_t _span_key(self, object attributes, bint is_dict,
                              object fallback, int64_t end_ns,
                              PyObject **dims) except -1:
        """Key id of a span's dimension attributes, without allocating on a table hit.

        ``dims`` holds the dimensions' values as a scan of the dict found them (NULL:
        look them up). The values are borrowed from the attribute dict; nothing below
        runs Python code that could change it while they are in use.
        """
        cdef PyObject *values[MAX_DIMS]
        cdef PyObject *found
        cdef Py_ssize_t i
        cdef int32_t key_id
        cdef bint has_fallback = fallback is not None
        if not is_dict or (has_fallback and (type(fallback) is not tuple
                                              or len(<tuple>fallback) != self._d)):
            return self._key_id(self._raw_dims(attributes, fallback), end_ns)
        for i in range(self._d):
            if dims != NULL:
                found = dims[i]
            else:
                found = dict_lookup(<PyObject *>attributes, self._dim_attr[i])
            if found == NULL:
                if has_fallback:
                    found = PyTuple_GET_ITEM(fallback, i)
                    if found == <PyObject *>None:
                        found = <PyObject *>MISSING_VALUE
                else:
                    found = <PyObject *>MISSING_VALUE
            if type(<object>found) is not str:
                return self._key_id(self._raw_dims(attributes, fallback), end_ns)
            values[i] = found
        key_id = table_find(&self._raw, values, mix_hashes(values, self._d))
        if key_id >= 0 and not (key_id == self._max_keys and self._sweep_due > self._swept):
            return key_id
        return self._create_key(self._raw_dims(attributes, fallback), end_ns)

    cdef tuple _raw_dims(self, object attributes, object fallback):
        """Same as ``_aggregator_py.Aggregator._span_dims``."""
        cdef list values = []
        for i, key in enumerate(self._dim_keys):
            value = attributes.get(key)
            if value is None and fallback is not None:
                value = fallback[i]
            values.append(self._raw_value(value))
        return tuple(values)

    # Recording --------------------------------------------------------------------------
    @cython.final
    cdef inline int _check(self, int j, double x) noexcept:
        """Range checks of ``attributes.check_kpi_number``; -1 when valid."""
        if isnan(x):
            return R_NAN
        if isinf(x):
            return R_INF
        if self._kpi_binary[j]:
            return -1 if (x == 0.0 or x == 1.0) else R_NOT_BINARY
        if x < self._kpi_min[j]:
            return R_BELOW
        if x > self._kpi_max[j]:
            return R_ABOVE
        return -1

    @cython.final
    cdef inline int _read_kpi(self, int j, PyObject *value, double *out) except -2:
        """Valid number into ``out`` (returns -1), or the drop reason.

        Exact floats, ints and bools, the values instrumentation sets, are read here, where
        the call inlines into the span path; anything else goes to ``classify_kpi``.
        """
        if type(<object>value) is float:
            out[0] = PyFloat_AS_DOUBLE(<object>value)
        elif type(<object>value) is int:
            out[0] = int_as_double(value)
            if out[0] == -1.0 and PyErr_Occurred() != NULL:
                return self._int_overflow(j, value)
        elif type(<object>value) is bool:
            if not self._kpi_binary[j]:
                return R_BOOL
            out[0] = 1.0 if <object>value is True else 0.0
        else:
            return self._classify_kpi(j, <object>value, out)
        return self._check(j, out[0])

    cdef int _int_overflow(self, int j, PyObject *value) except -2:
        """The reason for an int beyond float's range (the error is OverflowError): by its
        sign and the KPI's kind, as ``attributes.huge_integer_reason`` decides."""
        if PyErr_ExceptionMatches(OverflowError):
            PyErr_Clear()
            return huge_integer_reason(<object>value, self._kpi_binary[j])
        return -2  # propagate whatever else it is

    cdef int _classify_kpi(self, int j, object value, double *out) except -2:
        # ``value`` may be borrowed from the attribute dict, and classify_kpi runs the
        # value's own Python code, which could remove it from there: hold a reference.
        cdef object held = value
        number, reason = classify_kpi(held, self._kpi_binary_obj[j],
                                      self._kpi_min[j], self._kpi_max[j])
        if reason >= 0:
            return reason
        out[0] = number
        return self._check(j, out[0])

    @cython.final
    cdef inline State *_target(self, int64_t end_ns) noexcept:
        """The state a span ending at ``end_ns`` goes to: its sub-window, or the retired
        state for stragglers older than the whole ring (see ``_aggregator_py``).

        Nearly every span ends in the newest sub-window, which ``_hot`` remembers: finding
        it then takes two comparisons instead of two 64-bit divisions.
        """
        if (self._hot != NULL and end_ns >= self._hot_start_ns
                and <uint64_t>end_ns - <uint64_t>self._hot_start_ns < <uint64_t>self._slot_ns):
            return self._hot
        return self._target_slow(end_ns)

    cdef State *_target_slow(self, int64_t end_ns) noexcept:
        cdef int64_t epoch = floor_div(end_ns, self._slot_ns)
        cdef int64_t index = epoch % self._slots
        cdef int32_t row
        if index < 0:
            index += self._slots
        if epoch <= self._newest_epoch - self._slots:
            return &self._retired
        if epoch > self._newest_epoch:
            self._newest_epoch = epoch
            self._hot = NULL
            self._sweep_due = epoch * self._slot_ns
        if self._ring_epoch[index] != epoch:
            if epoch < self._ring_epoch[index]:
                return &self._retired
            if state_merge(&self._retired, &self._ring[index], self._m) < 0:
                for row in range(self._ring[index].n_slots):
                    self._dropped[R_MEMORY] += row_at(&self._ring[index], row, self._m).count
            state_clear(&self._ring[index], self._m)
            self._ring_epoch[index] = epoch
        # The newest sub-window stays where it is until a later epoch replaces it as the
        # newest (above): only then can the answer for its epoch change. Epochs before 1970
        # are not remembered, so that ``epoch * slot_ns`` cannot overflow.
        if epoch == self._newest_epoch and epoch >= 0:
            self._hot = &self._ring[index]
            self._hot_start_ns = epoch * self._slot_ns
        return &self._ring[index]

    @cython.final
    cdef inline int32_t _touch(self, int32_t key, int64_t end_ns) noexcept:
        """As ``_aggregator_py.Aggregator._touch``: note the newest span end; the overflow
        key if this key expired since it was looked up."""
        if self._last_seen[key] == FREE:
            key = self._max_keys
        if end_ns > self._last_seen[key]:
            self._last_seen[key] = end_ns
        return key

    @cython.final
    cdef inline void _commit(self, Py_ssize_t key, double t, const double *values,
                             uint32_t mask, const int *drops, int n_drops, bint error,
                             int64_t end_ns, PyObject *session) noexcept:
        cdef int outcome = 0
        cdef int i
        cdef double revenue = 0.0
        cdef Py_hash_t session_hash
        self._recorded += 1
        if self._outcome >= 0 and (mask >> self._outcome) & 1:
            outcome = 2 if values[self._outcome] == 1.0 else 1
        if self._revenue >= 0 and (mask >> self._revenue) & 1:
            revenue = values[self._revenue]
        cdef int bucket = bucket_of(t)
        for i in range(n_drops):
            self._dropped[drops[i]] += 1
        key = self._touch(<int32_t>key, end_ns)
        if state_add(self._target(end_ns), <int32_t>key, t, bucket, outcome, values, mask,
                     self._m, error) < 0:
            self._dropped[R_MEMORY] += 1
        if session == NULL or session == <PyObject *>None or self._sessions is None:
            return
        if type(<object>session) is not str or len(<str>session) == 0:
            self._dropped[R_SESSION] += 1
            return
        # An exact str's hash is cached after the first call and cannot fail.
        session_hash = PyObject_Hash(<object>session)
        if self._sessions.touch(<uint64_t>session_hash, self._key_group[key], t, outcome == 2,
                                revenue, end_ns) < 0:
            self._dropped[R_MEMORY] += 1

    # Python calls reach this method through a faster entry when they pass no keywords
    # (see the end of the module). binding=False makes it a plain builtin method, which that
    # entry can call for the calls with keywords; the signature is embedded for inspect.
    @cython.binding(False)
    @cython.embedsignature(True)
    @cython.embedsignature.format("clinic")
    def record_span(self, attributes, start_ns, end_ns, error=False, fallback=None):
        """Record one finished span from its attribute mapping. Never raises.

        ``fallback`` gives, per dimension, the value to use when the span lacks that
        attribute (the span processor passes the page group it derived from the route).
        """
        self._record_span(attributes, start_ns, end_ns, error, fallback)

    @cython.final
    cdef int _record_span(self, object attributes, object start_ns, object end_ns,
                          object error, object fallback) except -1:
        cdef int64_t start, end
        cdef double values[MAX_KPIS]
        cdef int drops[MAX_KPIS]
        cdef int n_drops = 0
        cdef uint32_t mask = 0
        cdef int j, reason
        cdef Py_ssize_t key
        cdef PyObject *found
        cdef PyObject *session = NULL
        cdef PyObject *scanned[SCAN_KEYS]
        cdef int n_scanned = 0
        cdef bint failed
        # Timestamps: exact ints that fit int64 (int64_of), the end not before the start.
        if not int64_of(start_ns, &start) or not int64_of(end_ns, &end) or end < start:
            self._dropped[R_LATENCY] += 1
            return 0
        if type(attributes) is not dict:
            return self._record_mapping(attributes, start, end, error, fallback)
        # An attribute dict, the common case: every value wanted is found in one scan of
        # the dict. A KPI of an unusual type, a dimension's __str__ or a flag's truth may
        # run Python code that changes the dict, so the values found are held until the
        # commit; otherwise a span creates and releases no references of its own.
        try:
            # Nothing found (a span with none of the attributes counted), nothing to hold.
            if key_scan(&self._scan, attributes, scanned) > 0:
                n_scanned = self._scan.n
                for j in range(n_scanned):
                    Py_XINCREF(scanned[j])
            # The key comes last, once every read has succeeded: a span dropped as
            # unreadable must not take a key (as in the pure twin).
            for j in range(self._m):
                found = scanned[j]
                if found == NULL or found == <PyObject *>None:
                    continue
                reason = self._read_kpi(j, found, &values[j])
                if reason < 0:
                    mask |= (<uint32_t>1) << j
                else:
                    drops[n_drops] = reason
                    n_drops += 1
            if self._sessions is not None:
                session = scanned[self._m]
            key = self._span_key(attributes, True, fallback, end,
                                 scanned + self._m + self._scan_session)
            if error is True or error is False:
                failed = error is True
            else:
                failed = _truthy(error)
            self._commit(key, span_seconds(start, end), values, mask, drops, n_drops,
                         failed, end, session)
        except Exception:
            self._dropped[R_UNREADABLE] += 1
        finally:
            for j in range(n_scanned):
                Py_XDECREF(scanned[j])
        return 0

    cdef int _record_mapping(self, object attributes, int64_t start, int64_t end,
                             object error, object fallback) except -1:
        """``_record_span`` for attributes in any other mapping, read with ``get``."""
        cdef double values[MAX_KPIS]
        cdef int drops[MAX_KPIS]
        cdef int n_drops = 0
        cdef uint32_t mask = 0
        cdef int j, reason
        cdef Py_ssize_t key
        cdef object session = None
        try:
            for j in range(self._m):
                value = attributes.get(<object>self._kpi_attr[j])
                if value is None:
                    continue
                reason = self._read_kpi(j, <PyObject *>value, &values[j])
                if reason < 0:
                    mask |= (<uint32_t>1) << j
                else:
                    drops[n_drops] = reason
                    n_drops += 1
            if self._sessions is not None:
                session = attributes.get(SESSION_KEY)
            key = self._span_key(attributes, False, fallback, end, NULL)  # last, as above
        except Exception:
            self._dropped[R_UNREADABLE] += 1
            return 0
        self._commit(key, span_seconds(start, end), values, mask, drops, n_drops,
                     error is True or (error is not False and _truthy(error)), end,
                     <PyObject *>session)
        return 0

    def record(self, dims, latency_s, kpis=None, *, error=False, end_ns=None, session=None):
        """Record one observation by dimension values and KPI names. Never raises.

        ``session`` is the session id the request belongs to, if any.
        """
        cdef double values[MAX_KPIS]
        cdef uint64_t pending[MAX_REASONS]   # drops by reason, counted once the call is read
        cdef uint32_t mask = 0
        cdef int i, j, reason
        cdef double x
        cdef int64_t when
        cdef bint failed
        memset(pending, 0, sizeof(pending))
        try:
            if isinstance(latency_s, bool) or not isinstance(latency_s, (float, int)):
                self._dropped[R_LATENCY] += 1
                return
            try:
                x = float(latency_s)
            except OverflowError:  # an integer past every float is not finite either
                x = float("inf")
            if not 0.0 <= x < float("inf"):
                self._dropped[R_LATENCY] += 1
                return
            if len(dims) != self._d:
                self._dropped[R_ARITY] += 1
                return
            raw = tuple([self._raw_value(v) for v in dims])
            for name, value in (kpis or {}).items():
                index = self._kpi_index.get(name)
                if index is None:
                    pending[R_UNKNOWN] += 1
                    continue
                if value is None:
                    continue
                j = index
                number, reason = classify_kpi(value, self._kpi_binary_obj[j],
                                              self._kpi_min[j], self._kpi_max[j])
                if reason < 0:
                    values[j] = number
                    mask |= (<uint32_t>1) << j
                else:
                    pending[reason] += 1
            if end_ns is None:
                when = time.time_ns()
            else:
                stamp = end_timestamp(end_ns)
                if stamp is None:
                    self._dropped[R_LATENCY] += 1
                    return
                when = stamp
            failed = _truthy(error)
            key = self._key_id(raw, when)
        except Exception:
            self._dropped[R_UNREADABLE] += 1
            return
        for i in range(N_REASONS):
            self._dropped[i] += pending[i]
        self._commit(key, x, values, mask, NULL, 0, failed, when, <PyObject *>session)

    def record_many(self, dims, latency_s, kpis=None, *, errors=None, end_ns=None):
        """Record a batch for one key. NaN in a KPI array means "no value on that row".

        Shape mismatches and unknown KPI names are programming errors and raise
        ``ValueError``; bad values are counted and dropped as on the hot path.
        """
        latency, columns, flags = batch_inputs(self.config, dims, latency_s, kpis, errors)
        cdef int64_t when = batch_end(end_ns)
        cdef Batch *batch = <Batch *>PyMem_RawMalloc(sizeof(Batch))
        if batch == NULL:
            raise MemoryError()
        try:
            memset(batch, 0, sizeof(Batch))
            self._reduce(batch, latency, columns, flags.view(np.uint8))
            key = self._key_id(tuple([self._raw_value(v) for v in dims]), when,
                               batch.count if batch.count > 1 else 1)
            self._commit_batch(batch, key, when)
        finally:
            PyMem_RawFree(batch)

    cdef void _commit_batch(self, Batch *batch, Py_ssize_t key, int64_t when) noexcept:
        cdef int i
        for i in range(N_REASONS):
            self._dropped[i] += batch.drops[i]
        if batch.count == 0:
            return
        self._recorded += batch.count
        key = self._touch(<int32_t>key, when)
        if state_add_batch(self._target(when), <int32_t>key, batch, self._m) < 0:
            self._dropped[R_MEMORY] += batch.count

    cdef int _reduce(self, Batch *b, const double[::1] t, dict columns,
                     const unsigned char[::1] flags) except -1:
        cdef Py_ssize_t i, rows = t.shape[0]
        cdef const double[::1] outcome_column
        cdef bint has_outcome = self._outcome in columns
        cdef double x, v
        cdef int outcome
        if has_outcome:
            outcome_column = columns[self._outcome]
        with nogil:
            for i in range(rows):
                x = t[i]
                if not (x >= 0.0) or isinf(x):
                    b.drops[R_LATENCY] += 1
                    continue
                b.count += 1
                b.errors += flags[i]
                b.latency_sum += x
                outcome = 0
                if has_outcome:
                    v = outcome_column[i]
                    if v == 1.0:
                        outcome = 2
                    elif v == 0.0:
                        outcome = 1
                b.hist[outcome * 128 + bucket_of(x)] += 1
        for j, column in columns.items():
            self._reduce_kpi(b, j, t, column)
        return 0

    cdef void _reduce_kpi(self, Batch *b, int j, const double[::1] t,
                          const double[::1] v) noexcept:
        """Two-pass co-moments of one KPI column, as ``_aggregator_py._batch_moments``."""
        cdef Py_ssize_t i, rows = t.shape[0]
        cdef uint64_t n = 0
        cdef double st = 0.0, sv = 0.0, mt, mv, dt, dv, x, y
        cdef double m2t = 0.0, m2v = 0.0, ctv = 0.0, stt = 0.0, svv = 0.0, stv = 0.0
        cdef int reason
        cdef bint binary = self._kpi_binary[j]
        cdef double low = self._kpi_min[j], high = self._kpi_max[j]
        with nogil:
            for i in range(rows):
                x = t[i]
                y = v[i]
                if not (x >= 0.0) or isinf(x) or isnan(y):
                    continue
                if isinf(y):
                    b.drops[R_INF] += 1
                    continue
                if binary:
                    if y != 0.0 and y != 1.0:
                        b.drops[R_NOT_BINARY] += 1
                        continue
                elif y < low:
                    b.drops[R_BELOW] += 1
                    continue
                elif y > high:
                    b.drops[R_ABOVE] += 1
                    continue
                n += 1
                st += x
                sv += y
            if n == 0:
                return
            mt = st / n
            mv = sv / n
            for i in range(rows):
                x = t[i]
                y = v[i]
                if (not (x >= 0.0) or isinf(x) or isnan(y) or isinf(y)
                        or (binary and y != 0.0 and y != 1.0)
                        or (not binary and (y < low or y > high))):
                    continue
                dt = x - mt
                dv = y - mv
                m2t += dt * dt
                m2v += dv * dv
                ctv += dt * dv
                stt += x * x
                svv += y * y
                stv += x * y
        b.kpi_n[j] = n
        b.kpi_f[j * F + 0] = mt
        b.kpi_f[j * F + 1] = mv
        b.kpi_f[j * F + 2] = m2t
        b.kpi_f[j * F + 3] = m2v
        b.kpi_f[j * F + 4] = ctv
        b.kpi_f[j * F + 5] = st
        b.kpi_f[j * F + 6] = stt
        b.kpi_f[j * F + 7] = sv
        b.kpi_f[j * F + 8] = svv
        b.kpi_f[j * F + 9] = stv

    # Operations -------------------------------------------------------------------------
    cdef uint64_t *_op_target(self, int64_t end_ns) noexcept:
        """The operation counts a span ending at ``end_ns`` goes to (as in the pure twin)."""
        cdef int64_t epoch = floor_div(end_ns, self._slot_ns)
        cdef int64_t index = epoch % self._slots
        cdef int width = 2 * self._n_ops
        cdef uint64_t *counts
        cdef int i
        if index < 0:
            index += self._slots
        if epoch <= self._op_newest - self._slots:
            return self._op_retired
        if epoch > self._op_newest:
            self._op_newest = epoch
        counts = self._op_ring + index * width
        if self._op_epoch[index] != epoch:
            if epoch < self._op_epoch[index]:
                return self._op_retired
            for i in range(width):
                self._op_retired[i] += counts[i]
                counts[i] = 0
            self._op_epoch[index] = epoch
        return counts

    def record_operations(self, operations, start_ns, end_ns, error=False):
        """As ``_aggregator_py.Aggregator.record_operations``: count one request span in
        the operations it belongs to. Never raises."""
        self._record_operations(operations, start_ns, end_ns,
                                error is True or (error is not False and _truthy(error)))

    @cython.final
    cdef int _record_operations(self, object operations, object start_ns, object end_ns,
                                bint failed) except -1:
        cdef int64_t start, end
        cdef uint64_t latency
        cdef uint64_t *counts
        cdef Py_ssize_t k
        cdef long i
        cdef int overflow
        cdef PyObject *item
        cdef tuple chosen
        if not int64_of(start_ns, &start) or not int64_of(end_ns, &end) or end < start:
            return 0
        if type(operations) is tuple:
            chosen = operations
        else:
            try:
                chosen = tuple(operations)
            except Exception:
                return 0
        latency = <uint64_t>end - <uint64_t>start
        counts = self._op_target(end)
        for k in range(len(chosen)):
            item = PyTuple_GET_ITEM(chosen, k)
            if type(<object>item) is not int:
                continue
            i = PyLong_AsLongAndOverflow(<object>item, &overflow)  # an exact int: no error
            if overflow or i < 0 or i >= self._n_ops:
                continue
            counts[2 * i] += 1
            if latency <= <uint64_t>self._op_threshold[i] and not (failed and self._op_errors[i]):
                counts[2 * i + 1] += 1
        return 0

    # Reading ----------------------------------------------------------------------------
    def snapshot(self, now_ns=None):
        """An immutable copy of the state; ``recent()`` covers the last ``window`` seconds."""
        return self._snapshot(now_ns, False)[0]

    def changes(self):
        """As ``_aggregator_py.Aggregator.changes``."""
        cdef uint64_t total = self._recorded
        cdef int i
        for i in range(MAX_REASONS):
            total += self._dropped[i]
        return total

    def snapshot_and_expired(self, now_ns=None):
        """As ``_aggregator_py.Aggregator.snapshot_and_expired``."""
        return self._snapshot(now_ns, True)

    cdef tuple _snapshot(self, object now_ns, bint take):
        cdef int64_t now = time.time_ns() if now_ns is None else now_ns
        cdef int64_t current = floor_div(now, self._slot_ns)
        cdef int i, failed = 0
        cdef Py_ssize_t n_keys
        cdef uint64_t dropped[MAX_REASONS]
        cdef State cumulative
        cdef State recent
        cdef int width = 2 * self._n_ops
        cdef int k
        cdef uint64_t *ops_cumulative = NULL
        cdef uint64_t *ops_recent = NULL
        memset(&cumulative, 0, sizeof(State))
        memset(&recent, 0, sizeof(State))
        taken = []
        with self._lock:
            self._sweep(now)
            if take:
                taken, self._expired = self._expired, []
        try:
            # Everything below until the dumps is C code: no other thread can run, so the
            # merged states and the key count form one consistent picture. Merging here,
            # row by row (Chan's formula, as sub-windows retire), costs a fraction of
            # dumping every sub-window and merging the arrays. The recent sub-windows are
            # merged once, and their sum joins the cumulative state as one.
            n_keys = len(self._keys)
            memcpy(dropped, self._dropped, sizeof(dropped))
            failed |= state_merge(&cumulative, &self._retired, self._m)
            for i in range(self._slots):
                if current - self._slots < self._ring_epoch[i] <= current:
                    failed |= state_merge(&recent, &self._ring[i], self._m)
                else:
                    failed |= state_merge(&cumulative, &self._ring[i], self._m)
            failed |= state_merge(&cumulative, &recent, self._m)
            if failed:
                raise MemoryError("bizops-otel: no memory for a snapshot")
            ops_cumulative = <uint64_t *>PyMem_RawMalloc((width + 1) * sizeof(uint64_t))
            ops_recent = <uint64_t *>PyMem_RawMalloc((width + 1) * sizeof(uint64_t))
            if ops_cumulative == NULL or ops_recent == NULL:
                raise MemoryError("bizops-otel: no memory for a snapshot")
            memset(ops_recent, 0, (width + 1) * sizeof(uint64_t))
            for k in range(width):
                ops_cumulative[k] = self._op_retired[k]
            for i in range(self._slots):
                for k in range(width):
                    ops_cumulative[k] += self._op_ring[i * width + k]
                    if current - self._slots < self._op_epoch[i] <= current:
                        ops_recent[k] += self._op_ring[i * width + k]
            keys = self._keys[:n_keys]
            operations = np.array([ops_cumulative[k] for k in range(width)],
                                  np.uint64).reshape(self._n_ops, 2)
            recent_operations = np.array([ops_recent[k] for k in range(width)],
                                         np.uint64).reshape(self._n_ops, 2)
            sessions = self._sessions.dump(now) if self._sessions is not None else None
            cumulative_arrays = sort_rows(state_dump(&cumulative, self._m))
            recent_arrays = sort_rows(state_dump(&recent, self._m))
        finally:
            state_free(&cumulative)
            state_free(&recent)
            PyMem_RawFree(ops_cumulative)
            PyMem_RawFree(ops_recent)
        return Snapshot.from_state(self.config, keys, cumulative_arrays,
                                   [dropped[i] for i in range(N_REASONS)], recent_arrays, now,
                                   sessions, started_ns=self._started_ns,
                                   operations=operations,
                                   recent_operations=recent_operations), taken


# The span hooks (ext/span/_hooks_c.pyx) call record_span for every request span. Through
# this capsule they call it as a C function, with no Python call and no argument parsing;
# the hooks take it only for an Aggregator of exactly this type.
cdef int _record_span_entry(object aggregator, object attributes, object start_ns,
                            object end_ns, object error, object fallback) except -1:
    return (<Aggregator>aggregator)._record_span(attributes, start_ns, end_ns, error, fallback)


RECORD_SPAN_CAPSULE = PyCapsule_New(<void *>_record_span_entry,
                                    b"bizops_otel.aggregate.record_span", NULL)


# The same for record_operations, which the hooks call for request spans of configured
# operations, with the error flag already a C truth value.
cdef int _record_operations_entry(object aggregator, object operations, object start_ns,
                                  object end_ns, bint failed) except -1:
    return (<Aggregator>aggregator)._record_operations(operations, start_ns, end_ns, failed)


RECORD_OPERATIONS_CAPSULE = PyCapsule_New(<void *>_record_operations_entry,
                                          b"bizops_otel.aggregate.record_operations", NULL)


# record_span's entry for Python calls. Cython's wrapper of a method with defaults takes a
# new reference to every argument, fills in the defaults and prepares to parse keywords on
# every call: some 70 instructions, 3 ns of the 90 that a call from a Python loop costs.
# The replay and batch paths pass 3 to 5 positional arguments: this entry hands them
# straight to _record_span_entry. Calls with keywords go to the method Cython made, which
# the entry replaces in the class and keeps for them.
cdef extern from *:
    """
    typedef int (*bizops_record_span_fn)(PyObject *, PyObject *, PyObject *, PyObject *,
                                         PyObject *, PyObject *);
    static bizops_record_span_fn bizops_record_span_c;
    static PyObject *bizops_record_span_parsed;  /* Cython's record_span (a descriptor) */

    static PyObject *bizops_record_span(PyObject *self, PyObject *const *args,
                                        Py_ssize_t nargs, PyObject *kwnames) {
        PyObject *bound, *result;
        if (kwnames == NULL && nargs >= 3 && nargs <= 5) {
            if (bizops_record_span_c(self, args[0], args[1], args[2],
                                     nargs > 3 ? args[3] : Py_False,
                                     nargs > 4 ? args[4] : Py_None) < 0)
                return NULL;
            Py_RETURN_NONE;
        }
        bound = Py_TYPE(bizops_record_span_parsed)->tp_descr_get(
            bizops_record_span_parsed, self, (PyObject *)Py_TYPE(self));
        if (bound == NULL)
            return NULL;
        result = PyObject_Vectorcall(bound, args, nargs, kwnames);
        Py_DECREF(bound);
        return result;
    }

    static PyMethodDef bizops_record_span_def = {
        "record_span", (PyCFunction)(void (*)(void))bizops_record_span,
        METH_FASTCALL | METH_KEYWORDS, NULL};

    /* Put the entry in the class in place of Cython's method, with the same docstring
       (and so the same signature for inspect). */
    static int bizops_install_record_span(PyTypeObject *type, void *impl) {
        PyObject *parsed = PyDict_GetItemString(type->tp_dict, "record_span");
        PyObject *entry;
        int failed;
        if (parsed == NULL || !Py_IS_TYPE(parsed, &PyMethodDescr_Type)) {
            PyErr_SetString(PyExc_RuntimeError, "Aggregator.record_span is not a method");
            return -1;
        }
        bizops_record_span_def.ml_doc = ((PyMethodDescrObject *)parsed)->d_method->ml_doc;
        entry = PyDescr_NewMethod(type, &bizops_record_span_def);
        if (entry == NULL)
            return -1;
        Py_INCREF(parsed);
        bizops_record_span_parsed = parsed;
        bizops_record_span_c = (bizops_record_span_fn)impl;
        failed = PyDict_SetItemString(type->tp_dict, "record_span", entry);
        Py_DECREF(entry);
        PyType_Modified(type);
        return failed;
    }
    """
    int install_record_span "bizops_install_record_span"(type cls, void *impl) except -1


install_record_span(Aggregator, <void *>_record_span_entry)
