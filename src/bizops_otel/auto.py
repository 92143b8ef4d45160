"""Zero-code installation under ``opentelemetry-instrument``.

Registered as an ``opentelemetry_post_instrument`` entry point, so it runs after the SDK
is configured and the instrumentations are loaded, with configuration from
``BIZOPS_OTEL_*`` variables. It never raises: a service must start even when bizops-otel
is misconfigured, so errors are logged instead.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from ._twins import flag
from .settings import load_config

_logger = logging.getLogger("bizops_otel")


def post_instrument() -> None:
    try:
        config = load_config()
        if not config.enabled:
            _logger.info("bizops-otel: disabled by BIZOPS_OTEL_ENABLED")
            return
        from .install import install

        handle = install(config=config)
        line = summary(handle)
        _logger.info("%s", line)
        if not flag("BIZOPS_OTEL_QUIET"):
            # Applications rarely configure logging before opentelemetry-instrument runs,
            # so the INFO line alone would go unseen: one line on stderr says what runs.
            print(line, file=sys.stderr, flush=True)
    except Exception as error:
        _logger.exception("bizops-otel: not installed")
        if not flag("BIZOPS_OTEL_QUIET"):
            print(f"bizops-otel: not installed: {error}", file=sys.stderr, flush=True)


def summary(handle: Any) -> str:
    """One line: what was installed, with what, and where the metrics go."""
    config = handle.config
    where = []
    if handle.pusher is not None:
        where.append(f"OTLP {handle.pusher.settings.protocol} to "
                     f"{handle.pusher.settings.endpoint}")
    if handle.metrics_server is not None:
        where.append(f"/metrics on {config.prometheus_addr}:"
                     f"{handle.metrics_server.server_port}")
    if handle.metrics is not None:
        where.append("the global MeterProvider")
    return (f"bizops-otel: installed {handle!r}; kpis={','.join(config.kpi_names)} "
            f"dimensions={','.join(config.dimensions)}; metrics: "
            + ("; ".join(where) if where else "none (set BIZOPS_OTEL_PROMETHEUS_PORT or "
                                             "OTEL_EXPORTER_OTLP_ENDPOINT)"))
