"""Attribute keys that bizops-otel reads and writes, and the sanitising of their values.

Keys in the ``bizops.`` namespace are ours. Sessions and feature flags use the
OpenTelemetry semantic-convention keys so that other tools understand them too.
"""

from __future__ import annotations

import math
import operator
from typing import Final

PAGE_GROUP: Final = "bizops.page_group"
CAMPAIGN_ID: Final = "bizops.campaign.id"
CAMPAIGN_SOURCE: Final = "bizops.campaign.source"
CAMPAIGN_MEDIUM: Final = "bizops.campaign.medium"
ORDER_VALUE: Final = "bizops.order.value"
ORDER_CURRENCY: Final = "bizops.order.currency"
ORDER_ITEMS: Final = "bizops.order.items"
CONVERSION: Final = "bizops.conversion"
SESSION_ID: Final = "session.id"
FEATURE_FLAG_KEY: Final = "feature_flag.key"
FEATURE_FLAG_VARIANT: Final = "feature_flag.result.variant"

# Semantic-convention keys set by HTTP instrumentations, read for enrichment. The Python
# instrumentations emit the old ``http.target`` unless OTEL_SEMCONV_STABILITY_OPT_IN=http.
HTTP_ROUTE: Final = "http.route"
URL_PATH: Final = "url.path"
URL_QUERY: Final = "url.query"
HTTP_TARGET: Final = "http.target"
#: The full URL: the stable conventions' ``url.full``, the old ones' ``http.url``. The ASGI
#: instrumentation puts only the path in ``http.target`` and the query only here.
URL_FULL: Final = "url.full"
HTTP_URL: Final = "http.url"
#: The request method, stable and old conventions: marks a span as an HTTP request.
HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_METHOD: Final = "http.method"

#: The page group of an HTTP request that no rule maps and no route names (a 404, a
#: framework that sets no ``http.route``): never its path, which the client chooses.
UNMATCHED: Final = "unmatched"

#: Attributes that business_context(), baggage and record_order() may write, by short name.
CONTEXT_NAMES: Final = {
    "page_group": PAGE_GROUP,
    "campaign": CAMPAIGN_ID,
    "campaign_source": CAMPAIGN_SOURCE,
    "campaign_medium": CAMPAIGN_MEDIUM,
    "session_id": SESSION_ID,
    "feature_flag": FEATURE_FLAG_KEY,
    "variant": FEATURE_FLAG_VARIANT,
}

#: Dimension value used when a span does not carry the dimension attribute at all.
MISSING: Final = ""

#: Longest dimension value kept, in characters. Longer values are cut.
MAX_VALUE_LENGTH: Final = 64

# Why a value may be refused. The index of a reason is part of the native/pure contract:
# both twins count drops in an array indexed by these positions.
DROP_REASONS: Final = (
    "latency_invalid",  # NaN, infinite or negative duration, or unreadable timestamps
    "kpi_type",  # a string, sequence or other non-number
    "kpi_bool",  # a bool where a number is wanted
    "kpi_nan",
    "kpi_infinite",
    "kpi_below_minimum",  # e.g. a negative order value
    "kpi_above_maximum",  # absurd magnitudes
    "kpi_not_binary",  # a binary KPI (conversion) that is not 0 or 1
    "kpi_unknown",  # record() named a KPI the Config does not know
    "dimension_arity",  # record() got the wrong number of dimension values
    "attributes_unreadable",  # the attribute mapping raised when read
    "out_of_memory",
    "session_invalid",  # a session.id that is not a non-empty string
)
DROP_INDEX: Final = {name: index for index, name in enumerate(DROP_REASONS)}


def sanitize_dimension(value: object, max_length: int = MAX_VALUE_LENGTH) -> str:
    """Turn any attribute value into a bounded, printable label value.

    Values may come from attackers (utm parameters, paths), so the work done is bounded by
    ``max_length`` whatever the input size: the value is cut first, then every character
    that is not printable (control characters, lone surrogates left by undecodable bytes)
    becomes ``_``. The result never contains a control character, which is what lets the
    overflow key use one as an unforgeable marker.
    """
    if value is None:
        return MISSING
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, bytes | bytearray):
        text = bytes(value[: max_length * 4]).decode("utf-8", "replace")
    else:
        try:
            text = str(value)
        except Exception:
            return "_"
    text = text[:max_length]
    if text.isprintable():  # lone surrogates are not printable, so they fall through
        return text
    return "".join(ch if ch.isprintable() else "_" for ch in text)


def classify_kpi(
    value: object, binary: bool, minimum: float, maximum: float
) -> tuple[float, int]:
    """Check one KPI attribute value.

    Returns ``(number, -1)`` for a valid value, or ``(nan, reason_index)`` for one to
    drop. Binary KPIs (conversion) accept ``True``/``False`` and the numbers 0 and 1;
    numeric KPIs refuse bools, because ``True`` posing as an order value of 1 would
    silently mix meanings.
    """
    if isinstance(value, bool):
        if binary:
            return (1.0 if value else 0.0), -1
        return math.nan, DROP_INDEX["kpi_bool"]
    try:
        number = (float(value) if isinstance(value, float | int)
                  else float(operator.index(value)))  # type: ignore[arg-type]  # numpy ints
    except OverflowError:
        return math.nan, huge_integer_reason(value, binary)
    except Exception:  # no number, or one whose conversion raises: never the span's fault
        return math.nan, DROP_INDEX["kpi_type"]
    return check_kpi_number(number, binary, minimum, maximum)


def huge_integer_reason(value: object, binary: bool) -> int:
    """The drop reason of an integer past every float: finite, so not ``kpi_infinite``,
    and outside any range a KPI can have."""
    if binary:
        return DROP_INDEX["kpi_not_binary"]
    try:
        negative = operator.index(value) < 0  # type: ignore[arg-type]
    except Exception:
        negative = False
    return DROP_INDEX["kpi_below_minimum" if negative else "kpi_above_maximum"]


def check_kpi_number(
    number: float, binary: bool, minimum: float, maximum: float
) -> tuple[float, int]:
    """Range checks shared by every way a KPI number arrives."""
    if math.isnan(number):
        return number, DROP_INDEX["kpi_nan"]
    if math.isinf(number):
        return number, DROP_INDEX["kpi_infinite"]
    if binary:
        if number == 0.0 or number == 1.0:
            return number, -1
        return number, DROP_INDEX["kpi_not_binary"]
    if number < minimum:
        return number, DROP_INDEX["kpi_below_minimum"]
    if number > maximum:
        return number, DROP_INDEX["kpi_above_maximum"]
    return number, -1
