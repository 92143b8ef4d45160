"""Shape checks for ``record_many`` batches, shared by both twins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ..config import Config


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
