# Admission by frequency: native twin of ``bizops_otel/aggregate/_admission_py.py``, which
# explains the sketch, its sizing and its hash. Included by _aggregator_c.pyx.

from cpython.mem cimport PyMem_RawCalloc
from cpython.unicode cimport PyUnicode_AsUTF8AndSize

from bizops_otel.aggregate._admission_py import (
    DEPTH as _SKETCH_DEPTH,
    SATURATED as _SKETCH_SATURATED,
    WIDTH as _SKETCH_WIDTH,
)

DEF SKETCH_DEPTH = 4
cdef size_t SKETCH_WIDTH = _SKETCH_WIDTH
cdef int SKETCH_SATURATED = _SKETCH_SATURATED
assert _SKETCH_DEPTH == SKETCH_DEPTH


cdef struct Sketch:
    unsigned char *counts   # SKETCH_DEPTH rows of SKETCH_WIDTH counters; NULL: admit all
    int threshold
    int64_t period_ns
    int64_t period          # aging period of the newest sighting, -1 before the first


cdef inline uint64_t sketch_fmix(uint64_t h) noexcept nogil:
    h ^= h >> 33
    h *= <uint64_t>0xFF51AFD7ED558CCD
    h ^= h >> 33
    h *= <uint64_t>0xC4CEB9FE1A85EC53
    return h ^ (h >> 33)


cdef inline uint64_t sketch_mix(uint64_t h, const unsigned char *data,
                                Py_ssize_t size) noexcept nogil:
    """One value into the hash, as ``_admission_py.key_hash``: little-endian words of
    eight bytes (the last one zero-padded), then the length."""
    cdef Py_ssize_t start, i, end
    cdef uint64_t word
    start = 0
    while start < size:
        word = 0
        end = start + 8 if start + 8 < size else size
        for i in range(start, end):
            word |= (<uint64_t>data[i]) << (8 * (i - start))
        h = (h ^ word) * <uint64_t>0x100000001B3
        h ^= h >> 29
        start += 8
    h = (h ^ <uint64_t>size) * <uint64_t>0x100000001B3
    return h ^ (h >> 29)


cdef uint64_t sketch_hash(tuple values) except? 0:
    """``_admission_py.key_hash`` of sanitised values (exact ``str``, UTF-8 encodable)."""
    cdef uint64_t h = <uint64_t>0x243F6A8885A308D3
    cdef Py_ssize_t size
    cdef const char *data
    for value in values:
        data = PyUnicode_AsUTF8AndSize(value, &size)
        h = sketch_mix(h, <const unsigned char *>data, size)
    h = sketch_fmix(h)
    return h if h else 1  # 0 is Cython's error value here; one of 2^64 hashes moves


cdef int sketch_init(Sketch *s, int threshold, int64_t period_ns) except -1:
    s.threshold = threshold
    s.period_ns = period_ns
    s.period = -1
    s.counts = NULL
    if threshold > 1:
        s.counts = <unsigned char *>PyMem_RawCalloc(SKETCH_DEPTH * SKETCH_WIDTH, 1)
        if s.counts == NULL:
            raise MemoryError()
    return 0


cdef void sketch_free(Sketch *s) noexcept nogil:
    PyMem_RawFree(s.counts)
    s.counts = NULL


cdef void sketch_age(Sketch *s, int64_t now_ns) noexcept nogil:
    """Halve every counter once per period boundary passed (``Doorkeeper._age``)."""
    cdef int64_t period = floor_div(now_ns, s.period_ns)
    cdef int64_t shift
    cdef size_t i, words = SKETCH_DEPTH * SKETCH_WIDTH // 8
    cdef uint64_t *packed = <uint64_t *>s.counts
    cdef uint64_t keep
    if s.period < 0:
        s.period = period
        return
    if period <= s.period:
        return
    shift = period - s.period
    s.period = period
    if shift >= 8:
        memset(s.counts, 0, SKETCH_DEPTH * SKETCH_WIDTH)
        return
    # Eight counters per word: shift them all, then clear the bits that crossed from one
    # byte into its neighbour.
    keep = (<uint64_t>0xFF >> shift) * <uint64_t>0x0101010101010101
    for i in range(words):
        packed[i] = (packed[i] >> shift) & keep


cdef int sketch_admit(Sketch *s, tuple values, int64_t now_ns,
                      int64_t sightings) except -1:
    """Count ``sightings`` of a key; 1 when it may be created (``Doorkeeper.admit``)."""
    cdef uint64_t h, low, step
    cdef int row, estimate = SKETCH_SATURATED
    cdef int64_t count
    cdef unsigned char *cell
    if s.counts == NULL:
        return 1
    sketch_age(s, now_ns)
    h = sketch_hash(values)
    low = h & <uint64_t>0xFFFFFFFF
    step = (h >> 32) | 1
    for row in range(SKETCH_DEPTH):
        cell = &s.counts[row * SKETCH_WIDTH + ((low + row * step) & (SKETCH_WIDTH - 1))]
        count = cell[0] + sightings
        if count > SKETCH_SATURATED:
            count = SKETCH_SATURATED
        cell[0] = <unsigned char>count
        if count < estimate:
            estimate = <int>count
    return 1 if estimate >= s.threshold else 0
