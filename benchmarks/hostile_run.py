"""Hostile traffic against the FastAPI example shop on 127.0.0.1, then a legitimate campaign.

    OPENBLAS_NUM_THREADS=1 python benchmarks/hostile_run.py [--duration 120] [--every 10]
        [--clients 3] [--max-keys 2000] [--legit-at 0.7] [--legit-every 5] [--seed 1]

The shop (``examples/fastapi_shop``, bizops-otel installed in code, the campaign monitor on)
runs under uvicorn in a child process; ``--clients`` threads send it, over keep-alive
loopback connections and for ``--duration`` seconds, what an attacker or a crowd of bots
sends a public shop:

- every request a distinct ``utm_campaign`` of 20 to 200 characters and a distinct
  session cookie;
- 42% to random paths that no route matches (404s, some with non-ASCII segments);
- 15% with an 8 KB query string;
- 3% orders of nan, inf, -5 or 1e30, which ``record_order`` refuses;
- the rest landings and product pages.

Every ``--every`` seconds it prints requests, throughput, the server's RSS, threads and
open file descriptors (from /proc), the keys held, the share of spans in overflow, the
scrape's size and time, and the campaign monitor's last pass. From ``--legit-at`` of the
run on, a legitimate campaign (``utm_campaign=legit-launch``) lands once every
``--legit-every`` seconds while the attack goes on; the run ends by saying when it was
first scraped under its own name. Nothing leaves 127.0.0.1 and the run stops by itself.
``run`` is what ``tests/test_hostile_run.py`` calls for a short version.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import signal
import socket
import string
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHOP = ROOT / "examples" / "fastapi_shop"
LEGIT = "legit-launch"
#: Every session id the attack sends starts so; none may reach a scrape.
SESSION_MARK = "hostilesid"
BAD_ORDERS = ("nan", "inf", "-5", "1e30")
_ALPHABET = string.ascii_letters + string.digits + "-_."


def hostile_request(rng: random.Random, serial: int) -> tuple[str, str, dict[str, str]]:
    """(method, target, headers) of the attack's request number ``serial``."""
    campaign = "".join(rng.choices(_ALPHABET, k=rng.randint(20, 200)))
    headers = {"Cookie": f"sid={SESSION_MARK}{serial}x{rng.getrandbits(48):x}"}
    query = f"utm_campaign={campaign}&utm_source=bot{serial % 7}"
    if rng.random() < 0.15:
        query += "&pad=" + "x" * 8192
    draw = rng.random()
    if draw < 0.42:
        segment = "".join(rng.choices(_ALPHABET, k=rng.randint(4, 40)))
        if rng.random() < 0.2:
            segment += "/%E4%B8%AD%E6%96%87"  # non-ASCII, percent-encoded as browsers send it
        return "GET", f"/{segment}?{query}", headers
    if draw < 0.45:
        return "POST", f"/checkout?value={rng.choice(BAD_ORDERS)}&{query}", headers
    if draw < 0.70:
        return "GET", f"/landing?{query}", headers
    return "GET", f"/product/{rng.randint(1, 500)}?{query}", headers


@dataclass
class Tally:
    """Responses by status, shared by the client threads."""

    statuses: Counter[int] = field(default_factory=Counter)
    #: Orders the shop answered, by the refused value sent.
    bad_orders: Counter[str] = field(default_factory=Counter)
    failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def total(self) -> int:
        with self.lock:
            return sum(self.statuses.values())


