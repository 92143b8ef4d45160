"""Shared timing helpers: medians of repeated runs, printed as a markdown table."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping


def per_call_ns(run: Callable[[int], None], calls: int, repeats: int = 7) -> float:
    """Median nanoseconds per call of ``run(calls)``, which makes ``calls`` calls."""
    run(max(1, calls // 10))  # warm caches and lazily created state
    samples = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        run(calls)
        samples.append((time.perf_counter_ns() - started) / calls)
    return statistics.median(samples)


def interleaved_ns(runs: Mapping[str, Callable[[int], None]], rounds: int = 31,
                   run_ms: float = 4.0) -> dict[str, list[float]]:
    """Nanoseconds per call of each ``run(n)``, every round running each once in turn.

    On a shared machine a slow spell then falls on all the runs of a round alike, where
    timing one run's repeats and then the other's lets it fall on one of them only. Each
    run makes as many calls as last about ``run_ms`` (measured after a warm-up), so that a
    cheap run and a dear one are equally likely to be interrupted by other work. Take
    medians of the figures, or of their ratios round by round.
    """
    calls = {}
    for name, run in runs.items():
        run(1000)  # warm caches and lazily created state
        started = time.perf_counter_ns()
        run(1000)
        per_call = max((time.perf_counter_ns() - started) / 1000, 1.0)
        calls[name] = max(100, int(run_ms * 1e6 / per_call))
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.perf_counter_ns()
            run(calls[name])
            samples[name].append((time.perf_counter_ns() - started) / calls[name])
    return samples


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
