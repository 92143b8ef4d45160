"""Snapshots to bytes and back, so another process can read and merge them.

The format is a numpy ``.npz`` archive: the state arrays of the cumulative and the recent
view and the session counts, plus a JSON header with the key table, the session groups,
the drop counters and the KPI and dimension definitions needed to interpret them. Files
are written atomically (temp file, rename), so a reader never sees half a snapshot.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config, Kpi
from ._session_state import SessionArrays
from ._state import StateArrays
from .snapshot import Snapshot

FORMAT_VERSION = 2
_FIELDS = [f.name for f in dataclasses.fields(StateArrays)]
_SESSION_FIELDS = [f.name for f in dataclasses.fields(SessionArrays) if f.name != "groups"]


def dumps(snapshot: Snapshot) -> bytes:
    config = snapshot.config
    header = {
        "format": FORMAT_VERSION,
        "kpis": [dataclasses.asdict(k) for k in config.kpis],
        "dimensions": list(config.dimensions),
        "outcome": config.outcome,
        "export_derived": config.export_derived,
        "keys": [list(k) for k in snapshot.key_table],
        "dropped": dict(snapshot.dropped),
        "taken_ns": snapshot.taken_ns,
        "started_ns": snapshot.started_ns,
    }
    sessions = snapshot.session_arrays
    arrays: dict[str, Any] = {}
    if sessions is not None:
        header["session_groups"] = list(sessions.groups)
        for name in _SESSION_FIELDS:
            arrays[f"sessions.{name}"] = getattr(sessions, name)
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    for prefix, state in (("cumulative", snapshot.state), ("recent", snapshot.recent().state)):
        for name in _FIELDS:
            arrays[f"{prefix}.{name}"] = getattr(state, name)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def loads(data: bytes) -> Snapshot:
    """The snapshot in ``data``; ``ValueError`` when it is not one this version reads."""
    try:
        return _loads(data)
    except (OSError, KeyError, TypeError, json.JSONDecodeError, zipfile.BadZipFile) as error:
        raise ValueError(f"not a bizops-otel snapshot: {error}") from None


def _loads(data: bytes) -> Snapshot:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        header = json.loads(bytes(archive["header"]).decode())
        if header.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported snapshot format {header.get('format')!r}")
        config = Config(kpis=tuple(Kpi(**k) for k in header["kpis"]),
                        dimensions=tuple(header["dimensions"]), outcome=header["outcome"],
                        export_derived=bool(header.get("export_derived", True)))
        states = {prefix: StateArrays(*(np.array(archive[f"{prefix}.{name}"])
                                        for name in _FIELDS))
                  for prefix in ("cumulative", "recent")}
        sessions = None
        if "session_groups" in header:
            sessions = SessionArrays(tuple(header["session_groups"]),
                                     *(np.array(archive[f"sessions.{name}"])
                                       for name in _SESSION_FIELDS))
    keys = [tuple(k) for k in header["keys"]]
    started = header.get("started_ns")  # absent from files of earlier releases
    recent = Snapshot(config, keys, states["recent"], {}, None, header["taken_ns"],
                      started_ns=started)
    return Snapshot(config, keys, states["cumulative"], header["dropped"], recent,
                    header["taken_ns"], sessions, started_ns=started)


def write(snapshot: Snapshot, path: str | os.PathLike[str]) -> None:
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_bytes(dumps(snapshot))
    os.replace(temporary, target)


def read(path: str | os.PathLike[str]) -> Snapshot:
    return loads(Path(path).read_bytes())
