"""Exporters: the metric model (``model``), OpenTelemetry metrics and Prometheus scrapes."""
