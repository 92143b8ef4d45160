# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Native twin of ``bizops_otel/export/_lines.py``: exposition lines of whole columns.

The same bytes as the pure twin, written into one growing C buffer. Integral values
below 1e16 (counts, which are most samples) are formatted here; every other number goes
through ``PyOS_double_to_string`` in ``repr`` mode, which is what ``repr(float)`` uses.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_RawFree, PyMem_RawRealloc
from cpython.ref cimport PyObject
from libc.math cimport fabs, floor, isinf, signbit
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy

cdef extern from "Python.h":
    char *PyOS_double_to_string(double val, char format_code, int precision, int flags,
                                int *ptype) except NULL
    int Py_DTSF_ADD_DOT_0


cdef struct Buffer:
    char *data
    size_t size
    size_t cap


cdef int reserve(Buffer *b, size_t extra) except -1:
    cdef size_t cap
    cdef char *fresh
    if b.size + extra <= b.cap:
        return 0
    cap = b.cap * 2 if b.cap else 65536
    while cap < b.size + extra:
        cap *= 2
    fresh = <char *>PyMem_RawRealloc(b.data, cap)
    if fresh == NULL:
        raise MemoryError()
    b.data = fresh
    b.cap = cap
    return 0


cdef inline int put(Buffer *b, const char *text, size_t n) except -1:
    reserve(b, n)
    memcpy(b.data + b.size, text, n)
    b.size += n
    return 0


cdef inline int put_bytes(Buffer *b, object value) except -1:
    if type(value) is not bytes:
        raise TypeError(f"expected bytes, got {type(value).__name__}")
    return put(b, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))


cdef int put_integer(Buffer *b, int64_t value) except -1:
    cdef char digits[24]
    cdef int n = 0
    cdef uint64_t magnitude = <uint64_t>(-value) if value < 0 else <uint64_t>value
    while True:
        digits[23 - n] = <char>(48 + magnitude % 10)
        n += 1
        magnitude //= 10
        if magnitude == 0:
            break
    if value < 0:
        digits[23 - n] = b"-"
        n += 1
    return put(b, &digits[24 - n], n)


cdef int put_number(Buffer *b, double value) except -1:
    cdef char *text
    cdef Py_ssize_t n = 0
    if isinf(value):
        return put(b, "+Inf", 4) if value > 0 else put(b, "-Inf", 4)
    if value == floor(value) and fabs(value) < 1e16 and not (value == 0.0 and signbit(value)):
        put_integer(b, <int64_t>value)
        return put(b, ".0", 2)
    text = PyOS_double_to_string(value, b"r", 0, Py_DTSF_ADD_DOT_0, NULL)
    try:
        while text[n] != 0:
            n += 1
        put(b, text, n)
    finally:
        PyMem_Free(text)
    return 0


cdef inline object label_of(list labels, int64_t row):
    if row < 0 or row >= PyList_GET_SIZE(labels):
        raise IndexError(f"row {row} has no labels")
    return <object>PyList_GET_ITEM(labels, row)


cdef int write_column(Buffer *b, bytes sample, list labels, bytes extra,
                      const int64_t[::1] rows, const double[::1] values) except -1:
    cdef Py_ssize_t i
    if rows.shape[0] != values.shape[0]:
        raise ValueError("rows and values differ in length")
    for i in range(rows.shape[0]):
        put_bytes(b, sample)
        put(b, "{", 1)
        put_bytes(b, label_of(labels, rows[i]))
        put_bytes(b, extra)
        put(b, "} ", 2)
        put_number(b, values[i])
        put(b, "\n", 1)
    return 0


cdef int write_buckets(Buffer *b, bytes sample, list labels, bytes extra, list bounds,
                       const int64_t[::1] rows, const int64_t[:, ::1] counts,
                       const int64_t[::1] totals) except -1:
    cdef Py_ssize_t i, k
    cdef Py_ssize_t n_bounds = len(bounds)
    if counts.shape[0] != rows.shape[0] or totals.shape[0] != rows.shape[0]:
        raise ValueError("rows, counts and totals differ in length")
    if rows.shape[0] and counts.shape[1] != n_bounds:
        raise ValueError("counts and bounds differ in width")
    for i in range(rows.shape[0]):
        label = label_of(labels, rows[i])
        for k in range(n_bounds + 1):
            put_bytes(b, sample)
            put(b, "{", 1)
            put_bytes(b, label)
            put_bytes(b, extra)
            put(b, ",", 1)
            if k < n_bounds:
                put_bytes(b, <object>PyList_GET_ITEM(bounds, k))
                put(b, "} ", 2)
                put_integer(b, counts[i, k])
            else:
                put(b, 'le="+Inf"} ', 11)
                put_integer(b, totals[i])
            put(b, ".0\n", 3)
    return 0


cdef class Writer:
    """Collects an exposition in one growing buffer (see the pure twin)."""

    cdef Buffer _buffer

    def __cinit__(self):
        self._buffer.data = NULL
        self._buffer.size = 0
        self._buffer.cap = 0

    def __dealloc__(self):
        PyMem_RawFree(self._buffer.data)

    def text(self, bytes data):
        put_bytes(&self._buffer, data)

    def column(self, bytes sample, list labels, bytes extra, const int64_t[::1] rows,
               const double[::1] values):
        write_column(&self._buffer, sample, labels, extra, rows, values)

    def buckets(self, bytes sample, list labels, bytes extra, list bounds,
                const int64_t[::1] rows, const int64_t[:, ::1] counts,
                const int64_t[::1] totals):
        write_buckets(&self._buffer, sample, labels, extra, bounds, rows, counts, totals)

    def getvalue(self):
        return PyBytes_FromStringAndSize(self._buffer.data, self._buffer.size)


def column_lines(bytes sample, list labels, bytes extra, const int64_t[::1] rows,
                 const double[::1] values):
    """``sample{labels[row]extra} value`` for every row."""
    writer = Writer()
    writer.column(sample, labels, extra, rows, values)
    return writer.getvalue()


def bucket_lines(bytes sample, list labels, bytes extra, list bounds,
                 const int64_t[::1] rows, const int64_t[:, ::1] counts,
                 const int64_t[::1] totals):
    """``sample{labels[row]extra,bound} count.0`` per row and bound, then the +Inf
    bucket with the row's total."""
    writer = Writer()
    writer.buckets(sample, labels, extra, bounds, rows, counts, totals)
    return writer.getvalue()


def _is_compiled():
    return True
