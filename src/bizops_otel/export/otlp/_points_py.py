"""Pure-Python twin of ``ext/export/otlp/_points_c.pyx``: the data points of whole columns,
as OTLP protobuf bytes. Both twins write the same bytes.

A column's points differ only in their row's attributes and their numbers, so everything
else arrives ready-made: ``head`` holds the start and time fields, ``attributes[row]`` the
row's repeated ``KeyValue`` fields (tagged for the point type), ``extra`` the column's.
Each point is returned as one ``data_points`` field (field 1 of Gauge, Sum and Histogram).

NumberDataPoint: start 2, time 3 (fixed64), as_double 4, attributes 7.
HistogramDataPoint: start 2, time 3, count 4 (fixed64), sum 5 (double), bucket_counts 6
(packed fixed64), explicit_bounds 7 (packed double), attributes 9.
"""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt

from ._wire import varint

_DOUBLE = struct.Struct("<d")
_COUNT_AND_SUM = struct.Struct("<BQBd")
AS_DOUBLE = b"\x21"        # field 4, fixed64
COUNT, SUM = 0x21, 0x29    # fields 4 and 5, fixed64
BUCKET_COUNTS = b"\x32"    # field 6, length-delimited
DATA_POINT = b"\x0a"       # field 1, length-delimited


def number_points(attributes: list[bytes], extra: bytes, rows: npt.NDArray[np.int64],
                  values: npt.NDArray[np.float64], head: bytes) -> bytes:
    """A NumberDataPoint per row: ``head``, the value as a double, the attributes."""
    out = []
    for row, value in zip(rows.tolist(), values.tolist(), strict=True):
        body = b"".join((head, AS_DOUBLE, _DOUBLE.pack(value), attributes[row], extra))
        out.append(DATA_POINT + varint(len(body)) + body)
    return b"".join(out)


def histogram_points(attributes: list[bytes], extra: bytes, rows: npt.NDArray[np.int64],
                     below: npt.NDArray[np.int64], totals: npt.NDArray[np.int64],
                     sums: npt.NDArray[np.float64], head: bytes, bounds: bytes) -> bytes:
    """A HistogramDataPoint per row from its cumulative counts ``below`` each bound and
    its total: OTLP wants the count of each bucket, the last one above every bound."""
    buckets = below.shape[1] + 1
    counts_field = BUCKET_COUNTS + varint(8 * buckets)
    edges = np.zeros((below.shape[0], buckets + 1), np.int64)
    edges[:, 1:-1] = below
    edges[:, -1] = totals
    per_bucket = np.diff(edges, axis=1).astype("<u8")
    out = []
    for i, row in enumerate(rows.tolist()):
        body = b"".join((head, _COUNT_AND_SUM.pack(COUNT, int(totals[i]), SUM, float(sums[i])),
                         counts_field, per_bucket[i].tobytes(), bounds, attributes[row],
                         extra))
        out.append(DATA_POINT + varint(len(body)) + body)
    return b"".join(out)
