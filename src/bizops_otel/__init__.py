"""bizops-otel: business observability on OpenTelemetry.

The public API, and nothing more.
"""

from __future__ import annotations

from . import attributes, stats
from ._impl import NATIVE, Aggregator
from .config import BUILTIN_KPIS, Config, Kpi
from .snapshot import ConversionCurve, Key, KeyStats, RawSums, Snapshot
from .stats import Correlation

__version__ = "0.1.0"

__all__ = [
    "BUILTIN_KPIS",
    "NATIVE",
    "Aggregator",
    "Config",
    "ConversionCurve",
    "Correlation",
    "Key",
    "KeyStats",
    "Kpi",
    "RawSums",
    "Snapshot",
    "__version__",
    "attributes",
    "stats",
]
