"""The HTML report: its numbers are the analytics functions' numbers, it loads nothing
from elsewhere, every label is escaped, and the command writes it (or says why not)."""

from __future__ import annotations

import html
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bizops_otel import stats
from bizops_otel.analytics import compare_variants, session_stats, whatif_projection
from bizops_otel.analytics.sessions import DEFAULT_DELTAS_MS
from bizops_otel.analytics.significance import TestResult as Outcome
from bizops_otel.analytics.significance import interval, t_critical
from bizops_otel.report import html_report
from bizops_otel.report.replay import Replayer
from tests.html_dom import Dom
from tests.planted_shop import CONFIG, planted


@pytest.fixture(scope="module", params=("native", "pure"))
def planted_report(request: pytest.FixtureRequest) -> tuple[Any, Any, str]:
    from tests.conftest import load

    snapshot, health, _ = planted(load(request.param))
    return snapshot, health, html_report(snapshot, health, "planted", period_s=3600.0)


def test_ranking_rows_are_the_impact_ranking_with_its_scores_and_shares(
        planted_report: tuple[Any, Any, str]) -> None:
    snapshot, _, page = planted_report
    ranking = session_stats(snapshot).impact_ranking()
    rows = Dom(page).having("data-rank", "tr")
    assert [r["data-group"] for r in rows] == [g.name for g in ranking]
    assert ranking[0].name == "product"  # the planted page
    for row, group in zip(rows, ranking, strict=True):
        assert float(row["data-cis"] or "nan") == group.conversion_impact
        assert float(row["data-ais"] or "nan") == pytest.approx(group.activity_impact,
                                                                nan_ok=True, rel=0)
        assert f"{group.share_of_requests * 100:.1f}%" in _row_text(page, group.name)


def _row_text(page: str, group: str | None) -> str:
    found = re.search(rf'<tr [^>]*data-group="{re.escape(html.escape(str(group)))}" '
                      rf'data-rank=[^>]*>(.*?)</tr>', page)
    assert found, group
    return found.group(1)


def test_optimal_load_times_are_the_curves_optima(planted_report: tuple[Any, Any, str]
                                                  ) -> None:
    snapshot, _, page = planted_report
    stats_ = session_stats(snapshot)
    shown = {c["data-group"]: c for c in Dom(page).having("data-group", "div")
             if "curve" in (c.get("class") or "")}
    assert set(shown) == {"all pages", *stats_}
    for name, card in shown.items():
        group = stats_.overall if name == "all pages" else stats_[name or ""]
        optimal = group.curve().optimal_load_time
        marks = [p for p in Dom(page).having("data-optimal-ms", "p")]
        assert math.isfinite(optimal), name
        assert card is not None
        assert f'{optimal * 1e3:.0f}' in {m["data-optimal-ms"] for m in marks}
    overall = stats_.overall.curve()
    assert f'data-optimal-ms="{overall.optimal_load_time * 1e3:.0f}"' in page


def test_curve_intervals_are_wilson_intervals_of_the_bucket_counts() -> None:
    low, high = stats.wilson_interval([0, 5, 50, 10], [0, 10, 100, 10])
    assert math.isnan(low[0]) and math.isnan(high[0])
    # Wilson (1927) for 5 of 10 at 95%: 0.2366 to 0.7634; for 10 of 10: 0.7225 to 1.
    assert low[1] == pytest.approx(0.23659, abs=1e-4)
    assert high[1] == pytest.approx(0.76341, abs=1e-4)
    assert low[2] == pytest.approx(0.40383, abs=1e-4)
    assert high[3] == 1.0 and low[3] == pytest.approx(0.72246, abs=1e-4)


