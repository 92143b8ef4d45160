"""A/B comparison of feature-flag variants from a snapshot.

Variants are a dimension of the aggregator (``feature_flag.result.variant``). A service
running several experiments at once also makes ``feature_flag.key`` a dimension and
compares within one flag (``flag=``), since two flags may share variant names such as
"on" and "off". Each arm is the merge of the keys carrying its variant (of that flag), so
every test works on sufficient statistics:
conversion by a two-proportion z-test on the outcome histograms; latency and order value
by Welch's t-test on their Welford moments; and the latency–conversion correlation by
Fisher's z.
"""

from __future__ import annotations

from typing import NamedTuple

from ..aggregate.snapshot import KeyStats, Snapshot
from ..attributes import FEATURE_FLAG_KEY, FEATURE_FLAG_VARIANT
from . import significance
from .significance import TestResult

_CONVERTED, _NOT_CONVERTED = 2, 1


class Comparison(NamedTuple):
    """Treatment against control; each difference is treatment minus control."""

    control: str
    treatment: str
    requests: tuple[int, int]
    conversion: TestResult
    latency: TestResult
    order_value: TestResult
    latency_conversion_correlation: TestResult


def _moment_test(control: KeyStats, treatment: KeyStats, kpi: str, latency: bool) -> TestResult:
    a, b = control.moments(kpi), treatment.moments(kpi)
    if latency:
        return significance.welch(a.mean_t, a.m2_t / max(a.n - 1, 1), a.n,
                                  b.mean_t, b.m2_t / max(b.n - 1, 1), b.n)
    return significance.welch(a.mean_v, a.m2_v / max(a.n - 1, 1), a.n,
                              b.mean_v, b.m2_v / max(b.n - 1, 1), b.n)


def compare(snapshot: Snapshot, control: str, treatment: str,
            dimension: str = FEATURE_FLAG_VARIANT, flag: str | None = None) -> Comparison:
    """Compare two variants, of the feature flag ``flag`` when given. Needs ``dimension``
    (and, with ``flag``, ``feature_flag.key``) among the configured dimensions and an
    outcome KPI; the order-value test needs the ``order_value`` KPI (else it is nan)."""
    config = snapshot.config
    outcome = config.outcome
    if outcome is None:
        raise ValueError("A/B comparison needs an outcome KPI (Config.outcome)")
    if flag is not None and FEATURE_FLAG_KEY not in config.dimensions:
        raise ValueError(f"comparing within flag {flag!r} needs {FEATURE_FLAG_KEY!r} among "
                         f"the dimensions; configured: {list(config.dimensions)}")
    within = {FEATURE_FLAG_KEY: flag} if flag is not None else {}
    arm_a = snapshot.total(where={**within, dimension: control})
    arm_b = snapshot.total(where={**within, dimension: treatment})
    ha, hb = arm_a.histogram, arm_b.histogram
    conversion = significance.two_proportions(
        float(ha[_CONVERTED].sum()), float(ha[_CONVERTED].sum() + ha[_NOT_CONVERTED].sum()),
        float(hb[_CONVERTED].sum()), float(hb[_CONVERTED].sum() + hb[_NOT_CONVERTED].sum()))
    latency = _moment_test(arm_a, arm_b, outcome, latency=True)
    order_value = (_moment_test(arm_a, arm_b, "order_value", latency=False)
                   if "order_value" in config.kpi_names else TestResult(*[float("nan")] * 3))
    ra, rb = arm_a.pearson(outcome), arm_b.pearson(outcome)
    correlation = significance.correlation_difference(ra.r, ra.n, rb.r, rb.n)
    return Comparison(control, treatment, (arm_a.count, arm_b.count), conversion, latency,
                      order_value, correlation)
