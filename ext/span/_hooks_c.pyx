# cython: language_level=3, boundscheck=False, wraparound=False
"""Native twin of ``bizops_otel/span/_hooks_py.py``: the span processor's per-span hooks.

Same class, same behaviour, same fallbacks; the pure module is the readable reference.
The speed comes from reading span fields straight from the instance dict and the span
contexts' tuples with the C API, with no Python frame per access.
"""

from cpython.contextvars cimport get_value as context_var_get
from cpython.dict cimport PyDict_GetItemWithError
from cpython.ref cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM

import opentelemetry.context as otel_context
from opentelemetry.context import get_current
from opentelemetry.trace import SpanContext, StatusCode

from bizops_otel import drops
from bizops_otel.span._hooks_py import LIVE_SPAN_LIMIT, public_fields
from bizops_otel.attributes import (
    HTTP_ROUTE,
    HTTP_TARGET,
    HTTP_URL,
    PAGE_GROUP,
    URL_FULL,
    URL_QUERY,
)
from bizops_otel.span.context import AROUND, CONTEXT_KEY

cdef object ERROR = StatusCode.ERROR
cdef Py_ssize_t LIMIT = LIVE_SPAN_LIMIT
cdef str K_PARENT = "_parent"
cdef str K_KIND = "_kind"
cdef str K_CONTEXT = "_context"
cdef str K_ATTRIBUTES = "_attributes"
cdef str K_START = "_start_time"
cdef str K_END = "_end_time"
cdef str K_STATUS = "_status"
cdef str K_NAME = "_name"
cdef str S_HTTP_ROUTE = HTTP_ROUTE
cdef str S_HTTP_TARGET = HTTP_TARGET
cdef str S_PAGE_GROUP = PAGE_GROUP
cdef str S_URL_QUERY = URL_QUERY
cdef str S_URL_FULL = URL_FULL
cdef str S_HTTP_URL = HTTP_URL
cdef object S_CONTEXT_KEY = CONTEXT_KEY

# SpanContext is a tuple (trace_id, span_id, is_remote, ...) whose properties index it;
# read the items directly when this SDK still lays it out that way.
_probe = SpanContext(1, 2, True)
cdef bint CONTEXT_IS_TUPLE = (isinstance(_probe, tuple) and _probe[1] == 2
                              and _probe[2] is True)
del _probe


class _MissingField(Exception):
    pass


cdef inline object field(dict fields, str key):
    cdef PyObject *found = PyDict_GetItemWithError(fields, key)
    if found == NULL:
        raise _MissingField(key)
    return <object>found


cdef inline object span_id_of(object context):
    if CONTEXT_IS_TUPLE and type(context) is SpanContext:
        return <object>PyTuple_GET_ITEM(context, 1)
    return context.span_id


cdef inline bint is_remote(object context):
    if CONTEXT_IS_TUPLE and type(context) is SpanContext:
        return <object>PyTuple_GET_ITEM(context, 2) is True
    return bool(context.is_remote)


# The current OTel context lives in a ContextVar of the default runtime context. Reading
# it directly saves two Python frames per span; any other runtime context (set through
# OTEL_PYTHON_CONTEXT) goes through the public get_current().
_runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
cdef object CURRENT_CONTEXT_VAR = getattr(_runtime, "_current_context", None)
if type(CURRENT_CONTEXT_VAR).__name__ != "ContextVar":
    CURRENT_CONTEXT_VAR = None
del _runtime


cdef inline object current_context():
    if CURRENT_CONTEXT_VAR is not None:
        return context_var_get(CURRENT_CONTEXT_VAR)
    return get_current()


cdef inline object lookup(object mapping, object key):
    """``mapping.get(key)`` for dicts and dict subclasses, without a method call."""
    cdef PyObject *found
    if isinstance(mapping, dict):
        found = PyDict_GetItemWithError(mapping, key)
        return None if found == NULL else <object>found
    return mapping.get(key)


def _is_compiled():
    return True


