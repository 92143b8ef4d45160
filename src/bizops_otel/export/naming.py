"""Prometheus names of the model's OTel names, per the OTel specification's translation:
dots become underscores, the unit becomes a suffix (``_seconds``), unit-1 gauges end in
``_ratio``. Every Prometheus writer (the collector and the direct exposition) uses these
rules, so both write the same series."""

from __future__ import annotations

import re

_UNIT_SUFFIX = {"s": "seconds", "s2": "seconds_squared", "1": "", "1/s": "per_second"}
_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def prometheus_name(name: str, unit: str, gauge: bool = False) -> str:
    """OTel name and unit to a Prometheus base name (without ``_total``)."""
    base = _INVALID.sub("_", name)
    suffix = _UNIT_SUFFIX.get(unit, "" if unit.startswith("{") else _INVALID.sub("_", unit))
    if unit == "1" and gauge and not base.endswith(("_rate", "_correlation")):
        suffix = "ratio"
    if suffix and not base.endswith("_" + suffix):
        base = f"{base}_{suffix}"
    return base


def label_name(key: str) -> str:
    return _INVALID.sub("_", key)
