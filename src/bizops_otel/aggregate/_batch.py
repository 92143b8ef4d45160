"""Input checks shared by both twins: the shape of ``record_many`` batches, and the end
timestamps that ``record`` and ``record_many`` are given."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ..config import Config

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def end_timestamp(end_ns: object) -> int | None:
    """``end_ns`` as int64 nanoseconds, or None when it is not one (the state's windows are
    int64 nanoseconds in the native twin, so both twins refuse what it cannot hold)."""
    try:
        when = int(end_ns)  # type: ignore[call-overload]
    except Exception:
        return None
    return when if _INT64_MIN <= when <= _INT64_MAX else None


def batch_end(end_ns: object) -> int:
    """The end timestamp of a ``record_many`` batch: now when none is given; a bad one is
    a programming error, like a bad shape."""
    if end_ns is None:
        return time.time_ns()
    when = end_timestamp(end_ns)
    if when is None:
        raise ValueError(f"record_many: end_ns must be int64 nanoseconds, got {end_ns!r}")
    return when


def batch_inputs(config: Config, dims: tuple[Any, ...], latency_s: npt.ArrayLike,
                  kpis: Mapping[str, npt.ArrayLike] | None, errors: npt.ArrayLike | None,
                  ) -> tuple[npt.NDArray[np.float64], dict[int, npt.NDArray[np.float64]],
                             npt.NDArray[np.bool_]]:
    """Validate the shape of a batch; shared by both twins."""
    if len(dims) != len(config.dimensions):
        raise ValueError(f"record_many: expected {len(config.dimensions)} dimension values "
                         f"{config.dimensions}, got {len(dims)}")
    latency = np.ascontiguousarray(latency_s, dtype=np.float64).ravel()
    columns: dict[int, npt.NDArray[np.float64]] = {}
    for name, values in (kpis or {}).items():
        j = config.kpi_index(name) if name in config.kpi_names else None
        if j is None:
            raise ValueError(f"record_many: unknown KPI {name!r}; "
                             f"configured: {list(config.kpi_names)}")
        column = np.ascontiguousarray(values, dtype=np.float64).ravel()
        if column.shape != latency.shape:
            raise ValueError(f"record_many: KPI {name!r} has {column.shape[0]} values "
                             f"for {latency.shape[0]} latencies")
        columns[j] = column
    if errors is None:
        flags = np.zeros(latency.shape, np.bool_)
    else:
        flags = np.ascontiguousarray(errors, dtype=np.bool_).ravel()
        if flags.shape != latency.shape:
            raise ValueError("record_many: errors must have one flag per latency")
    return latency, columns, flags
