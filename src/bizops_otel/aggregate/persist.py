"""Snapshots to bytes and back, so another process can read and merge them.

The format is a numpy ``.npz`` archive: the state arrays of the cumulative and the recent
view and the session counts, plus a JSON header with the key table, the session groups,
the drop counters and the KPI and dimension definitions needed to interpret them. A
worker's file may also carry :class:`Retired` rows, the final rows of its expired keys
(see ``export/multiproc.py``). Files are written atomically (temp file, rename), so a
reader never sees half a snapshot.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config, Kpi, Operation
from ._flow_state import FLOW_FIELDS, FlowArrays
from ._journey_state import JOURNEY_ARRAY_FIELDS, JourneyArrays
from ._session_state import SessionArrays
from ._state import StateArrays
from .snapshot import Key, Snapshot

FORMAT_VERSION = 3
#: Formats this version reads: 2 has no retired rows.
_READS = (2, 3)
_FIELDS = [f.name for f in dataclasses.fields(StateArrays)]
_SESSION_FIELDS = [f.name for f in dataclasses.fields(SessionArrays)
                   if f.name not in ("groups", "journeys", "flow")]


@dataclass(frozen=True)
class Retired:
    """A worker's retired rows: entry ``i`` is row ``i`` of ``state``, the final cumulative
    row of key ``keys[i]`` when it expired, named ``ids[i]`` (unique across workers)."""

    ids: tuple[str, ...]
    keys: tuple[Key, ...]
    state: StateArrays

    @staticmethod
    def empty(kpis: int) -> Retired:
        return Retired((), (), StateArrays.empty(kpis))


def dumps(snapshot: Snapshot, retired: Retired | None = None) -> bytes:
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
        "operations": [dataclasses.asdict(o) for o in config.operations],
    }
    sessions = snapshot.session_arrays
    arrays: dict[str, Any] = {}
    if sessions is not None:
        header["session_groups"] = list(sessions.groups)
        for name in _SESSION_FIELDS:
            arrays[f"sessions.{name}"] = getattr(sessions, name)
        _dump_journeys(sessions.journeys, header, arrays)
        arrays.update(_flow_arrays(sessions.flow))
    states = [("cumulative", snapshot.state), ("recent", snapshot.recent().state)]
    if retired is not None and retired.ids:
        header["retired_ids"] = list(retired.ids)
        header["retired_keys"] = [list(k) for k in retired.keys]
        states.append(("retired", retired.state))
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    arrays["cumulative.operations"] = snapshot.operation_counts
    arrays["recent.operations"] = snapshot.recent().operation_counts
    for prefix, state in states:
        for name in _FIELDS:
            arrays[f"{prefix}.{name}"] = getattr(state, name)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def loads(data: bytes) -> Snapshot:
    """The snapshot in ``data``; ``ValueError`` when it is not one this version reads."""
    return loads_with_retired(data)[0]


def loads_with_retired(data: bytes) -> tuple[Snapshot, Retired]:
    """The snapshot in ``data`` and the retired rows beside it (none: empty)."""
    try:
        return _loads(data)
    except (OSError, KeyError, TypeError, json.JSONDecodeError, zipfile.BadZipFile) as error:
        raise ValueError(f"not a bizops-otel snapshot: {error}") from None


def _loads(data: bytes) -> tuple[Snapshot, Retired]:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        header = json.loads(bytes(archive["header"]).decode())
        if header.get("format") not in _READS:
            raise ValueError(f"unsupported snapshot format {header.get('format')!r}")
        config = Config(kpis=tuple(Kpi(**k) for k in header["kpis"]),
                        dimensions=tuple(header["dimensions"]), outcome=header["outcome"],
                        export_derived=bool(header.get("export_derived", True)),
                        operations=tuple(Operation(**o)
                                         for o in header.get("operations", ())))
        # Files of earlier releases hold no operation counts: none were configured.
        operations = {prefix: np.array(archive[f"{prefix}.operations"])
                      if f"{prefix}.operations" in archive.files else None
                      for prefix in ("cumulative", "recent")}
        prefixes = ("cumulative", "recent", "retired") if "retired_ids" in header else (
            "cumulative", "recent")
        states = {prefix: StateArrays(*(np.array(archive[f"{prefix}.{name}"])
                                        for name in _FIELDS))
                  for prefix in prefixes}
        sessions = None
        if "session_groups" in header:
            fields = {name: np.array(archive[f"sessions.{name}"]) for name in _SESSION_FIELDS}
            sessions = SessionArrays(groups=tuple(header["session_groups"]),
                                     journeys=_load_journeys(header, archive),
                                     flow=_read_flow(archive), **fields)
    keys = [tuple(k) for k in header["keys"]]
    started = header.get("started_ns")  # absent from files of earlier releases
    recent = Snapshot(config, keys, states["recent"], {}, None, header["taken_ns"],
                      started_ns=started, operations=operations["recent"])
    retired = Retired.empty(len(config.kpis))
    if "retired_ids" in header:
        retired = Retired(tuple(header["retired_ids"]),
                          tuple(tuple(k) for k in header["retired_keys"]), states["retired"])
    return Snapshot(config, keys, states["cumulative"], header["dropped"], recent,
                    header["taken_ns"], sessions, started_ns=started,
                    operations=operations["cumulative"]), retired


def _dump_journeys(journeys: JourneyArrays, header: dict[str, Any],
                   arrays: dict[str, Any]) -> None:
    """Journey counts travel beside the session counts; a file without journeys has none
    (and files of earlier releases read as having none)."""
    if not journeys.names:
        return
    header["journeys"] = [[name, list(steps)]
                          for name, steps in zip(journeys.names, journeys.steps, strict=True)]
    for name in JOURNEY_ARRAY_FIELDS:
        arrays[f"journeys.{name}"] = getattr(journeys, name)


def _load_journeys(header: dict[str, Any], archive: Any) -> JourneyArrays:
    if "journeys" not in header:
        return JourneyArrays.empty()
    names = tuple(str(item[0]) for item in header["journeys"])
    steps = tuple(tuple(str(s) for s in item[1]) for item in header["journeys"])
    return JourneyArrays(names, steps, *(np.array(archive[f"journeys.{name}"])
                                         for name in JOURNEY_ARRAY_FIELDS))


# Session flow (load-test plans) rides beside the session arrays; files without it (earlier
# releases) read as no flow.
def _flow_arrays(flow: FlowArrays | None) -> dict[str, Any]:
    if flow is None:
        return {}
    return {f"session_flow.{name}": getattr(flow, name) for name in FLOW_FIELDS}


def _read_flow(archive: Any) -> FlowArrays | None:
    if f"session_flow.{FLOW_FIELDS[0]}" not in archive.files:
        return None
    return FlowArrays(*(np.array(archive[f"session_flow.{name}"]) for name in FLOW_FIELDS))


def write(snapshot: Snapshot, path: str | os.PathLike[str],
          retired: Retired | None = None) -> None:
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_bytes(dumps(snapshot, retired))
    os.replace(temporary, target)


def read(path: str | os.PathLike[str]) -> Snapshot:
    return loads(Path(path).read_bytes())


def read_with_retired(path: str | os.PathLike[str]) -> tuple[Snapshot, Retired]:
    return loads_with_retired(Path(path).read_bytes())
