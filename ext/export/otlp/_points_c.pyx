# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Native twin of ``bizops_otel/export/otlp/_points_py.py``: the data points of whole
columns as OTLP protobuf bytes, the same bytes as the pure twin.

Each call measures its output first and fills one ``bytes`` object of exactly that size,
so a column of ten thousand points costs one allocation and no Python object per point.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.ref cimport PyObject
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy

cdef extern from "Python.h":
    # Borrowed-pointer forms: casting to ``object`` would take a reference each time.
    char *bytes_text "PyBytes_AS_STRING"(PyObject *data)
    Py_ssize_t bytes_size "PyBytes_GET_SIZE"(PyObject *data)
    int bytes_check "PyBytes_Check"(PyObject *data)

cdef enum:
    DATA_POINT = 0x0a       # field 1, length-delimited
    AS_DOUBLE = 0x21        # field 4, fixed64
    COUNT = 0x21            # field 4, fixed64
    SUM = 0x29              # field 5, fixed64
    BUCKET_COUNTS = 0x32    # field 6, length-delimited


cdef inline Py_ssize_t varint_size(uint64_t value) nogil:
    cdef Py_ssize_t size = 1
    while value > 0x7F:
        value >>= 7
        size += 1
    return size


cdef inline char *put_varint(char *out, uint64_t value) nogil:
    while value > 0x7F:
        out[0] = <char>((value & 0x7F) | 0x80)
        out += 1
        value >>= 7
    out[0] = <char>value
    return out + 1


cdef inline char *put_fixed64(char *out, uint64_t value) nogil:
    cdef int i
    for i in range(8):
        out[i] = <char>(value >> (8 * i))
    return out + 8


cdef inline char *put_double(char *out, double value) nogil:
    cdef uint64_t bits
    memcpy(&bits, &value, 8)
    return put_fixed64(out, bits)


cdef inline char *put(char *out, const char *data, Py_ssize_t size) nogil:
    memcpy(out, data, size)
    return out + size


cdef PyObject *row_attributes(list attributes, int64_t row) except NULL:
    if row < 0 or row >= PyList_GET_SIZE(attributes):
        raise IndexError(f"row {row} has no attributes")
    item = PyList_GET_ITEM(attributes, row)
    if not bytes_check(item):
        raise TypeError("attributes must be bytes")
    return item


cdef object allocate(list attributes, const int64_t[::1] rows, Py_ssize_t fixed):
    """A bytes object exactly as long as the points of ``rows``: each a ``data_points``
    field of ``fixed`` bytes plus its row's attributes."""
    cdef Py_ssize_t i, body, total = 0
    for i in range(rows.shape[0]):
        body = fixed + bytes_size(row_attributes(attributes, rows[i]))
        total += 1 + varint_size(body) + body
    return PyBytes_FromStringAndSize(NULL, total)


cdef inline char *open_point(char *out, PyObject *attrs, Py_ssize_t fixed, bytes head):
    """A point's field header and its ``head`` (start and time)."""
    out[0] = DATA_POINT
    out = put_varint(out + 1, fixed + bytes_size(attrs))
    return put(out, PyBytes_AS_STRING(head), PyBytes_GET_SIZE(head))


cdef inline char *close_point(char *out, PyObject *attrs, bytes extra):
    """A point's attributes: its row's, then the column's."""
    out = put(out, bytes_text(attrs), bytes_size(attrs))
    return put(out, PyBytes_AS_STRING(extra), PyBytes_GET_SIZE(extra))


def number_points(list attributes not None, bytes extra not None,
                  const int64_t[::1] rows not None, const double[::1] values not None,
                  bytes head not None):
    """A NumberDataPoint per row: ``head``, the value as a double, the attributes."""
    cdef Py_ssize_t n = rows.shape[0], i
    cdef Py_ssize_t fixed = PyBytes_GET_SIZE(head) + 9 + PyBytes_GET_SIZE(extra)
    cdef PyObject *attrs
    cdef char *out
    if values.shape[0] != n:
        raise ValueError("rows and values differ in length")
    result = allocate(attributes, rows, fixed)
    out = PyBytes_AS_STRING(result)
    for i in range(n):
        attrs = row_attributes(attributes, rows[i])
        out = open_point(out, attrs, fixed, head)
        out[0] = AS_DOUBLE
        out = put_double(out + 1, values[i])
        out = close_point(out, attrs, extra)
    return result


def histogram_points(list attributes not None, bytes extra not None,
                     const int64_t[::1] rows not None, const int64_t[:, ::1] below not None,
                     const int64_t[::1] totals not None, const double[::1] sums not None,
                     bytes head not None, bytes bounds not None):
    """A HistogramDataPoint per row from its cumulative counts ``below`` each bound and
    its total: OTLP wants the count of each bucket, the last one above every bound."""
    cdef Py_ssize_t n = rows.shape[0], i, k
    cdef Py_ssize_t buckets = below.shape[1] + 1
    cdef Py_ssize_t counts_size = 8 * buckets
    cdef Py_ssize_t fixed = (PyBytes_GET_SIZE(head) + 18 + 1 + varint_size(counts_size)
                             + counts_size + PyBytes_GET_SIZE(bounds) + PyBytes_GET_SIZE(extra))
    cdef int64_t previous
    cdef PyObject *attrs
    cdef char *out
    if below.shape[0] != n or totals.shape[0] != n or sums.shape[0] != n:
        raise ValueError("rows, counts, totals and sums differ in length")
    result = allocate(attributes, rows, fixed)
    out = PyBytes_AS_STRING(result)
    for i in range(n):
        attrs = row_attributes(attributes, rows[i])
        out = open_point(out, attrs, fixed, head)
        out[0] = COUNT
        out = put_fixed64(out + 1, <uint64_t>totals[i])
        out[0] = SUM
        out = put_double(out + 1, sums[i])
        out[0] = BUCKET_COUNTS
        out = put_varint(out + 1, counts_size)
        previous = 0
        for k in range(buckets - 1):
            out = put_fixed64(out, <uint64_t>(below[i, k] - previous))
            previous = below[i, k]
        out = put_fixed64(out, <uint64_t>(totals[i] - previous))
        out = put(out, PyBytes_AS_STRING(bounds), PyBytes_GET_SIZE(bounds))
        out = close_point(out, attrs, extra)
    return result


def _is_compiled():
    return True
