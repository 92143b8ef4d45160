# cython: language_level=3, boundscheck=False, wraparound=False
"""Native twin of ``bizops_otel/span/_hooks_py.py``: the span processor's per-span hooks.

Same class, same behaviour, same fallbacks; the pure module is the readable reference.
The speed comes from reading span fields by attribute access and the span contexts'
tuples with the C API, with no Python frame per access. Never through ``span.__dict__``:
on CPython 3.11+ asking for it turns the object's inline attribute values into a real
dict, and from then on every attribute access of the SDK's own code on that span takes
the slower path.
"""

from cpython.contextvars cimport get_value as context_var_get
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_IsValid
from cpython.dict cimport PyDict_GetItemWithError
from cpython.ref cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.unicode cimport PyUnicode_Find


cdef extern from "Python.h":
    Py_ssize_t PyUnicode_FindChar(object string, Py_UCS4 ch, Py_ssize_t start,
                                  Py_ssize_t end, int direction) except -2
    bint PyUnicode_IS_ASCII(object string)

import inspect
import sys

import opentelemetry.context as otel_context
from opentelemetry.context import get_current
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, StatusCode

from bizops_otel import drops
from bizops_otel.span._hooks_py import LIVE_SPAN_LIMIT, public_fields
from bizops_otel.attributes import (
    HTTP_ROUTE,
    HTTP_TARGET,
    HTTP_URL,
    PAGE_GROUP,
    URL_FULL,
    URL_PATH,
    URL_QUERY,
)
from bizops_otel.span import context as business
from bizops_otel.span.operations import KINDS
from bizops_otel.span.enrich import (
    MAX_QUERY_LENGTH,
    MAX_URL_LENGTH,
    path_of,
    route_of,
    wsgi_text,
)

include "../_attribute_scan.pxi"

cdef object ERROR = StatusCode.ERROR
cdef tuple OPERATION_KINDS = KINDS
cdef Py_ssize_t LIMIT = LIVE_SPAN_LIMIT
cdef str S_HTTP_ROUTE = HTTP_ROUTE
cdef str S_HTTP_TARGET = HTTP_TARGET
cdef str S_PAGE_GROUP = PAGE_GROUP
cdef str S_URL_QUERY = URL_QUERY
cdef str S_URL_PATH = URL_PATH
cdef str S_URL_FULL = URL_FULL
cdef str S_HTTP_URL = HTTP_URL
cdef object S_CONTEXT_KEY = business.CONTEXT_KEY
cdef object AROUND = business.AROUND
cdef Py_ssize_t QUERY_LIMIT = MAX_QUERY_LENGTH
cdef Py_ssize_t URL_LIMIT = MAX_URL_LENGTH
cdef str UTM = "utm_"

# SpanContext is a tuple (trace_id, span_id, is_remote, ...) whose properties index it;
# read the items directly when this SDK still lays it out that way.
_probe = SpanContext(1, 2, True)
cdef bint CONTEXT_IS_TUPLE = (isinstance(_probe, tuple) and _probe[1] == 2
                              and _probe[2] is True)
del _probe


cdef object SPAN_CONTEXT = SpanContext

# The Status a span carries until set_status: the default of ReadableSpan's ``status``.
_default = inspect.signature(ReadableSpan.__init__).parameters.get("status")
cdef object UNSET_STATUS = (_default.default if _default is not None
                            and getattr(_default.default, "status_code", None) is StatusCode.UNSET
                            else None)
del _default


cdef inline object span_id_of(object context):
    if CONTEXT_IS_TUPLE and type(context) is SPAN_CONTEXT:
        return <object>PyTuple_GET_ITEM(context, 1)
    return context.span_id


cdef inline bint is_remote(object context):
    if CONTEXT_IS_TUPLE and type(context) is SPAN_CONTEXT:
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


cdef inline bint same_span(object started, object context, object span_id):
    """Whether ``started``, registered at on_start, is the span that ends with
    ``context``: the SDK hands on_end a read-only copy that shares the span's context."""
    cdef object theirs = getattr(started, "_context", None)
    if theirs is context:
        return True
    if theirs is None:
        return started.get_span_context().span_id == span_id
    return False