cdef class SpanHooks:
    """on_start/on_end for BizOpsSpanProcessor (native implementation)."""

    implementation = "native"

    cdef public bint active
    cdef object _record
    cdef dict _live
    cdef tuple _kinds
    cdef bint _local_roots
    cdef object _enricher
    cdef bint _always
    cdef int _page_group_at
    cdef dict _fallbacks

    def __init__(self, record, dict live, tuple kinds, bint local_roots, enricher):
        self.active = True
        self._record = record
        self._live = live
        self._kinds = kinds
        self._local_roots = local_roots
        self._enricher = enricher
        self._always = enricher.always
        self._page_group_at = enricher.page_group_at
        self._fallbacks = enricher.fallbacks

    cdef inline bint _is_request_kind(self, object kind):
        cdef Py_ssize_t i
        for i in range(len(self._kinds)):
            if <object>PyTuple_GET_ITEM(self._kinds, i) is kind:
                return True
        return False

    def on_start(self, span, parent_context=None):
        if not self.active:
            return
        try:
            self._start(span, parent_context)
        except Exception as error:
            drops.count(drops.PROCESSOR_ERROR, f"on_start: {error!r}")

    cdef int _start(self, object span, object parent_context) except -1:
        cdef object fields = getattr(span, "__dict__", None)
        cdef bint local_parent
        cdef object parent, kind, span_id, attributes, request, context, carried, query
        try:
            if type(fields) is not dict:
                raise _MissingField("__dict__")
            parent = field(fields, K_PARENT)
            kind = field(fields, K_KIND)
            span_id = span_id_of(field(fields, K_CONTEXT))
            attributes = field(fields, K_ATTRIBUTES)._dict
        except (_MissingField, AttributeError):
            kind, parent, span_id, attributes = public_fields(span)
        local_parent = parent is not None and not is_remote(parent)
        live = self._live
        if len(live) >= LIMIT:  # spans that never end must not leak here
            drops.count(drops.REQUEST_REGISTRY_FULL, f"over {LIMIT} live spans")
        elif self._is_request_kind(kind) or (self._local_roots and not local_parent):
            live[span_id] = span
        elif local_parent:
            request = lookup(live, span_id_of(parent))
            if request is not None:
                live[span_id] = request
        context = parent_context if parent_context is not None else current_context()
        carried = lookup(context, S_CONTEXT_KEY)
        if carried is None:
            carried = context_var_get(AROUND)
        if not carried and not self._always:
            query = lookup(attributes, S_URL_QUERY)
            if query is None:
                query = lookup(attributes, S_HTTP_TARGET)
                if type(query) is not str or "?" not in <str>query:
                    # The ASGI instrumentation keeps the query in the full URL only.
                    query = lookup(attributes, S_URL_FULL)
                    if query is None:
                        query = lookup(attributes, S_HTTP_URL)
            if type(query) is not str or "utm_" not in <str>query:
                return 0
        self._enricher.enrich(span, parent_context, attributes, carried)
        return 0

    def on_end(self, span):
        if not self.active:
            return
        try:
            self._end(span)
        except Exception as error:
            drops.count(drops.PROCESSOR_ERROR, f"on_end: {error!r}")

    cdef int _end(self, object span) except -1:
        cdef object fields = getattr(span, "__dict__", None)
        cdef object kind, parent, span_id, attributes, start, end, name, fallback
        cdef bint failed
        try:
            if type(fields) is not dict:
                raise _MissingField("__dict__")
            kind = field(fields, K_KIND)
            parent = field(fields, K_PARENT)
            span_id = span_id_of(field(fields, K_CONTEXT))
            attributes = field(fields, K_ATTRIBUTES)._dict
            start = field(fields, K_START)
            end = field(fields, K_END)
            failed = field(fields, K_STATUS).status_code is ERROR
            name = field(fields, K_NAME)
        except (_MissingField, AttributeError):
            kind, parent, span_id, attributes = public_fields(span)
            start, end, name = span.start_time, span.end_time, span.name
            failed = span.status.status_code is ERROR
        if lookup(self._live, span_id) is not None:
            del self._live[span_id]
        if not self._is_request_kind(kind) and (
                not self._local_roots or (parent is not None and not is_remote(parent))):
            return 0
        fallback = None
        if self._page_group_at >= 0 and S_PAGE_GROUP not in attributes:
            fallback = lookup(self._fallbacks, (lookup(attributes, S_HTTP_ROUTE), name))
            if fallback is None:
                fallback = self._enricher.fallback(attributes, name)
        self._record(attributes, start, end, error=failed, fallback=fallback)
        return 0