def test_whatif_cells_are_the_projections(planted_report: tuple[Any, Any, str]) -> None:
    snapshot, _, page = planted_report
    cells = re.findall(r'<tr data-group="([^"]+)"(?: class="few")?>(.*?)</tr>', page)
    conversion = {html.unescape(name): row for name, row in cells if 'class="change"' in row}
    assert {"all pages", "product"} <= set(conversion)
    for name, row in conversion.items():
        changes = dict(re.findall(r'data-delta="([^"]+)" data-change="([^"]+)"', row))
        assert set(changes) == {f"{d:g}" for d in DEFAULT_DELTAS_MS}
        for delta in DEFAULT_DELTAS_MS:
            projection = whatif_projection(snapshot, delta,
                                           None if name == "all pages" else name)
            assert float(changes[f"{delta:g}"]) == projection.change
            assert f"{projection.low * 100:+.2f} pt, {projection.high * 100:+.2f} pt" in row


def test_summary_names_the_planted_page_and_its_whatif(planted_report: tuple[Any, Any, str]
                                                       ) -> None:
    snapshot, _, page = planted_report
    summary = html.unescape(re.search(r'<section id="summary">(.*?)</section>',
                                      page).group(1))  # type: ignore[union-attr]
    faster = whatif_projection(snapshot, -100, "product")
    assert (f"Product is where slowness costs most: 100 ms faster would add about "
            f"{faster.change * 100:+.1f} points of conversion") in summary
    per_day = faster.revenue_change * 86_400 / 3600.0
    assert f"roughly {per_day:+,.0f} EUR per day" in summary
    assert "Campaign flash_sale is failing" in summary


def test_campaign_rows_carry_the_assessed_states(planted_report: tuple[Any, Any, str]) -> None:
    _, health, page = planted_report
    rows = {r["data-campaign"]: r["data-state"] for r in Dom(page).having("data-campaign")}
    assert rows == {h.campaign: h.state for h in health}
    assert rows == {"flash_sale": "failing", "spring_sale": "ok"}


def test_ab_row_shows_the_comparison_with_its_interval(planted_report: tuple[Any, Any, str]
                                                       ) -> None:
    snapshot, _, page = planted_report
    result = compare_variants(snapshot, "A", "B", flag="new-checkout")
    row = re.search(r'<tr data-variant="B">(.*?)</tr>', page).group(1)  # type: ignore[union-attr]
    low, high = interval(result.conversion)
    assert (f"{result.conversion.difference * 100:+,.2f} pt "
            f'<span class="note">[{low * 100:+,.2f} pt, {high * 100:+,.2f} pt]') in row
    assert f"{result.requests[1]:,} / {result.requests[0]:,}" in row
    p = result.conversion.p_value
    assert p < 0.05  # the planted 15% lift
    assert f'<td class="signif">{"&lt; 0.001" if p < 0.001 else f"{p:.3f}"}</td>' in row


def test_interval_agrees_with_the_tests_p_value() -> None:
    """An interval built from a test's statistic excludes 0 exactly when p < 5%; for
    Student's t the critical values are the tabulated ones."""
    assert t_critical(10) == pytest.approx(2.228139, abs=1e-5)
    assert t_critical(math.inf) == pytest.approx(1.959964, abs=1e-6)
    assert t_critical(3, 0.99) == pytest.approx(5.840909, abs=1e-5)
    for result in (Outcome(0.02, 2.5, 0.0124), Outcome(0.02, 1.5, 0.1336),
                   Outcome(-3.0, -2.3, 0.04, 12.0)):
        low, high = interval(result)
        assert (low > 0 or high < 0) == (result.p_value < 0.05)
        assert (low + high) / 2 == pytest.approx(result.difference)
    assert all(math.isnan(v) for v in interval(Outcome(0.1, math.nan, math.nan)))


EXTERNAL = re.compile(r"""(?:src|href|action|xlink:href)\s*=\s*["']?\s*(?:https?:)?//"""
                      r"""|url\(|@import|<link|<iframe|<img|<object|<embed""", re.IGNORECASE)


def test_page_loads_nothing_from_elsewhere(planted_report: tuple[Any, Any, str]) -> None:
    _, _, page = planted_report
    assert not EXTERNAL.search(page)
    assert not re.search(r"https?://", page)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert page.count("<script") == 2  # the error hook and the rendered mark, inline
    assert len(page.encode()) < 500_000


