"""deploy/grafana/bizops-otel.json: an importable Grafana dashboard whose every query
returns data.

Real: the dashboard file as Grafana imports it; promtool (Debian's prometheus package)
parses every expression; ``bizops-otel demo`` serves its planted scenario on 127.0.0.1 (a
checkout whose slowness costs conversions, a campaign launched with a landing page ten
times slower, a variant B that converts better); Debian's Prometheus scrapes it every
second with deploy/prometheus/bizops-rules.yml loaded, and answers each query over its
HTTP API: instant targets as instant queries, range targets as range queries, variables as
Grafana asks for ``label_values``, through the label-values API with a ``match[]``.

Substituted, as Grafana substitutes before it sends a query: ``$instance`` and
``$page_group`` by ``.*`` and ``$campaign`` by ``.+`` (each variable's All value), and
``$__rate_interval`` and ``$__range`` by fixed windows (Grafana derives them from the scrape
interval and the time picker). All queries of a round are evaluated at one instant, as one
refresh of the dashboard would. Beyond data, the panels must show what the demo planted:
checkout and product first by Conversion Impact Score, checkout gaining most from 100 ms,
the broken campaign failing after a start that was not, the healthy one ok, and variant
B's conversion lift significant.

Not checked against data: the panels over the OTLP pusher's own status
(``bizops_internal_export_failures_total``, ``bizops_internal_export_last_success_seconds``).
bizops-otel sends those only inside the OTLP push, so a Prometheus that scrapes it never
has them, and Debian's Prometheus (2.42) takes no OTLP. The test asserts that the scrape
lacks them, so it fails the day the scrape carries them and the exception can go.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bizops_otel.export.naming import prometheus_name
from bizops_otel.export.otlp.push import ExportStatus
from tests.metric_names import exported_and_recorded
from tests.processes import running
from tests.real_prometheus import label_values, query, query_range, scraping
from tests.tools import require

#: The subject (the dashboard's queries against a real Prometheus) does not depend on the twin:
#: the native pass runs it, the pure-only pass leaves it out.
pytestmark = pytest.mark.native_pass_only

ROOT = Path(__file__).parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "bizops-otel.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
VARIABLES = ("datasource", "instance", "page_group", "campaign")
#: What Grafana puts in place of each variable: every value, and fixed windows.
SUBSTITUTES = {"instance": ".*", "page_group": ".*", "campaign": ".+",
               "__rate_interval": "1m", "__range": "5m"}
PANEL_TYPES = {"row", "timeseries", "stat", "bargauge", "barchart", "table", "state-timeline"}
#: The demo's own length: it serves /metrics until then. Its second campaign launches at a
#: fifth of it; the test is done well before the end.
DEMO_SECONDS = 50
#: How long the test waits for every query to have data.
WAIT_SECONDS = 45
PAGE_GROUPS = {"landing", "product", "cart", "checkout", "order"}


def _push_only_series() -> set[str]:
    """The series of the OTLP pusher's status, which only the push itself carries."""
    return {prometheus_name(f.name, f.unit, f.kind) for f in ExportStatus().families()}


PUSH_ONLY = _push_only_series()


@dataclass(frozen=True)
class Query:
    panel: str
    ref: str
    expression: str  # as written in the dashboard
    instant: bool

    @property
    def promql(self) -> str:
        return substitute(self.expression)

    @property
    def push_only(self) -> bool:
        return bool(PUSH_ONLY & set(series_names(self.expression)))


