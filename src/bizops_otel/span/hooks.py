"""The span processor's per-span hooks: the native twin (``ext/span/_hooks_c.pyx``) when it
is built, else the pure-Python one (``_hooks_py``), which type checkers always see."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._twins import load_twin
from . import _hooks_py

if TYPE_CHECKING:
    from ._hooks_py import SpanHooks

    NATIVE = False
else:
    _twin, NATIVE = load_twin(__package__, "_hooks_c", _hooks_py)
    SpanHooks = _twin.SpanHooks

__all__ = ["NATIVE", "SpanHooks"]
