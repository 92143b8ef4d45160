"""A long run of the FastAPI example shop at full request rate, watching for drift.

    OPENBLAS_NUM_THREADS=1 python benchmarks/soak.py [--duration 600] [--every 10]
        [--warmup 60] [--clients 2] [--scrape-every 5] [--push-every 5] [--max-sessions 10000]

The shop (``examples/fastapi_shop``, under uvicorn in a child process) is configured as an
operator would run it: a multi-process directory (``BIZOPS_OTEL_MULTIPROC_DIR``, state
written every second), OTLP pushes over HTTP every ``--push-every`` seconds to a receiver
of this script's own on 127.0.0.1, and Prometheus scrapes of ``/metrics`` every
``--scrape-every`` seconds. ``--clients`` threads send it, as fast as it answers, the
traffic of a shop: visitors of a few requests each under their own session cookie,
landings of a handful of recurring campaigns, product pages, checkouts with an order value.
Every visitor is new, so the session table fills up: ``--max-sessions`` (10,000 by default,
full within the first minute) makes it full within the warm-up. With the library's default
of 100,000 it fills after 100,000 visitors (about seven minutes at 1,200 requests a second of
five-request visits) and RSS grows until then, by about 150 bytes a session.

Every ``--every`` seconds it prints the shop's RSS, threads and open file descriptors (from
/proc), the multi-process directory's size, requests and pushes; at the end, a drift
verdict over the samples after ``--warmup`` seconds: the slope of RSS in MB per minute
(least squares) and the range (max - min) of threads, descriptors and directory size.
Nothing leaves 127.0.0.1, and the run stops by itself. ``run`` is what
``tests/test_soak.py`` calls for a short version; the figures of a run are in
docs/performance.md#soak.
"""

from __future__ import annotations

import argparse
import http.client
import random
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from hostile_run import (
    _send,
    free_port,
    process_figures,
    scrape,
    start_shop,
    wait_until_listening,
)

CAMPAIGNS = ("spring-sale", "newsletter-42", "retargeting", "black-friday", "partner-7")
#: Verdict thresholds: flat means RSS grows less than this after warm-up (MB per minute),
#: and threads and descriptors vary by at most these.
FLAT_RSS_MB_PER_MIN = 1.0
FLAT_THREADS = 2
FLAT_FDS = 4


