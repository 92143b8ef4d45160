"""The load-test plan from a snapshot, and the Locust file written from it: the plan's
numbers against numpy on the raw traffic, the file's embedded data against the snapshot,
its sampling against the plan, and clear refusals for traffic without sessions."""

from __future__ import annotations

import ast
import itertools
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bizops_otel import Config
from bizops_otel import attributes as attr
from bizops_otel.aggregate import persist
from bizops_otel.analytics import TestPlan
from bizops_otel.analytics.testplan import ENTRY, EXIT, ThinkTime, bin_sampled_means
from bizops_otel.cli import main
from bizops_otel.testplan import parse_paths, render_locustfile
from bizops_otel.testplan.paths import Route
from tests.flow_traffic import CONFIG, SECOND, Request, feed, planted_traffic


def snapshot_of(Aggregator: Any, requests: list[Request]) -> Any:
    aggregator = Aggregator(CONFIG)
    feed(aggregator, requests)
    return aggregator.snapshot(now_ns=requests[-1].end_ns + 3600 * SECOND)


def raw_sessions(requests: list[Request]) -> list[list[Request]]:
    sessions: dict[str, list[Request]] = {}
    for r in requests:
        sessions.setdefault(r.session, []).append(r)
    return list(sessions.values())


def test_plan_reproduces_the_raw_traffic(Aggregator: Any) -> None:
    requests = planted_traffic(5, 500)
    plan = TestPlan.from_snapshot(snapshot_of(Aggregator, requests))
    walks = raw_sessions(requests)
    groups = [r.group for r in requests]
    assert plan.page_mix() == pytest.approx(
        {g: groups.count(g) / len(groups) for g in plan.groups}, rel=1e-12)
    assert plan.sessions == len(walks) and plan.requests == len(requests)
    probabilities = plan.probabilities()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    cart, checkout = plan.states.index("cart"), plan.states.index("checkout")
    after_cart = [b.group for w in walks for a, b in itertools.pairwise(w)
                  if a.group == "cart"] + ["exit" for w in walks if w[-1].group == "cart"]
    assert probabilities[cart, checkout] == pytest.approx(
        after_cart.count("checkout") / len(after_cart), rel=1e-12)
    # Think times per transition: the exact mean, and the median within its 25% bin.
    thinks = [((float(b.end_ns) - float(a.end_ns)) * 1e-9 - (b.end_ns - b.start_ns) * 1e-9)
              for w in walks for a, b in itertools.pairwise(w)
              if (a.group, b.group) == ("product", "cart")]
    product_cart = plan.think_time("product", "cart")
    assert product_cart.n == len(thinks)
    assert product_cart.mean_s == pytest.approx(np.mean(thinks), rel=1e-9)
    assert product_cart.quantile(0.5) == pytest.approx(np.median(thinks), rel=0.25)
    assert product_cart.sampled_mean_s == pytest.approx(np.mean(thinks), rel=0.03)
    # Session length and duration.
    pages = np.bincount(np.minimum([len(w) for w in walks], 16) - 1, minlength=16)
    assert plan.session_pages == tuple(pages.tolist())
    durations = [(w[-1].end_ns - w[0].start_ns) / 1e9 for w in walks]
    assert plan.mean_duration_s == pytest.approx(np.mean(durations), rel=1e-6)
    assert plan.session_duration.mean_s == pytest.approx(np.mean(durations), rel=1e-6)
    # Arrivals, the peak and Little's law.
    minutes = np.array([w[0].start_ns // (60 * SECOND) for w in walks])
    unique, counts = np.unique(minutes, return_counts=True)
    assert plan.peak_arrivals == counts.max()
    assert plan.peak_minute == unique[np.argmax(counts)]
    assert sum(plan.arrival_counts) == len(walks)
    assert plan.concurrency() == pytest.approx(counts.max() / 60 * np.mean(durations),
                                               rel=1e-6)
    assert plan.peak_users == math.ceil(plan.concurrency())


def test_open_sessions_are_closed_where_they_stand(Aggregator: Any) -> None:
    """Taken while sessions are open, the plan's chain still reproduces the recorded page
    mix: its expected visits per session, ``e₀ (I − Q)⁻¹``, times the sessions, are the
    recorded requests per group."""
    requests = planted_traffic(8, 400)
    aggregator = Aggregator(CONFIG)
    middle = requests[len(requests) // 2].end_ns
    feed(aggregator, [r for r in requests if r.end_ns <= middle])
    plan = TestPlan.from_snapshot(aggregator.snapshot(now_ns=middle))
    assert plan.open_sessions > 10
    assert plan.chain()[:, 0].sum() == plan.sessions  # every session leaves
    p = plan.probabilities()
    visits = p[0, 1:] @ np.linalg.inv(np.eye(len(plan.groups)) - p[1:, 1:])
    recorded = plan.transitions[:, 1:].sum(axis=0)
    np.testing.assert_allclose(visits * plan.sessions, recorded, rtol=1e-9)


def test_sampled_bin_means_lie_inside_their_bins() -> None:
    from bizops_otel.aggregate._layout import TIME_EDGES

    means = bin_sampled_means()
    assert 0 < means[0] < TIME_EDGES[0] and means[-1] == TIME_EDGES[-1]
    assert all(TIME_EDGES[b - 1] < means[b] < TIME_EDGES[b]
               for b in range(1, len(TIME_EDGES)))
    assert math.isnan(ThinkTime((0,) * len(means), 0.0).mean_s)


def test_traffic_without_sessions_is_refused_clearly(Aggregator: Any, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    aggregator = Aggregator(CONFIG)
    aggregator.record_span({attr.PAGE_GROUP: "home"}, 0, SECOND)  # no session id
    with pytest.raises(ValueError, match="no sessions in this traffic"):
        TestPlan.from_snapshot(aggregator.snapshot())
    with pytest.raises(ValueError, match="sessions were off"):
        TestPlan.from_snapshot(Aggregator(Config(max_sessions=0)).snapshot())
    persist.write(aggregator.snapshot(), tmp_path / "empty.npz")
    assert main(["testplan", str(tmp_path / "empty.npz"), "-o",
                 str(tmp_path / "locustfile.py")]) == 2
    assert "no sessions in this traffic" in capsys.readouterr().err
    assert not (tmp_path / "locustfile.py").exists()


def test_paths_are_parsed_and_checked() -> None:
    routes = parse_paths(["product=/product/7", "order=post /checkout/confirm"],
                         {"landing": "/"})
    assert routes == {"landing": Route("GET", "/"), "product": Route("GET", "/product/7"),
                      "order": Route("POST", "/checkout/confirm")}
    for bad in ("product", "=/x", "product=x", "product=FETCH /x", "product=/a b"):
        with pytest.raises(ValueError):
            parse_paths([bad])


def assignments(text: str) -> dict[str, Any]:
    """The file's top-level constants, read without running it (importing Locust would
    patch this process's sockets and threads with gevent)."""
    values = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue  # computed at import, not data
    return values


def test_generated_file_embeds_the_snapshot(Aggregator: Any, tmp_path: Path) -> None:
    requests = planted_traffic(6, 300)
    snapshot = snapshot_of(Aggregator, requests)
    persist.write(snapshot, tmp_path / "state.npz")
    output = tmp_path / "locustfile.py"
    assert main(["testplan", str(tmp_path / "state.npz"), "-o", str(output),
                 "--path", "product=/product/42", "--speedup", "4"]) == 0
    text = output.read_text()
    compile(text, str(output), "exec")
    data = assignments(text)
    plan = TestPlan.from_snapshot(snapshot)
    flow = snapshot.session_arrays.flow
    rows = [snapshot.session_arrays.groups.index(g) for g in plan.groups]
    np.testing.assert_array_equal(np.array(data["TRANSITIONS"]),
                                  flow.transitions[np.ix_([0, *rows], [0, *rows])])
    assert data["STATES"] == (ENTRY, *plan.groups) and plan.open_sessions == 0
    assert data["PATHS"]["product"] == ("GET", "/product/42")
    assert data["PATHS"]["home"] == ("GET", "/home")  # no --path: /GROUP
    assert data["THINK"][("product", "cart")] == plan.think_time("product", "cart").counts
    assert data["ARRIVALS_PER_MINUTE"] == plan.arrival_counts  # no minute covered in part
    assert data["SPEEDUP"] == 4.0 and data["PEAK_USERS"] == plan.peak_users
    assert data["PAGE_MIX"] == plan.page_mix()
    assert "300 sessions" in text.split("\n\n")[0]  # the header says where it came from


SAMPLER = """
import collections, importlib.util, json, random, sys
spec = importlib.util.spec_from_file_location("plan", sys.argv[1])
plan = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plan)
rng = random.Random(1)
visits, thinks, state = collections.Counter(), [], plan.ENTRY
for _ in range(60000):
    target = plan.next_state(state, rng)
    if target != plan.EXIT:
        visits[target] += 1
        if state != plan.ENTRY:
            thinks.append(plan.think_time(state, target, rng))
    state = plan.ENTRY if target == plan.EXIT else target
print(json.dumps({"visits": visits, "think": sum(thinks) / len(thinks)}))
"""


def test_generated_chain_samples_the_plan(Aggregator: Any, tmp_path: Path) -> None:
    """The file's Markov chain and think-time draws, run for 60,000 steps (in a child
    process: the file imports Locust), give the plan's page mix to ±0.01 and its mean
    think time to 2% (standard errors at this sample size: ≤ 0.003 and about 0.8%)."""
    snapshot = snapshot_of(Aggregator, planted_traffic(7, 300))
    plan = TestPlan.from_snapshot(snapshot)
    output = tmp_path / "locustfile.py"
    output.write_text(render_locustfile(plan, parse_paths([])))
    result = subprocess.run([sys.executable, "-c", SAMPLER, str(output)], check=True,
                            capture_output=True, text=True, timeout=60)
    sampled = json.loads(result.stdout)
    total = sum(sampled["visits"].values())
    mix = {g: n / total for g, n in sampled["visits"].items()}
    assert mix == pytest.approx(plan.page_mix(), abs=0.01)
    assert sampled["think"] == pytest.approx(plan.sampled_think_s, rel=0.02)
    assert plan.sampled_think_s == pytest.approx(plan.mean_think_s, rel=0.03)
    assert EXIT not in mix


def doc_block(argument: str) -> list[str]:
    """The lines of the block of docs/testplan.md marked ``output ARGUMENT``."""
    text = (Path(__file__).parent.parent / "docs" / "testplan.md").read_text()
    marker = text.index(f"<!-- doc-check: output {argument} -->")
    start = text.index("\n", text.index("```", marker)) + 1
    return text[start:text.index("```", start)].splitlines()


def test_docs_excerpt_is_what_the_generator_writes(Aggregator: Any) -> None:
    """Every code line of the documented file without figures is a line the generator
    writes; a line with figures, or of the header, starts as one does (the figures and the
    header's text are the demo's traffic, not these)."""
    from bizops_otel.demo.testplan_file import shop_routes

    snapshot = snapshot_of(Aggregator, planted_traffic(9, 100))
    text = render_locustfile(TestPlan.from_snapshot(snapshot), parse_paths([], shop_routes()))
    written = text.splitlines()
    for line in doc_block("locustfile"):
        if line == "..." or not line.strip():
            continue
        if line.startswith("#"):  # the header: its labels, or a continuation's indent
            label = re.match(r"# [A-Z][\w ]*:", line) or re.match(r"#\s*", line)
            assert label is not None
            figures, prefix = label, label.group(0)
        else:
            figures = re.search(r"\d|'<", line)
            prefix = line[:figures.start()] if figures else line
        assert any(w.startswith(prefix) if figures else w == line for w in written), line


def test_docs_view_lines_are_what_the_view_writes(Aggregator: Any) -> None:
    from bizops_otel.demo import view

    snapshot = snapshot_of(Aggregator, planted_traffic(10, 100))
    written = view.testplan_lines(snapshot)
    documented = doc_block("demo-view-testplan")
    assert len(written) == len(documented) == 2
    for ours, theirs in zip(written, documented, strict=True):
        assert re.sub(r"[\d.,]+", "N", ours.split(":")[0]) == re.sub(
            r"[\d.,]+", "N", theirs.split(":")[0])
        assert len(theirs) <= view.WIDTH


def test_a_plan_comes_from_recorded_spans_too(tmp_path: Path) -> None:
    """A CSV of requests (as ``bizops-otel report`` reads it) gives a plan of its
    sessions: every simulated session entered, and the requests are the CSV's rows."""
    from bizops_otel.demo.simulate import Scenario, Simulator
    from tests.replay_files import csv_text

    sessions = list(Simulator(Scenario(), 3).sessions(300, rate_per_s=2.0))
    source = tmp_path / "requests.csv"
    source.write_text(csv_text(sessions, 1_700_000_000 * SECOND))
    output = tmp_path / "locustfile.py"
    assert main(["testplan", str(source), "-o", str(output)]) == 0
    data = assignments(output.read_text())
    transitions = np.array(data["TRANSITIONS"])
    assert transitions[0].sum() == len(sessions) == transitions[:, 0].sum()
    assert transitions[:, 1:].sum() == sum(len(s.requests) for s in sessions)


def test_a_missing_path_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["testplan"]) == 2
    assert "give a PATH" in capsys.readouterr().err


def test_bad_options_are_refused_with_the_reason(Aggregator: Any, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    persist.write(snapshot_of(Aggregator, planted_traffic(11, 30)), tmp_path / "state.npz")
    state, output = str(tmp_path / "state.npz"), str(tmp_path / "locustfile.py")
    for options, reason in ((["--speedup", "0"], "speedup must be a positive number"),
                            (["--path", "nowhere"], "expected GROUP=/path"),
                            (["--path", "basket=/basket"], "no traffic on page groups basket")):
        assert main(["testplan", state, "-o", output, *options]) == 2
        assert reason in capsys.readouterr().err
    assert not Path(output).exists()
