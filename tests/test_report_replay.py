"""Replays of recorded spans: OTLP/JSON lines (the Collector's file exporter) and CSV give
the aggregates that recording the same requests through the span processor gives, on
each twin."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bizops_otel.analytics.health import FAILING
from bizops_otel.demo.simulate import Simulator, emit
from bizops_otel.report import replay
from bizops_otel.report.progress import Progress
from bizops_otel.report.replay import Replayer, ReplayError, replay_file
from tests.planted_shop import CONFIG, SCENARIO, end_ns, planted
from tests.replay_files import csv_text, otlp_lines
from tests.spans import EPOCH
from tests.twins import assert_twins_agree

SESSIONS = 3000


def _exported(sessions: list[Any], processor: Any = None) -> list[Any]:
    """The sessions' spans as an exporter receives them, from a provider with or without
    bizops-otel's processor (whose start-time attributes the spans then carry)."""
    provider = TracerProvider()
    if processor is not None:
        provider.add_span_processor(processor)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    emit(provider.get_tracer("recorded"), sessions, EPOCH)
    return list(exporter.get_finished_spans())


@pytest.fixture(scope="module")
def sessions() -> list[Any]:
    return list(Simulator(SCENARIO, 11).sessions(SESSIONS, rate_per_s=2.0))


def _direct(Aggregator: Any, sessions: list[Any]) -> Any:
    from bizops_otel import BizOpsSpanProcessor
    from tests.conftest import load_hooks

    aggregator = Aggregator(CONFIG)
    _exported(sessions, BizOpsSpanProcessor(aggregator, CONFIG, hooks=load_hooks(Aggregator)))
    return aggregator


@pytest.mark.parametrize("source", ["plain spans", "enriched spans", "enum names"])
def test_otlp_json_lines_replay_as_recorded(Aggregator: Any, sessions: list[Any],
                                            tmp_path: Path, source: str) -> None:
    """Spans of a service without bizops-otel are enriched by the replay as the processor
    would have; spans of one with it already carry their business attributes."""
    from bizops_otel import BizOpsSpanProcessor
    from tests.conftest import load_hooks

    direct = _direct(Aggregator, sessions)
    processor = (BizOpsSpanProcessor(Aggregator(CONFIG), CONFIG, hooks=load_hooks(Aggregator))
                 if source == "enriched spans" else None)
    path = tmp_path / "spans.jsonl"
    path.write_text(otlp_lines(_exported(sessions, processor), per_line=300,
                               enum_names=source == "enum names"))
    result = replay_file(path, CONFIG, Aggregator(CONFIG))
    assert result.spans == sum(len(s.requests) for s in sessions)
    assert_twins_agree(direct.snapshot(now_ns=result.snapshot.taken_ns), result.snapshot)
    assert result.period_s == pytest.approx((end_ns(sessions) - EPOCH) / 1e9, abs=1.0)


def test_csv_replays_as_recorded(Aggregator: Any, sessions: list[Any], tmp_path: Path) -> None:
    direct = _direct(Aggregator, sessions)
    path = tmp_path / "requests.csv"
    path.write_text(csv_text(sessions, EPOCH))
    result = replay_file(path, CONFIG, Aggregator(CONFIG))
    assert result.spans == sum(len(s.requests) for s in sessions)
    assert_twins_agree(direct.snapshot(now_ns=result.snapshot.taken_ns), result.snapshot)


def test_replay_judges_campaigns_as_the_traffic_goes(Aggregator: Any, tmp_path: Path) -> None:
    """The health at the end of a replay is the health of its last window, and the
    timeline starts at each campaign's first check."""
    snapshot, health, simulated = planted(Aggregator, sessions=4000, seed=2)
    path = tmp_path / "requests.csv"
    path.write_text(csv_text(simulated, EPOCH))
    result = replay_file(path, CONFIG, Aggregator(CONFIG))
    assert {h.campaign: h.state for h in result.health} == {h.campaign: h.state
                                                           for h in health}
    assert [h.state for h in result.health if h.campaign == "flash_sale"] == [FAILING]
    changes = result.timeline.changes
    assert set(changes) == {"flash_sale", "spring_sale"}
    assert changes["flash_sale"][-1][1] == FAILING
    assert all(a[0] <= b[0] for c in changes.values() for a, b in itertools.pairwise(c))
    assert result.snapshot.total().count == snapshot.total().count


