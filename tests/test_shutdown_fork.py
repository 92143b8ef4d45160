"""Shutdown and fork, tried as an operator would: every exporter configured at once
(a multi-process directory, a Prometheus endpoint, an OTLP push), then ``shutdown()``;
real forks without exec (multiprocessing's fork start method); an OTLP endpoint that
accepts connections and never answers.

- After ``shutdown()`` no thread of ours is alive (by name, and by the tasks of
  /proc/self/task) and every file descriptor we opened is closed (/proc/self/fd), even with
  a scrape connection left open by a client that never sends its request.
- A forked child starts with an empty aggregator and its own ``service.instance.id``, and
  reports what it saw through a pipe.
- ``force_flush(timeout_millis=...)`` returns within its timeout and ``shutdown()`` within
  the export timeout when the endpoint hangs, through the direct pusher and through the
  SDK's own OTLP HTTP exporter on a MeterProvider.

Both aggregator twins wherever the aggregator is involved.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

import bizops_otel
from bizops_otel import Config
from bizops_otel.export.otlp import resource
from tests.keys import EVERY_KEY
from tests.otlp_receiver import http_receiver
from tests.processes import free_port

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
_install_module = importlib.import_module("bizops_otel.install")
#: How long an OTLP export may take in these tests (OTEL_METRIC_EXPORT_TIMEOUT).
EXPORT_TIMEOUT_S = 2.0
#: Slack on a bound in time: scheduling on two shared cores, not performance.
SLACK_S = 2.0


@pytest.fixture(autouse=True)
def _no_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "BIZOPS_OTEL_")) and "EXTENSIONS" not in name:
            monkeypatch.delenv(name)


@pytest.fixture
def twin(Aggregator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``install()`` builds this twin of the aggregator."""
    monkeypatch.setattr(_install_module, "Aggregator", Aggregator)
    return Aggregator


def push_to(monkeypatch: pytest.MonkeyPatch, endpoint: str, interval_ms: int) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", str(interval_ms))
    monkeypatch.setenv("OTEL_METRIC_EXPORT_TIMEOUT", str(int(EXPORT_TIMEOUT_S * 1000)))


def requests_through(provider: TracerProvider, count: int, page: str = "/cart") -> None:
    tracer = provider.get_tracer("shop")
    for _ in range(count):
        with tracer.start_as_current_span(f"GET {page}", kind=SpanKind.SERVER,
                                          attributes={"http.route": page}):
            pass


def our_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("bizops-otel"))


def tasks() -> set[int]:
    return {int(task) for task in os.listdir("/proc/self/task")}


