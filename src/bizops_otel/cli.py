"""The ``bizops-otel`` command.

``bizops-otel demo`` starts a small real web shop on 127.0.0.1 (Flask behind
OpenTelemetry's WSGI middleware, with bizops-otel installed), drives it with simulated
visitors over HTTP, serves ``/metrics`` for Prometheus, pushes OTLP when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, and shows a live view of what the metrics say.
``bizops-otel report PATH`` prints the same view of saved state: a snapshot file, or a
``multiproc_dir``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence


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
        "report", help="print the analytics of saved state (a snapshot file, or a "
                       "multiproc_dir whose workers' states are merged)")
    report.add_argument("path", help="a .npz snapshot file or a multiproc_dir")
    return parser


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


def report(args: argparse.Namespace) -> int:
    """The demo's view of saved state: page groups by impact, campaigns, A/B, what-if.

    Campaigns are judged afresh from the saved recent window, so first-seen times are
    those of the saved state.
    """
    from pathlib import Path

    from .aggregate import persist
    from .analytics.health import assess
    from .demo import view
    from .export.multiproc import merged_snapshot

    path = Path(args.path)
    try:
        snapshot = merged_snapshot(path) if path.is_dir() else persist.read(path)
    except (OSError, ValueError) as error:
        print(f"bizops-otel report: {path}: {error}", file=sys.stderr)
        return 2
    if snapshot is None:
        print(f"bizops-otel report: {path}: no saved state", file=sys.stderr)
        return 2
    taken = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(snapshot.taken_ns / 1e9))
    header = f"bizops-otel report · {path.name} · taken {taken} UTC"
    print(view.render(snapshot, assess(snapshot, {}), header))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "report":
        return report(args)
    _check(args)
    return demo(args)


if __name__ == "__main__":
    raise SystemExit(main())
