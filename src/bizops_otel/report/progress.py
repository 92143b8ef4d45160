"""A progress bar on stderr for long replays, with no dependency.

Drawn only on a terminal, and at most ten times a second, so that a million-span replay
spends its time replaying; elsewhere (a pipe, a CI log) only the closing line is written.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30
INTERVAL_S = 0.1


class Progress:
    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self._total = max(total, 1)
        self._label = label
        self._stream = stream if stream is not None else sys.stderr
        self._live = self._stream.isatty()
        self._started = time.monotonic()
        self._drawn = 0.0

    def update(self, done: int, items: int) -> None:
        """``done`` of ``total`` units (bytes read), ``items`` spans so far."""
        if not self._live:
            return
        now = time.monotonic()
        if now - self._drawn < INTERVAL_S:
            return
        self._drawn = now
        fraction = min(done / self._total, 1.0)
        filled = int(fraction * WIDTH)
        self._stream.write(f"\r{self._label} [{'#' * filled}{'.' * (WIDTH - filled)}] "
                           f"{fraction:4.0%} {items:,} spans")
        self._stream.flush()

    def close(self, items: int) -> float:
        """Write the closing line; returns the seconds taken."""
        elapsed = time.monotonic() - self._started
        end = "\r" if self._live else ""
        self._stream.write(f"{end}{self._label}: {items:,} spans in {elapsed:.1f} s"
                           f"{' ' * 20 if self._live else ''}\n")
        self._stream.flush()
        return elapsed
