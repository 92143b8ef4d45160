"""OTLP data-point kernels: the native twin (``ext/export/otlp/_points_c.pyx``) when it is
built, else the pure-Python one (``_points_py``), which type checkers always see. Both
write the same bytes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._twins import load_twin
from . import _points_py

if TYPE_CHECKING:
    from ._points_py import histogram_points, number_points

    NATIVE = False
else:
    _twin, NATIVE = load_twin(__package__, "_points_c", _points_py)
    histogram_points, number_points = _twin.histogram_points, _twin.number_points

__all__ = ["NATIVE", "histogram_points", "number_points"]
