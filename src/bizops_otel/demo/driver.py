"""Simulated visitors over real HTTP: the simulator's sessions, one thread each.

Sessions arrive as a Poisson process at ``rate`` per second of wall-clock time. Each runs
in a worker thread with its own keep-alive connection and its own random stream (seeded
from the run's seed and the session's number, so a run is reproducible up to thread
timing). A visitor waits out the think time between pages, measures each response, and
decides from what it experienced, as the simulator's model says.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .shop import SESSION_COOKIE, VARIANT_COOKIE
from .simulate import Request, Scenario, Session, Simulator


@dataclass
class Tally:
    """What the visitors did, for the final summary."""

    sessions: int = 0
    requests: int = 0
    failed: int = 0
    orders: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Driver:
    """Sends simulated sessions to the shop at ``host:port`` until stopped."""

    def __init__(self, scenario: Scenario, host: str, port: int, rate: float, seed: int,
                 workers: int = 64) -> None:
        self._scenario = scenario
        self._host, self._port = host, port
        self._rate = rate
        self._seed = seed
        self._stop = threading.Event()
        self._open: set[http.client.HTTPConnection] = set()
        self._open_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="visitor")
        self._thread = threading.Thread(target=self._arrivals, name="bizops-demo-driver",
                                        daemon=True)
        self.tally = Tally()
        self.started = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        """Stop at once: no new sessions, and requests in flight are cut off (a slow page
        of the broken campaign would otherwise keep the demo running past its end)."""
        self._stop.set()
        self._thread.join()
        with self._open_lock:
            open_connections = list(self._open)
        for connection in open_connections:
            sock = connection.sock
            if sock is not None:
                with contextlib.suppress(OSError):  # already closed by its visitor
                    sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked on the response
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _arrivals(self) -> None:
        arrivals = Simulator(self._scenario, self._seed).arrivals(self._rate)
        for number, start_s in enumerate(arrivals):
            if self._stop.wait(max(0.0, self.started + start_s - time.monotonic())):
                return
            self._pool.submit(self._session, number, start_s)

    def _session(self, number: int, start_s: float) -> None:
        connection = http.client.HTTPConnection(self._host, self._port, timeout=60)
        simulator = Simulator(self._scenario, seed=(self._seed, number))
        with self._open_lock:
            self._open.add(connection)
        try:
            session = simulator.session(
                start_s, lambda s, r: self._visit(connection, s, r),
                session_id=f"visitor-{self._seed}-{number}")
        except _Stopped:
            return
        finally:
            with self._open_lock:
                self._open.discard(connection)
            connection.close()
        with self.tally.lock:
            self.tally.sessions += 1
            self.tally.orders += session.converted

    def _visit(self, connection: http.client.HTTPConnection, session: Session,
               request: Request) -> tuple[float, bool]:
        # Think time: the simulator scheduled this request at request.start_s.
        if self._stop.wait(max(0.0, self.started + request.start_s - time.monotonic())):
            raise _Stopped
        target = request.path + (f"?{request.query}" if request.query else "")
        headers = {"Cookie": f"{SESSION_COOKIE}={session.id}; {VARIANT_COOKIE}={session.variant}"}
        body = None
        if request.confirm:
            body = urllib.parse.urlencode({"buy": int(request.converted),
                                           "value": f"{request.order_value or 0:.2f}"})
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        began = time.perf_counter()
        try:
            connection.request(request.method, target, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            status = response.status
        except OSError:
            connection.close()  # reconnects on the next request
            if self._stop.is_set():
                raise _Stopped from None  # cut off by stop(), not a failure of the shop
            status = 599
        latency = time.perf_counter() - began
        with self.tally.lock:
            self.tally.requests += 1
            self.tally.failed += status >= 500
        return latency, status >= 500


class _Stopped(Exception):
    """The run ended while this visitor was thinking."""
