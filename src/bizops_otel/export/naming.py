"""Prometheus names of the model's OTel names, by the OpenTelemetry specification's
translation, as the Collector's Prometheus exporter applies it:

- the name is split into words at every character Prometheus does not allow;
- the unit's word is appended unless the name has it already (``s`` → ``seconds``,
  ``1/s`` → ``per_second``; an annotation such as ``{request}`` adds nothing, nor does
  ``1``; a unit with no word, such as ``s2``, is kept as it is);
- a monotonic sum ends in ``_total``; a gauge of unit ``1`` ends in ``_ratio``.

The model gives no gauge the unit ``1`` (dimensionless gauges carry annotations such as
``{ratio}``), because the SDK's own PrometheusMetricReader leaves ``_ratio`` off where the
Collector adds it: so both translate every bizops name the same way, and the direct
exposition, the collector, a Collector and the SDK's reader all write one set of series.
"""

from __future__ import annotations

import re
from typing import Literal

Kind = Literal["counter", "updown", "gauge", "histogram"]

#: UCUM units to Prometheus words (the specification's table, the units used here and
#: their common neighbours).
_UNIT_WORDS = {
    "d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds",
    "us": "microseconds", "ns": "nanoseconds", "By": "bytes", "KiBy": "kibibytes",
    "MiBy": "mebibytes", "GiBy": "gibibytes", "KBy": "kilobytes", "MBy": "megabytes",
    "GBy": "gigabytes", "m": "meters", "V": "volts", "A": "amperes", "J": "joules",
    "W": "watts", "g": "grams", "Cel": "celsius", "Hz": "hertz", "%": "percent", "1": "",
}
_PER_UNIT_WORDS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week",
                   "mo": "month", "y": "year"}
_SEPARATORS = re.compile(r"[^a-zA-Z0-9:]+")
_INVALID_LABEL = re.compile(r"[^a-zA-Z0-9_]")


def _words(text: str) -> list[str]:
    return [word for word in _SEPARATORS.split(text) if word]


def prometheus_name(name: str, unit: str, kind: Kind) -> str:
    """The Prometheus metric name of an OTel metric: ``_total`` included for counters;
    a histogram's series add ``_bucket``, ``_sum`` and ``_count`` to it."""
    words = _words(name)
    main, _, per = (part.strip() for part in unit.partition("/"))
    if main and "{" not in main and "}" not in main:
        for word in _words(_UNIT_WORDS.get(main, main)):
            if word not in words:
                words.append(word)
    if per and "{" not in per and "}" not in per:
        per_word = "_".join(_words(_PER_UNIT_WORDS.get(per, per)))
        if per_word and per_word not in words:
            words += ["per", per_word]
    if kind == "counter":
        words = [*(word for word in words if word != "total"), "total"]
    elif kind == "gauge" and unit == "1":
        words = [*(word for word in words if word != "ratio"), "ratio"]
    return "_".join(words)


def label_name(key: str) -> str:
    return _INVALID_LABEL.sub("_", key)
