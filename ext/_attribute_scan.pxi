# Finding several keys of a span's attribute dict in one pass over its entries.
# Included by ext/aggregate/_aggregator_c.pyx and ext/span/_hooks_c.pyx.
#
# The span path asks each attribute dict for a handful of keys (the KPIs, the session id,
# the dimensions; the query's and the page group's sources), and most of them are absent:
# a route-only span holds one attribute. Every absent key is a full dict lookup (about 100
# instructions), while a span's dict holds a few entries. Walking the entries once, and
# testing each key's cached hash against a 64-bit filter of the wanted keys' hashes, costs
# about 50 to 100 instructions an entry whatever the number of keys wanted. A dict with
# more entries than keys wanted is asked key by key instead (a walk costs per entry,
# lookups per key; measured with callgrind, benchmarks/bench_span_path.py), as is one
# holding a key that is not an exact str (whose hash and equality could run Python code).

from cpython.ref cimport PyObject
from libc.stdint cimport uint64_t
from cpython.unicode cimport PyUnicode_Compare

cdef extern from "Python.h":
    ctypedef Py_ssize_t Py_hash_t
    Py_hash_t PyObject_Hash(object o) except? -1
    bint PyDict_Next(object p, Py_ssize_t *ppos, PyObject **pkey, PyObject **pvalue) noexcept
    Py_ssize_t PyDict_GET_SIZE(object p) noexcept
    PyObject *scan_dict_lookup "PyDict_GetItemWithError"(PyObject *mapping,
                                                         PyObject *key) except? NULL
    # A str caches its hash here (-1 until computed); reading it skips a call.
    ctypedef struct PyASCIIObject:
        Py_hash_t hash

#: Keys one scan can look for.
DEF SCAN_KEYS = 32


cdef struct KeyScan:
    int n
    uint64_t filter                 # bit (hash & 63) set for each wanted key
    Py_hash_t hashes[SCAN_KEYS]
    PyObject *keys[SCAN_KEYS]       # borrowed: the owner keeps the key objects alive


cdef int key_scan_init(KeyScan *scan, tuple keys) except -1:
    """Prepare a scan for ``keys``, exact str all (the owner keeps the tuple alive)."""
    cdef Py_ssize_t i
    if len(keys) > SCAN_KEYS:
        raise ValueError(f"at most {SCAN_KEYS} keys can be scanned for, got {len(keys)}")
    scan.n = <int>len(keys)
    scan.filter = 0
    for i in range(len(keys)):
        key = keys[i]
        if type(key) is not str:
            raise TypeError(f"scan keys must be str, got {key!r}")
        scan.keys[i] = <PyObject *>key
        scan.hashes[i] = PyObject_Hash(key)
        scan.filter |= (<uint64_t>1) << (<uint64_t>scan.hashes[i] & 63)
    return 0


cdef int key_scan(const KeyScan *scan, object attributes, PyObject **found) except -1:
    """``found[i] = attributes.get(keys[i])`` for every wanted key, borrowed, NULL where
    absent; ``attributes`` must be an exact dict. Returns how many were found. Raises only
    what a lookup of a key that is not an exact str raises."""
    cdef Py_ssize_t pos = 0
    cdef Py_ssize_t entries = PyDict_GET_SIZE(attributes)
    cdef PyObject *key
    cdef PyObject *value
    cdef Py_hash_t h
    cdef int i, count = 0
    for i in range(scan.n):
        found[i] = NULL
    if entries > scan.n:
        return key_lookups(scan, attributes, found)
    # Nothing below runs Python code, so the dict yields exactly ``entries`` entries: the
    # walk stops at the last one instead of asking for one more.
    while entries > 0 and PyDict_Next(attributes, &pos, &key, &value):
        entries -= 1
        if type(<object>key) is not str:
            return key_lookups(scan, attributes, found)
        # An exact str in a dict has its hash cached (computed when it was inserted).
        h = (<PyASCIIObject *>key).hash
        if h == -1:
            h = PyObject_Hash(<object>key)
        if not (scan.filter >> (<uint64_t>h & 63)) & 1:
            continue
        for i in range(scan.n):
            if scan.hashes[i] == h and (
                    scan.keys[i] == key
                    or PyUnicode_Compare(<object>scan.keys[i], <object>key) == 0):
                found[i] = value  # no break: two wanted keys may be the same
                count += 1
    return count


cdef int key_lookups(const KeyScan *scan, object attributes, PyObject **found) except -1:
    cdef int i, count = 0
    for i in range(scan.n):
        found[i] = scan_dict_lookup(<PyObject *>attributes, scan.keys[i])
        if found[i] != NULL:
            count += 1
    return count