ctypedef int (*RecordSpan)(object, object, object, object, object, object) except -1
cdef const char *RECORD_SPAN_NAME = b"bizops_otel.aggregate.record_span"


ctypedef int (*RecordOperations)(object, object, object, object, bint) except -1
cdef const char *RECORD_OPERATIONS_NAME = b"bizops_otel.aggregate.record_operations"


cdef RecordOperations native_record_operations(object record, object owner):
    """The native aggregator's record_operations as a C function, when ``record`` is the
    bound record_operations of ``owner``, whose record_span the hooks call natively."""
    if (owner is None or getattr(record, "__self__", None) is not owner
            or getattr(record, "__name__", None) != "record_operations"):
        return NULL
    module = sys.modules.get(type(owner).__module__)
    capsule = getattr(module, "RECORD_OPERATIONS_CAPSULE", None)
    if capsule is None or not PyCapsule_IsValid(capsule, RECORD_OPERATIONS_NAME):
        return NULL
    return <RecordOperations>PyCapsule_GetPointer(capsule, RECORD_OPERATIONS_NAME)


cdef RecordSpan native_record_span(object record):
    """The native aggregator's record_span as a C function, when ``record`` is the bound
    record_span of an Aggregator of exactly the native type; else NULL."""
    owner = getattr(record, "__self__", None)
    if owner is None or getattr(record, "__name__", None) != "record_span":
        return NULL
    module = sys.modules.get(type(owner).__module__)
    capsule = getattr(module, "RECORD_SPAN_CAPSULE", None)
    if (module is None or type(owner) is not getattr(module, "Aggregator", None)
            or capsule is None or not PyCapsule_IsValid(capsule, RECORD_SPAN_NAME)):
        return NULL
    return <RecordSpan>PyCapsule_GetPointer(capsule, RECORD_SPAN_NAME)


cdef Py_ssize_t separator_at(str query, Py_ssize_t start, Py_ssize_t stop):
    """Where the query parameter starting at ``start`` ends: the next ``&`` or ``;``
    before ``stop``, else ``stop``."""
    cdef Py_ssize_t amp = PyUnicode_FindChar(query, 0x26, start, stop, 1)
    cdef Py_ssize_t semi = PyUnicode_FindChar(query, 0x3B, start, stop, 1)
    if amp < 0:
        amp = stop
    if semi < 0:
        semi = stop
    return amp if amp < semi else semi


cdef tuple utm_pairs(str text, Py_ssize_t start, Py_ssize_t stop):
    """``enrich.utm_parameters(text[start:stop])`` without a Python frame or a copy of the
    query: its raw ``utm_…`` parameters within the first MAX_QUERY_LENGTH characters,
    found by searching for ``utm_`` rather than splitting every parameter out."""
    cdef Py_ssize_t at = start, end
    cdef Py_UCS4 before
    cdef list found = None
    if stop - start > QUERY_LIMIT:
        stop = start + QUERY_LIMIT
    while True:
        at = PyUnicode_Find(text, UTM, at, stop, 1)
        if at < 0:
            break
        before = 0x26  # an if, not a conditional expression: Cython 3.0.0 refuses that one
        if at > start:
            before = text[at - 1]
        if before != 0x26 and before != 0x3B:  # inside another parameter
            at += 4
            continue
        end = separator_at(text, at, stop)
        if found is None:
            found = []
        found.append(text[at:end])
        at = end
    return () if found is None else tuple(found)


# Where a query is looked for after url.query, in order of preference (see query_bounds).
cdef tuple QUERY_SOURCES = (S_HTTP_TARGET, S_URL_FULL, S_HTTP_URL)
cdef KeyScan QUERY_SCAN
key_scan_init(&QUERY_SCAN, QUERY_SOURCES)
# The same with url.query, for the attribute dicts small enough to walk once.
cdef KeyScan ANY_QUERY_SCAN
key_scan_init(&ANY_QUERY_SCAN, (S_URL_QUERY,) + QUERY_SOURCES)
# What on_end reads of a request span's attributes for its page group (see _end).
cdef tuple GROUP_SOURCES = (S_PAGE_GROUP, S_HTTP_ROUTE)
cdef KeyScan GROUP_SCAN
key_scan_init(&GROUP_SCAN, GROUP_SOURCES)


