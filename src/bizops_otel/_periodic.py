"""A background task repeated every few seconds, off the request path."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

_logger = logging.getLogger("bizops_otel")


class Periodic:
    """Calls ``action`` every ``interval`` seconds in a daemon thread, from ``start()``
    until ``stop()``. A failing call is logged and the next one still happens: a periodic
    write or check must never die silently, nor take the application down."""

    def __init__(self, name: str, interval: float, action: Callable[[], object],
                 failure: str) -> None:
        self._name = name
        self._interval = interval
        self._action = action
        self._failure = failure
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def interval(self) -> float:
        return self._interval

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._action()
            except Exception:
                _logger.exception("bizops-otel: %s", self._failure)

    def stop(self) -> None:
        """Stop and wait for the thread, so none outlives its owner's shutdown."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)
