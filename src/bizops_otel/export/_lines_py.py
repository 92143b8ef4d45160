"""Pure-Python twin of ``ext/export/_lines_c.pyx``: exposition lines of whole columns.

A column is many samples of one family that share a name and extra labels; each row has
its labels rendered once (``name="value",…`` as bytes, possibly empty), and the extra
labels start with a comma (``,name="value"…``, or nothing). Numbers are written as Python's
``repr`` writes floats, with ``+Inf``/``-Inf`` for infinities, so both twins produce the
same bytes. A :class:`Writer` collects a whole exposition (the native one in a single
buffer, so tens of megabytes are not copied again at the end).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt


def number(value: float) -> bytes:
    if math.isinf(value):
        return b"+Inf" if value > 0 else b"-Inf"
    return repr(float(value)).encode()


def _inside(label: bytes, extra: bytes) -> bytes:
    """What goes between the braces: the row's labels, then the extra ones."""
    return label + extra if label else extra[1:]


def column_lines(sample: bytes, labels: list[bytes], extra: bytes,
                 rows: npt.NDArray[np.int64], values: npt.NDArray[np.float64]) -> bytes:
    """``sample{labels[row]extra} value`` for every row."""
    return b"".join(b"%s{%s} %s\n" % (sample, _inside(labels[row], extra), number(value))
                    for row, value in zip(rows.tolist(), values.tolist(), strict=True))


def bucket_lines(sample: bytes, labels: list[bytes], extra: bytes, bounds: list[bytes],
                 rows: npt.NDArray[np.int64], counts: npt.NDArray[np.int64],
                 totals: npt.NDArray[np.int64]) -> bytes:
    """``sample{labels[row]extra,bound} count.0`` per row and bound, then the +Inf bucket
    with the row's total; ``bounds`` are rendered ``le="…"`` labels."""
    out: list[bytes] = []
    for i, row in enumerate(rows.tolist()):
        inside = _inside(labels[row], extra)
        prefix = b"%s{%s%s" % (sample, inside, b"," if inside else b"")
        out.extend(b'%s%s} %d.0\n' % (prefix, bound, count)
                   for bound, count in zip(bounds, counts[i].tolist(), strict=True))
        out.append(b'%sle="+Inf"} %d.0\n' % (prefix, int(totals[i])))
    return b"".join(out)


class Writer:
    """Collects an exposition: raw text, columns and bucket columns, in order."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def text(self, data: bytes) -> None:
        self._parts.append(data)

    def column(self, sample: bytes, labels: list[bytes], extra: bytes,
               rows: npt.NDArray[np.int64], values: npt.NDArray[np.float64]) -> None:
        self._parts.append(column_lines(sample, labels, extra, rows, values))

    def buckets(self, sample: bytes, labels: list[bytes], extra: bytes, bounds: list[bytes],
                rows: npt.NDArray[np.int64], counts: npt.NDArray[np.int64],
                totals: npt.NDArray[np.int64]) -> None:
        self._parts.append(bucket_lines(sample, labels, extra, bounds, rows, counts, totals))

    def getvalue(self) -> bytes:
        return b"".join(self._parts)
