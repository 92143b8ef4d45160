"""Immutable views of aggregator state: :class:`Snapshot` and per-key :class:`KeyStats`.

A snapshot owns copies of the state arrays, so it stays valid and unchanged while
recording goes on. Per-key figures are derived by the formulas of :mod:`bizops_otel.stats`;
answers that span keys or sessions (impact scores, what-if, A/B) are the analytics
stage's, which reads snapshots (``bizops_otel.analytics``) and is never imported here.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from .. import stats
from ..attributes import DROP_REASONS
from ..config import Config
from ._layout import (
    BLOCK,
    BLOCK_CODES,
    BLOCKS_PER_OUTCOME,
    BUCKETS,
    OUTCOME_CONVERTED,
    OUTCOME_NOT_CONVERTED,
    OUTCOMES,
    bucket_edges,
)
from ._session_state import SessionArrays, merge_sessions
from ._state import (
    OPERATION_GOOD,
    OPERATION_TOTAL,
    StateArrays,
    group_rows,
    merge_states,
    operation_counts,
    rows_of,
)
from .funnel import JourneyFunnel, journey_funnels

Key = tuple[str, ...]

#: Dimension value of the overflow key. Sanitised values never hold control characters,
#: so no real key can collide with it.
OVERFLOW_VALUE = "\x00overflow"

_EDGES = bucket_edges()
_EDGES.setflags(write=False)


def overflow_key(dimensions: int) -> Key:
    return (OVERFLOW_VALUE,) * dimensions


class RawSums(NamedTuple):
    """Mergeable raw sums of (latency t, KPI value v) pairs, for export."""

    n: int
    sum_t: float
    sum_t2: float
    sum_v: float
    sum_v2: float
    sum_tv: float


class Moments(NamedTuple):
    """Co-moments of (latency t, KPI value v): means, Σ squared and cross deviations."""

    n: int
    mean_t: float
    mean_v: float
    m2_t: float
    m2_v: float
    c_tv: float


class ConversionCurve(NamedTuple):
    """Conversion against latency: ``trials[b]`` requests with an outcome in bucket b,
    ``conversions[b]`` of them converted. Bucket b covers ``[edges[b], edges[b+1])``."""

    edges: npt.NDArray[np.float64]
    trials: npt.NDArray[np.uint64]
    conversions: npt.NDArray[np.uint64]

    @property
    def rate(self) -> npt.NDArray[np.float64]:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.conversions / self.trials.astype(np.float64)


class Objective(NamedTuple):
    """An operation's objective and how it is kept (``Snapshot.objectives``).

    - ``compliance``: good / total over everything counted (NaN without requests);
    - ``budget_left``: the share of the error budget not spent, ``1 − (bad / total) /
      (1 − target)``: 1 untouched, 0 spent, negative overspent (1 without requests);
    - ``burn_rate``: how fast the recent window spends the budget, ``(recent bad / recent
      total) / (1 − target)``: 1 spends exactly the budget over any period at that pace,
      14.4 spends a 30-day budget in about two days (NaN without recent requests);
      ``cumulative_burn_rate`` is the same over everything, ``1 − budget_left``.
    """

    name: str
    threshold: float
    target: float
    total: int
    good: int
    recent_total: int
    recent_good: int

    @property
    def bad(self) -> int:
        return self.total - self.good

    @property
    def compliance(self) -> float:
        return self.good / self.total if self.total else math.nan

    @property
    def recent_compliance(self) -> float:
        return self.recent_good / self.recent_total if self.recent_total else math.nan

    @property
    def cumulative_burn_rate(self) -> float:
        return (self.bad / self.total) / (1.0 - self.target) if self.total else 0.0

    @property
    def budget_left(self) -> float:
        return 1.0 - self.cumulative_burn_rate

    @property
    def burn_rate(self) -> float:
        if not self.recent_total:
            return math.nan
        bad = self.recent_total - self.recent_good
        return (bad / self.recent_total) / (1.0 - self.target)


class KeyStats:
    """Statistics of one key (or of a total), derived on demand from its state row."""

    __slots__ = ("_config", "_f", "_histogram", "_n", "count", "errors", "key", "latency_sum")

    def __init__(self, config: Config, key: Key | None, state: StateArrays, row: int,
                 blocks: slice) -> None:
        self._config = config
        self.key = key
        self.count = int(state.count[row])
        self.errors = int(state.errors[row])
        self.latency_sum = float(state.latency_sum[row])
        self._n = state.kpi_n[row]
        self._f = state.kpi_f[row]
        dense = np.zeros(len(OUTCOMES) * BLOCKS_PER_OUTCOME * BLOCK, np.uint64)
        for code, counts in zip(state.block_code[blocks], state.block_counts[blocks],
                                strict=True):
            dense[code * BLOCK:(code + 1) * BLOCK] = counts
        histogram = dense.reshape(len(OUTCOMES), BLOCKS_PER_OUTCOME * BLOCK)[:, :BUCKETS]
        histogram.setflags(write=False)
        self._histogram = histogram

    def __repr__(self) -> str:
        return f"KeyStats(key={self.key!r}, count={self.count}, errors={self.errors})"

    @property
    def histogram(self) -> npt.NDArray[np.uint64]:
        """Latency counts, shape (outcomes, buckets); rows follow ``OUTCOMES``."""
        return self._histogram

    @property
    def edges(self) -> npt.NDArray[np.float64]:
        return _EDGES

    @property
    def below_range(self) -> int:
        """Requests faster than 1 ms, clamped into the lowest bucket."""
        return int(self._histogram[:, 0].sum())

    @property
    def above_range(self) -> int:
        """Requests slower than the highest edge, clamped into the top bucket."""
        return int(self._histogram[:, -1].sum())

    @property
    def mean_latency(self) -> float:
        return self.latency_sum / self.count if self.count else float("nan")

    def quantile(self, q: float) -> float:
        """Latency quantile in seconds, within 10% of the exact value (see stats)."""
        return stats.histogram_quantile(self._histogram.sum(axis=0), _EDGES, q)

    def pairs(self, kpi: str) -> int:
        """How many (latency, KPI) pairs were recorded for ``kpi``."""
        return int(self._n[self._config.kpi_index(kpi)])

    def mean(self, kpi: str) -> float:
        j = self._config.kpi_index(kpi)
        return float(self._f[j, 1]) if self._n[j] else float("nan")

    def pearson(self, kpi: str, confidence: float = 0.95) -> stats.Correlation:
        """Pearson r of latency and ``kpi`` with a Fisher-z interval."""
        j = self._config.kpi_index(kpi)
        f = self._f[j]
        return stats.correlation(int(self._n[j]), float(f[2]), float(f[3]), float(f[4]),
                                 confidence)

    def slope(self, kpi: str) -> float:
        """Change of ``kpi`` per second of latency (least squares)."""
        j = self._config.kpi_index(kpi)
        return stats.slope(float(self._f[j, 2]), float(self._f[j, 4]))

    def spearman(self, kpi: str | None = None) -> float:
        """Spearman ρ of latency and the outcome KPI, from the outcome-split histogram.

        Only the outcome KPI (conversion) has the joint ranks this needs; a continuous KPI
        would need a two-dimensional histogram, so asking for one is a ``ValueError``.
        """
        outcome = self._config.outcome
        if outcome is None or (kpi is not None and kpi != outcome):
            raise ValueError(
                f"spearman is available for the outcome KPI {outcome!r} only, not {kpi!r}"
            )
        return stats.spearman_binary(
            self._histogram[OUTCOME_NOT_CONVERTED].astype(np.float64),
            self._histogram[OUTCOME_CONVERTED].astype(np.float64),
        )

    def conversion_rate(self) -> float:
        curve = self.conversion_by_latency()
        return stats.conversion_rate(float(curve.conversions.sum()),
                                     float(curve.trials.sum()))

    def conversion_by_latency(self) -> ConversionCurve:
        converted = self._histogram[OUTCOME_CONVERTED]
        trials = converted + self._histogram[OUTCOME_NOT_CONVERTED]
        return ConversionCurve(_EDGES, trials, converted.copy())

    def moments(self, kpi: str) -> Moments:
        """The Welford co-moments of (latency, ``kpi``)."""
        j = self._config.kpi_index(kpi)
        f = self._f[j]
        return Moments(int(self._n[j]), *(float(x) for x in f[:5]))

    def raw_sums(self, kpi: str) -> RawSums:
        j = self._config.kpi_index(kpi)
        f = self._f[j]
        return RawSums(int(self._n[j]), *(float(x) for x in f[5:10]))


class Snapshot(Mapping[Key, KeyStats]):
    """An immutable picture of an aggregator: per-key statistics, totals, drops.

    Iteration yields the keys that hold data, excluding the overflow key, which is
    reported by :attr:`overflow`.
    """

    def __init__(self, config: Config, keys: Sequence[Key], state: StateArrays,
                 dropped: Mapping[str, int], recent: Snapshot | None = None,
                 taken_ns: int = 0, sessions: SessionArrays | None = None, *,
                 started_ns: int | None = None,
                 operations: npt.NDArray[np.uint64] | None = None) -> None:
        self.config = config
        counts = operation_counts(len(config.operations))
        if operations is not None:
            counts += np.asarray(operations, np.uint64).reshape(counts.shape)
        counts.setflags(write=False)
        self._operations = counts
        #: When the state began counting (the aggregator's construction, reset or fork);
        #: the start of every cumulative point exported from it. Unknown: the taken time.
        self.started_ns = taken_ns if started_ns is None else started_ns
        self._sessions = sessions
        self._keys = tuple(keys)
        self._state = state.freeze()
        self.dropped: Mapping[str, int] = MappingProxyType(dict(dropped))
        self._recent = recent
        self.taken_ns = taken_ns
        self._overflow = overflow_key(len(config.dimensions))
        keys_by_id = self._keys
        self._row_of: dict[Key, int] = {
            keys_by_id[key_id]: row for row, key_id in enumerate(state.key_ids.tolist())
        }
        self._block_starts = np.searchsorted(state.block_row, np.arange(state.rows + 1))

    @classmethod
    def from_state(cls, config: Config, keys: Sequence[Key | None], state: StateArrays,
                   dropped_counts: Sequence[int], recent_state: StateArrays | None,
                   taken_ns: int, sessions: SessionArrays | None = None, *,
                   started_ns: int | None = None,
                   operations: npt.NDArray[np.uint64] | None = None,
                   recent_operations: npt.NDArray[np.uint64] | None = None) -> Snapshot:
        """Build from a twin's dump; key id ``config.max_keys`` is the overflow key, and
        None in ``keys`` marks a free id (a key that expired), which holds no rows."""
        live = [key_id for key_id, key in enumerate(keys) if key is not None]
        table: list[Key] = [keys[key_id] for key_id in live]  # type: ignore[misc]
        table.append(overflow_key(len(config.dimensions)))
        renumber = np.full(config.max_keys + 1, len(live), np.int64)
        renumber[live] = np.arange(len(live))

        def relabel(s: StateArrays) -> StateArrays:
            return s.with_key_ids(renumber[s.key_ids])

        dropped = dict(zip(DROP_REASONS, (int(x) for x in dropped_counts), strict=True))
        recent = None
        if recent_state is not None:
            recent = cls(config, table, relabel(recent_state), {}, None, taken_ns,
                         started_ns=started_ns, operations=recent_operations)
        return cls(config, table, relabel(state), dropped, recent, taken_ns, sessions,
                   started_ns=started_ns, operations=operations)

    # Mapping protocol ------------------------------------------------------------------
    def __getitem__(self, key: Key) -> KeyStats:
        key = tuple(key)
        if key == self._overflow:
            raise KeyError("the overflow key is reported by Snapshot.overflow")
        return self._stats(self._row_of[key])

    def __iter__(self) -> Iterator[Key]:
        return (k for k in self._row_of if k != self._overflow)

    def __len__(self) -> int:
        return len(self._row_of) - (self._overflow in self._row_of)

    # Views -------------------------------------------------------------------------------
    def _stats(self, row: int, key: Key | None = None) -> KeyStats:
        blocks = slice(int(self._block_starts[row]), int(self._block_starts[row + 1]))
        stored_key = self._keys[int(self._state.key_ids[row])] if key is None else key
        return KeyStats(self.config, stored_key, self._state, row, blocks)

    @property
    def overflow(self) -> KeyStats | None:
        """Everything that arrived for new keys once ``max_keys`` was reached."""
        row = self._row_of.get(self._overflow)
        return None if row is None else self._stats(row)

    def with_dropped(self, extra: Mapping[str, int]) -> Snapshot:
        """This snapshot with ``extra`` drops added by reason: what never reached the
        aggregator (``bizops_otel.drops``), so that exports show every refused value. The
        state is shared, not copied."""
        if not extra:
            return self
        combined = copy.copy(self)
        combined.dropped = MappingProxyType(
            {r: self.dropped.get(r, 0) + extra.get(r, 0) for r in {*self.dropped, *extra}})
        return combined

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def total(self, where: Mapping[str, str] | None = None,
              keys: Callable[[Key], bool] | None = None) -> KeyStats:
        """All keys merged into one, the overflow key included; with ``where``
        (dimension -> value) only the keys that match every condition, and with ``keys``
        only those it accepts."""
        state = self._state
        if where or keys is not None:
            positions = self._positions(where or {})
            conditions = [(positions[d], v) for d, v in (where or {}).items()]
            chosen = [row for row, key_id in enumerate(state.key_ids.tolist())
                      if all(self._keys[key_id][i] == v for i, v in conditions)
                      and (keys is None or keys(self._keys[key_id]))]
            state = rows_of(state, np.array(chosen, np.int64))
        merged = merge_states([state.with_key_ids(np.zeros(state.rows, np.int64))],
                              len(self.config.kpis))
        if merged.rows == 0:
            merged = _empty_row(len(self.config.kpis))
        starts = slice(0, merged.block_row.shape[0])
        return KeyStats(self.config, None, merged.freeze(), 0, starts)

    def totals_by(self, dimension: str, where: Mapping[str, str] | None = None
                  ) -> tuple[list[str], StateArrays]:
        """The keys grouped by their value of ``dimension`` and merged, with ``where``
        (dimension -> value) only the keys that match every condition: row i of the
        returned state (``key_ids[i] == i``) is the total of ``labels[i]``, for every
        value that has data. The overflow key belongs to no value.

        It reads each key once and merges in one vectorised step, so it costs O(keys)
        however many values there are; a :meth:`total` per value costs O(values × keys).
        """
        positions = self._positions([dimension, *(where or {})])
        at = positions[dimension]
        keys = self._keys
        index: dict[str, int] = {}
        ids = np.array([index.setdefault(key[at], len(index)) for key in keys], np.int64)
        for d, value in (where or {}).items():
            i = positions[d]
            ids[np.array([key[i] != value for key in keys], np.bool_)] = -1
        if self._overflow in self._row_of:
            ids[keys.index(self._overflow)] = -1
        groups = ids[self._state.key_ids]
        rows = np.flatnonzero(groups >= 0)
        merged = group_rows(self._state, rows, groups[rows], len(self.config.kpis))
        names = list(index)
        labels = [names[i] for i in merged.key_ids.tolist()]
        return labels, merged.with_key_ids(np.arange(merged.rows, dtype=np.int64)).freeze()

    def _positions(self, dimensions: Iterable[str]) -> dict[str, int]:
        """Positions of ``dimensions`` in a key; ``KeyError`` naming any unknown one."""
        positions = {d: i for i, d in enumerate(self.config.dimensions)}
        unknown = [d for d in dimensions if d not in positions]
        if unknown:
            raise KeyError(f"not dimensions: {unknown}; configured: "
                           f"{list(self.config.dimensions)}")
        return positions

    def recent(self) -> Snapshot:
        """The sliding window (``config.window`` seconds) as a snapshot of its own."""
        return self if self._recent is None else self._recent

    def merge(self, other: Snapshot) -> Snapshot:
        """Combine two snapshots (other processes, shards) as if one aggregator saw both."""
        if not self.config.same_shape(other.config):
            raise ValueError("cannot merge snapshots with different KPIs, dimensions or operations")
        table: dict[Key, int] = {}
        for key in (*self._keys, *other._keys):
            table.setdefault(key, len(table))

        def relabel(snapshot: Snapshot) -> StateArrays:
            mapping = np.array([table[k] for k in snapshot._keys], dtype=np.int64)
            state = snapshot._state
            return state.with_key_ids(mapping[state.key_ids] if state.rows else state.key_ids)

        merged = merge_states([relabel(self), relabel(other)], len(self.config.kpis))
        dropped = {r: self.dropped.get(r, 0) + other.dropped.get(r, 0)
                   for r in {*self.dropped, *other.dropped}}
        recent = None
        if self._recent is not None and other._recent is not None:
            recent = self._recent.merge(other._recent)
        sessions = None
        if self._sessions is not None or other._sessions is not None:
            sessions = merge_sessions([s for s in (self._sessions, other._sessions)
                                       if s is not None])
        return Snapshot(self.config, list(table), merged, dropped, recent,
                        max(self.taken_ns, other.taken_ns), sessions,
                        started_ns=min(self.started_ns, other.started_ns),
                        operations=self._operations + other._operations)

    @property
    def operation_counts(self) -> npt.NDArray[np.uint64]:
        """Requests and good requests per configured operation, read-only: row i is
        ``config.operations[i]``, columns ``(total, good)``."""
        return self._operations

    def objectives(self) -> dict[str, Objective]:
        """Each configured operation's objective and how it is kept, by operation name:
        compliance and budget left over everything counted, burn rate over the recent
        window (see :class:`Objective`)."""
        recent = self.recent()._operations
        if recent.shape != self._operations.shape:
            recent = operation_counts(len(self.config.operations))
        return {o.name: Objective(o.name, o.threshold, o.target,
                                  int(self._operations[i, OPERATION_TOTAL]),
                                  int(self._operations[i, OPERATION_GOOD]),
                                  int(recent[i, OPERATION_TOTAL]), int(recent[i, OPERATION_GOOD]))
                for i, o in enumerate(self.config.operations)}

    def journeys(self) -> dict[str, JourneyFunnel]:
        """Each journey's funnel over the finalised sessions, by journey name: per step the
        sessions entering, continuing and dropping, step-to-step conversion with its 95%
        interval, the median time to the next step and the correlation of the step's
        latency with continuing (see :class:`~bizops_otel.aggregate.funnel.FunnelStep`).
        Empty when no journey is configured or sessions are off."""
        if self._sessions is None:
            return {}
        return journey_funnels(self._sessions.journeys)

    @property
    def session_arrays(self) -> SessionArrays | None:
        """The raw session counts, or None when sessions were off."""
        return self._sessions

    @property
    def key_table(self) -> tuple[Key, ...]:
        """The keys that ``state.key_ids`` index (the overflow key among them)."""
        return self._keys

    @property
    def state(self) -> StateArrays:
        """The raw arrays, read-only, for exporters."""
        return self._state


def _empty_row(kpis: int) -> StateArrays:
    empty = StateArrays.empty(kpis)
    return StateArrays(
        key_ids=np.zeros(1, np.int64), count=np.zeros(1, np.uint64),
        errors=np.zeros(1, np.uint64), latency_sum=np.zeros(1, np.float64),
        kpi_n=np.zeros((1, kpis), np.uint64), kpi_f=np.zeros((1, *empty.kpi_f.shape[1:])),
        block_row=empty.block_row, block_code=empty.block_code,
        block_counts=empty.block_counts,
    )


__all__ = ["BLOCK_CODES", "ConversionCurve", "Key", "KeyStats", "Moments", "Objective",
           "RawSums", "Snapshot"]