def _send(connection: http.client.HTTPConnection, method: str, target: str,
          headers: dict[str, str]) -> int:
    connection.request(method, target, headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status


def attack(port: int, seed: int, stop: threading.Event, tally: Tally) -> None:
    """One client: hostile requests over a keep-alive connection until ``stop``."""
    rng = random.Random(seed)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    serial = seed * 10_000_000
    while not stop.is_set():
        serial += 1
        method, target, headers = hostile_request(rng, serial)
        try:
            status = _send(connection, method, target, headers)
        except (OSError, http.client.HTTPException):
            with tally.lock:
                tally.failures += 1
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            continue
        with tally.lock:
            tally.statuses[status] += 1
            if method == "POST" and status == 200:
                tally.bad_orders[target.partition("value=")[2].partition("&")[0]] += 1
    connection.close()


def legitimate(port: int, every: float, stop: threading.Event, sent: list[float]) -> None:
    """The legitimate campaign: one landing every ``every`` seconds until ``stop``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    serial = 0
    while True:
        serial += 1
        try:
            _send(connection, "GET", f"/landing?utm_campaign={LEGIT}&utm_source=newsletter",
                  {"Cookie": f"sid=legit-visitor-{serial}"})
            sent.append(time.monotonic())
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        if stop.wait(every):
            break
    connection.close()


def process_figures(pid: int) -> dict[str, float]:
    """RSS (MB), threads and open file descriptors of ``pid``, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return {"rss_mb": rss / 1024, "threads": threads,
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def _sample_value(body: str, name: str) -> float | None:
    """Sum of the samples of ``name`` (any labels) in an exposition body, or None."""
    found = re.findall(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", body, re.MULTILINE)
    return sum(float(value) for value in found) if found else None


def scrape(port: int) -> dict[str, Any]:
    """One scrape of /metrics: its size and time, and the figures read from it."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        body = _send_body(connection)
    finally:
        connection.close()
    seconds = time.perf_counter() - started
    requests = _sample_value(body, "bizops_requests_total") or 0.0
    overflow = _sample_value(body, "bizops_internal_overflow_total") or 0.0
    dropped = dict(re.findall(r'^bizops_internal_dropped_total\{reason="([^"]+)"\} (\S+)$',
                              body, re.MULTILINE))
    return {"bytes": len(body.encode()), "seconds": seconds,
            "keys": _sample_value(body, "bizops_internal_keys"),
            "recorded": requests, "overflow_share": overflow / requests if requests else 0.0,
            "monitor_pass": _sample_value(body, "bizops_internal_campaign_monitor_pass_seconds"),
            "legit": f'bizops_campaign_id="{LEGIT}"' in body,
            "session_leak": SESSION_MARK in body,
            "dropped": {reason: float(count) for reason, count in dropped.items()}}


def _send_body(connection: http.client.HTTPConnection) -> str:
    connection.request("GET", "/metrics/")
    response = connection.getresponse()
    if response.status in (301, 307, 308):  # a mount that redirects to its slash form
        response.read()
        connection.request("GET", "/metrics")
        response = connection.getresponse()
    return response.read().decode()


def _default_sigint() -> None:
    # A shell that starts a job in the background starts it with SIGINT ignored, and
    # children inherit that; the shop must stop on Ctrl-C whatever this process inherited.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_shop(port: int, max_keys: int,
               more_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """The example shop under uvicorn on 127.0.0.1:``port``, SIGINT at its default;
    ``more_env`` adds variables (an OTLP endpoint, a multi-process directory)."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("OTEL_", "BIZOPS_OTEL_"))
           or key in ("BIZOPS_OTEL_NO_EXTENSIONS", "BIZOPS_OTEL_REQUIRE_EXTENSIONS")}
    env.update(BIZOPS_OTEL_MAX_KEYS=str(max_keys), BIZOPS_OTEL_QUIET="1",
               OPENBLAS_NUM_THREADS="1", **(more_env or {}))
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:app", "--app-dir", str(SHOP), "--host",
         "127.0.0.1", "--port", str(port), "--log-level", "error", "--no-access-log"],
        cwd=SHOP, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=_default_sigint)


