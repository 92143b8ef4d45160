"""Zero-code installation under ``opentelemetry-instrument``.

Registered as an ``opentelemetry_post_instrument`` entry point, so it runs after the SDK
is configured and the instrumentations are loaded, with configuration from
``BIZOPS_OTEL_*`` variables. It never raises: a service must start even when bizops-otel
is misconfigured, so errors are logged instead.
"""

from __future__ import annotations

import logging

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
        _logger.info("bizops-otel: installed %r; kpis=%s dimensions=%s", handle,
                     ",".join(config.kpi_names), ",".join(config.dimensions))
    except Exception:
        _logger.exception("bizops-otel: not installed")
