"""bizops-otel: business observability on OpenTelemetry.

The public API, and nothing more.
"""

from __future__ import annotations

from . import attributes, drops, stats
from ._version import __version__
from .aggregate.aggregator import Aggregator
from .aggregate.funnel import BiggestDrop, FunnelStep, JourneyFunnel
from .aggregate.snapshot import ConversionCurve, Key, KeyStats, Objective, RawSums, Snapshot
from .config import BUILTIN_KPIS, Config, Journey, Kpi, Operation
from .implementation import NATIVE
from .install import BizOps, install, installed
from .settings import ConfigError, load_config
from .span.context import business_context, record_conversion, record_order, set_kpi
from .span.processor import BizOpsSpanProcessor
from .span.sampling import RecordUnsampled
from .stats import Correlation

__all__ = [
    "BUILTIN_KPIS",
    "NATIVE",
    "Aggregator",
    "BiggestDrop",
    "BizOps",
    "BizOpsSpanProcessor",
    "Config",
    "ConfigError",
    "ConversionCurve",
    "Correlation",
    "FunnelStep",
    "Journey",
    "JourneyFunnel",
    "Key",
    "KeyStats",
    "Kpi",
    "Objective",
    "Operation",
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