#: What _route_if_no_group answers for a span that has a page group.
cdef object HAS_GROUP = object()


cdef inline object found_or_none(PyObject *found):
    return None if found == NULL else <object>found


cdef object query_bounds(object attributes, Py_ssize_t *start, Py_ssize_t *stop):
    """``enrich.query_of`` as bounds within the attribute's own string, with no copy: the
    string holding the query (url.query, else http.target after ``?``, else the full URL
    after ``?`` and before ``#``, each attribute cut to MAX_URL_LENGTH), or None."""
    cdef PyObject *found[4]
    cdef object query
    if type(attributes) is dict and PyDict_GET_SIZE(attributes) <= ANY_QUERY_SCAN.n:
        # A dict this small is walked once for all four sources (a route-only span's).
        if key_scan(&ANY_QUERY_SCAN, attributes, found) == 0:
            return None  # none of the four
        query = found_or_none(found[0])
        if isinstance(query, str):
            start[0] = 0
            stop[0] = min(len(<str>query), URL_LIMIT)
            return query
        return query_elsewhere(found_or_none(found[1]), found_or_none(found[2]),
                               found_or_none(found[3]), start, stop)
    query = lookup(attributes, S_URL_QUERY)
    # The newer semantic conventions' url.query, when present, settles it in one lookup;
    # without it, the other three are looked for together.
    if isinstance(query, str):
        start[0] = 0
        stop[0] = min(len(<str>query), URL_LIMIT)
        return query
    if type(attributes) is not dict:
        return query_elsewhere(lookup(attributes, S_HTTP_TARGET),
                               lookup(attributes, S_URL_FULL),
                               lookup(attributes, S_HTTP_URL), start, stop)
    key_scan(&QUERY_SCAN, attributes, found)
    return query_elsewhere(found_or_none(found[0]), found_or_none(found[1]),
                           found_or_none(found[2]), start, stop)


cdef object query_elsewhere(object target, object full_url, object http_url,
                            Py_ssize_t *start, Py_ssize_t *stop):
    """The rest of ``query_bounds``: the query after http.target's ``?``, else after the
    full URL's."""
    cdef object text = target
    cdef Py_ssize_t mark = -1
    if isinstance(text, str):
        stop[0] = min(len(<str>text), URL_LIMIT)
        mark = PyUnicode_FindChar(text, 0x3F, 0, stop[0], 1)
        if mark >= 0:
            start[0] = mark + 1
            return text
    # The ASGI instrumentation keeps the query in the full URL only.
    text = full_url
    if text is None:
        text = http_url
    if not isinstance(text, str):
        return None
    stop[0] = len(<str>text)
    if stop[0] > URL_LIMIT:
        stop[0] = URL_LIMIT
    mark = PyUnicode_FindChar(text, 0x3F, 0, stop[0], 1)
    if mark < 0:
        return None
    start[0] = mark + 1
    mark = PyUnicode_FindChar(text, 0x23, start[0], stop[0], 1)
    if mark >= 0:
        stop[0] = mark
    return text


cdef object rule_path(object attributes):
    """``enrich.path_of`` for the page-group rules: url.path, else http.target before
    ``?``, each cut to MAX_URL_LENGTH, as WSGI text decoded (``wsgi_text``); the rarer
    full-URL case, and non-ASCII paths, through the pure functions themselves."""
    cdef object text = lookup(attributes, S_URL_PATH)
    cdef Py_ssize_t mark
    if not isinstance(text, str):
        text = lookup(attributes, S_HTTP_TARGET)
        if not isinstance(text, str):
            text = lookup(attributes, S_URL_FULL)
            return path_of(None, None,
                           lookup(attributes, S_HTTP_URL) if text is None else text)
        mark = PyUnicode_FindChar(text, 0x3F, 0, min(len(<str>text), URL_LIMIT), 1)
        if mark >= 0:
            text = (<str>text)[:mark]
    if len(<str>text) > URL_LIMIT:
        text = (<str>text)[:URL_LIMIT]
    if PyUnicode_IS_ASCII(text):
        return text
    return wsgi_text(text)


