"""Exposition-line kernels: the native twin (``ext/export/_lines_c.pyx``) when it is built,
else the pure-Python one (``_lines_py``), which type checkers always see. Both write the
same bytes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._twins import load_twin
from . import _lines_py
from ._lines_py import number

if TYPE_CHECKING:
    from ._lines_py import Writer, bucket_lines, column_lines

    NATIVE = False
else:
    _twin, NATIVE = load_twin(__package__, "_lines_c", _lines_py)
    Writer, bucket_lines, column_lines = _twin.Writer, _twin.bucket_lines, _twin.column_lines

__all__ = ["NATIVE", "Writer", "bucket_lines", "column_lines", "number"]
