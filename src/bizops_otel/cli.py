"""The ``bizops-otel`` command.

``bizops-otel demo`` starts a small real web shop on 127.0.0.1 (Flask, instrumented by
OpenTelemetry, with bizops-otel installed), drives it with simulated visitors over HTTP,
serves ``/metrics`` for Prometheus, pushes OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is
set, and shows a live view of what the metrics say. ``bizops-otel report PATH`` prints the
same view of saved state: a snapshot file, or a ``multiproc_dir``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

from . import attributes as attr
from .demo.simulate import Campaign, Scenario
from .implementation import NATIVE

#: Seconds the view waits between two updates.
REFRESH_S = 1.0


def demo_scenario(duration: float) -> Scenario:
    """The shop's traffic: a healthy campaign from the start, a second one launching a
    fifth of the way in (20 s without a duration) with a landing page ten times slower,
    and a variant B that converts 15% better."""
    launch = duration / 5 if duration > 0 else 20.0
    return Scenario(
        campaigns=(Campaign("spring_sale", 0.2),
                   Campaign("flash_sale", 0.3, launch_s=launch, latency_factor=10.0)),
        variants={"A": 0.0, "B": 0.15},
        think_time_s=0.5,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bizops-otel", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the demo shop with simulated visitors")
    demo.add_argument("--duration", type=float, default=60.0,
                      help="seconds to run; 0 runs until Ctrl-C (default 60)")
    demo.add_argument("--rate", type=float, default=4.0,
                      help="new visitor sessions per second (default 4)")
    demo.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    demo.add_argument("--port", type=int, default=8000,
                      help="port on 127.0.0.1 for the shop and /metrics; 0 picks a free one")
    report = commands.add_parser(
        "report", help="print the analytics of saved state (a snapshot file, or a "
                       "multiproc_dir whose workers' states are merged)")
    report.add_argument("path", help="a .npz snapshot file or a multiproc_dir")
    return parser


def _check(args: argparse.Namespace) -> None:
    if args.duration < 0 or not 0 < args.rate <= 500 or not 0 <= args.port <= 65535:
        raise SystemExit("bizops-otel demo: --duration must be ≥ 0, --rate in (0, 500] "
                         "and --port in [0, 65535]")


def _tracer_provider() -> Any:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider(resource=Resource.create({"service.name": "bizops-demo-shop"}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        if protocol == "http/protobuf":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[assignment]
                OTLPSpanExporter,
            )
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


class _Terminate(Exception):
    """SIGTERM: stop as cleanly as on Ctrl-C."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminate


def demo(args: argparse.Namespace) -> int:
    try:
        from .demo import driver, shop, view
    except ImportError as error:
        print(f"bizops-otel demo needs Flask and the OpenTelemetry Flask instrumentation "
              f"({error.name} is missing): pip install 'bizops-otel[demo]'", file=sys.stderr)
        return 2
    from .config import Config
    from .install import install

    scenario = demo_scenario(args.duration)
    provider = _tracer_provider()
    config = Config(
        dimensions=(attr.PAGE_GROUP, attr.CAMPAIGN_ID, attr.FEATURE_FLAG_VARIANT),
        page_groups=tuple((page.route.replace("<id>", "*"), page.group)
                          for page in (*scenario.pages, scenario.confirm)),
        window=60.0, session_timeout=5.0, campaign_interval=2.0)
    handle = install(provider, config=config)
    server, _ = shop.serve(shop.create_app(scenario, handle, provider, args.seed), args.port)
    port = server.server_port
    visitors = driver.Driver(scenario, "127.0.0.1", port, args.rate, args.seed)
    interactive = sys.stdout.isatty()
    otlp = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    print(f"bizops-otel demo: the shop is at http://127.0.0.1:{port}/\n"
          f"Prometheus metrics at http://127.0.0.1:{port}/metrics"
          + (f"\nOTLP to {otlp}" if otlp else ""), flush=True)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    visitors.start()
    frame = ""
    try:
        while args.duration == 0 or time.monotonic() - visitors.started < args.duration:
            time.sleep(REFRESH_S)
            frame = _frame(view, handle, visitors, args, port)
            if interactive:
                sys.stdout.write("\x1b[H\x1b[2J" + frame + "\n")  # redraw in place
            elif int(time.monotonic() - visitors.started) % 5 == 0:
                sys.stdout.write(frame + "\n\n")
            sys.stdout.flush()
    except (KeyboardInterrupt, _Terminate):
        print("\nstopping…", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        visitors.stop()
        final = _frame(view, handle, visitors, args, port)
        server.shutdown()
        handle.shutdown()
        provider.shutdown()
    tally = visitors.tally
    print(final)
    print(f"\n{tally.sessions:,} sessions, {tally.requests:,} requests "
          f"({tally.failed:,} failed), {tally.orders:,} orders.")
    return 0


def _frame(view: Any, handle: Any, visitors: Any, args: argparse.Namespace, port: int) -> str:
    elapsed = time.monotonic() - visitors.started
    limit = f" of {args.duration:.0f}" if args.duration else ""
    header = (f"bizops-otel demo · {elapsed:.0f}{limit} s · {visitors.tally.requests:,} "
              f"requests · :{port}/metrics · {'native' if NATIVE else 'pure'}")
    snapshot = handle.snapshot()
    return str(view.render(snapshot, handle.campaign_health(), header))


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
