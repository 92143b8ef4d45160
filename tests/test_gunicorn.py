"""gunicorn with 4 workers: one scrape of the master's endpoint counts every request,
also after a worker was killed and replaced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import free_port, reap, spawn, stop

EXAMPLE = Path(__file__).parent.parent / "examples" / "gunicorn"
GUNICORN = Path(sys.executable).parent / "gunicorn"


def pairs(metrics_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return sum(sample.value for family in text_string_to_metric_families(text)
               if family.name == "bizops_kpi_pairs"
               for sample in family.samples
               if sample.name == "bizops_kpi_pairs_total"
               and sample.labels.get("bizops_kpi") == "conversion")


def wait_for_pairs(metrics_port: int, expected: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    seen = -1.0
    while time.monotonic() < deadline:
        try:
            seen = pairs(metrics_port)
        except OSError:
            seen = -1.0
        if seen == expected:
            return
        time.sleep(0.2)
    raise AssertionError(f"scrape shows {seen} pairs, expected {expected}")


def send(port: int, count: int) -> None:
    for i in range(count):
        if i % 4 == 0:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/checkout?value=12.5",
                                             method="POST")
        else:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/product/{i}")
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert reply.status == 200


def workers_of(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    if not GUNICORN.exists():
        pytest.skip("gunicorn not installed")
    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "PORT": str(port), "METRICS_PORT": str(metrics_port), "WORKERS": "4",
           "BIZOPS_OTEL_MULTIPROC_DIR": str(tmp_path / "state"),
           "BIZOPS_OTEL_MULTIPROC_INTERVAL": "0.2"}
    process = spawn([str(GUNICORN), "-c", "gunicorn.conf.py", "app:app"], cwd=EXAMPLE,
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while len(workers_of(process.pid)) < 4 or pairs_or_none(metrics_port) is None:
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)
        yield process, port, metrics_port
    finally:
        if process.poll() is None:
            stop(process, signal.SIGTERM)
        reap(process)


def pairs_or_none(metrics_port: int) -> float | None:
    try:
        return pairs(metrics_port)
    except OSError:
        return None


def test_four_workers_count_exactly_and_survive_a_killed_worker(
        server: tuple[subprocess.Popen[bytes], int, int], tmp_path: Path) -> None:
    process, port, metrics_port = server
    send(port, 200)
    wait_for_pairs(metrics_port, 200)
    before = workers_of(process.pid)
    os.kill(before[0], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        now = workers_of(process.pid)
        if len(now) == 4 and before[0] not in now:
            break
        assert time.monotonic() < deadline, "the killed worker was not replaced"
        time.sleep(0.2)
    wait_for_pairs(metrics_port, 200)  # the dead worker's requests still count
    send(port, 60)
    wait_for_pairs(metrics_port, 260)
    files = sorted(p.name for p in (tmp_path / "state").glob("bizops-*.npz"))
    assert "bizops-archive.npz" in files and len(files) <= 5, files
