"""gunicorn with bizops-otel: one aggregator per worker, one merged scrape endpoint.

- Each worker installs its own SDK TracerProvider and bizops-otel after the fork
  (``post_fork``), so it has its own aggregator, its own state file in
  BIZOPS_OTEL_MULTIPROC_DIR and, when OTLP is configured, its own service.instance.id.
- The master serves /metrics on METRICS_PORT (``when_ready``): every scrape merges all
  workers' state exactly, and the state of workers that died keeps counting.
- The directory is emptied when the server starts (``on_starting``): files left by an
  earlier run would otherwise be counted again.
"""

import os
from pathlib import Path

bind = f"127.0.0.1:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WORKERS", "4"))
METRICS_PORT = int(os.environ.get("METRICS_PORT", "9464"))


def _directory() -> str:
    return os.environ["BIZOPS_OTEL_MULTIPROC_DIR"]


def on_starting(server):  # type: ignore[no-untyped-def]
    directory = Path(_directory())
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("bizops-*"):
        stale.unlink()


def when_ready(server):  # type: ignore[no-untyped-def]
    from bizops_otel.export.exposition import start_http_server
    from bizops_otel.export.multiproc import merged_snapshot

    directory = _directory()
    start_http_server(METRICS_PORT, lambda: merged_snapshot(directory), addr="127.0.0.1")


def post_fork(server, worker):  # type: ignore[no-untyped-def]
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    import bizops_otel

    trace.set_tracer_provider(TracerProvider())
    bizops_otel.install()
