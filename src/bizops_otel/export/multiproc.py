"""Per-process state in a shared directory, merged exactly at scrape time.

Pre-fork servers (gunicorn, uwsgi) run one aggregator per worker. Each worker writes its
snapshot to ``multiproc_dir`` within ``multiproc_flush_interval`` of a change, at least every
``multiproc_interval`` seconds, and at shutdown (a periodic task started by ``install()``;
a worker killed with SIGKILL loses what it recorded since its last write); whoever serves
the scrape merges all of them (:func:`merged_snapshot`). prometheus_client's own
multi-process mode cannot do this for a custom collector; bizops-otel's statistics are
mergeable, so it can.

A dead worker's last state keeps counting, so totals never go backwards: at the next
merge its file is folded into ``bizops-archive.npz`` (cumulative state only: its recent
window is over) and removed, so the directory holds one file per live worker plus one.
The archive names the files it has folded, so a merge interrupted between writing the
archive and removing the file never counts it twice.

Keys expire in each worker on their own (``key_ttl``), which must not make a merged
counter go back while another worker still serves the key: Prometheus would read the drop
as a reset and ``rate()`` would count the other workers' whole total again. So a worker
keeps the final rows of its expired keys (:class:`Retirements`) and writes them beside its
state, in the same atomic file. The merge exports a key while it is live somewhere (in a
live worker's state or in the archive) and adds every retired row of it; a key live
nowhere is not exported at all (its series end), and its retired rows are void from then
on: the merge lists them in ``bizops-retired.void.json``, never counts them again, and the
workers read that list to forget them. Export and voiding are decided together, under one
lock, so a key's merged counter never decreases while its series exists.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..aggregate import persist
from ..aggregate._state import Expired, StateArrays, merge_states, rows_of, stack_rows
from ..aggregate.persist import Retired
from ..aggregate.snapshot import Key, Snapshot

_logger = logging.getLogger("bizops_otel")
ARCHIVE = "bizops-archive.npz"
_FOLDED = "bizops-archive.folded.json"
VOID = "bizops-retired.void.json"
_fold_lock = threading.Lock()


def state_file(directory: str | os.PathLike[str], pid: int | None = None) -> Path:
    return Path(directory) / f"bizops-{os.getpid() if pid is None else pid}.npz"


def _pid_of(path: Path) -> int | None:
    stem = path.name.removeprefix("bizops-").removesuffix(".npz")
    return int(stem) if stem.isdigit() else None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _without_recent(snapshot: Snapshot) -> Snapshot:
    empty = snapshot.recent()
    empty_state = empty.state.__class__.empty(len(snapshot.config.kpis))
    recent = Snapshot(snapshot.config, empty.key_table, empty_state, {}, None, snapshot.taken_ns,
                      started_ns=snapshot.started_ns)
    return Snapshot(snapshot.config, snapshot.key_table, snapshot.state, snapshot.dropped,
                    recent, snapshot.taken_ns, snapshot.session_arrays,
                    started_ns=snapshot.started_ns, operations=snapshot.operation_counts)


def read_void(directory: str | os.PathLike[str]) -> set[str]:
    """The retired rows the merge has voided (their key was live nowhere)."""
    try:
        return set(json.loads((Path(directory) / VOID).read_text()))
    except (OSError, ValueError):
        return set()


def _write_json(path: Path, value: list[str]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(value))
    os.replace(temporary, path)


def _retired_snapshot(like: Snapshot, retired: Sequence[tuple[Key, StateArrays]]) -> Snapshot:
    """Retired rows as a cumulative-only snapshot, rows of one key merged."""
    kpis = len(like.config.kpis)
    table: dict[Key, int] = {}
    for key, _ in retired:
        table.setdefault(key, len(table))
    stacked = stack_rows([state for _, state in retired], kpis)
    ids = np.array([table[key] for key, _ in retired], np.int64)
    state = merge_states([stacked.with_key_ids(ids)], kpis)
    keys = list(table)
    empty = Snapshot(like.config, keys, StateArrays.empty(kpis), {}, None, like.taken_ns,
                     started_ns=like.started_ns)
    return Snapshot(like.config, keys, state, {}, empty, like.taken_ns,
                    started_ns=like.started_ns)


def _row(retired: Retired, index: int) -> StateArrays:
    return rows_of(retired.state, np.array([index], np.int64))


class _Merge:
    """One merge's view of the directory: what every file holds, and which keys are live
    anywhere (in a live worker, in a dead one about to be archived, or in the archive)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.void = read_void(root)
        self.files: dict[Path, tuple[Snapshot, Retired]] = {}
        for path in sorted(root.glob("bizops-*.npz")):
            try:
                self.files[path] = persist.read_with_retired(path)
            except (OSError, ValueError):
                continue  # vanished or being replaced; the next scrape reads it
        self.live: set[Key] = set()
        for snapshot, _ in self.files.values():
            self.live.update(snapshot)
        self.listed = {rid for _, retired in self.files.values() for rid in retired.ids}
        self.newly_void: set[str] = set()

    def kept_rows(self, retired: Retired) -> list[tuple[Key, StateArrays]]:
        """The retired rows that count: not void, of a key live somewhere. The others of
        a key live nowhere become void now."""
        kept = []
        for index, (rid, key) in enumerate(zip(retired.ids, retired.keys, strict=True)):
            if rid in self.void or rid in self.newly_void:
                continue
            if key in self.live:
                kept.append((key, _row(retired, index)))
            else:
                self.newly_void.add(rid)
        return kept

    def save_void(self) -> None:
        """Record the rows voided now; forget ids no file lists any more."""
        void = (self.void | self.newly_void) & self.listed
        if void != self.void:
            _write_json(self.root / VOID, sorted(void))


