# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Native twin of ``bizops_otel/export/_digest_py.py``: per-row digests of the latency
histograms, in one pass over each row's blocks.

The numpy twin builds dense (rows, outcomes, buckets) arrays and runs a dozen whole-array
operations over them; at 10,000 keys that was most of an export's model. Here each row is
unpacked into a 3 × 128 scratch array on the stack and every figure is taken from it.
"""

import numpy as np

from libc.math cimport NAN, isinf, pow, sqrt
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memset

from bizops_otel.aggregate._layout import BLOCK as _BLOCK
from bizops_otel.aggregate._layout import BLOCKS_PER_OUTCOME as _BLOCKS_PER_OUTCOME
from bizops_otel.aggregate._layout import BUCKETS as _BUCKETS
from bizops_otel.aggregate._layout import OUTCOME_CONVERTED as _CONVERTED
from bizops_otel.aggregate._layout import OUTCOME_NOT_CONVERTED as _NOT_CONVERTED
from bizops_otel.aggregate._layout import OUTCOMES as _OUTCOMES
from bizops_otel.aggregate._layout import bucket_edges
from bizops_otel.export._digest_py import Digest

cdef enum:
    BLOCK = 16
    BLOCKS_PER_OUTCOME = 8
    SPAN = BLOCK * BLOCKS_PER_OUTCOME
    BUCKETS = 118
    OUTCOMES = 3
    NOT_CONVERTED = 1
    CONVERTED = 2

assert (_BLOCK, _BLOCKS_PER_OUTCOME, _BUCKETS, len(_OUTCOMES), _NOT_CONVERTED, _CONVERTED) == (
    BLOCK, BLOCKS_PER_OUTCOME, BUCKETS, OUTCOMES, NOT_CONVERTED, CONVERTED)

cdef double EDGES[BUCKETS + 1]
for _i, _edge in enumerate(bucket_edges().tolist()):
    EDGES[_i] = _edge


cdef double spearman_binary(const uint64_t *negatives, const uint64_t *positives,
                            int lo, int hi) noexcept nogil:
    """``stats.spearman_binary`` over buckets [lo, hi); NaN when undefined."""
    cdef double n0 = 0.0, n1 = 0.0, n, mean_rank, below = 0.0, per_bucket, rank
    cdef double spread = 0.0, positive_ranks = 0.0, negative_ranks = 0.0, variance
    cdef int b
    for b in range(lo, hi):
        n0 += <double>negatives[b]
        n1 += <double>positives[b]
    if n0 == 0.0 or n1 == 0.0:
        return NAN
    n = n0 + n1
    mean_rank = (n + 1.0) / 2.0
    for b in range(lo, hi):
        per_bucket = <double>negatives[b] + <double>positives[b]
        if per_bucket == 0.0:
            continue
        rank = below + (per_bucket + 1.0) / 2.0    # ties share the mid-rank
        spread += per_bucket * (rank - mean_rank) * (rank - mean_rank)
        positive_ranks += <double>positives[b] * rank
        negative_ranks += <double>negatives[b] * rank
        below += per_bucket
    variance = spread / n
    if not variance > 0.0:
        return NAN
    return ((positive_ranks / n1 - negative_ranks / n0) / sqrt(variance)
            * sqrt((n1 / n) * (n0 / n)))


cdef double quantile(const uint64_t *counts, double n, double q, int lo, int hi) noexcept nogil:
    """``stats.histogram_quantile`` of the counts in buckets [lo, hi) (n > 0)."""
    cdef double rank = q * (n - 1.0), cumulative = 0.0, below, fraction, low, high
    cdef int b = lo
    while b < hi - 1:
        if cumulative + <double>counts[b] > rank:
            break
        cumulative += <double>counts[b]
        b += 1
    below = cumulative
    low = EDGES[b]
    high = EDGES[b + 1]
    if b == 0:
        return high
    if isinf(high):
        return low
    fraction = (rank - below + 0.5) / <double>counts[b]
    fraction = 1.0 if fraction > 1.0 else (0.0 if fraction < 0.0 else fraction)
    return low * pow(high / low, fraction)


def digest(const int64_t[::1] block_row not None,
           const int64_t[::1] block_code not None,
           const uint64_t[:, ::1] block_counts not None, Py_ssize_t rows,
           const int64_t[::1] boundaries not None, qs, bint derived):
    """See the pure twin. Blocks must be sorted by row, as states keep them."""
    cdef Py_ssize_t blocks = block_row.shape[0], n_bounds = boundaries.shape[0]
    cdef Py_ssize_t n_qs = len(qs), b = 0, r, i
    cdef int o, k, bucket, code, lo, hi
    cdef uint64_t dense[OUTCOMES][SPAN]
    cdef uint64_t merged[SPAN]
    cdef int64_t cumulative
    cdef double total, trials
    cdef double[::1] levels = np.ascontiguousarray(qs, np.float64)
    if block_code.shape[0] != blocks or (blocks and block_counts.shape[0] != blocks):
        raise ValueError("block rows, codes and counts differ in length")
    if blocks and block_counts.shape[1] != BLOCK:
        raise ValueError(f"blocks must hold {BLOCK} buckets")
    for i in range(n_bounds):
        if not 0 <= boundaries[i] <= BUCKETS or (i and boundaries[i] < boundaries[i - 1]):
            raise ValueError("boundaries must be ascending edge indices")
    for i in range(blocks):
        if not 0 <= block_row[i] < rows or (i and block_row[i] < block_row[i - 1]):
            raise ValueError("block rows must be ascending and below the row count")
        if not 0 <= block_code[i] < OUTCOMES * BLOCKS_PER_OUTCOME:
            raise ValueError(f"block code {block_code[i]} out of range")
    below_array = np.zeros((rows, OUTCOMES, n_bounds), np.int64)
    totals_array = np.zeros((rows, OUTCOMES), np.int64)
    cdef int64_t[:, :, ::1] below = below_array
    cdef int64_t[:, ::1] totals = totals_array
    cdef double[::1] conversion, spearman
    cdef double[:, ::1] quantiles
    if derived:
        conversion_array = np.full(rows, np.nan)
        spearman_array = np.full(rows, np.nan)
        quantiles_array = np.full((n_qs, rows), np.nan)
        conversion, spearman, quantiles = conversion_array, spearman_array, quantiles_array
    with nogil:
        for r in range(rows):
            if b >= blocks or block_row[b] != r:
                continue
            memset(dense, 0, sizeof(dense))
            lo = SPAN
            hi = 0
            while b < blocks and block_row[b] == r:
                code = <int>block_code[b]
                o = code // BLOCKS_PER_OUTCOME
                bucket = (code % BLOCKS_PER_OUTCOME) * BLOCK
                for k in range(BLOCK):
                    dense[o][bucket + k] += block_counts[b, k]
                lo = bucket if bucket < lo else lo
                hi = bucket + BLOCK if bucket + BLOCK > hi else hi
                b += 1
            hi = BUCKETS if hi > BUCKETS else hi
            for o in range(OUTCOMES):
                cumulative = 0
                bucket = 0
                for i in range(n_bounds):
                    while bucket < boundaries[i]:
                        cumulative += <int64_t>dense[o][bucket]
                        bucket += 1
                    below[r, o, i] = cumulative
                while bucket < BUCKETS:
                    cumulative += <int64_t>dense[o][bucket]
                    bucket += 1
                totals[r, o] = cumulative
            if not derived:
                continue
            trials = <double>totals[r, CONVERTED] + <double>totals[r, NOT_CONVERTED]
            if trials > 0.0:
                conversion[r] = <double>totals[r, CONVERTED] / trials
            spearman[r] = spearman_binary(dense[NOT_CONVERTED], dense[CONVERTED], lo, hi)
            total = 0.0
            for bucket in range(lo, hi):
                merged[bucket] = dense[0][bucket] + dense[1][bucket] + dense[2][bucket]
                total += <double>merged[bucket]
            if total > 0.0:
                for i in range(n_qs):
                    quantiles[i, r] = quantile(merged, total, levels[i], lo, hi)
    if not derived:
        return Digest(below_array, totals_array, None, None, None)
    return Digest(below_array, totals_array, conversion_array, spearman_array, quantiles_array)


def _is_compiled():
    return True
