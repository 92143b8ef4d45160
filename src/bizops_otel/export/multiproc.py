"""Per-process state in a shared directory, merged exactly at scrape time.

Pre-fork servers (gunicorn, uwsgi) run one aggregator per worker. Each worker writes its
snapshot to ``multiproc_dir`` every ``multiproc_interval`` seconds and at shutdown (a
periodic task started by ``install()``); whoever serves the scrape merges all of them
(:func:`merged_snapshot`). prometheus_client's own multi-process mode cannot do this for
a custom collector; bizops-otel's statistics are mergeable, so it can.

A dead worker's last state keeps counting, so totals never go backwards: at the next
merge its file is folded into ``bizops-archive.npz`` (cumulative state only: its recent
window is over) and removed, so the directory holds one file per live worker plus one.
The archive names the files it has folded, so a merge interrupted between writing the
archive and removing the file never counts it twice.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from ..aggregate import persist
from ..aggregate.snapshot import Snapshot

_logger = logging.getLogger("bizops_otel")
ARCHIVE = "bizops-archive.npz"
_FOLDED = "bizops-archive.folded.json"
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
                    started_ns=snapshot.started_ns)


def _fold_dead(directory: Path) -> None:
    """Move the state of workers that are gone into the archive."""
    folded_path = directory / _FOLDED
    folded: set[str] = set(json.loads(folded_path.read_text())) if folded_path.exists() else set()
    archive_path = directory / ARCHIVE
    for path in sorted(directory.glob("bizops-*.npz")):
        pid = _pid_of(path)
        if pid is None or _alive(pid):
            continue
        identity = f"{path.name}:{path.stat().st_mtime_ns}"
        if identity not in folded:
            dead = _without_recent(persist.read(path))
            archive = (persist.read(archive_path).merge(dead) if archive_path.exists()
                       else dead)
            folded.add(identity)
            persist.write(archive, archive_path)
            temporary = folded_path.with_suffix(".tmp")
            temporary.write_text(json.dumps(sorted(folded)))
            os.replace(temporary, folded_path)
        path.unlink(missing_ok=True)
    # Forget identities whose files are gone, so the list stays as short as the directory.
    remaining = {f"{p.name}:{p.stat().st_mtime_ns}" for p in directory.glob("bizops-*.npz")
                 if _pid_of(p) is not None}
    if folded - remaining and folded_path.exists():
        folded_path.write_text(json.dumps(sorted(folded & remaining)))


def merged_snapshot(directory: str | os.PathLike[str]) -> Snapshot | None:
    """Every worker's state (live ones and the archive of dead ones), merged."""
    root = Path(directory)
    if not root.is_dir():
        return None
    with _fold_lock:
        try:
            _fold_dead(root)
        except Exception:
            _logger.exception("bizops-otel: could not fold dead workers' state")
    merged: Snapshot | None = None
    for path in sorted(root.glob("bizops-*.npz")):
        try:
            snapshot = persist.read(path)
        except (OSError, ValueError):
            continue  # vanished or being replaced; the next scrape reads it
        merged = snapshot if merged is None else merged.merge(snapshot)
    return merged
