"""A real Prometheus server (Debian's package) scraping processes on 127.0.0.1 every second
with the recording rules loaded, and the parts of its HTTP API the tests read."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.processes import free_port, running, wait_for_port
from tests.tools import require

RULES = Path(__file__).parent.parent / "deploy" / "prometheus" / "bizops-rules.yml"


def _get(port: int, path: str, parameters: dict[str, Any]) -> Any:
    url = f"http://127.0.0.1:{port}{path}?" + urllib.parse.urlencode(parameters, doseq=True)
    with urllib.request.urlopen(url, timeout=10) as reply:
        body = json.load(reply)
    assert body["status"] == "success", body
    return body["data"]


def query(port: int, expression: str, at: float | None = None) -> list[dict[str, Any]]:
    """An instant query, evaluated now or at Unix time ``at``."""
    parameters: dict[str, Any] = {"query": expression}
    if at is not None:
        parameters["time"] = f"{at:.3f}"
    return list(_get(port, "/api/v1/query", parameters)["result"])


def query_range(port: int, expression: str, start: float, end: float,
                step: float = 1.0) -> list[dict[str, Any]]:
    return list(_get(port, "/api/v1/query_range", {
        "query": expression, "start": f"{start:.3f}", "end": f"{end:.3f}",
        "step": f"{step:g}"})["result"])


def label_values(port: int, label: str, selector: str) -> list[str]:
    """The values of ``label`` on the series ``selector`` matches, as Grafana asks for a
    ``label_values(selector, label)`` variable."""
    return list(_get(port, f"/api/v1/label/{label}/values", {"match[]": selector}))


def wait_for(port: int, expression: str, check: Callable[[list[dict[str, Any]]], Any],
             seconds: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    result: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            result = query(port, expression)
            if check(result):
                return result
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {expression}: {result}")


@contextmanager
def scraping(targets: Sequence[str], directory: Path, rules: Path = RULES) -> Iterator[int]:
    """A Prometheus scraping ``targets`` (``host:port``) every second, evaluating ``rules``
    every second, its data in ``directory``; yields its port and is killed on leaving."""
    binary = require("prometheus")
    listed = ", ".join(f"'{target}'" for target in targets)
    config = directory / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {rules}\n"
        "scrape_configs:\n  - job_name: shop\n    static_configs:\n"
        f"      - targets: [{listed}]\n")
    port = free_port()
    with running([binary, f"--config.file={config}",
                  f"--storage.tsdb.path={directory / 'data'}",
                  f"--web.listen-address=127.0.0.1:{port}"],
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as server:
        wait_for_port(port, server)
        yield port
