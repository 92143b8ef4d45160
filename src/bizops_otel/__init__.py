"""bizops-otel: business observability on OpenTelemetry.

The public API, and nothing more.
"""

from __future__ import annotations

from . import attributes, drops, stats
from ._impl import NATIVE, Aggregator
from ._version import __version__
from .config import BUILTIN_KPIS, Config, Kpi
from .context import business_context, record_conversion, record_order, set_kpi
from .install import BizOps, install, installed
from .processor import BizOpsSpanProcessor
from .sampling import RecordUnsampled
from .settings import ConfigError, load_config
from .snapshot import ConversionCurve, Key, KeyStats, RawSums, Snapshot
from .stats import Correlation

__all__ = [
    "BUILTIN_KPIS",
    "NATIVE",
    "Aggregator",
    "BizOps",
    "BizOpsSpanProcessor",
    "Config",
    "ConfigError",
    "ConversionCurve",
    "Correlation",
    "Key",
    "KeyStats",
    "Kpi",
    "RawSums",
    "RecordUnsampled",
    "Snapshot",
    "__version__",
    "attributes",
    "business_context",
    "drops",
    "install",
    "installed",
    "load_config",
    "record_conversion",
    "record_order",
    "set_kpi",
    "stats",
]
