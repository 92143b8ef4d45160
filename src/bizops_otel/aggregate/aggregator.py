"""Pick the native aggregator, span hooks and export kernels, or their pure-Python twins.

``BIZOPS_OTEL_NO_EXTENSIONS=1`` forces the pure twin. Type checkers always see the pure
one, which defines the contract.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from . import _hooks, _pure
from .export import _digest, _lines

NO_EXTENSIONS = os.environ.get("BIZOPS_OTEL_NO_EXTENSIONS", "").strip().lower() in {
    "1", "true", "yes", "on",
}

if TYPE_CHECKING:
    from ._hooks import SpanHooks
    from ._pure import Aggregator
    from .export import _digest as digest
    from .export import _lines as lines
    NATIVE = False
else:
    Aggregator = _pure.Aggregator
    SpanHooks = _hooks.SpanHooks
    lines = _lines
    digest = _digest
    NATIVE = False
    if not NO_EXTENSIONS:
        try:
            from . import _native_digest as digest
            from . import _native_lines as lines
            from ._native import Aggregator
            from ._native_hooks import SpanHooks
        except ImportError:
            Aggregator = _pure.Aggregator
            SpanHooks = _hooks.SpanHooks
            lines = _lines
            digest = _digest
        else:
            NATIVE = True

__all__ = ["NATIVE", "Aggregator", "SpanHooks", "digest", "lines"]
