# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Native twin of ``bizops_otel/export/_lines_py.py``: exposition lines of whole
columns.

The same bytes as the pure twin, written straight into one growing ``bytes`` object that
is handed over at the end, so tens of megabytes are never copied again. Integral values
below 1e16 (counts, which are most samples) are written by integer formatting; every
other finite number gets the shortest round-trip digits (``_shortest_c.pxi``), which
are what ``repr(float)`` writes.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.ref cimport Py_INCREF, Py_XDECREF, PyObject
from libc.math cimport fabs, floor, isinf, isnan, signbit
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy

include "_shortest_c.pxi"

cdef extern from "Python.h":
    int _PyBytes_Resize(PyObject **data, Py_ssize_t size) except -1
    # A borrowed-pointer form: casting to ``object`` would take a reference each time.
    char *bytes_text "PyBytes_AS_STRING"(PyObject *data)

cdef enum:
    NUMBER_ROOM = 32    # the longest number written: "-2.2250738585072014e-308"


cdef struct Buffer:
    PyObject *data      # a bytes object, or NULL
    Py_ssize_t size
    Py_ssize_t cap
    bint handed_out     # ``data`` was returned by getvalue(), so it must not change


cdef int reserve(Buffer *b, Py_ssize_t extra) except -1:
    """Room for ``extra`` more bytes. The bytes object grows by realloc, which moves
    pages rather than copying them; once handed out it is copied instead, because
    others may hold it (and may have cached its hash)."""
    cdef Py_ssize_t cap
    if b.data != NULL and not b.handed_out and b.size + extra <= b.cap:
        return 0
    cap = b.cap * 2 if b.cap else 65536
    while cap < b.size + extra:
        cap *= 2
    if b.data != NULL and not b.handed_out:
        try:
            _PyBytes_Resize(&b.data, cap)
        except MemoryError:
            b.size = b.cap = 0    # a failed resize has freed the object
            raise
    else:
        copy = PyBytes_FromStringAndSize(NULL, cap)
        Py_INCREF(copy)
        if b.data != NULL:
            memcpy(PyBytes_AS_STRING(copy), bytes_text(b.data), b.size)
            Py_XDECREF(b.data)
        b.data = <PyObject *>copy
        b.handed_out = False
    b.cap = cap
    return 0


cdef inline char *tail(Buffer *b) noexcept:
    return bytes_text(b.data) + b.size


cdef inline void add(Buffer *b, const char *text, Py_ssize_t n) noexcept:
    """Appends ``n`` bytes into room already reserved."""
    memcpy(tail(b), text, n)
    b.size += n


cdef inline int put(Buffer *b, const char *text, Py_ssize_t n) except -1:
    reserve(b, n)
    add(b, text, n)
    return 0


cdef inline Py_ssize_t checked_size(object value) except -1:
    if type(value) is not bytes:
        raise TypeError(f"expected bytes, got {type(value).__name__}")
    return PyBytes_GET_SIZE(value)


cdef int put_bytes(Buffer *b, object value) except -1:
    cdef Py_ssize_t n = checked_size(value)
    return put(b, PyBytes_AS_STRING(value), n)


cdef inline void add_integer(Buffer *b, int64_t value) noexcept:
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
    add(b, &digits[24 - n], n)


cdef inline void add_number(Buffer *b, double value) noexcept:
    """Appends ``value`` as ``repr`` writes it (``+Inf``/``-Inf`` for infinities) into
    NUMBER_ROOM reserved bytes."""
    if isnan(value):
        add(b, "nan", 3)
    elif isinf(value):
        add(b, "+Inf" if value > 0 else "-Inf", 4)
    elif value == floor(value) and fabs(value) < 1e16 and not (value == 0.0 and signbit(value)):
        add_integer(b, <int64_t>value)
        add(b, ".0", 2)
    else:
        b.size += format_shortest(value, tail(b))


cdef inline object label_of(list labels, int64_t row):
    cdef object label
    if row < 0 or row >= PyList_GET_SIZE(labels):
        raise IndexError(f"row {row} has no labels")
    label = <object>PyList_GET_ITEM(labels, row)
    checked_size(label)
    return label


cdef int write_column(Buffer *b, bytes sample, list labels, bytes extra,
                      const int64_t[::1] rows, const double[::1] values) except -1:
    cdef Py_ssize_t i, label_size
    cdef Py_ssize_t sample_size = PyBytes_GET_SIZE(sample)
    cdef Py_ssize_t extra_size = PyBytes_GET_SIZE(extra)
    cdef const char *sample_text = PyBytes_AS_STRING(sample)
    cdef const char *extra_text = PyBytes_AS_STRING(extra)
    if rows.shape[0] != values.shape[0]:
        raise ValueError("rows and values differ in length")
    for i in range(rows.shape[0]):
        label = label_of(labels, rows[i])
        label_size = PyBytes_GET_SIZE(label)
        reserve(b, sample_size + label_size + extra_size + NUMBER_ROOM + 4)
        add(b, sample_text, sample_size)
        add(b, "{", 1)
        if label_size:
            add(b, PyBytes_AS_STRING(label), label_size)
            add(b, extra_text, extra_size)
        elif extra_size:
            add(b, extra_text + 1, extra_size - 1)    # no row labels: drop the comma
        add(b, "} ", 2)
        add_number(b, values[i])
        add(b, "\n", 1)
    return 0