@dataclass
class Receiver:
    """An OTLP/HTTP metrics receiver on 127.0.0.1 that accepts everything and counts."""

    pushes: int = 0
    bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.pushes += 1
                    receiver.bytes += len(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="soak-otlp-receiver",
                         daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/metrics"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class Counts:
    requests: int = 0
    failures: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def shop_request(rng: random.Random, visitor: int, step: int) -> tuple[str, str]:
    """(method, target) of a visitor's ``step``-th request: a landing first, then product
    pages, and for some a checkout."""
    if step == 0:
        if rng.random() < 0.1:  # one landing in ten comes from a campaign
            return "GET", f"/landing?utm_campaign={rng.choice(CAMPAIGNS)}&utm_source=mail"
        return "GET", "/landing"
    if step == 4 and visitor % 5 == 0:
        return "POST", f"/checkout?value={rng.uniform(5, 250):.2f}"
    return "GET", f"/product/{rng.randint(1, 500)}"


def client(port: int, seed: int, stop: threading.Event, counts: Counts) -> None:
    """One client: visitors of five requests each, over a keep-alive connection."""
    rng = random.Random(seed)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    visitor = seed * 10_000_000
    while not stop.is_set():
        visitor += 1
        headers = {"Cookie": f"sid=visitor-{visitor}"}
        for step in range(5):
            method, target = shop_request(rng, visitor, step)
            try:
                status = _send(connection, method, target, headers)
            except (OSError, http.client.HTTPException):
                with counts.lock:
                    counts.failures += 1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            with counts.lock:
                counts.requests += 1
                counts.statuses[status] = counts.statuses.get(status, 0) + 1
    connection.close()


def directory_bytes(directory: Path) -> int:
    total = 0
    for path in directory.iterdir():
        try:
            total += path.stat().st_size
        except OSError:
            continue  # replaced between the listing and the stat
    return total


@dataclass
class Verdict:
    rss_mb_per_min: float
    rss_growth_mb: float
    threads_range: int
    fds_range: int
    directory_range: int
    samples: int

    @property
    def flat(self) -> bool:
        return (self.rss_mb_per_min < FLAT_RSS_MB_PER_MIN and self.threads_range <= FLAT_THREADS
                and self.fds_range <= FLAT_FDS)


def verdict(rows: list[dict[str, Any]], warmup: float) -> Verdict:
    """Drift after ``warmup`` seconds: RSS slope (least squares, MB per minute) and the
    ranges of threads, descriptors and directory size."""
    kept = [row for row in rows if row["t"] >= warmup] or rows[-2:]
    times = [row["t"] / 60 for row in kept]
    rss = [row["rss_mb"] for row in kept]
    slope = 0.0
    if len(kept) >= 2:
        mean_t, mean_r = sum(times) / len(times), sum(rss) / len(rss)
        spread = sum((t - mean_t) ** 2 for t in times)
        slope = (sum((t - mean_t) * (r - mean_r) for t, r in zip(times, rss, strict=True))
                 / spread if spread else 0.0)

    def span(name: str) -> int:
        values = [row[name] for row in kept]
        return int(max(values) - min(values))

    return Verdict(slope, rss[-1] - rss[0], span("threads"), span("fds"),
                   span("directory_bytes"), len(kept))


@dataclass
class Run:
    rows: list[dict[str, Any]]
    verdict: Verdict
    requests: int
    failures: int
    statuses: dict[int, int]
    pushes: int
    scrapes: int


def run(duration: float = 600.0, every: float = 10.0, warmup: float = 60.0, clients: int = 2,
        scrape_every: float = 5.0, push_every: float = 5.0, max_sessions: int = 10_000,
        print_rows: bool = True) -> Run:
    """Start the receiver and the shop, drive it for ``duration`` seconds, sample every
    ``every`` seconds; always stops the clients, the shop and the receiver."""
    receiver = Receiver()
    endpoint = receiver.start()
    stop = threading.Event()
    counts = Counts()
    rows: list[dict[str, Any]] = []
    threads: list[threading.Thread] = []
    scrapes = 0
    with tempfile.TemporaryDirectory(prefix="bizops-soak-") as directory:
        port = free_port()
        shop = start_shop(port, 2000, {
            "BIZOPS_OTEL_MULTIPROC_DIR": directory,
            "BIZOPS_OTEL_MAX_SESSIONS": str(max_sessions),
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_METRIC_EXPORT_INTERVAL": str(int(push_every * 1000))})
        try:
            wait_until_listening(port, shop, timeout=60)
            started = time.monotonic()
            threads = [threading.Thread(target=client, args=(port, i + 1, stop, counts),
                                        daemon=True) for i in range(clients)]
            for thread in threads:
                thread.start()
            next_row, next_scrape, last_count, last_time = started, started, 0, started
            while (now := time.monotonic()) - started < duration:
                if now >= next_scrape:
                    scrape(port)
                    scrapes += 1
                    next_scrape += scrape_every
                if now >= next_row:
                    with counts.lock:
                        count = counts.requests
                    with receiver.lock:
                        pushes = receiver.pushes
                    row = {"t": now - started, "requests": count,
                           "per_second": (count - last_count) / max(now - last_time, 1e-9),
                           **process_figures(shop.pid),
                           "directory_bytes": directory_bytes(Path(directory)),
                           "pushes": pushes}
                    rows.append(row)
                    last_count, last_time, next_row = count, now, next_row + every
                    if print_rows:
                        print(format_row(row), flush=True)
                time.sleep(max(0.0, min(next_row, next_scrape, started + duration)
                               - time.monotonic()))
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=15)
            if shop.poll() is None:
                shop.kill()
            shop.wait(timeout=10)
            if shop.stdout is not None:
                shop.stdout.close()
            receiver.stop()
    with receiver.lock:
        pushes = receiver.pushes
    return Run(rows, verdict(rows, warmup), counts.requests, counts.failures,
               dict(counts.statuses), pushes, scrapes)


HEADER = (f"{'t s':>6} {'requests':>9} {'req/s':>6} {'RSS MB':>7} {'thr':>4} {'fds':>4} "
          f"{'dir KB':>7} {'pushes':>6}")


def format_row(row: dict[str, Any]) -> str:
    return (f"{row['t']:6.0f} {row['requests']:9d} {row['per_second']:6.0f} "
            f"{row['rss_mb']:7.1f} {row['threads']:4.0f} {row['fds']:4.0f} "
            f"{row['directory_bytes'] / 1024:7.1f} {row['pushes']:6d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    parser.add_argument("--every", type=float, default=10.0, help="sample period, seconds")
    parser.add_argument("--warmup", type=float, default=60.0,
                        help="seconds left out of the verdict (default 60)")
    parser.add_argument("--clients", type=int, default=2, help="client threads (default 2)")
    parser.add_argument("--scrape-every", type=float, default=5.0, help="seconds")
    parser.add_argument("--push-every", type=float, default=5.0, help="seconds")
    parser.add_argument("--max-sessions", type=int, default=10_000,
                        help="the shop's BIZOPS_OTEL_MAX_SESSIONS (default 10000)")
    args = parser.parse_args()
    print(HEADER)
    result = run(args.duration, args.every, args.warmup, args.clients, args.scrape_every,
                 args.push_every, args.max_sessions)
    v = result.verdict
    print(f"\n{result.requests} requests ({result.requests / args.duration:.0f}/s), "
          f"responses {dict(sorted(result.statuses.items()))}, connection failures "
          f"{result.failures}; {result.scrapes} scrapes, {result.pushes} OTLP pushes received")
    print(f"after {args.warmup:.0f} s of warm-up ({v.samples} samples): RSS "
          f"{v.rss_mb_per_min:+.2f} MB/min ({v.rss_growth_mb:+.1f} MB), threads range "
          f"{v.threads_range}, fds range {v.fds_range}, directory size range "
          f"{v.directory_range} bytes")
    print("verdict: " + ("flat" if v.flat else "DRIFT") + f" (flat: RSS < "
          f"{FLAT_RSS_MB_PER_MIN} MB/min, threads range <= {FLAT_THREADS}, fds range <= "
          f"{FLAT_FDS})")


if __name__ == "__main__":
    main()
