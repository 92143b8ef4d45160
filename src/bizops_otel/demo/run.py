"""The demo's wiring: the shop on 127.0.0.1 with bizops-otel installed, simulated visitors
over HTTP, an OTLP push when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, and the live view.
``bizops-otel demo`` calls :func:`run`."""

from __future__ import annotations

import os
import signal
import sys
import time
from types import FrameType
from typing import Any

from .. import attributes as attr
from ..config import Config, Journey, Operation
from ..implementation import NATIVE
from ..install import BizOps, install
from . import driver, history, live_report, shop, testplan_file, view
from .simulate import Campaign, Scenario

#: Seconds the view waits between two updates.
REFRESH_S = 1.0
#: Sessions of the shop's past hour replayed before the live part: enough for the impact
#: scores, the what-if and the A/B test to have converged when the view first shows.
HISTORY_SESSIONS = 20_000


#: The shop's objectives: its checkout page and its order confirmation, by page group (the
#: live shop's spans carry a path, not a route, and the page-group rules name them). The
#: planted slow checkout keeps the first (about 94% within 1.5 s), and overspends the
#: second's budget (about 98.3% within 1 s).
DEMO_OPERATIONS = (
    Operation("checkout", threshold=1.5, target=0.9, page_group="checkout"),
    Operation("place_order", threshold=1.0, target=0.99, page_group="order"),
)


#: The shop's funnel, over its page groups. The order confirmation is its last step: an
#: impatient visitor leaves a slow checkout without confirming (``demo_scenario``).
DEMO_JOURNEYS = (Journey("purchase", ("landing", "product", "cart", "checkout", "order")),)


def demo_scenario(duration: float) -> Scenario:
    """The shop's traffic: a healthy campaign from the start, a second one launching a
    fifth of the way in (20 s without a duration) with a landing page ten times slower,
    and a variant B that converts 15% better and draws visitors deeper into the shop (10%
    likelier to go on after each page), so more of its sessions reach the slow checkout:
    the A/B view compares latency within page groups, where B is no slower. Visitors are
    impatient at checkout: one slower than its median by half a second confirms half as
    often (the funnel's planted drop, which its latency explains)."""
    launch = duration / 5 if duration > 0 else 20.0
    return Scenario(
        campaigns=(Campaign("spring_sale", 0.2),
                   Campaign("flash_sale", 0.3, launch_s=launch, latency_factor=10.0)),
        variants={"A": 0.0, "B": 0.15},
        variant_depth={"B": 0.10},
        think_time_s=0.5,
        impatience={"checkout": 1.5},
    )


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


def run(duration: float, rate: float, seed: int, port: int,
        history_sessions: int = HISTORY_SESSIONS) -> int:
    """Run the demo for ``duration`` seconds (0: until Ctrl-C or SIGTERM) with ``rate`` new
    sessions per second, on ``port`` of 127.0.0.1 (0 picks a free one), after replaying
    ``history_sessions`` sessions of the shop's past hour; prints the live view and a
    summary, and returns the exit status."""
    scenario = demo_scenario(duration)
    provider = _tracer_provider()
    config = Config(
        dimensions=(attr.PAGE_GROUP, attr.CAMPAIGN_ID, attr.FEATURE_FLAG_VARIANT),
        page_groups=tuple((page.route.replace("<id>", "*"), page.group)
                          for page in (*scenario.pages, scenario.confirm)),
        # The replayed history's keys must not expire mid-demo: its spans end minutes
        # before the live ones, and a slow replay (the pure twin) left the A/B view with
        # the live part only.
        window=60.0, session_timeout=5.0, campaign_interval=2.0, key_ttl=0,
        operations=DEMO_OPERATIONS, journeys=DEMO_JOURNEYS)
    handle = install(provider, config=config)
    began = time.monotonic()
    replayed = history.replay(provider, scenario, history_sessions, seed)
    print(f"bizops-otel demo: replayed the past hour, {history_sessions:,} sessions "
          f"({replayed:,} spans) in {time.monotonic() - began:.1f} s", flush=True)
    report = live_report.LiveReport(
        handle, history.HISTORY_SPAN_S if history_sessions > 0 else 0.0)
    server, _ = shop.serve(shop.create_app(scenario, handle, provider, seed, report), port)
    port = server.server_port
    visitors = driver.Driver(scenario, "127.0.0.1", port, rate, seed)
    interactive = sys.stdout.isatty()
    otlp = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    print(f"bizops-otel demo: the shop is at http://127.0.0.1:{port}/\n"
          f"Prometheus metrics at http://127.0.0.1:{port}/metrics\n"
          f"The report, live: http://127.0.0.1:{port}{live_report.ROUTE}\n"
          f"A load test of its sessions: http://127.0.0.1:{port}{testplan_file.ROUTE}"
          + (f"\nOTLP to {otlp}" if otlp else ""), flush=True)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    visitors.start()
    frame = ""
    try:
        while True:
            elapsed = time.monotonic() - visitors.started
            if duration and elapsed >= duration:
                break
            # The last wait ends at the duration, so the run never overruns it.
            time.sleep(REFRESH_S if not duration else min(REFRESH_S, duration - elapsed))
            report.observe()
            frame = _frame(handle, visitors, duration, port, history_sessions)
            if interactive:
                sys.stdout.write("\x1b[H\x1b[2J" + frame + "\n")  # redraw in place
            elif int(time.monotonic() - visitors.started) % 5 == 0:
                sys.stdout.write(frame + "\n\n")
            sys.stdout.flush()
    except (KeyboardInterrupt, _Terminate):
        print("\nstopping…", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        ran = time.monotonic() - visitors.started
        visitors.stop()
        final = _frame(handle, visitors, duration, port, history_sessions, ran)
        server.shutdown()
        handle.shutdown()
        provider.shutdown()
    tally = visitors.tally
    print(final)
    print(f"\nLive for {ran:.1f} s: {tally.sessions:,} sessions, {tally.requests:,} requests "
          f"({tally.failed:,} failed), {tally.orders:,} orders; after "
          f"{history_sessions:,} sessions of history.")
    return 0


def _frame(handle: BizOps, visitors: driver.Driver, duration: float, port: int,
           history_sessions: int, elapsed: float | None = None) -> str:
    if elapsed is None:
        elapsed = time.monotonic() - visitors.started
    if duration:
        elapsed = min(elapsed, duration)
    limit = f" of {duration:.0f}" if duration else ""
    header = (f"bizops-otel demo · live {elapsed:.0f}{limit} s, "
              f"{visitors.tally.requests:,} requests · history {history_sessions:,} "
              f"sessions\n:{port}/metrics · report http://127.0.0.1:{port}"
              f"{live_report.ROUTE} · {'native' if NATIVE else 'pure'}")
    snapshot = handle.snapshot()
    if snapshot is None:  # install() left disabled by configuration
        return header + "\nbizops-otel is disabled: nothing to show"
    return str(view.render(snapshot, handle.campaign_health(), header, handle.variants))
