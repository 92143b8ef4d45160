"""Requests lost when every gunicorn worker is killed with SIGKILL in the middle of a burst.

    python benchmarks/killed_workers.py [--workers 4] [--clients 8] [--burst 2]
        [--interval 1.0] [--flush 0.1] [--runs 3]

The gunicorn example (``examples/gunicorn``: one aggregator per worker, state files in
``BIZOPS_OTEL_MULTIPROC_DIR`` written every ``--interval`` seconds, the master serving the
merged scrape) runs on 127.0.0.1. Each worker writes its state within ``--flush`` seconds
of a change (``BIZOPS_OTEL_MULTIPROC_FLUSH_INTERVAL``; 0 writes every ``--interval`` only,
as before write on dirty). ``--clients`` threads send product pages and checkouts
as fast as the workers answer for ``--burst`` seconds; then every worker is killed with
SIGKILL at once, while the clients are still sending, and the clients stop. A request
counts as completed when its client read a 200 answer. The master replaces the workers;
once the merged scrape has settled, its ``bizops_requests_total`` is compared with the
completed requests, and the difference is what the kill lost.

``measure`` is what ``tests/test_killed_workers.py`` calls.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "gunicorn"
GUNICORN = Path(sys.executable).parent / "gunicorn"


@dataclass
class Result:
    completed: int
    merged: int
    workers: int
    interval: float
    flush: float | None
    failures: int
    burst: float

    @property
    def lost(self) -> int:
        return self.completed - self.merged


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def workers_of(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def merged_requests(metrics_port: int) -> float | None:
    """``bizops_requests_total`` summed over every series of the master's scrape."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics",
                                    timeout=10) as reply:
            text = reply.read().decode()
    except OSError:
        return None
    return sum(float(line.rpartition(" ")[2]) for line in text.splitlines()
               if line.startswith("bizops_requests_total"))


def _client(port: int, seed: int, stop: threading.Event, done: list[int],
            failed: list[int]) -> None:
    serial = seed * 1_000_000
    while not stop.is_set():
        serial += 1
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            if serial % 4 == 0:
                connection.request("POST", "/checkout?value=12.5")
            else:
                connection.request("GET", f"/product/{serial % 500}")
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                done[0] += 1  # one list per client: no lock needed
        except (OSError, http.client.HTTPException):
            failed[0] += 1
        finally:
            connection.close()


def measure(workers: int = 4, clients: int = 8, burst: float = 2.0,
            interval: float = 1.0, flush: float | None = 0.1, settle: float = 30.0) -> Result:
    """One burst and kill; always stops gunicorn and the clients."""
    if not GUNICORN.exists():
        raise RuntimeError("gunicorn is not installed beside this Python")
    port, metrics_port = _free_port(), _free_port()
    with tempfile.TemporaryDirectory(prefix="bizops-killed-") as directory:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("OTEL_", "BIZOPS_OTEL_"))
               or key in ("BIZOPS_OTEL_NO_EXTENSIONS", "BIZOPS_OTEL_REQUIRE_EXTENSIONS")}
        env.update(PORT=str(port), METRICS_PORT=str(metrics_port), WORKERS=str(workers),
                   BIZOPS_OTEL_MULTIPROC_DIR=directory,
                   BIZOPS_OTEL_MULTIPROC_INTERVAL=str(interval), BIZOPS_OTEL_QUIET="1",
                   OPENBLAS_NUM_THREADS="1")
        if flush is not None:  # None: leave it out, for releases before write on dirty
            env["BIZOPS_OTEL_MULTIPROC_FLUSH_INTERVAL"] = str(flush)
        master = subprocess.Popen([str(GUNICORN), "-c", "gunicorn.conf.py", "app:app"],
                                  cwd=EXAMPLE, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, preexec_fn=_default_sigint)
        stop = threading.Event()
        threads: list[threading.Thread] = []
        done = [[0] for _ in range(clients)]
        failed = [[0] for _ in range(clients)]
        try:
            deadline = time.monotonic() + 60
            while len(workers_of(master.pid)) < workers or merged_requests(metrics_port) is None:
                if time.monotonic() > deadline or master.poll() is not None:
                    raise RuntimeError("gunicorn did not start")
                time.sleep(0.2)
            threads = [threading.Thread(target=_client, daemon=True,
                                        args=(port, i + 1, stop, done[i], failed[i]))
                       for i in range(clients)]
            for thread in threads:
                thread.start()
            time.sleep(burst)
            victims = workers_of(master.pid)
            for pid in victims:
                os.kill(pid, signal.SIGKILL)
            stop.set()
            for thread in threads:
                thread.join(15)
            completed = sum(d[0] for d in done)
            # Replacements start and write their (empty or small) state, and the merge
            # folds the dead workers' files; wait until two reads, an interval apart, agree.
            deadline = time.monotonic() + settle
            previous = None
            while True:
                time.sleep(max(interval, 0.2) * 2)
                now = merged_requests(metrics_port)
                replaced = not set(victims) & set(workers_of(master.pid))
                if now is not None and now == previous and replaced:
                    break
                if time.monotonic() > deadline:
                    break
                previous = now
            merged = int(now or 0)
        finally:
            stop.set()
            if master.poll() is None:
                master.send_signal(signal.SIGTERM)
                try:
                    master.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    master.kill()
                    master.wait(timeout=10)
    return Result(completed, merged, workers, interval, flush, sum(f[0] for f in failed),
                  burst)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--burst", type=float, default=2.0, help="seconds before the kill")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="BIZOPS_OTEL_MULTIPROC_INTERVAL, seconds")
    parser.add_argument("--flush", type=float, default=0.1,
                        help="BIZOPS_OTEL_MULTIPROC_FLUSH_INTERVAL, seconds (0: off; a "
                             "negative value leaves the variable unset)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"{'run':>3} {'completed':>9} {'req/s':>6} {'merged':>7} {'lost':>5} "
          f"{'lost, s of traffic':>18}")
    lost_seconds = []
    for run in range(1, args.runs + 1):
        flush = None if args.flush < 0 else args.flush
        result = measure(args.workers, args.clients, args.burst, args.interval, flush)
        rate = result.completed / args.burst
        lost_seconds.append(result.lost / rate if rate else 0.0)
        print(f"{run:3d} {result.completed:9d} {rate:6.0f} {result.merged:7d} "
              f"{result.lost:5d} {lost_seconds[-1]:18.3f}", flush=True)
    print(f"lost, in seconds of the burst's traffic: min {min(lost_seconds):.3f}, median "
          f"{sorted(lost_seconds)[len(lost_seconds) // 2]:.3f}, max {max(lost_seconds):.3f}")
    print(f"{args.workers} workers, {args.clients} clients, burst {args.burst} s, "
          f"multiproc_interval {args.interval} s, multiproc_flush_interval "
          + ("unset" if args.flush < 0 else f"{args.flush} s"))


if __name__ == "__main__":
    main()
