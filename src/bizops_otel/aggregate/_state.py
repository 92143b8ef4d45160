"""Aggregator state as plain numpy arrays, and the one way states are merged.

Both twins dump their live state into :class:`StateArrays`, so snapshots, windows,
totals and cross-process merges share this code and cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from ._layout import BLOCK, BLOCK_CODES, BLOCKS_PER_OUTCOME, BUCKETS, KPI_FIELD_COUNT, OUTCOMES

OUTCOME_COUNT = len(OUTCOMES)

Scalar = TypeVar("Scalar", bound=np.generic)
U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class StateArrays:
    """One state (cumulative, a sub-window, or a merge of them), one row per key.

    ``key_ids`` index a key table held by whoever owns these arrays. Histogram blocks are
    sorted by (row, code); ``block_code = outcome * BLOCKS_PER_OUTCOME + bucket // BLOCK``.
    """

    key_ids: I64
    count: U64
    errors: U64
    latency_sum: F64
    kpi_n: U64  # (rows, kpis)
    kpi_f: F64  # (rows, kpis, KPI_FIELD_COUNT)
    block_row: I64
    block_code: I64
    block_counts: U64  # (blocks, BLOCK)

    @staticmethod
    def empty(kpis: int) -> StateArrays:
        return StateArrays(
            key_ids=np.zeros(0, np.int64),
            count=np.zeros(0, np.uint64),
            errors=np.zeros(0, np.uint64),
            latency_sum=np.zeros(0, np.float64),
            kpi_n=np.zeros((0, kpis), np.uint64),
            kpi_f=np.zeros((0, kpis, KPI_FIELD_COUNT), np.float64),
            block_row=np.zeros(0, np.int64),
            block_code=np.zeros(0, np.int64),
            block_counts=np.zeros((0, BLOCK), np.uint64),
        )

    @property
    def rows(self) -> int:
        return int(self.key_ids.shape[0])

    def freeze(self) -> StateArrays:
        for array in self.__dict__.values():
            array.setflags(write=False)
        return self

    def with_key_ids(self, key_ids: I64) -> StateArrays:
        return StateArrays(key_ids, self.count, self.errors, self.latency_sum, self.kpi_n,
                           self.kpi_f, self.block_row, self.block_code, self.block_counts)


#: Columns of the per-operation counts (``Config.operations``): requests, and good ones.
OPERATION_TOTAL = 0
OPERATION_GOOD = 1


def operation_counts(operations: int) -> U64:
    """Zero counts for ``operations`` operations: shape (operations, 2), columns
    ``OPERATION_TOTAL`` and ``OPERATION_GOOD``. Operations are configured, so their
    counts are never per key and never expire; processes and windows merge by addition."""
    return np.zeros((operations, 2), np.uint64)


@dataclass(frozen=True)
class Expired:
    """The final cumulative rows of keys that expired, kept for the multi-process merge
    (see ``export/multiproc.py``): ``state.key_ids`` index ``keys``."""

    keys: tuple[tuple[str, ...], ...]
    state: StateArrays


def rows_of(state: StateArrays, rows: npt.NDArray[np.int64]) -> StateArrays:
    """The given rows of ``state`` (renumbered), with their histogram blocks."""
    keep = np.isin(state.block_row, rows)
    renumber = np.full(max(state.rows, 1), -1, np.int64)
    renumber[rows] = np.arange(rows.shape[0])
    return StateArrays(state.key_ids[rows], state.count[rows], state.errors[rows],
                       state.latency_sum[rows], state.kpi_n[rows], state.kpi_f[rows],
                       renumber[state.block_row[keep]], state.block_code[keep],
                       state.block_counts[keep])


def expired_rows(parts: Sequence[StateArrays], kpis: int,
                 keys: Mapping[int, tuple[str, ...]], gone: Sequence[int]) -> Expired:
    """The cumulative rows (every part merged) of the key ids in ``gone``, named by
    ``keys``, as they leave the live state; both twins call this from their sweeps."""
    merged = merge_states(parts, kpis)
    rows = np.flatnonzero(np.isin(merged.key_ids, np.asarray(gone, np.int64)))
    chosen = rows_of(merged, rows.astype(np.int64))
    names = tuple(keys[int(key_id)] for key_id in chosen.key_ids)
    return Expired(names, chosen.with_key_ids(np.arange(chosen.rows, dtype=np.int64)))


def stack_rows(parts: Sequence[StateArrays], kpis: int) -> StateArrays:
    """The rows of every part one after the other, none merged; ``key_ids`` become the
    row numbers."""
    parts = [p for p in parts if p.rows]
    if not parts:
        return StateArrays.empty(kpis)
    offsets = np.cumsum([0] + [p.rows for p in parts[:-1]])
    rows = sum(p.rows for p in parts)
    return StateArrays(
        np.arange(rows, dtype=np.int64),
        np.concatenate([p.count for p in parts]),
        np.concatenate([p.errors for p in parts]),
        np.concatenate([p.latency_sum for p in parts]),
        np.concatenate([p.kpi_n for p in parts]),
        np.concatenate([p.kpi_f for p in parts]),
        np.concatenate([p.block_row + offset for p, offset in zip(parts, offsets, strict=True)]),
        np.concatenate([p.block_code for p in parts]),
        np.concatenate([p.block_counts for p in parts]),
    )


def sort_rows(state: StateArrays) -> StateArrays:
    """The same state with rows in key-id order (as :func:`merge_states` returns them)
    and blocks in (row, code) order."""
    order = np.argsort(state.key_ids, kind="stable")
    if state.rows < 2 or bool(np.all(order == np.arange(state.rows))):
        return state
    rank = np.empty_like(order)
    rank[order] = np.arange(state.rows)
    block_row = rank[state.block_row]
    blocks = np.lexsort((state.block_code, block_row))
    return StateArrays(state.key_ids[order], state.count[order], state.errors[order],
                       state.latency_sum[order], state.kpi_n[order], state.kpi_f[order],
                       block_row[blocks].astype(np.int64), state.block_code[blocks],
                       state.block_counts[blocks])


def _segment_starts(sorted_values: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
    """Where each run of equal values starts in a sorted array."""
    change = np.empty(sorted_values.shape[0], np.bool_)
    change[:1] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=change[1:])
    return np.flatnonzero(change)


def merge_states(parts: Sequence[StateArrays], kpis: int) -> StateArrays:
    """Merge states row-wise by key id; rows of the result are sorted by key id.

    Counts and raw sums add. Welford co-moments combine by the parallel-axis form of
    Chan et al. (1979), exact for any number of parts at once::

        n    = Σ nᵢ
        x̄    = Σ nᵢ x̄ᵢ / n
        M2ₓ  = Σ M2ₓ,ᵢ + Σ nᵢ (x̄ᵢ − x̄)²
        Cₓᵧ  = Σ Cₓᵧ,ᵢ + Σ nᵢ (x̄ᵢ − x̄)(ȳᵢ − ȳ)
    """
    parts = [p for p in parts if p.rows]
    if not parts:
        return StateArrays.empty(kpis)
    key_ids = np.concatenate([p.key_ids for p in parts])
    unique_ids, group = np.unique(key_ids, return_inverse=True)
    # Sums per group as segment sums over the rows sorted by group: np.add.reduceat is
    # an order of magnitude faster than np.add.at, and exact for the integer counts.
    order = np.argsort(group, kind="stable")
    starts = _segment_starts(group[order])

    def add(values: npt.NDArray[Scalar]) -> npt.NDArray[Scalar]:
        out: npt.NDArray[Scalar] = np.add.reduceat(values[order], starts, axis=0)
        return out

    count = add(np.concatenate([p.count for p in parts]))
    errors = add(np.concatenate([p.errors for p in parts]))
    latency_sum = add(np.concatenate([p.latency_sum for p in parts]))
    kpi_n = np.concatenate([p.kpi_n for p in parts])
    kpi_f = np.concatenate([p.kpi_f for p in parts])
    n_total = add(kpi_n)
    n = kpi_n.astype(np.float64)
    n_group = n_total.astype(np.float64)
    safe = np.where(n_group > 0, n_group, 1.0)
    mean_t = add(n * kpi_f[:, :, 0]) / safe
    mean_v = add(n * kpi_f[:, :, 1]) / safe
    dt = kpi_f[:, :, 0] - mean_t[group]
    dv = kpi_f[:, :, 1] - mean_v[group]
    merged_f = np.empty((unique_ids.shape[0], kpi_f.shape[1], KPI_FIELD_COUNT), np.float64)
    merged_f[:, :, 0] = mean_t
    merged_f[:, :, 1] = mean_v
    merged_f[:, :, 2] = add(kpi_f[:, :, 2] + n * dt * dt)
    merged_f[:, :, 3] = add(kpi_f[:, :, 3] + n * dv * dv)
    merged_f[:, :, 4] = add(kpi_f[:, :, 4] + n * dt * dv)
    merged_f[:, :, 5:] = add(kpi_f[:, :, 5:])

    row_offsets = np.cumsum([0] + [p.rows for p in parts[:-1]])
    block_rows = np.concatenate(
        [group[p.block_row + offset] for p, offset in zip(parts, row_offsets, strict=True)]
    )
    block_codes = np.concatenate([p.block_code for p in parts])
    combined = block_rows * BLOCK_CODES + block_codes
    block_order = np.argsort(combined, kind="stable")
    sorted_blocks = combined[block_order]
    block_starts = _segment_starts(sorted_blocks)
    unique_blocks = sorted_blocks[block_starts]
    block_counts = np.add.reduceat(np.concatenate([p.block_counts for p in parts])[block_order],
                                   block_starts, axis=0)
    return StateArrays(
        key_ids=unique_ids.astype(np.int64),
        count=count,
        errors=errors,
        latency_sum=latency_sum,
        kpi_n=n_total,
        kpi_f=merged_f,
        block_row=(unique_blocks // BLOCK_CODES).astype(np.int64),
        block_code=(unique_blocks % BLOCK_CODES).astype(np.int64),
        block_counts=block_counts,
    )


def take_rows(state: StateArrays, rows: I64) -> StateArrays:
    """Rows ``rows`` of ``state`` in that order, renumbered from 0 and each with its
    histogram blocks; a row may be taken more than once. ``state``'s blocks must be sorted
    by row, as every dump and merge leaves them. Costs the size of what is taken."""
    rows = np.asarray(rows, np.int64)
    starts = np.searchsorted(state.block_row, np.arange(state.rows + 1))
    first = starts[rows]
    lengths = starts[rows + 1] - first
    # Block indices of every taken row, its blocks consecutive: first, first + 1, ….
    ends = np.cumsum(lengths)
    blocks = np.repeat(first - (ends - lengths), lengths) + np.arange(int(ends[-1]) if
                                                                      rows.size else 0)
    return StateArrays(state.key_ids[rows], state.count[rows], state.errors[rows],
                       state.latency_sum[rows], state.kpi_n[rows], state.kpi_f[rows],
                       np.repeat(np.arange(rows.size, dtype=np.int64), lengths),
                       state.block_code[blocks], state.block_counts[blocks])


def group_rows(state: StateArrays, rows: I64, groups: I64, kpis: int) -> StateArrays:
    """Rows ``rows`` of ``state`` merged by group, ``groups[i]`` the group of ``rows[i]``:
    one row per group that has any, ``key_ids`` the group ids, ascending. A row may join
    several groups. One vectorised merge, whatever the number of groups."""
    groups = np.asarray(groups, np.int64)
    order = np.argsort(groups, kind="stable")
    if groups.size < 2 or bool(np.all(groups[order[1:]] != groups[order[:-1]])):
        # One row per group (a campaign landing on one page, the common case and a bot's):
        # nothing to merge, the rows only change places.
        return take_rows(state, np.asarray(rows, np.int64)[order]).with_key_ids(groups[order])
    return merge_states([take_rows(state, rows).with_key_ids(groups)], kpis)


def span_histograms(block_row: I64, block_code: I64, block_counts: U64,
                    rows: int) -> tuple[F64, int]:
    """(rows, outcomes, buckets) counts over the whole blocks that hold any count, and
    the first bucket of that span. Counts are exact in float64 up to 2^53.

    Latencies rarely span more than a few of the 8 blocks, and empty buckets change no
    figure read from a histogram, so the dense form covers only that span.
    """
    if not block_code.size:
        return np.zeros((rows, OUTCOME_COUNT, 0)), 0
    outcome, block = np.divmod(block_code, BLOCKS_PER_OUTCOME)
    first, last = int(block.min()), int(block.max())
    width = last - first + 1
    dense = np.zeros((rows * OUTCOME_COUNT * width, BLOCK))
    dense[(block_row * OUTCOME_COUNT + outcome) * width + block - first] = block_counts
    lo = first * BLOCK
    hi = min(BUCKETS, (last + 1) * BLOCK)
    return dense.reshape(rows, OUTCOME_COUNT, width * BLOCK)[:, :, :hi - lo], lo
