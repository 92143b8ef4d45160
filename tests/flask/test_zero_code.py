"""Zero-code: ``examples/flask_zero_code`` under ``opentelemetry-instrument`` with
BIZOPS_OTEL_* set, an app that never imports bizops-otel."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from bizops_otel.aggregate import persist
from tests.processes import free_port, reap, spawn, stop, wait_for_port

APP = Path(__file__).parent.parent.parent / "examples" / "flask_zero_code" / "app.py"
INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"


def run_app(extra_env: dict[str, str], paths: list[str],
            after: Callable[[], None] | None = None) -> tuple[int, str]:
    """Start the app under opentelemetry-instrument, request ``paths``, stop it with
    Ctrl-C; returns the exit code and what it logged."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "OTEL_TRACES_EXPORTER": "none",
           "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
           "OTEL_PYTHON_LOG_LEVEL": "info",
           # Every key admitted on first sight and kept: the tests count each request.
           "BIZOPS_OTEL_ADMISSION_COUNT": "1", "BIZOPS_OTEL_KEY_TTL": "0", **extra_env}
    process = spawn([str(INSTRUMENT), sys.executable, str(APP)], env=env,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(port, process, timeout=30)
        for path in paths:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
                assert reply.status == 200
        if after is not None:
            after()
        output, _ = stop(process)
    finally:
        reap(process)
    return process.returncode, output


@pytest.mark.skipif(not INSTRUMENT.exists(), reason="opentelemetry-instrument not installed")
def test_zero_code_install_populates_the_aggregator(tmp_path: Path) -> None:
    paths = ["/landing?utm_campaign=spring", "/landing?utm_campaign=spring",
             "/product/1", "/product/2?utm_campaign=mail", "/landing"]
    _, output = run_app({"BIZOPS_OTEL_MULTIPROC_DIR": str(tmp_path),
                         "BIZOPS_OTEL_PAGE_GROUPS": "/product/*=product",
                         "BIZOPS_OTEL_MAX_KEYS": "100"}, paths)
    files = list(tmp_path.glob("bizops-*.npz"))
    assert len(files) == 1, output
    snapshot = persist.read(files[0])
    counts = {key: snapshot[key].count for key in snapshot}
    assert counts == {("/landing", "spring"): 2, ("product", ""): 1, ("product", "mail"): 1,
                      ("/landing", ""): 1}, output


@pytest.mark.skipif(not INSTRUMENT.exists(), reason="opentelemetry-instrument not installed")
def test_zero_code_can_be_disabled_and_survives_bad_configuration(tmp_path: Path) -> None:
    _, output = run_app({"BIZOPS_OTEL_MULTIPROC_DIR": str(tmp_path),
                         "BIZOPS_OTEL_ENABLED": "false"}, ["/landing"])
    assert not list(tmp_path.glob("bizops-*.npz"))
    _, output = run_app({"BIZOPS_OTEL_MULTIPROC_DIR": str(tmp_path),
                         "BIZOPS_OTEL_MAX_KEYS": "lots"}, ["/landing"])
    assert not list(tmp_path.glob("bizops-*.npz"))
    assert "BIZOPS_OTEL_MAX_KEYS" in output  # the service ran, and said why


@pytest.mark.skipif(not INSTRUMENT.exists(), reason="opentelemetry-instrument not installed")
def test_zero_code_serves_metrics_and_says_so_on_stderr(tmp_path: Path) -> None:
    """One variable gives a zero-code service its /metrics; the app is scraped while it
    runs, and stderr carries the one line saying what was installed."""
    metrics_port = free_port()
    scraped: list[str] = []

    def scrape() -> None:
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            scraped.append(reply.read().decode())

    _, output = run_app({"BIZOPS_OTEL_PROMETHEUS_PORT": str(metrics_port),
                         "BIZOPS_OTEL_PROMETHEUS_ADDR": "127.0.0.1",
                         "BIZOPS_OTEL_PAGE_GROUPS": "/product/*=product"},
                        ["/product/1", "/product/2"], after=scrape)
    assert 'bizops_requests_total{bizops_page_group="product"} 2.0' in scraped[0], scraped
    assert f"/metrics on 127.0.0.1:{metrics_port}" in output
    assert "bizops-otel: installed" in output
