"""What write on dirty costs a pre-fork worker, and what a merged scrape costs the master.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_state_write.py [--keys 20 200 2000]

For each implementation of the aggregator (native when built, and pure) and key count:

- ``clean tick``: the writer's check when nothing changed (``changes()`` and the process's
  drop counters; no snapshot, nothing written);
- ``write``: one state write after a change (snapshot, retired rows, atomic file), wall
  clock and the writer thread's CPU time;
- ``spacing``: how far apart writes on dirty come under continuous traffic: the flush
  interval (0.1 s by default), or longer when a write's CPU time would otherwise take more
  than 3% of a core; a worker killed with SIGKILL loses at most about that much traffic;
- ``busy share``: the share of one core the writer then takes (before write on dirty, one
  write a second);
- ``scrape merge``: ``merged_snapshot`` of the directory with three live workers' files,
  what the master does per scrape (unchanged by write on dirty).

Per span, write on dirty adds one integer increment to the aggregator's commit (both
twins), which no benchmark here can tell from noise; ``tests/test_span_budget.py`` holds
the span path to its instruction budget.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bizops_otel import Config
from bizops_otel.aggregate import _aggregator_py
from bizops_otel.export.multiproc import merged_snapshot, state_file
from bizops_otel.install import _WRITE_CPU_SHARE, BizOps

FLUSH_S = 0.1


def implementations() -> list[Any]:
    found = []
    with contextlib.suppress(ImportError):
        found.append(importlib.import_module("bizops_otel.aggregate._aggregator_c").Aggregator)
    found.append(_aggregator_py.Aggregator)
    return found


def median_seconds(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _cpu(action: Callable[[], object], repeat: int) -> float:
    """Median CPU time of this thread in ``action``."""
    times = []
    for _ in range(repeat):
        started = time.thread_time()
        action()
        times.append(time.thread_time() - started)
    return statistics.median(times)


def fed(aggregator_cls: Any, config: Config, keys: int) -> Any:
    aggregator = aggregator_cls(config)
    for k in range(keys):
        for r in range(3):
            aggregator.record((f"page{k}", ""), 0.05 + 0.01 * r,
                              {"order_value": 10.0 * r, "conversion": float(r % 2)},
                              session=f"s{k}-{r}")
    return aggregator


def measure(aggregator_cls: Any, keys: int, repeat: int) -> dict[str, float]:
    directory = Path(tempfile.mkdtemp(prefix="bizops-bench-"))
    try:
        config = Config(admission_count=1, key_ttl=0, max_keys=keys + 10,
                        multiproc_dir=str(directory), campaign_interval=0)
        handle = BizOps(config, fed(aggregator_cls, config, keys), None, None)
        handle._write_if_due()
        clean = median_seconds(handle._write_if_due, repeat)

        def dirty() -> None:
            handle.aggregator.record(("page0", ""), 0.1)  # type: ignore[union-attr]
            handle.write_state()

        write = median_seconds(dirty, repeat)
        cpu = _cpu(dirty, repeat)
        # Three live workers' files (this process, its parent and pid 1 are alive).
        source = state_file(directory)
        for pid in (os.getppid(), 1):
            shutil.copy(source, state_file(directory, pid))
        merge = median_seconds(lambda: merged_snapshot(directory), max(3, repeat // 3))
        return {"clean": clean, "write": write, "cpu": cpu, "merge": merge,
                "bytes": float(source.stat().st_size)}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--keys", type=int, nargs="+", default=[20, 200, 2000])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    print(f"{'twin':>6} {'keys':>5} {'file KB':>7} {'clean tick µs':>13} {'write ms':>8} "
          f"{'CPU ms':>6} {'spacing ms':>10} {'busy share':>10} {'before':>6} "
          f"{'scrape merge ms':>15}")
    for aggregator_cls in implementations():
        for keys in args.keys:
            m = measure(aggregator_cls, keys, args.repeat)
            spacing = max(FLUSH_S, m["cpu"] * (1 / _WRITE_CPU_SHARE - 1))
            print(f"{aggregator_cls.implementation:>6} {keys:5d} {m['bytes'] / 1024:7.0f} "
                  f"{m['clean'] * 1e6:13.1f} {m['write'] * 1e3:8.2f} {m['cpu'] * 1e3:6.2f} "
                  f"{spacing * 1e3:10.0f} {m['cpu'] / spacing:10.1%} {m['cpu'] / 1.0:6.1%} "
                  f"{m['merge'] * 1e3:15.1f}", flush=True)


if __name__ == "__main__":
    main()