def open_fds() -> dict[int, str]:
    """This process's open descriptors and what each is (a path, ``socket:[inode]``, …)."""
    found = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            found[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue  # the descriptor listdir itself used, closed since
    return found


def settle(condition: Any, seconds: float = 5.0) -> bool:
    """Whether ``condition()`` holds within ``seconds``: threads of a test server close
    their side of a connection a moment after the client closed its own."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@contextmanager
def silent_endpoint() -> Iterator[str]:
    """An HTTP endpoint on 127.0.0.1 that accepts every connection, reads nothing and never
    answers: a Collector stuck behind a full queue, or a proxy that lost its upstream."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(connection)

    thread = threading.Thread(target=accept, name="silent-endpoint", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1/metrics"
    finally:
        stop.set()
        thread.join(5)
        for connection in accepted:
            connection.close()
        listener.close()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return str(reply.read().decode())


def test_shutdown_leaves_no_thread_and_no_open_file_with_every_exporter_on(
        twin: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with http_receiver() as (endpoint, received):
        push_to(monkeypatch, endpoint + "/v1/metrics", interval_ms=100)
        threads_before, tasks_before, fds_before = our_threads(), tasks(), open_fds()
        port = free_port()
        provider = TracerProvider()
        handle = bizops_otel.install(provider, config=Config(
            **EVERY_KEY, multiproc_dir=str(tmp_path / "state"), multiproc_interval=0.05,
            prometheus_port=port, prometheus_addr="127.0.0.1", campaign_interval=0.05,
            dimensions=("bizops.page_group", "bizops.campaign.id")))
        idle = None
        try:
            assert handle.aggregator is not None
            assert handle.aggregator.implementation == twin.implementation
            requests_through(provider, 50)
            assert "bizops_requests_total" in scrape(port)
            # A client that connects to /metrics and never sends its request: its handler
            # thread waits to read, and must not keep shutdown waiting, nor outlive it.
            idle = socket.create_connection(("127.0.0.1", port))
            assert settle(lambda: received.attempts >= 2)  # the pusher pushes on its own
            assert settle(lambda: (tmp_path / "state" / f"bizops-{os.getpid()}.npz").exists())
            assert set(our_threads()) >= {"bizops-otel-campaigns", "bizops-otel-metrics",
                                          "bizops-otel-otlp", "bizops-otel-state"}
            started = time.monotonic()
            handle.shutdown()
            took = time.monotonic() - started
            assert took < EXPORT_TIMEOUT_S + SLACK_S, took
            assert our_threads() == threads_before
            # Every thread of the process, named or not (a scrape's handler thread, a
            # thread an exporter started), is gone while the idle client still holds its
            # connection: the tasks are those of before.
            assert settle(lambda: tasks() <= tasks_before), sorted(tasks() - tasks_before)
        finally:
            handle.shutdown()
            if idle is not None:
                idle.close()

        def leaked() -> dict[int, str]:
            now = open_fds()
            return {fd: what for fd, what in now.items() if fds_before.get(fd) != what}

        assert settle(lambda: not leaked()), leaked()
        # The final state was written and pushed.
        assert (tmp_path / "state" / f"bizops-{os.getpid()}.npz").exists()


def counts(snapshot: Any) -> dict[str, int]:
    """Requests by page group."""
    return {key[0]: snapshot[key].count for key in snapshot}


def _report_from_child(handle: Any, provider: TracerProvider,
                       connection: Any) -> None:
    """In the forked child: what it inherited, then what it records itself."""
    snapshot = handle.aggregator.snapshot()
    inherited = {"keys": len(snapshot), "requests": snapshot.total().count}
    requests_through(provider, 3, "/child")
    after = handle.aggregator.snapshot()
    connection.send({
        "pid": os.getpid(), "instance_id": resource.instance_id(),
        "inherited": inherited,
        "own": counts(after),
        "state_path": str(handle.state_path()),
        "threads": our_threads()})
    connection.close()
    handle.shutdown()


def test_forked_children_start_empty_with_their_own_instance_ids(
        twin: Any, tmp_path: Path) -> None:
    provider = TracerProvider()
    handle = bizops_otel.install(provider, config=Config(
        **EVERY_KEY, multiproc_dir=str(tmp_path), campaign_interval=0.05,
        dimensions=("bizops.page_group", "bizops.campaign.id")))
    context = multiprocessing.get_context("fork")
    children = []
    try:
        requests_through(provider, 20, "/parent")
        parent_id = resource.instance_id()
        reports = []
        for _ in range(2):
            receiving, sending = context.Pipe(duplex=False)
            child = context.Process(target=_report_from_child,
                                    args=(handle, provider, sending))
            child.start()
            children.append(child)
            sending.close()
            assert receiving.poll(30), "the child did not report"
            reports.append(receiving.recv())
            receiving.close()
        for child in children:
            child.join(30)
            assert child.exitcode == 0
        parent = handle.aggregator.snapshot()
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
                child.join(10)
        handle.shutdown()
    for report in reports:
        assert report["inherited"] == {"keys": 0, "requests": 0}, report
        assert report["own"] == {"/child": 3}, report
        assert report["pid"] != os.getpid()
        assert report["state_path"] == str(tmp_path / f"bizops-{report['pid']}.npz")
        # The child runs its own background work (the parent's threads do not exist there).
        assert {"bizops-otel-campaigns", "bizops-otel-state"} <= set(report["threads"])
    ids = {parent_id, reports[0]["instance_id"], reports[1]["instance_id"]}
    assert len(ids) == 3, ids
    assert counts(parent) == {"/parent": 20}
    # Each child's final state is its own file, holding only its own requests.
    for report in reports:
        assert Path(report["state_path"]).exists()


def test_force_flush_and_shutdown_return_in_time_when_the_push_endpoint_hangs(
        twin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with silent_endpoint() as endpoint:
        push_to(monkeypatch, endpoint, interval_ms=200)
        provider = TracerProvider()
        handle = bizops_otel.install(provider, config=Config(**EVERY_KEY,
                                                             campaign_interval=0))
        try:
            requests_through(provider, 10)
            time.sleep(0.5)  # the pusher's own export is under way, and hangs
            started = time.monotonic()
            assert handle.force_flush(timeout_millis=1000) is False
            flushed_in = time.monotonic() - started
            started = time.monotonic()
            handle.shutdown()
            shut_in = time.monotonic() - started
        finally:
            handle.shutdown()
    assert flushed_in < 1.0 + SLACK_S, flushed_in
    assert shut_in < EXPORT_TIMEOUT_S + SLACK_S, shut_in
    assert handle.export_status is not None
    assert set(handle.export_status.failures) & {"timeout", "deadline"}
    assert our_threads() == []


def test_force_flush_and_shutdown_return_in_time_when_the_sdk_exporter_hangs(
        twin: Any) -> None:
    """The SDK's own OTLP HTTP exporter on the application's MeterProvider, pointed at an
    endpoint that never answers."""
    with silent_endpoint() as endpoint:
        exporter = OTLPMetricExporter(endpoint=endpoint, timeout=EXPORT_TIMEOUT_S)
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=600_000,
                                               export_timeout_millis=EXPORT_TIMEOUT_S * 1000)
        meter_provider = MeterProvider(metric_readers=[reader])
        provider = TracerProvider()
        handle = bizops_otel.install(provider, meter_provider,
                                     config=Config(**EVERY_KEY, campaign_interval=0))
        try:
            requests_through(provider, 10)
            started = time.monotonic()
            # What it returns is the SDK's answer (its reader reports a failed export as
            # flushed); that it returns in time is ours to hold.
            handle.force_flush(timeout_millis=1000)
            flushed_in = time.monotonic() - started
            started = time.monotonic()
            handle.shutdown()
            shut_in = time.monotonic() - started
        finally:
            handle.shutdown()
            meter_provider.shutdown(timeout_millis=1000)
    assert flushed_in < 1.0 + SLACK_S, flushed_in
    assert shut_in < SLACK_S, shut_in
    assert our_threads() == []