def substitute(expression: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in SUBSTITUTES, f"no value for ${name} in {expression}"
        return SUBSTITUTES[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expression)


def series_names(expression: str) -> list[str]:
    """Series names only: matchers, grouping and matching lists name labels."""
    bare = re.sub(r"\{.*?\}|\b(by|without|on|ignoring|group_left|group_right)\s*\(.*?\)",
                  "", expression)
    return re.findall(r"\b(bizops[:_][\w:]+)", bare)


def load() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def queries(dashboard: dict[str, Any]) -> list[Query]:
    return [Query(panel["title"], target["refId"], target["expr"],
                  bool(target.get("instant")) and not target.get("range"))
            for panel in panels(dashboard) for target in panel.get("targets", [])]


def variable_queries(dashboard: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Variable name -> (label, selector) of each ``label_values(selector, label)``."""
    found = {}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        text = variable["query"]
        text = text["query"] if isinstance(text, dict) else text
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", text)
        assert match, f"{variable['name']}: {text}"
        found[variable["name"]] = (match.group(2), match.group(1))
    return found


def test_the_dashboard_declares_its_datasource_and_variables() -> None:
    dashboard = load()
    assert dashboard["uid"] == "bizops-otel" and dashboard["title"]
    assert dashboard["schemaVersion"] >= 36 and dashboard["id"] is None
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert tuple(variables) == VARIABLES  # in the order they depend on each other
    source = variables["datasource"]
    assert source["type"] == "datasource" and source["query"] == "prometheus"
    for name in VARIABLES[1:]:
        variable = variables[name]
        assert variable["type"] == "query" and variable["datasource"] == DATASOURCE, name
        assert variable["includeAll"] and variable["multi"], name
        assert variable["allValue"] == SUBSTITUTES[name], name
        assert variable["definition"] == variable["query"]["query"], name
    label, selector = variable_queries(dashboard)["page_group"]
    assert label == "bizops_page_group" and "$instance" in selector


def test_every_panel_has_a_place_an_id_and_the_selected_datasource() -> None:
    dashboard = load()
    everything = panels(dashboard)
    ids = [panel["id"] for panel in everything]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    taken: dict[tuple[int, int], str] = {}
    for panel in everything:
        assert panel["type"] in PANEL_TYPES, panel["title"]
        place = panel["gridPos"]
        assert all(isinstance(place[k], int) for k in ("h", "w", "x", "y")), panel["title"]
        assert place["w"] > 0 and place["h"] > 0 and place["x"] + place["w"] <= 24
        for x in range(place["x"], place["x"] + place["w"]):
            for y in range(place["y"], place["y"] + place["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[x, y]}"
                taken[x, y] = panel["title"]
        if panel["type"] == "row":
            assert "targets" not in panel
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel.get("description"), panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]
    rows = [panel["title"] for panel in everything if panel["type"] == "row"]
    assert len(rows) == 8 and len(everything) - len(rows) >= 33


def test_every_variable_is_defined_and_used() -> None:
    dashboard = load()
    used = {name for q in queries(dashboard) for name in re.findall(r"\$\{?(\w+)", q.expression)}
    used |= {name for _, selector in variable_queries(dashboard).values()
             for name in re.findall(r"\$\{?(\w+)", selector)}
    assert used <= set(SUBSTITUTES), used - set(SUBSTITUTES)
    assert {"instance", "page_group", "campaign"} <= used


def test_every_series_is_exported_or_recorded() -> None:
    known = exported_and_recorded()
    named = {name for q in queries(load()) for name in series_names(q.expression)}
    assert not named - known, f"neither exported nor recorded: {named - known}"
    recorded = {name for name in named if ":" in name}
    assert len(recorded) >= 4, recorded  # the fleet-wide panels read the recording rules
    assert named >= PUSH_ONLY


def test_every_expression_passes_promtool(tmp_path: Path) -> None:
    promtool = require("promtool")
    dashboard = load()
    expressions = [q.promql for q in queries(dashboard)]
    expressions += [substitute(selector) for _, selector in variable_queries(dashboard).values()]
    rules = "groups:\n- name: dashboard\n  rules:\n" + "".join(
        f"  - record: dashboard:expression_{i}\n    expr: {json.dumps(expression)}\n"
        for i, expression in enumerate(expressions))
    (tmp_path / "dashboard.yml").write_text(rules)
    result = subprocess.run([promtool, "check", "rules", str(tmp_path / "dashboard.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(expressions)} rules found" in result.stdout


@dataclass
class Live:
    prometheus: int
    demo: int
    began: float  # Unix time of the first scrape, or just before


def _demo_port(log: Path, demo: subprocess.Popen[Any]) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and demo.poll() is None:
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", log.read_text())
        if found:
            return int(found.group(1))
        time.sleep(0.1)
    raise AssertionError(f"the demo did not start: {log.read_text()}")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    require("prometheus")
    directory = tmp_path_factory.mktemp("grafana")
    log = directory / "demo.out"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    with ExitStack() as stack:
        output = stack.enter_context(log.open("w"))
        demo = stack.enter_context(running(
            [sys.executable, "-m", "bizops_otel", "demo", "--port", "0",
             "--duration", str(DEMO_SECONDS), "--rate", "16", "--seed", "3"],
            stdout=output, stderr=subprocess.STDOUT, env=environment))
        port = _demo_port(log, demo)
        began = time.time()
        yield Live(stack.enter_context(scraping([f"127.0.0.1:{port}"], directory)), port,
                   began)


def _finite(result: list[dict[str, Any]]) -> bool:
    values = [s["value"][1] for s in result if "value" in s]
    values += [v for s in result for _, v in s.get("values", [])]
    return any(math.isfinite(float(v)) for v in values)


def _story(results: dict[Query, list[dict[str, Any]]]) -> list[str]:
    """What the planted scenario must show, panel by panel; empty when it all shows."""
    by_title = {(q.panel, q.ref): r for q, r in results.items()}
    missing = []
    impact = [s["metric"].get("bizops_page_group") for s in
              by_title["Conversion Impact Score", "A"]]
    if set(impact[:2]) != {"checkout", "product"}:
        missing.append(f"the sensitive pages do not rank first by impact: {impact}")
    faster = [s["metric"].get("bizops_page_group") for s in
              by_title["100 ms faster: conversion change", "A"]]
    if faster[:1] != ["checkout"]:
        missing.append(f"checkout does not gain most from 100 ms: {faster}")
    health = {s["metric"]["bizops_campaign_id"]: float(s["value"][1])
              for s in by_title["Campaigns now", "A"]}
    if health.get("flash_sale") != 3 or health.get("spring_sale") != 1:
        missing.append(f"campaign states (3 failing, 1 ok): {health}")
    conversion = [s for s in by_title["Variants against their control", "B"]
                  if s["metric"]["bizops_ab_test"] == "conversion"]
    if not conversion or float(conversion[0]["value"][1]) >= 0.05:
        missing.append(f"variant B's conversion lift is not significant: {conversion}")
    return missing


def _evaluate(live: Live, every: list[Query], at: float) -> dict[Query, list[dict[str, Any]]]:
    """Instant queries at ``at``; range queries from the demo's start, in steps of a second
    that end at ``at``."""
    start = at - math.floor(at - live.began)
    results = {}
    for q in every:
        if q.instant:
            results[q] = query(live.prometheus, q.promql, at=at)
        else:
            results[q] = query_range(live.prometheus, q.promql, start, at)
    return results


def test_every_query_returns_data_from_a_prometheus_scraping_the_demo(live: Live) -> None:
    """Rounds of every query at one instant each, until all of them have data and the
    planted scenario shows, or the wait ends; then what is still empty is the failure."""
    every = queries(load())
    checked = [q for q in every if not q.push_only]
    assert len(checked) >= 40 and len(every) - len(checked) == 2
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        at = time.time()
        try:
            results = _evaluate(live, every, at)
        except OSError:  # Prometheus still starting
            results = {}
        empty = [f"{q.panel} [{q.ref}]: {q.promql}"
                 for q in checked if not _finite(results.get(q, []))]
        story = _story(results) if results and not empty else ["no data yet"]
        if (not empty and not story) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    assert not empty, "queries without data:\n" + "\n".join(empty)
    assert not story, story
    for q in every:
        if q.push_only:
            assert results[q] == [], f"the scrape now carries {q.promql}: check it too"

    # The variables list what the demo serves, as Grafana asks for them.
    variables = variable_queries(load())
    values = {name: set(label_values(live.prometheus, label, substitute(selector)))
              for name, (label, selector) in variables.items()}
    assert f"127.0.0.1:{live.demo}" in values["instance"]
    assert values["page_group"] >= PAGE_GROUPS, values
    assert {"spring_sale", "flash_sale"} <= values["campaign"], values

    # The health timeline shows the broken campaign's launch: not failing, then failing.
    (timeline,) = [r for q, r in results.items() if q.panel == "Campaign health"]
    flash = [float(v) for s in timeline if s["metric"]["bizops_campaign_id"] == "flash_sale"
             for _, v in s["values"]]
    assert flash[-1] == 3 and min(flash) < 3, flash
