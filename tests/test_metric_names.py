"""One set of names end to end: what the direct exposition and the collector write, what
the SDK's PrometheusMetricReader makes of the OTLP names, and what the recording rules
read are the same series."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import opentelemetry.exporter.prometheus as prometheus_exporter
import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from bizops_otel import attributes
from bizops_otel.export.exposition import render
from bizops_otel.export.family import Family
from bizops_otel.export.naming import label_name, prometheus_name
from bizops_otel.export.otel import BUCKET_METRIC
from tests.metric_names import DIMENSIONS, emitted_series, every_family

RULES = Path(__file__).parent.parent / "deploy" / "prometheus" / "bizops-rules.yml"
@pytest.fixture(scope="module")
def everything() -> tuple[list[Family], Any, Any]:
    return every_family()


def _reader(registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A PrometheusMetricReader on ``registry``. Releases that take no registry (0.46b0,
    of the oldest SDK supported) register on their module's global one, swapped here."""
    if "registry" in inspect.signature(PrometheusMetricReader).parameters:
        return PrometheusMetricReader(registry=registry, disable_target_info=True)
    monkeypatch.setattr(prometheus_exporter, "REGISTRY", registry)
    return PrometheusMetricReader(disable_target_info=True)


def _sdk_names(families: list[Family], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """OTel name -> the sample name the SDK's PrometheusMetricReader writes for it."""
    registry = CollectorRegistry()
    reader = _reader(registry, monkeypatch)
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("names")
    for family in families:
        if family.kind == "counter":
            meter.create_counter(family.name, family.unit).add(1, {"a": "b"})
        elif family.kind == "updown":
            meter.create_up_down_counter(family.name, family.unit).add(-1, {"a": "b"})
        else:
            def gauge(options: CallbackOptions) -> list[Observation]:
                return [Observation(1.0, {"a": "b"})]
            meter.create_observable_gauge(family.name, [gauge], family.unit)
    meter.create_histogram("bizops.request.duration", "s").record(0.2, {"a": "b"})
    meter.create_counter(BUCKET_METRIC, "{request}").add(1, {"a": "b"})
    out = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if metric.type == "histogram":
                out.setdefault(metric.name, metric.name)
            elif not sample.name.endswith("_created"):
                out[metric.name] = sample.name
    provider.shutdown()
    by_otel = {}
    for family in [*families, Family("bizops.request.duration", "gauge", "s", ""),
                   Family(BUCKET_METRIC, "counter", "{request}", "")]:
        base = re.sub(r"[^a-zA-Z0-9:]+", "_", family.name)
        found = [name for key, name in out.items() if key.startswith(base)]
        assert len(found) >= 1, family.name
        by_otel[family.name] = min(found, key=len)
    return by_otel


def test_the_sdk_reader_translates_every_name_as_the_direct_exposition_writes_it(
        everything: tuple[list[Family], Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    families, _, _ = everything
    sdk = _sdk_names(families, monkeypatch)
    for family in families:
        assert sdk[family.name] == prometheus_name(family.name, family.unit, family.kind), \
            family.name
    assert sdk["bizops.request.duration"] == "bizops_request_duration_seconds"
    assert sdk[BUCKET_METRIC] == "bizops_request_duration_bucket_total"


def test_no_gauge_has_the_unit_one_and_no_unit_word_sits_inside_a_name(
        everything: tuple[list[Family], Any, Any]) -> None:
    """The two translations differ exactly there (the Collector adds _ratio to unit-1
    gauges, and looks for the unit word anywhere in the name), so the model avoids both."""
    families, _, _ = everything
    for family in families:
        assert not (family.kind == "gauge" and family.unit == "1"), family.name
        words = re.split(r"[^a-zA-Z0-9]+", family.name)[:-1]
        assert not {"seconds", "total", "ratio"} & set(words), family.name


def test_the_scrape_writes_the_translated_names(
        everything: tuple[list[Family], Any, Any]) -> None:
    families, histogram, (snapshot, health) = everything
    scraped = {sample.name for family in text_string_to_metric_families(
        render(snapshot, health).decode()) for sample in family.samples}
    expected = {prometheus_name(f.name, f.unit, f.kind) for f in families
                if not f.name.startswith("bizops.internal.export")
                and (f.loose or any(c.rows.size for c in f.columns))}
    base = prometheus_name(histogram.name, histogram.unit, "histogram")
    expected |= {f"{base}_bucket", f"{base}_sum", f"{base}_count"}
    assert scraped == expected


def test_every_metric_the_rules_read_is_emitted(
        everything: tuple[list[Family], Any, Any]) -> None:
    families, histogram, _ = everything
    emitted = emitted_series(families, histogram)
    labels = {label_name(d) for d in (*DIMENSIONS, attributes.FEATURE_FLAG_KEY)}
    labels |= {label_name(k) for f in families for c in f.columns for k, _ in c.extra}
    labels |= {label_name(k) for f in families for ls, _ in f.loose for k, _ in ls}
    labels |= {"bizops_outcome", "otel_metric_overflow"}
    tokens = set(re.findall(r"(?<![:\w])bizops_[a-z0-9_]+", RULES.read_text()))
    read = tokens - labels
    assert read, "the rules read no bizops series?"
    assert read <= emitted, sorted(read - emitted)
    assert {"bizops_kpi_latency_sum_of_squares_s2_total", "bizops_request_duration_seconds_bucket",
            "bizops_request_duration_bucket_total", "bizops_campaign_health"} <= read


def test_a_live_scrape_passes_promtool_check_metrics(
        everything: tuple[list[Family], Any, Any]) -> None:
    """Every family the model has, served over HTTP on 127.0.0.1 and linted by promtool: no
    reserved label on a gauge, no family without samples, no name against the rules."""
    import subprocess
    import urllib.request

    from bizops_otel.export.exposition import start_http_server
    from tests.tools import require

    _, _, (snapshot, health) = everything
    server, thread = start_http_server(0, lambda: snapshot, addr="127.0.0.1",
                                       health=lambda: health)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            body = reply.read()
    finally:
        server.shutdown()
        thread.join(10)
    assert body.count(b"\n") > 500
    result = subprocess.run([require("promtool"), "check", "metrics"], input=body,
                            capture_output=True, timeout=60, check=False)
    assert result.returncode == 0 and not result.stdout and not result.stderr, (
        result.stdout.decode()[:2000] + result.stderr.decode()[:2000])