def wait_until_listening(port: int, process: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"the shop exited: {output}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            _send(connection, "GET", "/landing", {})
            connection.close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the shop did not listen on {port} within {timeout} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Run:
    """What a run saw: a row per sample, the responses, the legitimate campaign."""

    rows: list[dict[str, Any]]
    statuses: Counter[int]
    bad_orders: Counter[str]
    failures: int
    legit_first_sent: float | None
    legit_keyed_after: float | None
    final: dict[str, Any]


def run(duration: float = 120.0, every: float = 10.0, clients: int = 3, max_keys: int = 2000,
        legit_at: float = 0.7, legit_every: float = 5.0, seed: int = 1,
        print_rows: bool = True) -> Run:
    """Start the shop, attack it for ``duration`` seconds, sample every ``every`` seconds;
    always stops the clients and the shop."""
    port = free_port()
    shop = start_shop(port, max_keys)
    stop, legit_stop = threading.Event(), threading.Event()
    tally = Tally()
    legit_sent: list[float] = []
    rows: list[dict[str, Any]] = []
    threads: list[threading.Thread] = []
    keyed_at: float | None = None
    try:
        wait_until_listening(port, shop, timeout=60)
        baseline = process_figures(shop.pid)
        started = time.monotonic()
        threads = [threading.Thread(target=attack, args=(port, seed * 100 + i, stop, tally),
                                    daemon=True) for i in range(clients)]
        for thread in threads:
            thread.start()
        legit_thread = threading.Thread(target=legitimate, daemon=True,
                                        args=(port, legit_every, legit_stop, legit_sent))
        last_count, last_time, next_row = 0, started, started + every
        if print_rows:
            print(f"baseline: RSS {baseline['rss_mb']:.1f} MB, {baseline['threads']:.0f} "
                  f"threads, {baseline['fds']:.0f} fds; max_keys {max_keys}, {clients} clients")
        while (elapsed := time.monotonic() - started) < duration:
            if legit_thread.ident is None and elapsed >= legit_at * duration:
                legit_thread.start()
            time.sleep(min(1.0, duration - elapsed))
            now = time.monotonic()
            # While the legitimate campaign waits for its key, look every second.
            watching = bool(legit_sent) and keyed_at is None
            due = now >= next_row
            if not (watching or due):
                continue
            figures = scrape(port)
            if watching and figures["legit"]:
                keyed_at = time.monotonic() - legit_sent[0]
            if due:
                count = tally.total()
                row = {"t": now - started, "requests": count,
                       "per_second": (count - last_count) / (now - last_time),
                       **process_figures(shop.pid), **figures}
                rows.append(row)
                last_count, last_time, next_row = count, now, next_row + every
                if print_rows:
                    print(format_row(row), flush=True)
        stop.set()
        legit_stop.set()
        for thread in threads:
            thread.join(timeout=15)
        if legit_thread.ident is not None:
            legit_thread.join(timeout=15)
        final = {**scrape(port), **process_figures(shop.pid), "baseline": baseline}
        if final["legit"] and keyed_at is None and legit_sent:
            keyed_at = time.monotonic() - legit_sent[0]
    finally:
        stop.set()
        legit_stop.set()
        if shop.poll() is None:
            shop.kill()
        shop.wait(timeout=10)
        if shop.stdout is not None:
            shop.stdout.close()
    return Run(rows, tally.statuses, tally.bad_orders, tally.failures,
               legit_sent[0] if legit_sent else None, keyed_at, final)


HEADER = (f"{'t s':>6} {'requests':>9} {'req/s':>7} {'RSS MB':>7} {'thr':>4} {'fds':>4} "
          f"{'keys':>6} {'overflow':>8} {'scrape KB':>9} {'scrape ms':>9} {'monitor ms':>10}")


def format_row(row: dict[str, Any]) -> str:
    monitor = ("-" if row.get("monitor_pass") is None
               else f"{row['monitor_pass'] * 1e3:.1f}")
    keys = "-" if row.get("keys") is None else f"{row['keys']:.0f}"
    return (f"{row['t']:6.1f} {row['requests']:9d} {row['per_second']:7.0f} "
            f"{row['rss_mb']:7.1f} {row['threads']:4.0f} {row['fds']:4.0f} {keys:>6} "
            f"{row['overflow_share']:8.1%} {row['bytes'] / 1024:9.0f} "
            f"{row['seconds'] * 1e3:9.0f} {monitor:>10}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds (default 120)")
    parser.add_argument("--every", type=float, default=10.0, help="sample period, seconds")
    parser.add_argument("--clients", type=int, default=3, help="client threads (default 3)")
    parser.add_argument("--max-keys", type=int, default=2000, help="the shop's max_keys")
    parser.add_argument("--legit-at", type=float, default=0.7,
                        help="fraction of the run when the legitimate campaign starts")
    parser.add_argument("--legit-every", type=float, default=5.0,
                        help="seconds between the legitimate campaign's landings")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(HEADER)
    result = run(args.duration, args.every, args.clients, args.max_keys, args.legit_at,
                 args.legit_every, args.seed)
    final, baseline = result.final, result.final["baseline"]
    print(f"\nresponses: {dict(sorted(result.statuses.items()))}, "
          f"connection failures: {result.failures}")
    print(f"RSS {baseline['rss_mb']:.1f} -> {final['rss_mb']:.1f} MB, threads "
          f"{baseline['threads']:.0f} -> {final['threads']:.0f}, fds {baseline['fds']:.0f} -> "
          f"{final['fds']:.0f}; keys {final['keys']}, overflow share "
          f"{final['overflow_share']:.1%}; scrape {final['bytes'] / 1024:.0f} KB in "
          f"{final['seconds'] * 1e3:.0f} ms; a session id in the scrape: {final['session_leak']}")
    print(f"drops by reason: {final['dropped']}")
    if result.legit_first_sent is None:
        print("the legitimate campaign did not start (run longer)")
    elif result.legit_keyed_after is None:
        print(f"{LEGIT}: never scraped under its own name")
    else:
        print(f"{LEGIT}: scraped under its own name {result.legit_keyed_after:.1f} s after "
              "its first landing")


if __name__ == "__main__":
    main()
