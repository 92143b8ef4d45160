"""Pure-Python twin of ``ext/export/_digest_c.pyx``: what the exporters need from every
row's latency histogram, computed for all rows at once.

A state's histograms are sparse blocks (see ``_layout``). For each row this gives

- the counts below each export boundary and the total, per outcome (the exported
  histogram), and, when the derived gauges are wanted,
- the conversion rate (converted over converted + not converted),
- Spearman's ρ of latency and conversion (``stats.spearman_binary``),
- latency quantiles (``stats.histogram_quantile``).

The numpy form works on the span of blocks that hold any count
(``aggregate._state.span_histograms``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from .. import stats
from ..aggregate._layout import (
    BUCKETS,
    OUTCOME_CONVERTED,
    OUTCOME_NOT_CONVERTED,
    OUTCOMES,
    bucket_edges,
)
from ..aggregate._state import span_histograms

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
_EDGES = bucket_edges()


class Digest(NamedTuple):
    #: (rows, outcomes, boundaries) counts in the buckets below each boundary index
    below: I64
    #: (rows, outcomes) counts
    totals: I64
    #: per row; None unless derived
    conversion: F64 | None
    spearman: F64 | None
    #: (quantiles, rows)
    quantiles: F64 | None


def digest(block_row: I64, block_code: I64, block_counts: npt.NDArray[np.uint64], rows: int,
           boundaries: I64, qs: Sequence[float], derived: bool) -> Digest:
    """The digest of ``rows`` rows. ``boundaries`` are internal edge indices: the count
    below boundary ``i`` is the count of buckets ``0 … i-1``."""
    edges = np.asarray(boundaries)
    if edges.size and (edges.min() < 0 or edges.max() > BUCKETS or np.any(np.diff(edges) < 0)):
        raise ValueError("boundaries must be ascending edge indices")
    counts, lo = span_histograms(block_row, block_code, block_counts, rows)
    width = counts.shape[2]
    cumulative = np.cumsum(counts, axis=2)
    padded = np.concatenate([np.zeros((rows, len(OUTCOMES), 1)), cumulative], axis=2)
    below = padded[:, :, np.clip(edges - lo, 0, width)].astype(np.int64)
    totals = padded[:, :, -1].astype(np.int64)
    if not derived:
        return Digest(below, totals, None, None, None)
    converted = padded[:, OUTCOME_CONVERTED, -1]
    trials = converted + padded[:, OUTCOME_NOT_CONVERTED, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        conversion = np.where(trials > 0, converted / trials, np.nan)
    spearman = stats.spearman_binary_many(counts[:, OUTCOME_NOT_CONVERTED],
                                          counts[:, OUTCOME_CONVERTED])
    if width:
        quantiles = np.array(stats.histogram_quantiles_many(
            counts.sum(axis=1), _EDGES[lo:lo + width + 1], qs, lo)).reshape(len(qs), rows)
    else:
        quantiles = np.full((len(qs), rows), np.nan)
    return Digest(below, totals, conversion, spearman, quantiles)
