"""OTLP export cost: the direct encoder against the SDK's path, and bytes on the wire.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_otlp.py [--keys N] [--sdk-keys N]

Peers, measured in the same run on the same snapshot:
- the direct Prometheus render of the same snapshot (target: encode ≤ 3× the render);
- the SDK's path (observable instruments collected by an SDK MeterProvider, then the OTLP
  exporter's ``encode_metrics`` and serialisation), at ``--sdk-keys`` keys, since it is
  far slower (target: the direct encoder ≥ 100× faster per point). The SDK is given a
  cardinality limit above the point count, so it keeps every point as the encoder does.

Also: bytes per point with and without gzip, and how long an application thread waits
for the GIL while an export runs beside it (the pusher's thread encodes in chunks).
"""

from __future__ import annotations

import argparse
import gzip
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _timing import millis, table, verdict
from bench_export import fed_aggregator, sdk_reader
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.sdk.metrics import MeterProvider

import bizops_otel
from bizops_otel import Config
from bizops_otel.export.exposition import render
from bizops_otel.export.otel import OTelMetrics
from bizops_otel.export.otlp import _points_py, encode, encoder, points

RESOURCE = {"service.name": "bench", "service.instance.id": "bench-1"}


def count_points(body: bytes) -> int:
    request = ExportMetricsServiceRequest.FromString(body)
    return sum(len(getattr(m, m.WhichOneof("data")).data_points)
               for rm in request.resource_metrics for sm in rm.scope_metrics
               for m in sm.metrics)


def sdk_path(keys: int) -> tuple[float, int]:
    """Milliseconds for one SDK collection plus OTLP encoding, and the points it made."""
    aggregator = fed_aggregator(keys)
    reader = sdk_reader()
    OTelMetrics(MeterProvider(metric_readers=[reader]), aggregator.snapshot, Config())
    reader.get_metrics_data()  # the first collection creates the SDK's storage
    started = time.perf_counter()
    data = reader.get_metrics_data()
    body = encode_metrics(data).SerializeToString()
    took = (time.perf_counter() - started) * 1e3
    return took, count_points(body)


def gil_wait_ms(snapshot: Any, seconds: float = 2.0) -> tuple[float, float]:
    """p99 and max of a 1 ms-sleeping application thread's overshoot (ms) while exports
    run back to back on another thread."""
    stop = threading.Event()

    def exporting() -> None:
        while not stop.is_set():
            encode(snapshot, resource_attributes=RESOURCE)

    worker = threading.Thread(target=exporting)
    worker.start()
    overshoot = []
    ends = time.perf_counter() + seconds
    while time.perf_counter() < ends:
        started = time.perf_counter()
        time.sleep(0.001)
        overshoot.append((time.perf_counter() - started) * 1e3 - 1.0)
    stop.set()
    worker.join()
    overshoot.sort()
    return overshoot[int(0.99 * (len(overshoot) - 1))], overshoot[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--sdk-keys", type=int, default=1_000)
    args = parser.parse_args()
    snapshot = fed_aggregator(args.keys).snapshot()
    body = encode(snapshot, resource_attributes=RESOURCE)
    n_points = count_points(body)
    render_ms = millis(lambda: render(snapshot))
    encode_ms = millis(lambda: encode(snapshot, resource_attributes=RESOURCE))
    split_ms = millis(lambda: encoder.requests(encoder.metrics(snapshot),
                                               encoder.resource_field(RESOURCE)))
    original = (encoder.number_points, encoder.histogram_points)
    encoder.number_points, encoder.histogram_points = (_points_py.number_points,
                                                       _points_py.histogram_points)
    pure_ms = millis(lambda: encode(snapshot, resource_attributes=RESOURCE), repeats=3)
    encoder.number_points, encoder.histogram_points = original
    sdk_ms, sdk_points = sdk_path(args.sdk_keys)
    small = fed_aggregator(args.sdk_keys).snapshot()
    small_ms = millis(lambda: encode(small, resource_attributes=RESOURCE))
    zipped = gzip.compress(body, compresslevel=6)
    p99, worst = gil_wait_ms(snapshot)
    per_point_direct = encode_ms * 1e6 / n_points
    per_point_sdk = sdk_ms * 1e6 / sdk_points
    kind = "native" if points.NATIVE else "pure"
    print(f"bizops-otel {bizops_otel.__version__}, OTLP point kernels: {kind}; "
          f"{args.keys} keys, {n_points} points ({len(body) / 1e6:.1f} MB)\n")
    rows = [
        ("direct Prometheus render (peer)", f"{render_ms:.1f} ms", ""),
        ("encode(snapshot), one request", f"{encode_ms:.1f} ms",
         f"{encode_ms / render_ms:.2f}× the render: ≤ 3× {verdict(encode_ms <= 3 * render_ms)}"),
        ("encode, split into 4 MiB requests", f"{split_ms:.1f} ms",
         f"{len(encoder.requests(encoder.metrics(snapshot), encoder.resource_field(RESOURCE)))}"
         " requests"),
        ("encode with the pure point kernels", f"{pure_ms:.1f} ms",
         f"{pure_ms / encode_ms:.1f}× the native"),
        (f"SDK collection + encode_metrics, {args.sdk_keys} keys ({sdk_points} points)",
         f"{sdk_ms:.1f} ms", ""),
        (f"encode(snapshot) at {args.sdk_keys} keys", f"{small_ms:.1f} ms",
         f"{sdk_ms / small_ms:.0f}× faster than the SDK's path at the same keys: ≥ 100× "
         f"{verdict(sdk_ms >= 100 * small_ms)}"),
        ("per point: direct / SDK", f"{per_point_direct:.0f} ns / {per_point_sdk:,.0f} ns",
         f"{per_point_sdk / per_point_direct:.0f}× faster: ≥ 100× "
         f"{verdict(per_point_sdk >= 100 * per_point_direct)}"),
        ("bytes per point, plain / gzip", f"{len(body) / n_points:.0f} / "
                                          f"{len(zipped) / n_points:.1f}",
         f"gzip level 6: {len(zipped) / 1e6:.2f} MB"),
        ("app thread's GIL wait during exports, p99 / max", f"{p99:.1f} / {worst:.1f} ms", ""),
    ]
    print(table(rows, ("measure", "value", "target")))


if __name__ == "__main__":
    main()