class Recording:
    """An aggregator that also keeps what ``record_span`` was given."""

    def __init__(self, aggregator: Any) -> None:
        self.aggregator = aggregator
        self.calls: list[tuple[Any, ...]] = []

    def record_span(self, *arguments: Any) -> None:
        self.calls.append((dict(arguments[0]), *arguments[1:]))
        self.aggregator.record_span(*arguments)

    def snapshot(self, now_ns: int | None = None) -> Any:
        return self.aggregator.snapshot(now_ns=now_ns)


def test_csv_columns_by_other_names_milliseconds_and_iso_times(Aggregator: Any) -> None:
    text = ("Time,Path,duration_ms,revenue,session_id,utm_campaign,Variant\n"
            "2023-11-14T22:13:20Z,/checkout,250,,s1,spring,A\n"
            "2023-11-14T22:13:21.500000+00:00,/checkout/confirm,125.5,80.5,s1,,A\n")
    recording = Recording(Aggregator(CONFIG))
    replayer = Replayer(CONFIG, recording)
    reader = __import__("csv").reader(io.StringIO(text))
    rows = list(replayer.csv_rows(reader, next(reader)))
    assert rows == [1, 2]
    start = 1_700_000_000 * 10**9
    (first, s1, e1, error1, fallback1), (second, s2, e2, _, fallback2) = recording.calls
    # The page-group rules wrote the group, as the processor writes it at a span's start.
    assert first == {"http.route": "/checkout", "session.id": "s1",
                     "bizops.campaign.id": "spring", "feature_flag.result.variant": "A",
                     "bizops.page_group": "checkout"}
    assert (s1, e1, error1, fallback1) == (start, start + 250_000_000, False, None)
    assert second["bizops.page_group"] == "order" and fallback2 is None
    # An order without a converted column is a conversion.
    assert second["bizops.order.value"] == 80.5 and second["bizops.conversion"] is True
    assert (s2, e2) == (start + 1_500_000_000, start + 1_625_500_000)
    result = replayer.finish()
    assert result.period_s == pytest.approx(1.5 + 0.1255)
    total = result.snapshot.total()  # the overflow key included, however keys are admitted
    assert total.count == 2 and total.latency_sum == pytest.approx(0.3755)
    assert total.conversion_rate() == 1.0


def test_decimal_seconds_parse_exactly() -> None:
    assert replay._decimal_ns("1700000000.123456789") == 1_700_000_000_123_456_789
    assert replay._decimal_ns("0.5") == 500_000_000
    assert replay._decimal_ns("-0.25") == -250_000_000
    assert replay._decimal_ns("12") == 12 * 10**9
    assert replay._decimal_ns("1.0000000019") == 1_000_000_001  # beyond ns: cut
    assert replay._decimal_ns("2.5e-3") == 2_500_000
    with pytest.raises(ValueError):
        replay._decimal_ns("nan")


def test_spans_outside_record_kinds_are_skipped_as_the_processor_skips_them(
        Aggregator: Any) -> None:
    replayer = Replayer(CONFIG, Aggregator(CONFIG))
    start, end = str(EPOCH), str(EPOCH + 10**8)
    spans = [
        {"name": "GET /", "kind": 2, "startTimeUnixNano": start, "endTimeUnixNano": end,
         "parentSpanId": "00f067aa0ba902b7", "attributes": [
             {"key": "http.route", "value": {"stringValue": "/"}}]},
        # A client call inside the request: not recorded.
        {"name": "SELECT", "kind": 3, "startTimeUnixNano": start, "endTimeUnixNano": end,
         "parentSpanId": "00f067aa0ba902b8"},
        # A local root of another kind (no parent): recorded, as record_local_roots says.
        {"name": "nightly job", "kind": 1, "startTimeUnixNano": start,
         "endTimeUnixNano": end, "status": {"code": 2}},
        # Its parent known to be remote (flags 0x300): a root here too.
        {"name": "queue work", "kind": "SPAN_KIND_INTERNAL", "flags": 0x300,
         "parentSpanId": "00f067aa0ba902b9", "startTimeUnixNano": start,
         "endTimeUnixNano": end},
    ]
    # Each span twice: a key is a value seen more than once.
    line = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})
    replayer.otlp_line(line)
    replayer.otlp_line(line)
    result = replayer.finish()
    assert result.spans == 6
    snapshot = result.snapshot
    assert snapshot.total().count == 6 and snapshot.total().errors == 2
    groups = {key[0] for key in snapshot}
    assert groups == {"landing", "nightly job", "queue work"}


