"""A background task repeated every few seconds, off the request path, and what the
monitors built on one share: their thread's life cycle and their callbacks."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

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

    def renewed(self) -> Periodic:
        """The same task, not started: a forked child has none of its parent's threads."""
        return Periodic(self._name, self._interval, self._action, self._failure)

    def stop(self) -> None:
        """Stop and wait for the thread, so none outlives its owner's shutdown."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)


class PeriodicMonitor:
    """The thread's life cycle of a monitor that checks every few seconds (``_task``)."""

    _task: Periodic

    def start(self) -> None:
        self._task.start()

    def restart_after_fork(self) -> None:
        """In a forked child: the parent's thread does not exist here; start a new one."""
        self._task = self._task.renewed()
        self._task.start()

    def stop(self) -> None:
        self._task.stop()


def call_each(callbacks: Iterable[Callable[[Any], object]], item: object, what: str) -> None:
    """``callback(item)`` for each callback; one that raises is logged (as a ``what``
    callback) and the others still run."""
    for callback in callbacks:
        try:
            callback(item)
        except Exception:
            _logger.exception("bizops-otel: %s callback raised", what)
