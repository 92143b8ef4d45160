"""The span processor's per-span hooks: the native twin (``ext/span/_hooks_c.pyx``) when it
is built, else the pure-Python one (``_hooks_py``), which type checkers always see."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._flags import no_extensions

if TYPE_CHECKING:
    from ._hooks_py import SpanHooks

    NATIVE = False
else:
    try:
        if no_extensions():
            raise ImportError("BIZOPS_OTEL_NO_EXTENSIONS is set")
        from ._hooks_c import SpanHooks
    except ImportError:
        from ._hooks_py import SpanHooks

        NATIVE = False
    else:
        NATIVE = True

__all__ = ["NATIVE", "SpanHooks"]
