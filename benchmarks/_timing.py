"""Shared timing helpers: medians of repeated runs, printed as a markdown table."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def per_call_ns(run: Callable[[int], None], calls: int, repeats: int = 7) -> float:
    """Median nanoseconds per call of ``run(calls)``, which makes ``calls`` calls."""
    run(max(1, calls // 10))  # warm caches and lazily created state
    samples = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        run(calls)
        samples.append((time.perf_counter_ns() - started) / calls)
    return statistics.median(samples)


def millis(action: Callable[[], object], repeats: int = 5) -> float:
    """Median milliseconds of ``action()`` over ``repeats`` runs, after one to warm up."""
    action()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1e3)
    return statistics.median(samples)


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
              for row in rows]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"
