"""Pure-Python twin of ``ext/aggregate/_aggregator_c.pyx``: the readable reference and
the test oracle.

Same classes, same semantics, same dumps; only speed differs. Any change here must be
mirrored in the native module, and the differential tests hold the two together.
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ..attributes import (
    DROP_INDEX,
    DROP_REASONS,
    MISSING,
    PAGE_GROUP,
    SESSION_ID,
    classify_kpi,
    sanitize_dimension,
)
from ..config import Config
from . import _fork
from ._admission_py import Doorkeeper
from ._batch import batch_end, batch_inputs, end_timestamp
from ._layout import (
    BLOCK,
    BLOCKS_PER_OUTCOME,
    BUCKETS,
    HIGHEST,
    INV_LOG_GROWTH,
    INV_LOWEST,
    KPI_FIELD_COUNT,
    LOWEST,
    OUTCOME_CONVERTED,
    OUTCOME_NONE,
    OUTCOME_NOT_CONVERTED,
    SESSION_ROW_OVERFLOW,
    bucket_of,
)
from ._sessions_py import SessionTable
from ._state import Expired, StateArrays, expired_rows, merge_states, operation_counts
from .snapshot import Snapshot

_F = KPI_FIELD_COUNT
_LATENCY_INVALID = DROP_INDEX["latency_invalid"]
_UNREADABLE = DROP_INDEX["attributes_unreadable"]
_SESSION_INVALID = DROP_INDEX["session_invalid"]
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1  # timestamps are int64 nanoseconds
#: Raw-value lookups kept per key before further raw variants take the slow path.
RAW_ENTRIES_PER_KEY = 4
#: ``last_seen`` of a key id that is free (never used, or expired).
FREE = _INT64_MIN


class _State:
    """One state (cumulative or one sub-window); rows are allocated on first touch."""

    __slots__ = (
        "blocks",
        "count",
        "errors",
        "key_ids",
        "kpi_f",
        "kpi_n",
        "kpis",
        "latency_sum",
        "slot_of",
    )

    def __init__(self, kpis: int) -> None:
        self.kpis = kpis
        self.slot_of: dict[int, int] = {}
        self.key_ids: list[int] = []
        self.count: list[int] = []
        self.errors: list[int] = []
        self.latency_sum: list[float] = []
        self.kpi_n: list[list[int]] = []
        self.kpi_f: list[list[float]] = []
        self.blocks: dict[tuple[int, int], list[int]] = {}

    def slot(self, key_id: int) -> int:
        slot = self.slot_of.get(key_id)
        if slot is None:
            slot = len(self.key_ids)
            self.slot_of[key_id] = slot
            self.key_ids.append(key_id)
            self.count.append(0)
            self.errors.append(0)
            self.latency_sum.append(0.0)
            self.kpi_n.append([0] * self.kpis)
            self.kpi_f.append([0.0] * (self.kpis * _F))
        return slot

    def add(self, key_id: int, t: float, bucket: int, outcome: int,
            values: list[tuple[int, float]], error: bool) -> None:
        slot = self.slot(key_id)
        self.count[slot] += 1
        self.errors[slot] += 1 if error else 0
        self.latency_sum[slot] += t
        n_row = self.kpi_n[slot]
        f = self.kpi_f[slot]
        for j, v in values:
            # Welford's update of the co-moments (Welford 1962; Knuth TAOCP 4.2.2).
            n = n_row[j] + 1
            n_row[j] = n
            o = j * _F
            inverse = 1.0 / n
            dt = t - f[o]
            mean_t = f[o] + dt * inverse
            dv = v - f[o + 1]
            mean_v = f[o + 1] + dv * inverse
            f[o + 2] += dt * (t - mean_t)
            f[o + 3] += dv * (v - mean_v)
            f[o + 4] += dt * (v - mean_v)
            f[o] = mean_t
            f[o + 1] = mean_v
            f[o + 5] += t
            f[o + 6] += t * t
            f[o + 7] += v
            f[o + 8] += v * v
            f[o + 9] += t * v
        self._add_hits(slot, outcome * BLOCKS_PER_OUTCOME + bucket // BLOCK, bucket % BLOCK, 1)

    def _fold(self, slot: int, j: int, nb: int, moments: list[float]) -> None:
        """Fold another state's co-moments for KPI j into row ``slot``: Chan et al. (1979)."""
        n_row = self.kpi_n[slot]
        f = self.kpi_f[slot]
        na = n_row[j]
        n = na + nb
        o = j * _F
        dt = moments[0] - f[o]
        dv = moments[1] - f[o + 1]
        weight = na * nb / n
        f[o] += dt * nb / n
        f[o + 1] += dv * nb / n
        f[o + 2] += moments[2] + dt * dt * weight
        f[o + 3] += moments[3] + dv * dv * weight
        f[o + 4] += moments[4] + dt * dv * weight
        for k in range(5, _F):
            f[o + k] += moments[k]
        n_row[j] = n

    def _add_hits(self, slot: int, code: int, offset: int, hits: int) -> None:
        block = self.blocks.get((slot, code))
        if block is None:
            block = self.blocks[(slot, code)] = [0] * BLOCK
        block[offset] += hits

    def add_batch(self, key_id: int, batch: _Batch) -> None:
        slot = self.slot(key_id)
        for (outcome, bucket), hits in sorted(batch.histogram.items()):
            self._add_hits(slot, outcome * BLOCKS_PER_OUTCOME + bucket // BLOCK,
                           bucket % BLOCK, hits)
        self.count[slot] += batch.count
        self.errors[slot] += batch.errors
        self.latency_sum[slot] += batch.latency_sum
        for j, (nb, moments) in sorted(batch.kpis.items()):
            self._fold(slot, j, nb, moments)

    def merge_from(self, other: _State) -> None:
        """Add every row of ``other`` (a retiring sub-window) into this state."""
        for row, key_id in enumerate(other.key_ids):
            slot = self.slot(key_id)
            self.count[slot] += other.count[row]
            self.errors[slot] += other.errors[row]
            self.latency_sum[slot] += other.latency_sum[row]
            for j, nb in enumerate(other.kpi_n[row]):
                if nb:
                    self._fold(slot, j, nb, other.kpi_f[row][j * _F:(j + 1) * _F])
        for (row, code), counts in sorted(other.blocks.items()):
            slot = self.slot_of[other.key_ids[row]]
            for offset, hits in enumerate(counts):
                if hits:
                    self._add_hits(slot, code, offset, hits)

    def drop(self, gone: set[int]) -> None:
        """Forget the rows of the key ids in ``gone`` (expired keys), keeping the others in
        their order; mirrors ``state_drop`` of the native twin."""
        keep = [row for row, key_id in enumerate(self.key_ids) if key_id not in gone]
        if len(keep) == len(self.key_ids):
            return
        renumber = {old: new for new, old in enumerate(keep)}
        self.key_ids = [self.key_ids[row] for row in keep]
        self.count = [self.count[row] for row in keep]
        self.errors = [self.errors[row] for row in keep]
        self.latency_sum = [self.latency_sum[row] for row in keep]
        self.kpi_n = [self.kpi_n[row] for row in keep]
        self.kpi_f = [self.kpi_f[row] for row in keep]
        self.slot_of = {key_id: row for row, key_id in enumerate(self.key_ids)}
        self.blocks = {(renumber[row], code): block
                       for (row, code), block in self.blocks.items() if row in renumber}

    def dump(self) -> StateArrays:
        order = sorted(self.blocks)
        rows = len(self.key_ids)
        return StateArrays(
            key_ids=np.array(self.key_ids, np.int64),
            count=np.array(self.count, np.uint64),
            errors=np.array(self.errors, np.uint64),
            latency_sum=np.array(self.latency_sum, np.float64),
            kpi_n=np.array(self.kpi_n, np.uint64).reshape(rows, self.kpis),
            kpi_f=np.array(self.kpi_f, np.float64).reshape(rows, self.kpis, _F),
            block_row=np.array([s for s, _ in order], np.int64),
            block_code=np.array([c for _, c in order], np.int64),
            block_counts=np.array([self.blocks[k] for k in order], np.uint64).reshape(-1, BLOCK),
        )


