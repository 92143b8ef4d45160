"""The load-test plan, checked for real: the demo shop records its built-in visitors, serves
the Locust file generated from them at ``/bizops/testplan``, and Locust runs that file for
20 s against a fresh shop, which records what Locust sent. Locust's requests must follow
the plan's page mix and the shop must see the plan's think times.

It runs, as docs/testplan.md shows, ``locust -f locustfile.py --headless -H
http://127.0.0.1:8000 --run-time 20s --csv run`` (on a free port). Tolerances, for a 20 s
run (about 30 users, some 900 requests and 550 think times):

- **Page mix, ±0.05 per group.** A share p of n requests has a standard error of
  √(p(1−p)/n) ≤ 0.017 at n = 900; the requests of one session are not independent (each
  starts at an entry page), which widens it by a design effect of about 1.5 (2.5 pages a
  session), and the run cuts each user's last session short, which under-counts the deep
  pages by up to a session per user. 0.05 is about two standard errors plus that bias
  (0.035 at most measured).
- **Mean think time, within 20%.** The shop's think times are exponential (coefficient
  of variation 1), so 550 of them have a mean within 1/√550 ≈ 4% (one standard error);
  the shop sees the think time plus what the client spends between a response and its
  next request (a few ms under load on a 0.4 s think). 20% is five standard errors, room
  for that overhead and for the fewer samples of a slower machine (5% at most measured).

Locust runs in a child process (it patches sockets and threads with gevent), with SIGINT
at its default and killed if it outlives its timeout; so is the demo. The test runs in the
native pass only (``pytestmark`` below).
"""

from __future__ import annotations

import csv
import importlib.util
import math
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bizops_otel import Config, install
from bizops_otel import attributes as attr
from tests.processes import reap, spawn, stop
from tests.test_testplan import assignments

# Only looked for, never imported here: importing Locust patches this whole process with
# gevent (sockets, threads, fork), and the other tests of the session with it.
if importlib.util.find_spec("locust") is None or importlib.util.find_spec("flask") is None:
    pytest.skip("needs locust and flask (the test extra)", allow_module_level=True)
# The recording is held to both twins by test_session_flow.py; this run checks the plan
# and the file against Locust, which the twin does not change, and costs 30 s a pass.
pytestmark = pytest.mark.native_pass_only

RECORD_S = 9.0
RUN_S = 20


def start_demo() -> tuple[subprocess.Popen[str], int]:
    """The demo shop with its visitors (20 sessions a second, no replayed history)."""
    import re

    process = spawn([sys.executable, "-m", "bizops_otel", "demo", "--port", "0",
                     "--history", "0", "--rate", "20", "--duration", "0", "--seed", "5"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for _ in range(5):
        line = process.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if found:
            return process, int(found.group(1))
    reap(process)
    raise AssertionError("the demo did not say where it serves")


def fetch_plan(port: int) -> str:
    """The Locust file the demo serves once it has finished sessions."""
    deadline = time.monotonic() + 20
    while True:
        try:
            url = f"http://127.0.0.1:{port}/bizops/testplan"
            with urllib.request.urlopen(url, timeout=10) as response:
                return str(response.read().decode())
        except urllib.error.HTTPError as error:  # 503 until sessions have finished
            if error.code != 503 or time.monotonic() > deadline:
                raise
            time.sleep(1)


def target_shop() -> tuple[Any, Any, Any]:
    """A fresh demo shop without visitors, instrumented as the demo is: (server, handle,
    provider)."""
    from opentelemetry.sdk.trace import TracerProvider

    from bizops_otel.demo import shop
    from bizops_otel.demo.run import demo_scenario

    scenario = demo_scenario(0)
    provider = TracerProvider()
    config = Config(dimensions=(attr.PAGE_GROUP,),
                    page_groups=tuple((page.route.replace("<id>", "*"), page.group)
                                      for page in (*scenario.pages, scenario.confirm)),
                    session_timeout=5.0, admission_count=1, campaign_interval=0,
                    guardrail_interval=0)
    handle = install(provider, config=config)
    server, _ = shop.serve(shop.create_app(scenario, handle, provider, seed=2), 0)
    return server, handle, provider


def locust_page_mix(prefix: Path) -> dict[str, float]:
    with open(f"{prefix}_stats.csv", newline="") as stats:
        rows = [r for r in csv.DictReader(stats) if r["Name"] != "Aggregated"]
    counts = {r["Name"]: int(r["Request Count"]) for r in rows}
    total = sum(counts.values())
    return {name: n / total for name, n in counts.items()}


def test_locust_following_the_plan_reproduces_the_page_mix_and_think_times(
        tmp_path: Path) -> None:
    demo, port = start_demo()
    try:
        time.sleep(RECORD_S)
        text = fetch_plan(port)
    finally:
        stop(demo)
    plan = assignments(text)
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text(text)
    assert plan["PEAK_USERS"] >= 5  # 20 sessions a second, lasting a second or two

    server, handle, provider = target_shop()
    try:
        prefix = tmp_path / "run"
        locust = spawn([sys.executable, "-m", "locust", "-f", str(locustfile), "--headless",
                        "-H", f"http://127.0.0.1:{server.server_port}", "--run-time",
                        f"{RUN_S}s", "--csv", str(prefix), "--only-summary",
                        "--loglevel", "WARNING"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       cwd=tmp_path)
        try:
            output, _ = locust.communicate(timeout=RUN_S + 25)
        except subprocess.TimeoutExpired:
            reap(locust)
            raise AssertionError("locust outlived its run time; killed") from None
        assert locust.returncode in (0, 1), output  # 1: some requests failed
        time.sleep(0.2)
        snapshot = handle.snapshot()  # think times count as they happen, open or not
    finally:
        server.shutdown()
        handle.shutdown()
        provider.shutdown()

    mix = locust_page_mix(prefix)
    assert len(mix) >= 3, output
    assert set(mix) <= set(plan["PAGE_MIX"])
    for group, share in plan["PAGE_MIX"].items():
        assert mix.get(group, 0.0) == pytest.approx(share, abs=0.05), (group, mix)

    flow = snapshot.session_arrays.flow
    steps = int(flow.think.sum())
    assert steps > 200, steps
    observed_think = float(flow.think_sum.sum()) / steps
    compared = {g: (round(share, 3), round(mix.get(g, 0.0), 3))
                for g, share in plan["PAGE_MIX"].items()}
    print(f"page mix, plan vs Locust: {compared}; think {plan['MEAN_THINK_S']:.3f} s "
          f"planned, {observed_think:.3f} s seen over {steps} steps; "
          f"{plan['PEAK_USERS']} users")
    assert observed_think == pytest.approx(plan["MEAN_THINK_S"], rel=0.20)
    assert math.isfinite(observed_think)
