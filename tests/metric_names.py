"""Every metric family the model emits, from a simulated run with every analytics answer
present, and the Prometheus series names they become."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from bizops_otel import Journey, Operation, attributes
from bizops_otel.analytics.health import assess
from bizops_otel.demo.simulate import Campaign, Scenario
from bizops_otel.export.family import Family
from bizops_otel.export.model import metric_families
from bizops_otel.export.naming import prometheus_name
from bizops_otel.export.otel import BUCKET_METRIC
from bizops_otel.export.otlp.push import ExportStatus
from tests.spans import run

RULES = Path(__file__).parent.parent / "deploy" / "prometheus" / "bizops-rules.yml"
DIMENSIONS = (attributes.PAGE_GROUP, attributes.CAMPAIGN_ID, attributes.FEATURE_FLAG_VARIANT)


@functools.cache
def every_family() -> tuple[list[Family], Any, Any]:
    """Raw sums, derived gauges, sessions, what-if, A/B, campaign health, and the pusher's
    own status, with the histogram family and the (snapshot, health) they came from."""
    from bizops_otel.aggregate._aggregator_py import Aggregator

    scenario = Scenario(campaigns=(Campaign("spring", 0.3),), variants={"A": 0.0, "B": 0.2})
    snapshot, _ = run(Aggregator, scenario, 1500, seed=2, dimensions=DIMENSIONS,
                      operations=(Operation("checkout", 1.0, 0.95, page_group="checkout"),),
                      journeys=(Journey("purchase", ("landing", "product", "cart", "checkout",
                                                     "order")),))
    assert snapshot.objectives()["checkout"].total > 0
    health = assess(snapshot, {})
    families, histogram = metric_families(snapshot, health)
    status = ExportStatus()
    status.failed("http_503", "planted")
    status.succeeded(0)
    families = [*families, *status.families()]
    assert len(families) > 35
    return families, histogram, (snapshot, health)


def emitted_series(families: list[Family], histogram: Any) -> set[str]:
    """The series names a scrape (or the OTel-instruments path) can carry."""
    emitted = {prometheus_name(f.name, f.unit, f.kind) for f in families}
    base = prometheus_name(histogram.name, histogram.unit, "histogram")
    emitted |= {f"{base}_bucket", f"{base}_sum", f"{base}_count"}
    # The OTel-instruments path has no observable histogram; its bucket counter is read too.
    emitted.add(prometheus_name(BUCKET_METRIC, "{request}", "counter"))
    return emitted


def exported_and_recorded() -> set[str]:
    """Every series name a scrape can carry, and every name the recording rules record."""
    families, histogram, _ = every_family()
    return (emitted_series(families, histogram)
            | set(re.findall(r"record: (\S+)", RULES.read_text())))