def rule_inputs(attributes):
    """The path the native hooks give the page-group rules: for the tests that hold it to
    ``enrich.path_of``."""
    return rule_path(attributes)


def utm_parameters(query):
    """The native ``utm_pairs``, for the tests that hold it to the pure function."""
    return utm_pairs(query, 0, len(query))


def campaign_query(attributes):
    """The (text, start, stop) bounds of the native query lookup, or None: for the tests
    that hold it to ``enrich.query_of``."""
    cdef Py_ssize_t start, stop
    text = query_bounds(attributes, &start, &stop)
    return None if text is None else (text, start, stop)


def _is_compiled():
    return True


cdef class SpanHooks:
    """on_start/on_end for BizOpsSpanProcessor (native implementation)."""

    implementation = "native"

    cdef public bint active
    cdef object _record
    cdef object _owner
    cdef RecordSpan _record_c
    cdef dict _live
    cdef tuple _kinds
    cdef bint _local_roots
    cdef object _enricher
    cdef bint _always
    cdef int _page_group_at
    cdef dict _fallbacks
    cdef dict _route_fallbacks
    cdef dict _campaigns
    cdef bint _rules_only
    cdef object _rules
    cdef dict _groups
    cdef object _operations          # the operation matcher, or None: none configured
    cdef tuple _operation_caches
    cdef object _record_operations
    cdef RecordOperations _record_operations_c

    def __init__(self, record, dict live not None, tuple kinds not None, bint local_roots,
                 enricher, operations=None, record_operations=None):
        self.active = True
        # Configured operations (objectives): None when there are none, so that a service
        # without them pays one pointer test per request span.
        self._operations = operations if record_operations is not None else None
        self._operation_caches = operations.caches if self._operations is not None else None
        self._record_operations = record_operations
        self._record = record
        self._record_c = native_record_span(record)
        self._owner = record.__self__ if self._record_c != NULL else None
        self._record_operations_c = native_record_operations(record_operations, self._owner)
        self._live = live
        self._kinds = kinds
        self._local_roots = local_roots
        self._enricher = enricher
        self._always = enricher.always
        self._page_group_at = enricher.page_group_at
        self._fallbacks = enricher.fallbacks
        self._route_fallbacks = enricher.route_fallbacks
        self._campaigns = enricher.campaigns
        self._rules_only = getattr(enricher, "rules_only", False)
        self._rules = getattr(enricher, "rules", None)
        self._groups = getattr(self._rules, "cache", None) if self._rules_only else None
        if self._groups is None:
            self._rules_only = False

    @property
    def records_directly(self):
        """Whether request spans reach the native aggregator as a C call."""
        return self._record_c != NULL

    @property
    def records_operations_directly(self):
        """Whether configured operations reach the native aggregator as a C call."""
        return self._record_operations_c != NULL

    cdef inline bint _is_request_kind(self, object kind) noexcept:
        cdef Py_ssize_t i
        for i in range(PyTuple_GET_SIZE(self._kinds)):  # a tuple, set in __init__
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
        cdef bint local_parent, request_kind
        cdef object parent, kind, span_id, attributes, request, context, carried, text
        cdef object entry
        cdef Py_ssize_t start, stop
        try:
            kind = span._kind
            span_id = span_id_of(span._context)
            attributes = span._attributes._dict
            # A request's parent does not matter: read it only for other kinds.
            request_kind = self._is_request_kind(kind)
            parent = None if request_kind else span._parent
            entry = None
        except AttributeError:
            kind, parent, span_id, attributes = public_fields(span)
            request_kind = self._is_request_kind(kind)
            entry = span
        live = self._live
        if PyDict_GET_SIZE(live) >= LIMIT:  # spans that never end must not leak here
            drops.count(drops.REQUEST_REGISTRY_FULL, f"over {LIMIT} live spans")
        elif request_kind:
            # on_end takes the attribute dict from here (context.RequestEntry): two
            # attribute reads fewer than reading it from the span on_end is given.
            live[span_id] = (span, span_id, attributes) if entry is None else entry
        else:
            local_parent = parent is not None and not is_remote(parent)
            if self._local_roots and not local_parent:
                live[span_id] = (span, span_id, attributes) if entry is None else entry
            elif local_parent:
                request = lookup(live, span_id_of(parent))
                if request is not None:
                    live[span_id] = request
        context = parent_context if parent_context is not None else current_context()
        carried = lookup(context, S_CONTEXT_KEY)
        if carried is None:
            carried = context_var_get(AROUND)
        if not carried and not self._always:
            text = query_bounds(attributes, &start, &stop)
            if text is None or PyUnicode_Find(text, UTM, start, stop, 1) < 0:
                return 0
            # A landing with nothing else to write: its campaign, without the general
            # enrichment path.
            return self._write_campaign(span, attributes, <str>text, start, stop)
        if not carried and self._rules_only:
            # Rules and a campaign, the general path's work for a span carrying no
            # business context, without its Python frames.
            text = query_bounds(attributes, &start, &stop)
            if text is not None and PyUnicode_Find(text, UTM, start, stop, 1) >= 0:
                self._write_campaign(span, attributes, <str>text, start, stop)
            if S_PAGE_GROUP not in attributes:
                self._write_group(span, attributes)
            return 0
        self._enricher.enrich(span, parent_context, attributes, carried)
        return 0

    cdef int _write_group(self, object span, object attributes) except -1:
        """The page group the rules give the span's route, path and name, if any."""
        cdef object route = lookup(attributes, S_HTTP_ROUTE)
        cdef PyObject *found
        cdef object group
        if not isinstance(route, str):
            route = None
        key = (route, rule_path(attributes), span._name)
        found = PyDict_GetItemWithError(self._groups, key)
        if found != NULL:
            group = <object>found
        else:
            group = self._rules.match(*key)
        if group is not None:
            span.set_attribute(S_PAGE_GROUP, group)
        return 0

    cdef int _write_campaign(self, object span, object attributes, str text,
                             Py_ssize_t start, Py_ssize_t stop) except -1:
        """The campaign attributes a query names, where the span does not carry them."""
        cdef tuple parameters = utm_pairs(text, start, stop)
        cdef object pairs = lookup(self._campaigns, parameters)
        if pairs is None:
            pairs = tuple(self._enricher.campaign_attributes(parameters))
        # One set_attribute per key: for the two or three keys of a campaign it costs
        # less than set_attributes, whose mapping goes through the ABC checks of the
        # SDK's attribute cleaning (measured, benchmarks/bench_span_path.py).
        for pair in <tuple>pairs:
            if (<tuple>pair)[0] not in attributes:
                span.set_attribute((<tuple>pair)[0], (<tuple>pair)[1])
        return 0

    def on_end(self, span):
        if not self.active:
            return
        try:
            self._end(span)
        except Exception as error:
            drops.count(drops.PROCESSOR_ERROR, f"on_end: {error!r}")

    cdef int _end(self, object span) except -1:
        cdef object context, span_id, request, kind, parent, attributes, start, end, route
        cdef object fallback, status, registered
        cdef bint failed
        try:
            context = span._context
            span_id = span_id_of(context)
        except AttributeError:
            return self._end_public(span)
        # on_start registered a request span under its own id, and a span under a request
        # with the request: what is registered says whether this span is a request, with
        # no need to read its kind and parent again.
        request = self._live.pop(span_id, None)
        attributes = None
        if request is None:  # not registered: the registry was full, or a span of no request
            try:
                kind = span._kind
                parent = span._parent
            except AttributeError:
                return self._end_public(span)
            if not self._is_request_kind(kind) and (
                    not self._local_roots or (parent is not None and not is_remote(parent))):
                return 0
        elif type(request) is tuple:  # a request's entry, its own or its request's
            registered = <object>PyTuple_GET_ITEM(request, 1)
            if registered is not span_id and registered != span_id:
                return 0  # a span inside a request
            # The span's own attribute dict, as on_start found it: the SDK hands on_end a
            # copy of the span that shares it.
            attributes = <object>PyTuple_GET_ITEM(request, 2)
        elif request is not span and not same_span(request, context, span_id):
            return 0  # a span inside a request
        try:
            if attributes is None:
                attributes = span._attributes._dict
            start = span._start_time
            end = span._end_time
            status = span._status
            # Spans never given a status share the SDK's default one: no need to look in.
            failed = status is not UNSET_STATUS and status._status_code is ERROR
        except AttributeError:
            return self._end_public(span)
        fallback = None
        if self._page_group_at >= 0:
            route = self._route_if_no_group(attributes)
            if route is not HAS_GROUP:
                if isinstance(route, str):
                    fallback = lookup(self._route_fallbacks, route)
                else:
                    route = None  # as enrich.route_of: no other value names a route
                if fallback is None:
                    fallback = self._name_fallback(attributes, route, span._name)
        if self._record_c != NULL:
            self._record_c(self._owner, attributes, start, end, failed, fallback)
        else:
            self._record(attributes, start, end, failed, fallback)
        if self._operations is not None:
            self._count_operations(span._kind, span._name, attributes, fallback, start, end,
                                   failed)
        return 0

    cdef object _route_if_no_group(self, object attributes):
        """HAS_GROUP when the span has a page group, else its ``http.route`` (or None)."""
        cdef PyObject *found[2]
        if type(attributes) is dict:
            key_scan(&GROUP_SCAN, attributes, found)
            return HAS_GROUP if found[0] != NULL else found_or_none(found[1])
        if S_PAGE_GROUP in attributes:
            return HAS_GROUP
        return lookup(attributes, S_HTTP_ROUTE)

    cdef int _count_operations(self, object kind, object name, object attributes,
                               object fallback, object start, object end,
                               bint failed) except -1:
        """Count the span in the operations it belongs to, if any (as the pure twin)."""
        cdef object route = lookup(attributes, S_HTTP_ROUTE)
        cdef object entry, matched
        cdef Py_ssize_t code = 0
        if not isinstance(route, str):
            route = None
        while code < len(OPERATION_KINDS) and <object>PyTuple_GET_ITEM(OPERATION_KINDS, code) is not kind:
            code += 1  # by identity: SpanKind's hash is Python code
        entry = lookup(<dict>PyTuple_GET_ITEM(self._operation_caches, code), (name, route))
        if entry is None:
            entry = self._operations.entry(code, name, route)
        if (<tuple>entry)[1]:
            matched = self._operations.resolve(entry, attributes, fallback)
        else:
            matched = (<tuple>entry)[0]
        if not matched:
            return 0
        if self._record_operations_c != NULL:
            return self._record_operations_c(self._owner, matched, start, end, failed)
        self._record_operations(matched, start, end, failed)
        return 0

    cdef object _name_fallback(self, object attributes, object route, object name):
        cdef object fallback = lookup(self._fallbacks, (route, name))
        if fallback is None:
            fallback = self._enricher.fallback(attributes, name)
        return fallback

    cdef int _end_public(self, object span) except -1:
        """on_end through the public API, for spans not laid out as this SDK's are."""
        cdef object kind, parent, span_id, attributes, fallback
        cdef bint failed
        kind, parent, span_id, attributes = public_fields(span)
        self._live.pop(span_id, None)
        if not self._is_request_kind(kind) and (
                not self._local_roots or (parent is not None and not is_remote(parent))):
            return 0
        fallback = None
        if self._page_group_at >= 0 and S_PAGE_GROUP not in attributes:
            fallback = self._name_fallback(attributes, route_of(attributes), span.name)
        failed = span.status.status_code is ERROR
        self._record(attributes, span.start_time, span.end_time, failed, fallback)
        if self._operations is not None:
            self._count_operations(kind, span.name, attributes, fallback, span.start_time,
                                   span.end_time, failed)
        return 0
