"""Exposition-line kernels: the native twin (``ext/export/_lines_c.pyx``) when it is built,
else the pure-Python one (``_lines_py``), which type checkers always see. Both write the
same bytes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._flags import no_extensions
from ._lines_py import number

if TYPE_CHECKING:
    from ._lines_py import Writer, bucket_lines, column_lines

    NATIVE = False
else:
    try:
        if no_extensions():
            raise ImportError("BIZOPS_OTEL_NO_EXTENSIONS is set")
        from ._lines_c import Writer, bucket_lines, column_lines
    except ImportError:
        from ._lines_py import Writer, bucket_lines, column_lines

        NATIVE = False
    else:
        NATIVE = True

__all__ = ["NATIVE", "Writer", "bucket_lines", "column_lines", "number"]