def test_bad_lines_are_refused_with_a_reason(Aggregator: Any) -> None:
    replayer = Replayer(CONFIG, Aggregator(CONFIG))
    with pytest.raises(ReplayError, match="not a JSON line"):
        replayer.otlp_line("{nope")
    with pytest.raises(ReplayError, match="no resourceSpans"):
        replayer.otlp_line('{"resourceMetrics": []}')
    replayer.otlp_line("   \n")  # blank lines are skipped
    with pytest.raises(ReplayError, match="lacks the columns"):
        list(replayer.csv_rows(iter([]), ["timestamp", "latency"]))
    rows = iter([["soon", "/", "0.1"]])
    with pytest.raises(ReplayError, match="line 2"):
        list(replayer.csv_rows(rows, ["timestamp", "route", "latency"]))


def test_replay_config_adds_variants_only_to_the_default_dimensions() -> None:
    from bizops_otel import Config

    assert replay.replay_config(Config()).dimensions == replay.REPLAY_DIMENSIONS
    assert replay.replay_config(Config()).key_ttl == 0  # a replay's keys never expire
    assert replay.replay_config(CONFIG) is CONFIG


def test_progress_is_drawn_only_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    pipe, terminal = io.StringIO(), Terminal()
    for stream in (pipe, terminal):
        bar = Progress(1000, "replaying x", stream)
        bar.update(500, 42)
        bar.close(84)
    assert pipe.getvalue().startswith("replaying x: 84 spans in ")
    assert "[###############...............]  50% 42 spans" in terminal.getvalue()


def test_tab_separated_rows_replay_as_the_comma_separated(Aggregator: Any,
                                                          sessions: list[Any],
                                                          tmp_path: Path) -> None:
    comma = tmp_path / "requests.csv"
    comma.write_text(csv_text(sessions[:500], EPOCH))
    tabs = tmp_path / "requests.tsv"
    tabs.write_text(comma.read_text().replace(",", "\t"))
    a = replay_file(comma, CONFIG, Aggregator(CONFIG))
    b = replay_file(tabs, CONFIG, Aggregator(CONFIG))
    assert_twins_agree(a.snapshot, b.snapshot)


def test_command_replays_a_csv_into_a_page(sessions: list[Any], tmp_path: Path) -> None:
    """The command reads the service's configuration (none here: the defaults, with the
    flag and variant added), draws its progress on stderr and writes the page."""
    import os
    import subprocess
    import sys

    from bizops_otel.aggregate._aggregator_py import Aggregator as Pure
    from bizops_otel.analytics import session_stats
    from bizops_otel.settings import load_config
    from tests.html_dom import Dom

    path = tmp_path / "requests.csv"
    path.write_text(csv_text(sessions[:1000], EPOCH))
    out = tmp_path / "report.html"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BIZOPS_OTEL_")}
    result = subprocess.run([sys.executable, "-m", "bizops_otel", "report", str(path), "-o",
                             str(out)], capture_output=True, text=True, timeout=120,
                            check=False, env=environment)
    assert result.returncode == 0, result.stderr
    spans = sum(len(s.requests) for s in sessions[:1000])
    assert f"replaying requests.csv: {spans:,} spans in " in result.stderr
    config = replay.replay_config(load_config(environ={}))
    expected = replay_file(path, config, Pure(config)).snapshot
    ranking = [g.name for g in session_stats(expected).impact_ranking()]
    assert [r["data-group"] for r in Dom(out.read_text()).having("data-rank")] == ranking
    assert "/product/{id}" in ranking  # no rules configured: the route's normal form