def _fold_dead(merge: _Merge) -> None:
    """Move the state of workers that are gone into the archive (with their retired rows
    that still count)."""
    directory = merge.root
    folded_path = directory / _FOLDED
    folded: set[str] = set(json.loads(folded_path.read_text())) if folded_path.exists() else set()
    archive_path = directory / ARCHIVE
    archive = merge.files.get(archive_path, (None, None))[0]
    for path in sorted(directory.glob("bizops-*.npz")):
        pid = _pid_of(path)
        if pid is None or _alive(pid):
            continue
        identity = f"{path.name}:{path.stat().st_mtime_ns}"
        if identity not in folded:
            snapshot, retired = merge.files.get(path) or persist.read_with_retired(path)
            dead = _without_recent(snapshot)
            kept = merge.kept_rows(retired)
            if kept:
                dead = dead.merge(_retired_snapshot(dead, kept))
            archive = dead if archive is None else archive.merge(dead)
            folded.add(identity)
            persist.write(archive, archive_path)
            _write_json(folded_path, sorted(folded))
            merge.files[archive_path] = (archive, Retired.empty(len(archive.config.kpis)))
        merge.files.pop(path, None)
        path.unlink(missing_ok=True)
    # Forget identities whose files are gone, so the list stays as short as the directory.
    remaining = {f"{p.name}:{p.stat().st_mtime_ns}" for p in directory.glob("bizops-*.npz")
                 if _pid_of(p) is not None}
    if folded - remaining and folded_path.exists():
        folded_path.write_text(json.dumps(sorted(folded & remaining)))


def merged_snapshot(directory: str | os.PathLike[str]) -> Snapshot | None:
    """Every worker's state (live ones and the archive of dead ones), merged, with the
    retired rows of keys still live somewhere."""
    root = Path(directory)
    if not root.is_dir():
        return None
    with _fold_lock:
        merge = _Merge(root)
        try:
            _fold_dead(merge)
        except Exception:
            _logger.exception("bizops-otel: could not fold dead workers' state")
        merged: Snapshot | None = None
        retired: list[tuple[Key, StateArrays]] = []
        for snapshot, rows in merge.files.values():
            merged = snapshot if merged is None else merged.merge(snapshot)
            retired.extend(merge.kept_rows(rows))
        if merged is not None and retired:
            merged = merged.merge(_retired_snapshot(merged, retired))
        try:
            merge.save_void()
        except OSError:
            _logger.exception("bizops-otel: could not record the retired rows it voided")
    return merged


class Retirements:
    """A worker's retired rows: the final cumulative rows of keys that expired in it,
    written beside its state until the merge voids them (see the module docstring).

    At most ``limit`` rows are kept: should no merge run for long while keys keep
    expiring, the oldest go first, and a merged counter could then go back once.
    """

    def __init__(self, directory: str | os.PathLike[str], kpis: int, limit: int) -> None:
        self._directory = Path(directory)
        self._kpis = kpis
        self._limit = limit
        self._serial = 0
        self._retired = Retired.empty(kpis)

    def add(self, expired: Sequence[Expired]) -> None:
        """Keep the rows of keys that expired (``Aggregator.take_expired()``)."""
        if not expired:
            return
        ids = list(self._retired.ids)
        keys = list(self._retired.keys)
        for batch in expired:
            for index in batch.state.key_ids.tolist():
                ids.append(f"{os.getpid()}-{self._serial}")
                keys.append(batch.keys[index])
                self._serial += 1
        state = stack_rows([self._retired.state, *(e.state for e in expired)], self._kpis)
        self._retired = Retired(tuple(ids), tuple(keys), state)
        if len(ids) > self._limit:
            self._keep(range(len(ids) - self._limit, len(ids)))

    def _keep(self, rows: Sequence[int]) -> None:
        chosen = np.asarray(list(rows), np.int64)
        state = rows_of(self._retired.state, chosen)
        self._retired = Retired(tuple(self._retired.ids[i] for i in rows),
                                tuple(self._retired.keys[i] for i in rows),
                                state.with_key_ids(np.arange(state.rows, dtype=np.int64)))

    def current(self) -> Retired:
        """The rows to write now: those the merge has not voided."""
        if self._retired.ids:
            void = read_void(self._directory)
            if void.intersection(self._retired.ids):
                self._keep([i for i, rid in enumerate(self._retired.ids) if rid not in void])
        return self._retired
