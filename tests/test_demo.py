"""``bizops-otel demo`` end to end: a real shop on 127.0.0.1, real visitors over HTTP, and
the metrics it serves while it runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.keys import EVERY_KEY
from tests.processes import reap, spawn, stop


def start(*arguments: str, **otel: str) -> tuple[subprocess.Popen[str], int]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    process = spawn([sys.executable, "-m", "bizops_otel", "demo", "--port", "0", *arguments],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                    env={**environment, **otel})
    assert process.stdout is not None
    seen = []
    for _ in range(5):  # the history replay reports itself first
        seen.append(process.stdout.readline())
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", seen[-1])
        if found:
            return process, int(found.group(1))
    reap(process)
    raise AssertionError("".join(seen))


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {(s.name, frozenset((k, v) for k, v in s.labels.items() if v)): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def series(points: dict[Any, float], name: str, **labels: str) -> dict[Any, float]:
    wanted = set(labels.items())
    return {k: v for k, v in points.items() if k[0] == name and wanted <= k[1]}


def test_demo_runs_twenty_seconds_and_serves_the_business_metrics() -> None:
    process, port = start("--duration", "20", "--rate", "16", "--seed", "3")
    # The demo's 20 s count from its live start, after the history replay (which takes
    # seconds on the pure twin under load), and the address is printed then.
    began = time.monotonic()
    failing_seen = False
    points: dict[Any, float] = {}
    try:
        while time.monotonic() - began < 19.0:
            time.sleep(1.0)
            points = scrape(port)
            failing = series(points, "bizops_campaign_health", bizops_campaign_id="flash_sale",
                             state="failing")
            failing_seen = failing_seen or any(v == 1.0 for v in failing.values())
        # The report of the same state, live, as a reader's browser would fetch it.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/bizops/report",
                                    timeout=30) as response:
            report_type = response.headers["Content-Type"]
            report = response.read().decode()
        output, errors = process.communicate(timeout=60)
    finally:
        reap(process)
    assert process.returncode == 0, errors
    assert report_type == "text/html; charset=utf-8"
    assert 'data-rank="1"' in report and 'data-campaign="flash_sale"' in report
    assert f"report http://127.0.0.1:{port}/bizops/report" in output  # the view says where
    # The broken campaign (launched at 4 s, landing page 10× slower) was caught.
    assert failing_seen
    assert series(points, "bizops_campaign_health", bizops_campaign_id="spring_sale",
                  state="failing") == {("bizops_campaign_health", frozenset({
                      ("bizops_campaign_id", "spring_sale"), ("state", "failing")})): 0.0}
    impact = series(points, "bizops_session_conversion_impact",
                    bizops_session_scope="page_group")
    # A key's first request counts in overflow until the key is admitted, its session
    # page under the overflow group (marked otel.metric.overflow, no page group).
    groups = {dict(k[1]).get("bizops_page_group") for k in impact} - {None}
    assert {"landing", "product"} <= groups
    assert all(-1.0 <= v <= 1.0 for v in impact.values())
    finished = series(points, "bizops_sessions_total", bizops_session_scope="all")
    assert sum(finished.values()) >= 50
    assert series(points, "bizops_whatif_conversion_change", bizops_session_scope="all",
                  bizops_delta_ms="-100", bizops_bound="estimate")
    assert series(points, "bizops_ab_p_value", bizops_ab_test="conversion")
    # The live view fits 80 columns, and the run ends with a summary.
    assert max(len(line) for line in output.splitlines()) <= 80 + 30  # the summary line
    assert max(len(line) for line in output.splitlines()[:-1]) <= 80
    assert re.search(r"\d+ sessions, [\d,]+ requests", output)
    check_final_view(output, duration=20.0)


def check_final_view(output: str, duration: float) -> None:
    """What the demo plants is what its last view shows, opened by the replayed history:
    the sensitive pages first by impact, the A/B lift detected, the broken campaign
    failing and the healthy one ok, no placebo what-if beyond noise, and a clock that
    stops at the duration."""
    final = output[output.rindex("bizops-otel demo · live"):]
    live = re.search(r"live (\d+) of (\d+) s", final)
    assert live and int(live.group(1)) <= int(live.group(2)) == int(duration)
    ran = re.search(r"Live for ([\d.]+) s", final)
    assert ran and float(ran.group(1)) <= duration + 0.5
    assert "history 20,000 sessions" in final
    rows = [line.split() for line in final.splitlines()
            if line.split() and line.split()[0] in ("landing", "product", "cart", "checkout",
                                                    "order")]
    assert {rows[0][0], rows[1][0]} == {"product", "checkout"}, rows
    for row in rows:
        if row[0] in ("landing", "cart", "order") and row[-1] != "-":
            assert abs(float(row[-2])) <= 0.5, row  # "+0.1 pt": the change, in points
    ab = re.search(r"A/B B vs A: conversion ([+-][\d.]+) pt \(p=([\d.]+)\)", final)
    assert ab and float(ab.group(1)) > 0 and float(ab.group(2)) < 0.05
    assert re.search(r"flash_sale\s+FAILING", final), final
    assert re.search(r"spring_sale\s+OK", final), final
    # The shop's objectives, counted over the history and the live requests.
    for name, threshold in (("checkout", "1.5"), ("place_order", "1")):
        objective = re.search(rf"objective {name}: ([\d.]+)% ≤ {threshold} s "
                              r"\(target [\d.]+%\), budget [+-]\d+%, burn ([\d.]+|-)$", final,
                              re.M)
        assert objective and 50 < float(objective.group(1)) <= 100, final


def test_demo_stops_cleanly_on_ctrl_c() -> None:
    process, port = start("--duration", "0", "--rate", "5")
    try:
        time.sleep(4.0)
        assert scrape(port)  # serving
        output, errors = stop(process, timeout=60)
    finally:
        reap(process)
    assert process.returncode == 0, errors
    assert "stopping" in output and "Traceback" not in errors
    assert re.search(r"\d+ sessions, [\d,]+ requests", output)


def test_report_prints_the_analytics_of_saved_state(tmp_path: Any) -> None:
    """State saved by one process (as a pre-fork worker writes it) read by the command."""
    from opentelemetry.sdk.trace import TracerProvider

    from bizops_otel import BizOpsSpanProcessor, Config, attributes
    from bizops_otel.aggregate import persist
    from bizops_otel.aggregate.aggregator import Aggregator
    from bizops_otel.analytics import session_stats
    from bizops_otel.demo.simulate import Scenario, Simulator, emit
    from tests.spans import PAGE_RULES

    config = Config(**EVERY_KEY, dimensions=(attributes.PAGE_GROUP, attributes.CAMPAIGN_ID),
                    page_groups=PAGE_RULES)
    aggregator = Aggregator(config)
    provider = TracerProvider()
    provider.add_span_processor(BizOpsSpanProcessor(aggregator, config))
    epoch = 1_700_000_000 * 10**9
    emit(provider.get_tracer("t"), list(Simulator(Scenario(), 2).sessions(2000)), epoch)
    snapshot = aggregator.snapshot(now_ns=epoch + 86_400 * 10**9)
    directory = tmp_path / "state"
    directory.mkdir()
    persist.write(snapshot, directory / f"bizops-{os.getpid()}.npz")
    for path in (directory / f"bizops-{os.getpid()}.npz", directory):
        result = subprocess.run([sys.executable, "-m", "bizops_otel", "report", str(path)],
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()
                if line.split() and line.split()[0] in ("landing", "product", "cart",
                                                        "checkout")}
        assert set(rows) == {"landing", "product", "cart", "checkout"}
        for name, fields in rows.items():
            group = session_stats(snapshot)[name]
            assert fields[4] == f"{group.sessions:,}"
            assert fields[5] == f"{group.conversion_impact:+.3f}"
    missing = subprocess.run([sys.executable, "-m", "bizops_otel", "report",
                              str(tmp_path / "nothing.npz")], capture_output=True, text=True,
                             timeout=60, check=False)
    assert missing.returncode == 2 and "nothing.npz" in missing.stderr


def test_demo_pushes_metrics_and_traces_over_otlp() -> None:
    """With OTEL_EXPORTER_OTLP_ENDPOINT set, the demo pushes to an OTLP receiver (gRPC,
    from the official service definitions) on 127.0.0.1."""
    from tests.otlp_receiver import grpc_receiver

    with grpc_receiver() as (endpoint, received):
        process, _ = start("--duration", "8", "--rate", "10",
                           OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
                           OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
                           OTEL_METRIC_EXPORT_INTERVAL="1000")
        try:
            _, errors = process.communicate(timeout=60)
        finally:
            reap(process)
        assert process.returncode == 0, errors
        assert "Traceback" not in errors
        points = received.last_points()
        requests = points["bizops.requests"]
        assert sum(value for _, value in requests) > 50
        assert {attributes.get("bizops.page_group") for attributes, _ in requests} >= {
            "landing", "product"}
        # Finished sessions and judged campaigns reach the backend too.
        assert sum(v for a, v in points["bizops.sessions"]
                   if a.get("bizops.session.scope") == "all") > 0
        assert any(a.get("bizops.campaign.id") == "spring_sale"
                   for a, _ in points["bizops.campaign.health"])
        with received.lock:
            groups = {span.get("bizops.page_group") for span in received.spans}
        assert {"product", "cart"} <= groups  # written on spans by the processor
