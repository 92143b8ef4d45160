"""The aggregator: the native twin (``ext/aggregate/_aggregator_c.pyx``) when it is built,
else the pure-Python one (``_aggregator_py``), which type checkers always see.

``BIZOPS_OTEL_NO_EXTENSIONS=1`` forces the pure twin. Each twin pair has a switch of its
own beside it, so a kernel that fails to load falls back alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._flags import no_extensions

if TYPE_CHECKING:
    from ._aggregator_py import Aggregator

    NATIVE = False
else:
    try:
        if no_extensions():
            raise ImportError("BIZOPS_OTEL_NO_EXTENSIONS is set")
        from ._aggregator_c import Aggregator
    except ImportError:
        from ._aggregator_py import Aggregator

        NATIVE = False
    else:
        NATIVE = True

__all__ = ["NATIVE", "Aggregator"]