cdef int write_buckets(Buffer *b, bytes sample, list labels, bytes extra, list bounds,
                       const int64_t[::1] rows, const int64_t[:, ::1] counts,
                       const int64_t[::1] totals) except -1:
    cdef Py_ssize_t i, k, prefix_size, bound_size
    cdef Py_ssize_t n_bounds = len(bounds)
    cdef Py_ssize_t start
    cdef char *prefix
    if counts.shape[0] != rows.shape[0] or totals.shape[0] != rows.shape[0]:
        raise ValueError("rows, counts and totals differ in length")
    if rows.shape[0] and counts.shape[1] != n_bounds:
        raise ValueError("counts and bounds differ in width")
    for bound in bounds:
        checked_size(bound)
    for i in range(rows.shape[0]):
        label = label_of(labels, rows[i])
        # Each line starts with the row's "sample{labels extra,": written once, then
        # copied from where it was written.
        start = b.size
        put_bytes(b, sample)
        put(b, "{", 1)
        if PyBytes_GET_SIZE(label):
            put_bytes(b, label)
            put_bytes(b, extra)
        elif PyBytes_GET_SIZE(extra):
            put(b, PyBytes_AS_STRING(extra) + 1, PyBytes_GET_SIZE(extra) - 1)
        if b.size - start > PyBytes_GET_SIZE(sample) + 1:
            put(b, ",", 1)
        prefix_size = b.size - start
        for k in range(n_bounds + 1):
            if k:
                reserve(b, prefix_size)
                prefix = bytes_text(b.data) + start
                memcpy(tail(b), prefix, prefix_size)
                b.size += prefix_size
                start = b.size - prefix_size
            if k < n_bounds:
                bound = <object>PyList_GET_ITEM(bounds, k)
                bound_size = PyBytes_GET_SIZE(bound)
                reserve(b, bound_size + NUMBER_ROOM + 8)
                add(b, PyBytes_AS_STRING(bound), bound_size)
                add(b, "} ", 2)
                add_integer(b, counts[i, k])
            else:
                reserve(b, 11 + NUMBER_ROOM + 8)
                add(b, 'le="+Inf"} ', 11)
                add_integer(b, totals[i])
            add(b, ".0\n", 3)
    return 0


cdef class Writer:
    """Collects an exposition in one growing ``bytes`` object (see the pure twin)."""

    cdef Buffer _buffer

    def __cinit__(self):
        self._buffer.data = NULL
        self._buffer.size = 0
        self._buffer.cap = 0
        self._buffer.handed_out = False

    def __dealloc__(self):
        Py_XDECREF(self._buffer.data)
        self._buffer.data = NULL

    def text(self, bytes data not None):
        put_bytes(&self._buffer, data)

    def column(self, bytes sample not None, list labels not None, bytes extra not None,
               const int64_t[::1] rows not None, const double[::1] values not None):
        write_column(&self._buffer, sample, labels, extra, rows, values)

    def buckets(self, bytes sample not None, list labels not None, bytes extra not None,
                list bounds not None, const int64_t[::1] rows not None,
                const int64_t[:, ::1] counts not None,
                const int64_t[::1] totals not None):
        write_buckets(&self._buffer, sample, labels, extra, bounds, rows, counts, totals)

    def getvalue(self):
        """Everything written so far, without copying it. Writing on afterwards copies
        the bytes into a fresh buffer, so what was returned never changes."""
        cdef Buffer *b = &self._buffer
        if b.data == NULL:
            return b""
        if not b.handed_out and b.cap != b.size:
            try:
                _PyBytes_Resize(&b.data, b.size)
            except MemoryError:
                b.size = b.cap = 0
                raise
            b.cap = b.size
        b.handed_out = True
        return <object>b.data


def column_lines(bytes sample not None, list labels not None, bytes extra not None,
                 const int64_t[::1] rows not None, const double[::1] values not None):
    """``sample{labels[row]extra} value`` for every row."""
    writer = Writer()
    writer.column(sample, labels, extra, rows, values)
    return writer.getvalue()


def bucket_lines(bytes sample not None, list labels not None, bytes extra not None,
                 list bounds not None, const int64_t[::1] rows not None,
                 const int64_t[:, ::1] counts not None,
                 const int64_t[::1] totals not None):
    """``sample{labels[row]extra,bound} count.0`` per row and bound, then the +Inf
    bucket with the row's total."""
    writer = Writer()
    writer.buckets(sample, labels, extra, bounds, rows, counts, totals)
    return writer.getvalue()


def shortest_repr(double value):
    """``repr(value)`` for a finite float, by the native formatter (for tests)."""
    cdef char out[NUMBER_ROOM]
    if isnan(value) or isinf(value):
        raise ValueError("finite values only")
    return PyBytes_FromStringAndSize(out, format_shortest(value, out))


def _is_compiled():
    return True
