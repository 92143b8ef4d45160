"""The aggregator: the native twin (``ext/aggregate/_aggregator_c.pyx``) when it is built,
else the pure-Python one (``_aggregator_py``), which type checkers always see."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._twins import load_twin
from . import _aggregator_py

if TYPE_CHECKING:
    from ._aggregator_py import Aggregator

    NATIVE = False
else:
    _twin, NATIVE = load_twin(__package__, "_aggregator_c", _aggregator_py)
    Aggregator = _twin.Aggregator

__all__ = ["NATIVE", "Aggregator"]