def test_labels_chosen_by_traffic_are_escaped(Aggregator: Any) -> None:
    """Campaign and page-group names come from requests: a name that is markup stays
    text, in the page and in its attributes."""
    hostile = '<script>alert("x")</script>'
    group = "<b onmouseover='x()'>"
    replayer = Replayer(CONFIG, Aggregator(CONFIG))
    for i in range(400):
        start = 1_700_000_000 * 10**9 + i * 10**9
        attributes: dict[str, Any] = {"bizops.page_group": group,
                                      "bizops.campaign.id": hostile,
                                      "session.id": f"s{i % 40}",
                                      "feature_flag.result.variant": hostile}
        if i % 10 == 0:
            attributes["bizops.conversion"] = True
            attributes["bizops.order.value"] = 20.0
        replayer.span(group, attributes, start, start + (10 + i % 7) * 10**7, False)
    result = replayer.finish()
    page = html_report(result.snapshot, result.health, f"report of {hostile}")
    assert hostile not in page and group not in page
    assert page.count("<script") == 2
    dom = Dom(page)
    assert [r["data-campaign"] for r in dom.having("data-campaign")] == [hostile]
    assert group in {r["data-group"] for r in dom.having("data-group")}
    assert html.escape(hostile) in page


def test_empty_snapshot_renders_a_page_that_says_so(Aggregator: Any) -> None:
    page = html_report(Aggregator(CONFIG).snapshot(), [], "empty")
    assert "No finished sessions yet." in page
    assert "No campaign traffic in this data." in page
    assert "No feature-flag variants in this data." in page
    assert page.endswith("</html>\n")


def test_without_sessions_or_outcome_the_page_still_renders(Aggregator: Any) -> None:
    from bizops_otel import Config

    for config in (Config(max_sessions=0), Config(outcome=None, kpis=("order_value",))):
        aggregator = Aggregator(config)
        for _ in range(3):
            aggregator.record(("checkout", ""), 0.2, {"order_value": 3.0})
        page = html_report(aggregator.snapshot(), None, "bare")
        assert "No finished sessions yet." in page
        assert "No page group shows yet that slowness costs conversions" in page


def _run(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bizops_otel", "report", *arguments],
                          capture_output=True, text=True, timeout=120, check=False)


def test_command_writes_the_page_of_a_snapshot_file(tmp_path: Path) -> None:
    from bizops_otel.aggregate import persist
    from tests.conftest import load

    snapshot, _, _ = planted(load("pure"), sessions=1500)
    persist.write(snapshot, tmp_path / "state.npz")
    out = tmp_path / "report.html"
    result = _run(str(tmp_path / "state.npz"), "-o", str(out), "--title", "Shop <q>")
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    assert "<title>Shop &lt;q&gt;</title>" in page
    ranking = [g.name for g in session_stats(snapshot).impact_ranking()]
    assert [r["data-group"] for r in Dom(page).having("data-rank")] == ranking
    assert "wrote" in result.stdout


def test_command_refuses_a_metrics_endpoint_and_says_why() -> None:
    result = _run("--from", "http://127.0.0.1:9/metrics", "-o", "never.html")
    said = " ".join(result.stderr.split())  # wrapped for the terminal
    assert result.returncode == 2
    assert "does not carry enough" in said and "sessions per latency bucket" in said
    assert not Path("never.html").exists()


def test_command_reports_a_bad_replay_file_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"resourceSpans": []}\nnot json\n')
    result = _run(str(bad), "-o", str(tmp_path / "r.html"))
    assert result.returncode == 2 and "line 2" in result.stderr
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text("when,route\n1,/\n")
    result = _run(str(csv_file), "-o", str(tmp_path / "r.html"))
    assert result.returncode == 2 and "lacks the columns" in result.stderr


def test_wilson_interval_is_vectorised_and_bounded() -> None:
    rng = np.random.default_rng(3)
    trials = rng.integers(1, 500, 200)
    successes = rng.binomial(trials, 0.3)
    low, high = stats.wilson_interval(successes, trials)
    rate = successes / trials
    assert ((low >= 0) & (low <= rate) & (rate <= high) & (high <= 1)).all()
