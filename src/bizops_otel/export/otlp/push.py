"""The pusher: the aggregator's state over OTLP every ``OTEL_METRIC_EXPORT_INTERVAL``.

- One export at a time, on the pusher's own thread (``force_flush`` and ``shutdown`` wait
  for it): the application's threads never send, retry or wait.
- State is cumulative, so nothing is queued: while the endpoint is down, memory stays
  flat, and the next export that gets through carries everything.
- Retryable answers (gRPC UNAVAILABLE and its kin, RESOURCE_EXHAUSTED with RetryInfo,
  HTTP 429, 502, 503 and 504, timeouts and refused connections) are retried with
  exponential backoff and full jitter, or after the delay the server asked for, until the
  export's deadline (``OTEL_METRIC_EXPORT_TIMEOUT``); permanent ones are not retried.
- Failures are counted by reason and logged once per reason; nothing reaches the
  application. The counts and the time of the last success travel in every export, as
  ``bizops.internal.export.failures`` and ``bizops.internal.export.last_success``.
- After ``os.fork`` the child starts its own thread and channel (gRPC channels do not
  survive a fork) and pushes its own state under its own ``service.instance.id``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from ...aggregate.snapshot import Snapshot
from ..family import Family, HealthSource
from . import encoder, resource
from .settings import PushSettings
from .transport import Outcome, Transport, open_transport

_logger = logging.getLogger("bizops_otel")

#: Backoff of the first retry, doubled on each further one (before jitter), and its cap.
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
#: The shortest wait before a retry, even when the server asks for none (Retry-After: 0).
MIN_RETRY_DELAY_S = 0.1


class ExportStatus:
    """What the pusher has achieved: failures by reason, last success, points refused."""

    def __init__(self) -> None:
        self.failures: Counter[str] = Counter()
        self.exports = 0
        self.last_success_ns = 0
        self.rejected_points = 0
        self._logged: set[str] = set()
        self._lock = threading.Lock()

    def failed(self, reason: str, detail: str) -> None:
        with self._lock:
            self.failures[reason] += 1
            first = reason not in self._logged
            self._logged.add(reason)
        if first:
            _logger.warning("bizops-otel: OTLP metrics export failed (%s): %s; counted in "
                            "bizops.internal.export.failures, logged once per reason",
                            reason, detail)

    def succeeded(self, rejected_points: int) -> None:
        with self._lock:
            self.exports += 1
            self.last_success_ns = time.time_ns()
            self.rejected_points += rejected_points

    def families(self) -> list[Family]:
        """The status as metric families, exported with the state."""
        with self._lock:
            failures = dict(self.failures)
            last = self.last_success_ns
        failed = Family("bizops.internal.export.failures", "counter", "{export}",
                        "OTLP export attempts that failed, by reason")
        failed.loose.extend(((("reason", reason),), float(count))
                            for reason, count in sorted(failures.items()))
        success = Family("bizops.internal.export.last_success", "gauge", "s",
                         "When an OTLP export last succeeded (Unix time)")
        if last:
            success.loose.append(((), last / 1e9))
        return [failed, success]


class Pusher:
    """Pushes ``source()`` (a snapshot, or None while there is none) with ``health()``."""

    def __init__(self, source: Callable[[], Snapshot | None], settings: PushSettings,
                 health: HealthSource | None = None, tracer_provider: Any = None,
                 transport: Callable[[PushSettings], Transport] = open_transport) -> None:
        self._source = source
        self._health = health
        self.settings = settings
        self._tracer_provider = tracer_provider
        self._open = transport
        self.status = ExportStatus()
        self._export_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._transport: Transport | None = None
        self._resource = b""
        self._stopped = False

    # Life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._resource = encoder.resource_field(resource.attributes(self._tracer_provider))
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="bizops-otel-otlp",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.interval_s):
            self.export(self.settings.export_timeout_s)

    def force_flush(self, timeout_s: float | None = None) -> bool:
        """Export now; True when it got through before ``timeout_s`` (the export
        timeout by default)."""
        return self.export(self.settings.export_timeout_s if timeout_s is None else timeout_s)

    def shutdown(self, timeout_s: float | None = None) -> bool:
        """Stop the thread and export the final state within ``timeout_s``."""
        if self._stopped:
            return True
        budget = self.settings.export_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + budget
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
        ok = self.export(max(0.0, deadline - time.monotonic()))
        self._stopped = True
        with self._export_lock:
            if self._transport is not None:
                self._transport.close()
                self._transport = None
        return ok

    def after_fork_in_child(self) -> None:
        """A new process: its own thread, channel, instance id and failure counts."""
        self._export_lock = threading.Lock()
        self._transport = None  # the parent's channel belongs to the parent
        self.status = ExportStatus()
        if not self._stopped:
            self.start()

    # Exporting -------------------------------------------------------------------------
    def export(self, timeout_s: float) -> bool:
        """One export of the current state, retried until ``timeout_s`` has passed; False
        once shut down."""
        if self._stopped:
            return False
        deadline = time.monotonic() + timeout_s
        if not self._export_lock.acquire(timeout=max(0.0, timeout_s)):
            return False
        try:
            return self._export(deadline)
        except Exception as error:  # never into the application, whatever breaks
            self.status.failed("internal", repr(error))
            return False
        finally:
            self._export_lock.release()

    def _export(self, deadline: float) -> bool:
        snapshot = self._source()
        if snapshot is None:
            return True
        if not self._resource:
            self._resource = encoder.resource_field(resource.attributes(self._tracer_provider))
        health = self._health() if self._health is not None else ()
        built = encoder.metrics(snapshot, health, extra=self.status.families())
        if self._transport is None:
            self._transport = self._open(self.settings)
        return all(self._send(body, deadline) for body in encoder.requests(built, self._resource))

    def _send(self, body: bytes, deadline: float) -> bool:
        assert self._transport is not None
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.status.failed("deadline", "the export timeout passed before an answer")
                return False
            outcome: Outcome = self._transport.send(body, min(self.settings.timeout_s,
                                                              remaining))
            if outcome.ok:
                self.status.succeeded(outcome.rejected_points)
                if outcome.rejected_points:
                    self.status.failed("rejected_points", f"the server refused "
                                       f"{outcome.rejected_points} points (partial success)")
                return True
            self.status.failed(outcome.reason, f"to {self.settings.endpoint}")
            if not outcome.retryable:
                return False
            delay = outcome.retry_after_s
            if delay is None:
                ceiling = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** attempt)
                delay = random.uniform(0.0, ceiling)  # full jitter
            delay = max(delay, MIN_RETRY_DELAY_S)
            attempt += 1
            if time.monotonic() + delay >= deadline:
                self.status.failed("deadline", "no time left to retry before the deadline")
                return False
            time.sleep(delay)
