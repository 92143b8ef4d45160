"""The report as a reader sees it: rendered from the planted scenario, opened from a
file:// URL in headless Chromium (Debian package ``chromium``), photographed, and read back
from the DOM the browser built."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bizops_otel.aggregate.aggregator import Aggregator
from bizops_otel.report import html_report
from bizops_otel.report.page import ERROR_HOOK
from tests import tools
from tests.html_dom import Dom
from tests.planted_shop import planted
from tests.processes import spawn

#: The subject (the page as a browser shows it) does not depend on the twin:
#: the native pass runs it, the pure-only pass leaves it out.
pytestmark = pytest.mark.native_pass_only


def _chromium(tmp_path: Path, *arguments: str, timeout: float = 120.0) -> tuple[str, str]:
    """Run headless Chromium in a process group of its own, with a profile under
    ``tmp_path``; the whole group is killed however the run ends."""
    program = tools.require("chromium", package="chromium")
    process = spawn([program, "--headless", "--no-sandbox", "--disable-gpu",
                     "--no-first-run", "--disable-extensions", "--hide-scrollbars",
                     f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr",
                     "--v=0", *arguments],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                    start_new_session=True)
    try:
        output, errors = process.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == 0, errors[-2000:]
    return output, errors


def _console_errors(log: str) -> list[str]:
    """Console messages Chromium logged for the page's scripts."""
    return [line for line in log.splitlines()
            if "CONSOLE" in line or "Uncaught" in line]


def test_planted_report_in_chromium(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                    ) -> None:
    snapshot, health, _ = planted(Aggregator)
    report = tmp_path / "report.html"
    report.write_text(html_report(snapshot, health, "planted scenario", period_s=3600.0),
                      encoding="utf-8")
    url = report.resolve().as_uri()
    shot = tmp_path / "report.png"
    _, log = _chromium(tmp_path, "--window-size=1280,3600", f"--screenshot={shot}", url)
    with capsys.disabled():  # in the test's output even when it passes: a CI artifact
        print(f"\nscreenshot of the report: {shot}")
    assert shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom_text, dom_log = _chromium(tmp_path, "--dump-dom", url)
    dom = Dom(dom_text)
    # The scripts ran (the last one marks the body) and none failed.
    body = next(attrs for tag, attrs in dom.tags if tag == "body")
    assert body.get("data-rendered") == "yes"
    errors = next(attrs for tag, attrs in dom.tags if attrs.get("id") == "script-errors")
    assert "hidden" in errors
    assert '<pre id="script-errors" hidden=""></pre>' in dom_text
    assert not _console_errors(log) and not _console_errors(dom_log)
    # The planted sensitive page ranks first.
    ranking = dom.having("data-rank", "tr")
    assert ranking[0]["data-group"] == "product" and ranking[0]["data-rank"] == "1"
    # The optimal load time is shown, in words and on the chart.
    optimal = snapshot_optimal_ms(snapshot)
    assert f"Visitors convert best at about <b>{optimal:,} ms</b>" in dom_text
    assert any(m.get("data-optimal-ms") == str(optimal)
               for m in dom.having("data-optimal-ms", "text"))
    # The broken campaign is marked failing, the healthy one ok.
    states = {r["data-campaign"]: r["data-state"] for r in dom.having("data-campaign")}
    assert states == {"flash_sale": "failing", "spring_sale": "ok"}
    assert '<span class="state failing">failing</span>' in dom_text


def snapshot_optimal_ms(snapshot: Any) -> int:
    from bizops_otel.analytics import session_stats

    return round(session_stats(snapshot).overall.curve().optimal_load_time * 1e3)


def test_a_script_error_would_be_caught(tmp_path: Path) -> None:
    """The check above can fail: a page with the report's error hook and a broken script
    shows the error in its DOM and in Chromium's log."""
    page = tmp_path / "broken.html"
    page.write_text(f"<!doctype html><html><head>{ERROR_HOOK}</head><body>"
                    "<script>notDefinedAnywhere();</script></body></html>")
    dom_text, log = _chromium(tmp_path, "--dump-dom", page.resolve().as_uri())
    assert "notDefinedAnywhere is not defined" in dom_text
    assert _console_errors(log)
