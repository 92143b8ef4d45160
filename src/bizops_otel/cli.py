"""The ``bizops-otel`` command.

``bizops-otel demo`` starts a small real web shop on 127.0.0.1 (Flask behind
OpenTelemetry's WSGI middleware, with bizops-otel installed), drives it with simulated
visitors over HTTP, serves ``/metrics`` for Prometheus, pushes OTLP when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, and shows a live view of what the metrics say.
``bizops-otel report PATH`` prints the same view of saved state (a snapshot file, or a
``multiproc_dir``) or of recorded spans (OTLP/JSON lines, CSV), and with ``-o`` writes it
as one self-contained HTML page. ``bizops-otel testplan PATH -o locustfile.py`` writes a
Locust load test that reproduces the page mix, paths, think times and peaks of the same
inputs' sessions.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from typing import Any


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bizops-otel", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the demo shop with simulated visitors")
    demo.add_argument("--duration", type=float, default=60.0,
                      help="seconds to run; 0 runs until Ctrl-C (default 60)")
    demo.add_argument("--rate", type=float, default=4.0,
                      help="new visitor sessions per second (default 4)")
    demo.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    demo.add_argument("--history", type=int, default=20_000,
                      help="sessions of the shop's past hour replayed first (default "
                           "20000; 0: start empty)")
    demo.add_argument("--port", type=int, default=8000,
                      help="port on 127.0.0.1 for the shop and /metrics; 0 picks a free one")
    report = commands.add_parser(
        "report", help="the analytics of saved state (a snapshot file, or a multiproc_dir "
                       "whose workers' states are merged) or of recorded spans (OTLP/JSON "
                       "lines, CSV): printed, or written as an HTML page with -o")
    report.add_argument("path", nargs="?",
                        help="a .npz snapshot file, a multiproc_dir, OTLP/JSON lines "
                             "(.json, .jsonl, .ndjson) or a CSV of requests (.csv)")
    report.add_argument("-o", "--output", help="write the report as one HTML file here")
    report.add_argument("--title", help="the report's title (default: from PATH)")
    report.add_argument("--from", dest="source", metavar="URL",
                        help="a live /metrics endpoint: it carries too little for a "
                             "report, and the command says why")
    _testplan_parser(commands)
    return parser


def _testplan_parser(commands: Any) -> None:
    testplan = commands.add_parser(
        "testplan", help="a Locust load test reproducing the sessions of saved state or "
                         "recorded spans: page mix, paths, think times, arrivals, peak")
    testplan.add_argument("path", nargs="?",
                          help="a .npz snapshot file, a multiproc_dir, OTLP/JSON lines (.json, "
                               ".jsonl, .ndjson) or a CSV of requests (.csv)")
    testplan.add_argument("-o", "--output", default="locustfile.py",
                          help="the Locust file to write (default locustfile.py; - prints)")
    testplan.add_argument("--path", dest="paths", action="append", default=[],
                          metavar="GROUP=/url",
                          help="the request for a page group, e.g. product=/product/42 or "
                               "'order=POST /checkout/confirm'; repeatable (default: the demo "
                               "shop's routes, and /GROUP for other groups)")
    testplan.add_argument("--speedup", type=float, default=1.0,
                          help="replay the arrival profile this many times faster (default 1)")
    testplan.add_argument("--cookie", default="bizops_session",
                          help="the session cookie's name (default bizops_session)")


def _check(args: argparse.Namespace) -> None:
    if (args.duration < 0 or not 0 < args.rate <= 500 or not 0 <= args.port <= 65535
            or not 0 <= args.history <= 1_000_000):
        raise SystemExit("bizops-otel demo: --duration must be ≥ 0, --rate in (0, 500], "
                         "--port in [0, 65535] and --history in [0, 1000000]")


def demo(args: argparse.Namespace) -> int:
    try:
        from .demo import run
    except ImportError as error:
        print(f"bizops-otel demo needs Flask and the OpenTelemetry WSGI instrumentation "
              f"({error.name} is missing): pip install 'bizops-otel[demo]'", file=sys.stderr)
        return 2
    return run.run(args.duration, args.rate, args.seed, args.port, args.history)


#: Why ``--from URL`` is refused.
SCRAPE_REFUSAL = (
    "bizops-otel report: --from {url}: a /metrics endpoint does not carry enough for the "
    "report. The exposition holds each page group's sessions and conversions in total, the "
    "impact scores and the what-if at four fixed shifts, but not the sessions per latency "
    "bucket that the conversion-by-load-time curve and its optimum are drawn from, nor the "
    "latency histograms at the report's resolution (only the exported bounds). Report on "
    "the service's state instead: a snapshot file (state_path), its multiproc_dir, or its "
    "spans (OTLP/JSON lines from the Collector's file exporter); the demo serves the live "
    "report at /bizops/report; Grafana shows the live series (deploy/grafana).")
_REPLAYED = (".csv", ".tsv", ".json", ".jsonl", ".ndjson")


def _read(path: Any) -> tuple[Any, Any, float, Any]:
    """(snapshot, campaign health or None, seconds covered, campaign timeline or None)."""
    from .aggregate import persist
    from .export.multiproc import merged_snapshot

    if path.is_dir():
        snapshot = merged_snapshot(path)
    elif path.suffix.lower() in _REPLAYED:
        from .report import replay
        from .settings import load_config

        config = replay.replay_config(load_config())
        result = replay.replay_with_progress(path, config)
        return result.snapshot, result.health, result.period_s, result.timeline.changes
    else:
        snapshot = persist.read(path)
    if snapshot is None:
        return None, None, math.nan, None
    return snapshot, None, (snapshot.taken_ns - snapshot.started_ns) / 1e9, None


def report(args: argparse.Namespace) -> int:
    """The analytics of saved state or recorded spans: the demo's view printed, or with
    ``-o`` an HTML page.

    Campaigns of saved state are judged afresh from the saved recent window, so first-seen
    times are those of the saved state; a replay judges them as the traffic goes.
    """
    from pathlib import Path

    from .analytics.health import assess
    from .demo import view
    from .report import html_report

    if args.source is not None:
        import textwrap

        print(textwrap.fill(SCRAPE_REFUSAL.format(url=args.source), 88), file=sys.stderr)
        return 2
    if args.path is None:
        print("bizops-otel report: give a PATH (a snapshot file, a multiproc_dir or "
              "recorded spans)", file=sys.stderr)
        return 2
    path = Path(args.path)
    try:
        snapshot, health, period_s, timeline = _read(path)
    except (OSError, ValueError) as error:  # ReplayError and ConfigError among them
        print(f"bizops-otel report: {path}: {error}", file=sys.stderr)
        return 2
    if snapshot is None:
        print(f"bizops-otel report: {path}: no saved state", file=sys.stderr)
        return 2
    if health is None:
        health = assess(snapshot, {})
    taken = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(snapshot.taken_ns / 1e9))
    if args.output is None:
        header = f"bizops-otel report · {path.name} · taken {taken} UTC"
        print(view.render(snapshot, health, header))
        return 0
    title = args.title or f"bizops-otel report · {path.name}"
    page = html_report(snapshot, health, title, period_s, timeline)
    try:
        Path(args.output).write_text(page, encoding="utf-8")
    except OSError as error:
        print(f"bizops-otel report: {args.output}: {error}", file=sys.stderr)
        return 2
    print(f"bizops-otel report: wrote {args.output} ({len(page.encode()) / 1024:,.0f} KiB)")
    return 0


def testplan(args: argparse.Namespace) -> int:
    """A Locust file following the sessions of saved state or recorded spans."""
    from pathlib import Path

    from .analytics import TestPlan
    from .demo.testplan_file import shop_routes
    from .testplan import parse_paths, render_locustfile

    if args.path is None:
        print("bizops-otel testplan: give a PATH (a snapshot file, a multiproc_dir or "
              "recorded spans)", file=sys.stderr)
        return 2
    path = Path(args.path)
    try:
        routes = parse_paths(args.paths, shop_routes())
        snapshot = _read(path)[0]
        if snapshot is None:
            raise ValueError("no saved state")
        plan = TestPlan.from_snapshot(snapshot)
        text = render_locustfile(plan, routes, speedup=args.speedup, source=str(path),
                                 session_cookie=args.cookie)
    except (OSError, ValueError) as error:  # ReplayError and ConfigError among them
        print(f"bizops-otel testplan: {path}: {error}", file=sys.stderr)
        return 2
    unknown = sorted(set(routes) - set(plan.groups) - set(shop_routes()))
    if unknown:
        print(f"bizops-otel testplan: no traffic on page groups {', '.join(unknown)}; "
              f"the traffic's groups: {', '.join(plan.groups)}", file=sys.stderr)
        return 2
    if args.output == "-":
        print(text, end="")
        return 0
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as error:
        print(f"bizops-otel testplan: {args.output}: {error}", file=sys.stderr)
        return 2
    print(f"bizops-otel testplan: wrote {args.output}: {plan.sessions:,} sessions over "
          f"{len(plan.groups)} page groups, peak {plan.peak_arrivals:,.0f} sessions a minute, "
          f"{plan.peak_users:,} concurrent users")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "report":
        return report(args)
    if args.command == "testplan":
        return testplan(args)
    _check(args)
    return demo(args)


if __name__ == "__main__":
    raise SystemExit(main())
