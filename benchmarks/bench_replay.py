"""How long the report's replays take: a million spans of the simulated shop, as a CSV and
as OTLP/JSON lines, replayed into each twin.

    python benchmarks/bench_replay.py [--sessions 365000] [--keep DIR]

The files are written first (the simulator's sessions, about 2.75 spans each; OTLP/JSON
lines of 500 spans, as the Collector's file exporter writes them); only the replay is
timed, once per file and twin, on the wall clock and in CPU time.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bizops_otel.aggregate._aggregator_py import Aggregator as PureAggregator
from bizops_otel.aggregate.aggregator import Aggregator
from bizops_otel.config import Config
from bizops_otel.demo.simulate import Campaign, Scenario, Session, Simulator
from bizops_otel.implementation import NATIVE
from bizops_otel.report.replay import REPLAY_DIMENSIONS, replay_file

EPOCH = 1_700_000_000 * 10**9
SCENARIO = Scenario(campaigns=(Campaign("spring_sale", 0.2),
                               Campaign("flash_sale", 0.2, latency_factor=10.0,
                                        error_rate=0.3)),
                    variants={"A": 0.0, "B": 0.15})
RULES = (("/", "landing"), ("/product/*", "product"), ("/cart", "cart"),
         ("/checkout", "checkout"), ("/checkout/confirm", "order"))


def _times(session: Session) -> list[tuple[Any, int, int]]:
    return [(r, EPOCH + int(r.start_s * 1e9), int(r.latency_s * 1e9)) for r in session.requests]


def _decimal(ns: int) -> str:
    return f"{ns // 10**9}.{ns % 10**9:09d}"


def write_csv(sessions: list[Session], path: Path) -> int:
    count = 0
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(("timestamp", "route", "latency", "order_value", "session",
                         "campaign", "variant", "converted", "error"))
        for s in sessions:
            for r, start, latency in _times(s):
                writer.writerow((_decimal(start), r.page.route, _decimal(latency),
                                 "" if r.order_value is None else f"{r.order_value:.2f}",
                                 s.id, s.campaign if r.query else "", s.variant,
                                 int(r.converted) if r.confirm else "", int(r.error)))
                count += 1
    return count


def _attribute(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": value}}


def write_otlp(sessions: list[Session], path: Path, per_line: int = 500) -> int:
    spans: list[dict[str, Any]] = []
    count = 0
    with path.open("w") as out:
        for number, s in enumerate(sessions):
            for index, (r, start, latency) in enumerate(_times(s)):
                attributes = [_attribute("http.route", r.page.route),
                              _attribute("url.path", r.path),
                              _attribute("session.id", s.id),
                              _attribute("feature_flag.key", "new-checkout"),
                              _attribute("feature_flag.result.variant", s.variant)]
                if r.query:
                    attributes.append(_attribute("url.query", r.query))
                if r.confirm:
                    attributes.append(_attribute("bizops.conversion", r.converted))
                    if r.order_value is not None:
                        attributes.append(_attribute("bizops.order.value", r.order_value))
                spans.append({"traceId": f"{number:032x}", "spanId": f"{index + 1:016x}",
                              "name": f"{r.method} {r.page.route}", "kind": 2,
                              "startTimeUnixNano": str(start),
                              "endTimeUnixNano": str(start + latency),
                              "attributes": attributes,
                              "status": {"code": 2} if r.error else {}})
                count += 1
                if len(spans) == per_line:
                    out.write(_line(spans))
                    spans = []
        if spans:
            out.write(_line(spans))
    return count


def _line(spans: list[dict[str, Any]]) -> str:
    request = {"resourceSpans": [{"resource": {"attributes": [
        _attribute("service.name", "shop")]}, "scopeSpans": [{"scope": {"name": "shop"},
                                                               "spans": spans}]}]}
    return json.dumps(request, separators=(",", ":")) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=365_000)
    parser.add_argument("--keep", help="write the files here instead of a temporary folder")
    args = parser.parse_args()
    config = Config(dimensions=REPLAY_DIMENSIONS, page_groups=RULES)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.keep or scratch)
        sessions = list(Simulator(SCENARIO, 5).sessions(args.sessions, rate_per_s=100.0))
        files = {"csv": folder / "spans.csv", "otlp-json": folder / "spans.jsonl"}
        spans = write_csv(sessions, files["csv"])
        write_otlp(sessions, files["otlp-json"])
        print(f"{spans:,} spans of {args.sessions:,} sessions; native twin "
              f"{'loaded' if NATIVE else 'NOT loaded'}")
        print(f"{'file':<10}{'size':>10}{'twin':>8}{'wall s':>9}{'cpu s':>8}{'spans/s':>12}")
        twins = [("native", Aggregator)] if NATIVE else []
        for name, path in files.items():
            for twin, cls in [*twins, ("pure", PureAggregator)]:
                wall, cpu = time.perf_counter(), time.process_time()
                result = replay_file(path, config, cls(config))
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                assert result.spans == spans
                print(f"{name:<10}{path.stat().st_size / 2**20:>8,.0f}MB{twin:>8}"
                      f"{wall:>9.1f}{cpu:>8.1f}{spans / wall:>12,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