class _Batch:
    """Validated rows of one ``record_many`` call, reduced to mergeable moments."""

    __slots__ = ("count", "errors", "histogram", "kpis", "latency_sum")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.latency_sum = 0.0
        self.kpis: dict[int, tuple[int, list[float]]] = {}
        self.histogram: dict[tuple[int, int], int] = {}


class Aggregator:
    """Streaming latency–KPI statistics per key (pure-Python implementation).

    >>> from bizops_otel import Config
    >>> agg = Aggregator(Config(kpis=("order_value",), dimensions=("page",), outcome=None))
    >>> for latency, value in [(0.1, 10.0), (0.2, 20.0), (0.3, 30.0)]:
    ...     agg.record(("checkout",), latency, {"order_value": value})
    >>> round(agg.snapshot()[("checkout",)].pearson("order_value").r, 6)
    1.0
    """

    implementation = "pure"

    def __init__(self, config: Config | None = None) -> None:
        self._config = config if config is not None else Config()
        cfg = self._config
        self._dim_keys = cfg.dimensions
        self._kpi_specs = [(k.attribute, k.binary, float(k.minimum), float(k.maximum))
                           for k in cfg.kpis]
        self._kpi_index = {k.name: j for j, k in enumerate(cfg.kpis)}
        self._outcome = cfg.outcome_index
        self._revenue = cfg.revenue_index
        self._page_at = cfg.dimensions.index(PAGE_GROUP) if PAGE_GROUP in cfg.dimensions else -1
        self._slot_ns = cfg.window_slot_ns
        self._op_threshold = [o.threshold_ns for o in cfg.operations]
        self._op_errors = [o.errors for o in cfg.operations]
        self._lock = threading.Lock()
        self._clear()
        _fork.track(self)

    # Life cycle ---------------------------------------------------------------------------
    def _clear(self) -> None:
        m = len(self._config.kpis)
        cfg = self._config
        # Key ids index ``_keys``; an expired key leaves None there and its id on the heap
        # ``_free``, which hands out the smallest free id first (both twins alike).
        self._keys: list[tuple[str, ...] | None] = []
        self._key_of: dict[tuple[str, ...], int] = {}
        self._free: list[int] = []
        self._raw: dict[tuple[str, ...], int] = {}
        # End time of the newest span of each key id (FREE when the id is free); the
        # overflow key's entry is last and never expires.
        self._last_seen = [FREE] * (cfg.max_keys + 1)
        self._ttl_ns = cfg.key_ttl_ns
        self._sweep_due = FREE  # start of the newest sub-window, once a sweep is due
        self._swept = FREE
        self._doorkeeper = (Doorkeeper(cfg.admission_count, cfg.admission_window_ns)
                            if cfg.admission_count > 1 else None)
        # With a multi-process directory, expired keys' final rows wait here for the state
        # writer (``snapshot_and_expired``), so that merged counters never go back.
        self._expired: list[Expired] = []
        # Spans update only their sub-window; a sub-window folds into ``_retired`` when its
        # ring slot is reused. The cumulative view is retired + ring, merged on read, so
        # each span costs one state update instead of two.
        self._retired = _State(m)
        self._ring = [_State(m) for _ in range(self._config.window_slots)]
        self._ring_epoch = [-1] * self._config.window_slots
        self._newest_epoch = -1
        self._dropped = [0] * len(DROP_REASONS)
        self._recorded = 0  # observations committed, for ``changes()``
        # Per operation, requests and good ones (interleaved: 2i, 2i + 1): a ring of
        # sub-windows of its own, on the same slots as the keys' ring, and the retired sum.
        # The operations are configured, so these never expire.
        width = 2 * len(cfg.operations)
        self._op_retired = [0] * width
        self._op_ring = [[0] * width for _ in range(cfg.window_slots)]
        self._op_epoch = [-1] * cfg.window_slots
        self._op_newest = -1
        # Cumulative exports start here: backends compute rates from it across restarts.
        self._started_ns = time.time_ns()
        self._sessions = (SessionTable(cfg.max_sessions, cfg.session_timeout_ns, cfg.journeys)
                          if cfg.max_sessions else None)
        # Key id -> session-table row of the key's page group.
        self._key_group: list[int] = []

    def reset(self) -> None:
        """Forget everything: keys, statistics, windows and drop counters."""
        with self._lock:
            self._clear()

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # the parent's lock may have been held at fork
        self._clear()

    @property
    def config(self) -> Config:
        return self._config

    # Keys ----------------------------------------------------------------------------------
    def _key_id(self, raw: tuple[str, ...], end_ns: int, sightings: int = 1) -> int:
        """Key id of raw dimension values (exact ``str`` or already sanitised), seen in a
        span ending at ``end_ns`` (``sightings`` times, for a batch). A value remembered as
        overflow takes the slow path when a sweep is due: expired keys may have made room."""
        key_id = self._raw.get(raw)
        if key_id is not None and not (key_id == self._config.max_keys
                                       and self._sweep_due > self._swept):
            return key_id
        limit = self._config.max_value_length
        clean = tuple(sanitize_dimension(v, limit) for v in raw)
        with self._lock:
            self._sweep_if_due()
            key_id = self._key_of.get(clean)
            if key_id is None:
                key_id = self._create_key(clean, end_ns, sightings)
                if key_id < 0:  # not admitted yet: every sighting must reach the sketch
                    return self._config.max_keys
            if len(self._raw) < RAW_ENTRIES_PER_KEY * (self._config.max_keys + 1):
                self._raw[raw] = key_id
        return key_id

    def _create_key(self, clean: tuple[str, ...], end_ns: int, sightings: int) -> int:
        """A new key's id, the overflow key's when keys are at ``max_keys``, or -1 while
        the doorkeeper has not seen it ``admission_count`` times. Called with the lock."""
        if (self._doorkeeper is not None
                and not self._doorkeeper.admit(clean, end_ns, sightings)):
            return -1
        if len(self._keys) - len(self._free) >= self._config.max_keys:
            return self._config.max_keys  # the overflow key
        if self._free:
            key_id = heapq.heappop(self._free)
            self._keys[key_id] = clean
        else:
            key_id = len(self._keys)
            self._keys.append(clean)
        self._key_of[clean] = key_id
        self._last_seen[key_id] = end_ns
        if self._sessions is not None:
            page = clean[self._page_at] if self._page_at >= 0 else MISSING
            group = self._sessions.group_row(page)
            if key_id < len(self._key_group):
                self._key_group[key_id] = group
            else:
                self._key_group.append(group)
        return key_id

    # Expiry --------------------------------------------------------------------------------
    def _sweep_if_due(self) -> None:
        """Run the sweep a sub-window roll asked for (see ``_target``). Called with the lock,
        on the slow path only: capacity matters when a key is about to be created."""
        if self._sweep_due > self._swept:
            self._sweep(self._sweep_due)

    def _sweep(self, now_ns: int) -> None:
        """Expire every key whose newest span ended ``key_ttl`` or more before ``now_ns``:
        its rows leave every state, its id is free again, and lookups that led to it or to
        the overflow key are forgotten (the overflow ones may fit now). Called with the
        lock; O(keys)."""
        self._swept = max(self._swept, now_ns)
        if not self._ttl_ns:
            return
        horizon = now_ns - self._ttl_ns
        last_seen = self._last_seen
        gone = {key_id for key_id in range(len(self._keys))
                if last_seen[key_id] != FREE and last_seen[key_id] <= horizon}
        if not gone:
            return
        if self._config.multiproc_dir is not None:
            self._keep_expired(sorted(gone))
        for key_id in sorted(gone):
            key = self._keys[key_id]
            assert key is not None
            del self._key_of[key]
            self._keys[key_id] = None
            last_seen[key_id] = FREE
            heapq.heappush(self._free, key_id)
        self._retired.drop(gone)
        for state in self._ring:
            state.drop(gone)
        overflow = self._config.max_keys
        self._raw = {raw: key_id for raw, key_id in self._raw.items()
                     if key_id != overflow and key_id not in gone}

    def _keep_expired(self, gone: list[int]) -> None:
        """Keep the final cumulative rows of the keys in ``gone``, before they leave, for
        ``snapshot_and_expired``; at most ``max_keys`` rows, the oldest going first when
        no writer takes them."""
        parts = [self._retired.dump(), *(state.dump() for state in self._ring)]
        names = {key_id: key for key_id in gone if (key := self._keys[key_id]) is not None}
        self._expired.append(expired_rows(parts, len(self._config.kpis), names, gone))
        while sum(e.state.rows for e in self._expired) > self._config.max_keys:
            self._expired.pop(0)

    def _span_dims(self, attributes: Mapping[str, Any],
                   fallback: tuple[str, ...] | None) -> tuple[str, ...]:
        values = [attributes.get(k) for k in self._dim_keys]
        if fallback is not None:
            values = [fallback[i] if v is None else v for i, v in enumerate(values)]
        return tuple(self._raw_value(v) for v in values)

    def _raw_value(self, value: object) -> str:
        if value is None:
            return MISSING
        if type(value) is str:
            return value
        return sanitize_dimension(value, self._config.max_value_length)

    # Recording -----------------------------------------------------------------------------
    def _drop(self, reason: int) -> None:
        with self._lock:
            self._dropped[reason] += 1

    def _target(self, end_ns: int) -> _State:
        """The state a span ending at ``end_ns`` goes to: its sub-window, or the retired
        state for stragglers older than the whole ring."""
        epoch = end_ns // self._slot_ns
        index = epoch % len(self._ring)
        if epoch <= self._newest_epoch - len(self._ring):
            return self._retired
        if epoch > self._newest_epoch:
            self._newest_epoch = epoch
            self._sweep_due = epoch * self._slot_ns
        if self._ring_epoch[index] != epoch:
            if epoch < self._ring_epoch[index]:
                return self._retired
            self._retired.merge_from(self._ring[index])
            self._ring[index] = _State(len(self._config.kpis))
            self._ring_epoch[index] = epoch
        return self._ring[index]

    def _touch(self, key_id: int, end_ns: int) -> int:
        """Note the key's newest span end; the overflow key's id if the key expired since
        it was looked up (another thread swept it), so that no row outlives its key. (Were
        its id given to a new key in that instant too, the span would count there: a key
        idle for ``key_ttl`` and a new one, both within microseconds; accepted.)"""
        seen = self._last_seen[key_id]
        if seen == FREE:
            key_id = self._config.max_keys
            seen = self._last_seen[key_id]
        if end_ns > seen:
            self._last_seen[key_id] = end_ns
        return key_id

    def _commit(self, key_id: int, t: float, values: list[tuple[int, float]],
                drops: list[int], error: bool, end_ns: int, session: object = None) -> None:
        self._recorded += 1
        outcome = OUTCOME_NONE
        revenue = 0.0
        for j, v in values:
            if j == self._outcome:
                outcome = OUTCOME_CONVERTED if v == 1.0 else OUTCOME_NOT_CONVERTED
            if j == self._revenue:
                revenue = v
        bucket = bucket_of(t)
        with self._lock:
            for reason in drops:
                self._dropped[reason] += 1
            key_id = self._touch(key_id, end_ns)
            self._target(end_ns).add(key_id, t, bucket, outcome, values, error)
            if session is None or self._sessions is None:
                return
            if type(session) is not str or not session:
                self._dropped[_SESSION_INVALID] += 1
                return
            group = (self._key_group[key_id] if key_id < len(self._key_group)
                     else SESSION_ROW_OVERFLOW)
            self._sessions.touch(session, group, t, outcome == OUTCOME_CONVERTED, revenue,
                                 end_ns)

    def record_span(self, attributes: Mapping[str, Any], start_ns: int, end_ns: int,
                    error: bool = False, fallback: tuple[str, ...] | None = None) -> None:
        """Record one finished span from its attribute mapping. Never raises.

        ``fallback`` gives, per dimension, the value to use when the span lacks that
        attribute (the span processor passes the page group it derived from the route).
        """
        if (type(start_ns) is not int or type(end_ns) is not int or end_ns < start_ns
                or start_ns < _INT64_MIN or end_ns > _INT64_MAX):
            self._drop(_LATENCY_INVALID)
            return
        try:
            raw = self._span_dims(attributes, fallback)
            values: list[tuple[int, float]] = []
            drops: list[int] = []
            for j, (attribute, binary, low, high) in enumerate(self._kpi_specs):
                value = attributes.get(attribute)
                if value is None:
                    continue
                number, reason = classify_kpi(value, binary, low, high)
                if reason < 0:
                    values.append((j, number))
                else:
                    drops.append(reason)
            session = attributes.get(SESSION_ID) if self._sessions is not None else None
        except Exception:
            self._drop(_UNREADABLE)
            return
        self._commit(self._key_id(raw, end_ns), (end_ns - start_ns) * 1e-9, values, drops,
                     _truthy(error), end_ns, session)

    def record(self, dims: tuple[Any, ...], latency_s: float,
               kpis: Mapping[str, Any] | None = None, *, error: bool = False,
               end_ns: int | None = None, session: str | None = None) -> None:
        """Record one observation by dimension values and KPI names. Never raises.

        ``session`` is the session id the request belongs to, if any.
        """
        try:
            latency = _seconds(latency_s)
            if latency is None:
                self._drop(_LATENCY_INVALID)
                return
            if len(dims) != len(self._dim_keys):
                self._drop(DROP_INDEX["dimension_arity"])
                return
            raw = tuple(self._raw_value(v) for v in dims)
            values: list[tuple[int, float]] = []
            drops: list[int] = []
            for name, value in (kpis or {}).items():
                j = self._kpi_index.get(name)
                if j is None:
                    drops.append(DROP_INDEX["kpi_unknown"])
                    continue
                if value is None:
                    continue
                _, binary, low, high = self._kpi_specs[j]
                number, reason = classify_kpi(value, binary, low, high)
                if reason < 0:
                    values.append((j, number))
                else:
                    drops.append(reason)
            values.sort()
            when = time.time_ns() if end_ns is None else end_timestamp(end_ns)
            if when is None:
                self._drop(_LATENCY_INVALID)
                return
            failed = _truthy(error)
        except Exception:
            self._drop(_UNREADABLE)
            return
        self._commit(self._key_id(raw, when), latency, values, drops, failed, when, session)

    def record_many(self, dims: tuple[Any, ...], latency_s: npt.ArrayLike,
                    kpis: Mapping[str, npt.ArrayLike] | None = None, *,
                    errors: npt.ArrayLike | None = None, end_ns: int | None = None) -> None:
        """Record a batch for one key. NaN in a KPI array means "no value on that row".

        Shape mismatches and unknown KPI names are programming errors and raise
        ``ValueError``; bad values are counted and dropped as on the hot path.
        """
        latency, columns, error_twins = batch_inputs(self._config, dims, latency_s, kpis,
                                                      errors)
        when = batch_end(end_ns)
        batch, drops = self._reduce_batch(latency, columns, error_twins)
        key_id = self._key_id(tuple(self._raw_value(v) for v in dims), when,
                              max(batch.count, 1))
        with self._lock:
            for reason, hits in drops.items():
                self._dropped[reason] += hits
            if batch.count:
                self._recorded += batch.count
                key_id = self._touch(key_id, when)
                self._target(when).add_batch(key_id, batch)

    def _reduce_batch(self, latency: npt.NDArray[np.float64],
                      columns: dict[int, npt.NDArray[np.float64]],
                      error_twins: npt.NDArray[np.bool_]) -> tuple[_Batch, dict[int, int]]:
        drops: dict[int, int] = {}
        valid = np.isfinite(latency) & (latency >= 0.0)
        if (bad := int((~valid).sum())):
            drops[_LATENCY_INVALID] = bad
        t = latency[valid]
        batch = _Batch()
        batch.count = int(t.shape[0])
        batch.errors = int(error_twins[valid].sum())
        batch.latency_sum = float(t.sum())
        outcome = np.full(t.shape[0], OUTCOME_NONE, np.int64)
        for j, column in sorted(columns.items()):
            v = column[valid]
            _, binary, low, high = self._kpi_specs[j]
            ok = _count_kpi_drops(v, binary, low, high, drops)
            if j == self._outcome:
                outcome[ok] = np.where(v[ok] == 1.0, OUTCOME_CONVERTED, OUTCOME_NOT_CONVERTED)
            if ok.any():
                batch.kpis[j] = _batch_moments(t[ok], v[ok])
        buckets = _buckets(t)
        codes, hits = np.unique(outcome * BUCKETS + buckets, return_counts=True)
        batch.histogram = {(int(c) // BUCKETS, int(c) % BUCKETS): int(h)
                           for c, h in zip(codes, hits, strict=True)}
        return batch, drops

    # Operations --------------------------------------------------------------------------
    def _op_target(self, end_ns: int) -> list[int]:
        """The operation counts a span ending at ``end_ns`` goes to; as ``_target``."""
        slots = len(self._op_ring)
        epoch = end_ns // self._slot_ns
        index = epoch % slots
        if epoch <= self._op_newest - slots:
            return self._op_retired
        self._op_newest = max(self._op_newest, epoch)
        if self._op_epoch[index] != epoch:
            if epoch < self._op_epoch[index]:
                return self._op_retired
            retired, counts = self._op_retired, self._op_ring[index]
            for i, hits in enumerate(counts):
                retired[i] += hits
                counts[i] = 0
            self._op_epoch[index] = epoch
        return self._op_ring[index]

    def record_operations(self, operations: tuple[int, ...], start_ns: int, end_ns: int,
                          error: bool = False) -> None:
        """Count one request span in the operations it belongs to (indices into
        ``config.operations``): in each, a request, and a good one when its latency
        ``end_ns - start_ns`` is at most the threshold in nanoseconds and, for an operation
        that counts errors, ``error`` is false. Never raises; a span with bad timestamps
        is not counted (``record_span`` counts its drop), nor an unknown index."""
        if (type(start_ns) is not int or type(end_ns) is not int or end_ns < start_ns
                or start_ns < _INT64_MIN or end_ns > _INT64_MAX):
            return
        latency = end_ns - start_ns
        failed = _truthy(error)
        thresholds, errors = self._op_threshold, self._op_errors
        try:
            chosen = [i for i in operations if type(i) is int and 0 <= i < len(thresholds)]
        except Exception:
            return
        with self._lock:
            counts = self._op_target(end_ns)
            for i in chosen:
                counts[2 * i] += 1
                if latency <= thresholds[i] and not (failed and errors[i]):
                    counts[2 * i + 1] += 1

    def _op_counts(self, now_ns: int) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
        """(cumulative, recent) operation counts; called with the lock."""
        n = len(self._op_threshold)
        current = now_ns // self._slot_ns
        slots = len(self._op_ring)
        cumulative = operation_counts(n)
        recent = operation_counts(n)
        cumulative += np.array(self._op_retired, np.uint64).reshape(n, 2)
        for counts, epoch in zip(self._op_ring, self._op_epoch, strict=True):
            block = np.array(counts, np.uint64).reshape(n, 2)
            cumulative += block
            if current - slots < epoch <= current:
                recent += block
        return cumulative, recent

    # Reading -------------------------------------------------------------------------------
    def snapshot(self, now_ns: int | None = None) -> Snapshot:
        """An immutable copy of the state; ``recent()`` covers the last ``window`` seconds."""
        return self._snapshot(now_ns, False)[0]

    def changes(self) -> int:
        """Observations recorded plus drops counted since the aggregator started (or was
        reset, or forked): it grows whenever the state changes, and reading it costs no
        snapshot. The state writer reads it to write only a state that changed."""
        return self._recorded + sum(self._dropped)

    def snapshot_and_expired(self, now_ns: int | None = None) -> tuple[Snapshot, list[Expired]]:
        """A snapshot, and the final cumulative rows of the keys that expired since the
        last call, taken together: no key is in both, none in neither. Expired rows are
        kept only when ``multiproc_dir`` is configured (at most ``max_keys`` of them), for
        the state writer of ``export/multiproc.py``."""
        return self._snapshot(now_ns, True)

    def _snapshot(self, now_ns: int | None, take: bool) -> tuple[Snapshot, list[Expired]]:
        now = time.time_ns() if now_ns is None else now_ns
        current = now // self._slot_ns
        slots = len(self._ring)
        taken: list[Expired] = []
        with self._lock:
            self._sweep(now)
            if take:
                taken, self._expired = self._expired, []
            keys = list(self._keys)
            retired = self._retired.dump()
            ring = [(state.dump(), epoch) for state, epoch in zip(self._ring, self._ring_epoch,
                                                                 strict=True)]
            dropped = list(self._dropped)
            sessions = self._sessions.dump(now) if self._sessions is not None else None
            started = self._started_ns
            operations, recent_operations = self._op_counts(now)
        kpis = len(self._config.kpis)
        cumulative = merge_states([retired, *(state for state, _ in ring)], kpis)
        recent = merge_states([state for state, epoch in ring
                               if current - slots < epoch <= current], kpis)
        return Snapshot.from_state(self._config, keys, cumulative, dropped, recent, now,
                                   sessions, started_ns=started, operations=operations,
                                   recent_operations=recent_operations), taken


def _truthy(flag: object) -> bool:
    """An error flag's truth; a flag whose truth cannot be told is no error."""
    try:
        return bool(flag)
    except Exception:
        return False


def _seconds(latency_s: object) -> float | None:
    """A latency in seconds as a float, or None when it is not a finite, non-negative
    number (an integer past every float is not finite either)."""
    if isinstance(latency_s, bool) or not isinstance(latency_s, float | int):
        return None
    try:
        latency = float(latency_s)
    except OverflowError:
        return None
    return latency if 0.0 <= latency < math.inf else None


def _buckets(t: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Vectorised :func:`bucket_of`."""
    with np.errstate(divide="ignore"):
        raw = 1 + np.floor(np.log(np.clip(t, LOWEST, HIGHEST) * INV_LOWEST) * INV_LOG_GROWTH)
    buckets: npt.NDArray[np.int64] = np.minimum(raw, BUCKETS - 1).astype(np.int64)
    buckets[t < LOWEST] = 0
    return buckets


def _count_kpi_drops(v: npt.NDArray[np.float64], binary: bool, low: float, high: float,
                     drops: dict[int, int]) -> npt.NDArray[np.bool_]:
    """Mask of valid values (NaN means absent); counts the rest by reason."""
    present = ~np.isnan(v)
    infinite = np.isinf(v)
    finite = present & ~infinite
    if binary:
        bad = {"kpi_not_binary": finite & (v != 0.0) & (v != 1.0)}
    else:
        bad = {"kpi_below_minimum": finite & (v < low), "kpi_above_maximum": finite & (v > high)}
    bad["kpi_infinite"] = infinite
    ok = finite.copy()
    for reason, mask in bad.items():
        if (hits := int(mask.sum())):
            drops[DROP_INDEX[reason]] = drops.get(DROP_INDEX[reason], 0) + hits
        ok &= ~mask
    return ok


def _batch_moments(t: npt.NDArray[np.float64],
                   v: npt.NDArray[np.float64]) -> tuple[int, list[float]]:
    """Two-pass co-moments of one batch, plus its raw sums."""
    mean_t = float(t.mean())
    mean_v = float(v.mean())
    dt = t - mean_t
    dv = v - mean_v
    return int(t.shape[0]), [
        mean_t, mean_v, float(dt @ dt), float(dv @ dv), float(dt @ dv),
        float(t.sum()), float(t @ t), float(v.sum()), float(v @ v), float(t @ v),
    ]


