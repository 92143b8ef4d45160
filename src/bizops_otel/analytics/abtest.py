"""A/B comparison of feature-flag variants from a snapshot.

Variants are a dimension of the aggregator (``feature_flag.result.variant``). A service
running several experiments at once also makes ``feature_flag.key`` a dimension and
compares within one flag (``flag=``), since two flags may share variant names such as
"on" and "off". Every test works on sufficient statistics:

- conversion by a two-proportion z-test on the outcomes of each arm (the requests that
  carry the outcome KPI: one per session where the application records the outcome once,
  at the order confirmation, so the unit is the session, as it is randomised);
- latency and order value by Welch's t-test **within each page group**, the
  differences then combined with inverse-variance weights (:func:`combine`);
- the latency–conversion correlation by Fisher's z.

Pooling requests across page groups confounds: a variant that converts better draws
more of its visitors on to slow pages such as checkout, and its pooled latency rises with
no page any slower. Within a page group both arms serve the same page, so only the
variant can tell them apart.

Latency is judged on every request of the group: its mean is exact (the group's latency
sum over its count) and its variance comes from the latency histogram
(:func:`bizops_otel.stats.histogram_variances`, within about 1% in standard deviation).
Order value is judged on the requests that carry it, from their Welford moments (exact).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from .. import stats
from ..aggregate._layout import KPI_FIELDS, OUTCOME_CONVERTED, OUTCOME_NOT_CONVERTED, bucket_edges
from ..aggregate._state import StateArrays, group_rows, span_histograms
from ..aggregate.snapshot import KeyStats, Snapshot, overflow_key
from ..attributes import FEATURE_FLAG_KEY, FEATURE_FLAG_VARIANT, MISSING, PAGE_GROUP
from . import significance
from .significance import TestResult

F64 = npt.NDArray[np.float64]
_EDGES = bucket_edges()
_MEAN_V, _M2_V = KPI_FIELDS.index("mean_v"), KPI_FIELDS.index("m2_v")
_NAN = TestResult(math.nan, math.nan, math.nan, math.nan)
#: The stratum of a snapshot without page groups: every request of the arm.
ALL_PAGES = ""


class Stratum(NamedTuple):
    """One page group: each arm's requests there and the Welch tests within it
    (treatment minus control)."""

    page_group: str
    requests: tuple[int, int]
    latency: TestResult
    order_value: TestResult


class Comparison(NamedTuple):
    """Treatment against control; each difference is treatment minus control. ``latency``
    and ``order_value`` combine the within-group tests of ``strata``."""

    control: str
    treatment: str
    requests: tuple[int, int]
    conversion: TestResult
    latency: TestResult
    order_value: TestResult
    latency_conversion_correlation: TestResult
    strata: tuple[Stratum, ...] = ()


class Combined(NamedTuple):
    """Within-group differences combined by inverse-variance weights: the estimate, its
    variance and the Welch–Satterthwaite degrees of freedom (see :func:`combine`)."""

    difference: float
    variance: float
    degrees_of_freedom: float
    #: Page groups that entered the combination (both arms with two or more values and
    #: some spread).
    groups: int

    def test(self) -> TestResult:
        """The two-sided t-test of the combined difference."""
        if not self.variance > 0.0:
            return _NAN
        t = self.difference / math.sqrt(self.variance)
        return TestResult(self.difference, t,
                          significance.student_t_two_sided(t, self.degrees_of_freedom),
                          self.degrees_of_freedom)


class Moments(NamedTuple):
    """Per page group (``groups[i]``): count, mean and unbiased variance of one arm."""

    groups: tuple[str, ...]
    n: F64
    mean: F64
    variance: F64


def combine(control: Moments, treatment: Moments) -> Combined:
    """Combine the per-group Welch differences of two arms, matched by group name::

        d_g = x̄_bg − x̄_ag,   v_g = s²_ag/n_ag + s²_bg/n_bg,   w_g = 1/v_g
        d = Σ w_g d_g / Σ w_g,   Var d = 1 / Σ w_g
        ν = (Var d)² / Σ_g (w_g/Σw)⁴ ((s²_ag/n_ag)²/(n_ag − 1) + (s²_bg/n_bg)²/(n_bg − 1))

    the fixed-effect (inverse-variance) estimate of a meta-analysis, with Satterthwaite's
    degrees of freedom for a weighted sum of variances; with one group it is Welch's test
    exactly. Groups where an arm has fewer than two values, or neither has any spread,
    carry no weight.
    """
    shared = sorted(set(control.groups) & set(treatment.groups))
    at_a = {g: i for i, g in enumerate(control.groups)}
    at_b = {g: i for i, g in enumerate(treatment.groups)}
    ia = np.array([at_a[g] for g in shared], np.int64)
    ib = np.array([at_b[g] for g in shared], np.int64)
    na, nb = control.n[ia], treatment.n[ib]
    with np.errstate(invalid="ignore", divide="ignore"):
        ea, eb = control.variance[ia] / na, treatment.variance[ib] / nb
    v = ea + eb
    usable = (na >= 2) & (nb >= 2) & np.isfinite(v) & (v > 0.0)
    if not usable.any():
        return Combined(math.nan, math.nan, math.nan, 0)
    d = (treatment.mean[ib] - control.mean[ia])[usable]
    w = 1.0 / v[usable]
    share = w / w.sum()
    variance = 1.0 / float(w.sum())
    terms = share**4 * (ea[usable] ** 2 / (na[usable] - 1) + eb[usable] ** 2 / (nb[usable] - 1))
    df = variance * variance / float(terms.sum()) if terms.sum() > 0 else math.inf
    return Combined(float(share @ d), variance, df, int(usable.sum()))


def _groups(snapshot: Snapshot, where: Mapping[str, str], by: str
            ) -> tuple[list[str], StateArrays]:
    """One merged row per page group of the keys matching ``where``; without page groups
    (``by`` is then the compared dimension, one value in ``where``) a single row of all
    of them. ``KeyError`` naming an unknown dimension."""
    labels, state = snapshot.totals_by(by, where=where)
    return (labels if by == PAGE_GROUP else [ALL_PAGES] * state.rows), state


def latency_moments(labels: list[str], state: StateArrays) -> Moments:
    """Each row's latency count, exact mean and histogram variance."""
    counts, lo = span_histograms(state.block_row, state.block_code, state.block_counts,
                                 state.rows)
    n = state.count.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, state.latency_sum / n, np.nan)
    width = counts.shape[2]
    variance = (stats.histogram_variances(counts.sum(axis=1), _EDGES[lo:lo + width + 1], mean)
                if width else np.full(state.rows, np.nan))
    return Moments(tuple(labels), n, mean, variance)


def kpi_moments(labels: list[str], state: StateArrays, kpi: int) -> Moments:
    """Each row's count, mean and unbiased variance of KPI number ``kpi``."""
    n = state.kpi_n[:, kpi].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = np.where(n >= 2, state.kpi_f[:, kpi, _M2_V] / (n - 1.0), np.nan)
    return Moments(tuple(labels), n, np.where(n > 0, state.kpi_f[:, kpi, _MEAN_V], np.nan),
                   variance)


def _within(control: Moments, treatment: Moments, group: str) -> TestResult:
    if group not in control.groups or group not in treatment.groups:
        return _NAN
    i, j = control.groups.index(group), treatment.groups.index(group)
    return significance.welch(float(control.mean[i]), float(control.variance[i]),
                              float(control.n[i]), float(treatment.mean[j]),
                              float(treatment.variance[j]), float(treatment.n[j]))


def _where(snapshot: Snapshot, dimension: str, flag: str | None, variant: str
           ) -> dict[str, str]:
    config = snapshot.config
    if flag is not None and FEATURE_FLAG_KEY not in config.dimensions:
        raise ValueError(f"comparing within flag {flag!r} needs {FEATURE_FLAG_KEY!r} among "
                         f"the dimensions; configured: {list(config.dimensions)}")
    within = {FEATURE_FLAG_KEY: flag} if flag is not None else {}
    return {**within, dimension: variant}


class Arms(NamedTuple):
    """What every test of a comparison reads: each arm's total and its page groups."""

    total: tuple[KeyStats, KeyStats]
    latency: tuple[Moments, Moments]
    order_value: tuple[Moments, Moments] | None

    def outcomes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """(conversions, outcomes) of control and of treatment."""
        converted = tuple(int(a.histogram[OUTCOME_CONVERTED].sum()) for a in self.total)
        trials = tuple(int(a.histogram[OUTCOME_NOT_CONVERTED].sum()) + c
                       for a, c in zip(self.total, converted, strict=True))
        return (converted[0], converted[1]), (trials[0], trials[1])


def arms(snapshot: Snapshot, control: str, treatment: str,
         dimension: str = FEATURE_FLAG_VARIANT, flag: str | None = None) -> Arms:
    """The two arms of a comparison, totals and per page group."""
    config = snapshot.config
    where_a = _where(snapshot, dimension, flag, control)
    where_b = _where(snapshot, dimension, flag, treatment)
    stratify = PAGE_GROUP in config.dimensions and dimension != PAGE_GROUP
    by = PAGE_GROUP if stratify else dimension
    parts = [_groups(snapshot, where, by) for where in (where_a, where_b)]
    latency = (latency_moments(*parts[0]), latency_moments(*parts[1]))
    order_value = None
    if "order_value" in config.kpi_names:
        j = config.kpi_index("order_value")
        order_value = (kpi_moments(*parts[0], j), kpi_moments(*parts[1], j))
    return Arms((snapshot.total(where=where_a), snapshot.total(where=where_b)), latency,
                order_value)


def compare(snapshot: Snapshot, control: str, treatment: str,
            dimension: str = FEATURE_FLAG_VARIANT, flag: str | None = None) -> Comparison:
    """Compare two variants, of the feature flag ``flag`` when given. Needs ``dimension``
    (and, with ``flag``, ``feature_flag.key``) among the configured dimensions and an
    outcome KPI; the order-value test needs the ``order_value`` KPI (else it is nan).
    Latency and order value are compared within page groups when ``bizops.page.group``
    is a dimension (else over all requests of each arm)."""
    config = snapshot.config
    outcome = config.outcome
    if outcome is None:
        raise ValueError("A/B comparison needs an outcome KPI (Config.outcome)")
    both = arms(snapshot, control, treatment, dimension, flag)
    arm_a, arm_b = both.total
    (converted_a, converted_b), (trials_a, trials_b) = both.outcomes()
    conversion = significance.two_proportions(converted_a, trials_a, converted_b, trials_b)
    latency = combine(*both.latency).test()
    order_value = _NAN if both.order_value is None else combine(*both.order_value).test()
    ra, rb = arm_a.pearson(outcome), arm_b.pearson(outcome)
    correlation = significance.correlation_difference(ra.r, ra.n, rb.r, rb.n)
    return Comparison(control, treatment, (arm_a.count, arm_b.count), conversion, latency,
                      order_value, correlation, _strata(both))


class Pairing(NamedTuple):
    """A treatment variant and the control it is compared with, within ``flag``."""

    flag: str | None
    control: str
    treatment: str


def pairings(snapshot: Snapshot) -> list[Pairing]:
    """Each variant against its flag's control, the alphabetically first variant, per
    flag when ``feature_flag.key`` is a dimension (flags in name order; ``None`` without
    it). Empty without ``feature_flag.result.variant`` among the dimensions or without an
    outcome KPI. The exported A/B families and the report pair variants this way."""
    config = snapshot.config
    if FEATURE_FLAG_VARIANT not in config.dimensions or config.outcome is None:
        return []
    at = config.dimensions.index(FEATURE_FLAG_VARIANT)
    flag_at = (config.dimensions.index(FEATURE_FLAG_KEY)
               if FEATURE_FLAG_KEY in config.dimensions else None)
    variants_of: dict[str | None, set[str]] = {}
    for key in snapshot:
        if key[at]:
            variants_of.setdefault(key[flag_at] if flag_at is not None else None,
                                   set()).add(key[at])
    found: list[Pairing] = []
    for flag, names in sorted(variants_of.items(), key=lambda item: item[0] or ""):
        control, *treatments = sorted(names)
        found.extend(Pairing(flag, control, treatment) for treatment in treatments)
    return found


def _strata(both: Arms) -> tuple[Stratum, ...]:
    lat_a, lat_b = both.latency
    requests = [dict(zip(m.groups, m.n.astype(np.int64).tolist(), strict=True))
                for m in both.latency]
    result = []
    for group in sorted(set(lat_a.groups) | set(lat_b.groups)):
        orders = (_NAN if both.order_value is None
                  else _within(*both.order_value, group))
        result.append(Stratum(group, (requests[0].get(group, 0), requests[1].get(group, 0)),
                              _within(lat_a, lat_b, group), orders))
    return tuple(result)


class Arm(NamedTuple):
    """One variant of one flag, as a sequential guardrail reads it: its outcomes and its
    latency per page group (:func:`latency_moments`)."""

    flag: str | None
    variant: str
    conversions: int
    outcomes: int
    requests: int
    latency: Moments


def every_arm(snapshot: Snapshot) -> list[Arm]:
    """Every variant of every flag (``None`` without ``feature_flag.key`` among the
    dimensions), merged by page group in one vectorised pass: O(keys), however many
    variants there are. Keys without a variant and the overflow key belong to none.
    Needs ``feature_flag.result.variant`` among the dimensions."""
    dimensions = snapshot.config.dimensions
    at = dimensions.index(FEATURE_FLAG_VARIANT)
    flag_at = dimensions.index(FEATURE_FLAG_KEY) if FEATURE_FLAG_KEY in dimensions else None
    page_at = dimensions.index(PAGE_GROUP) if PAGE_GROUP in dimensions else None
    overflow = overflow_key(len(dimensions))
    index: dict[tuple[str | None, str, str], int] = {}
    ids = np.array([
        -1 if key == overflow or key[at] == MISSING else index.setdefault(
            (None if flag_at is None else key[flag_at], key[at],
             ALL_PAGES if page_at is None else key[page_at]), len(index))
        for key in snapshot.key_table], np.int64)
    state = snapshot.state
    groups = ids[state.key_ids] if state.rows else np.zeros(0, np.int64)
    rows = np.flatnonzero(groups >= 0)
    if not rows.size:
        return []
    merged = group_rows(state, rows, groups[rows], len(snapshot.config.kpis))
    cells = list(index)
    labels = [cells[i] for i in merged.key_ids.tolist()]
    latency = latency_moments([page for _, _, page in labels], merged)
    counts, _ = span_histograms(merged.block_row, merged.block_code, merged.block_counts,
                                merged.rows)
    converted = counts[:, OUTCOME_CONVERTED].sum(axis=1)
    outcomes = converted + counts[:, OUTCOME_NOT_CONVERTED].sum(axis=1)
    by_arm: dict[tuple[str | None, str], list[int]] = {}
    for row, (flag, variant, _) in enumerate(labels):
        by_arm.setdefault((flag, variant), []).append(row)
    arms = []
    for (flag, variant), chosen in sorted(by_arm.items(), key=lambda item: (
            item[0][0] or "", item[0][1])):
        pick = np.array(chosen, np.int64)
        arms.append(Arm(flag, variant, int(converted[pick].sum()), int(outcomes[pick].sum()),
                        int(latency.n[pick].sum()),
                        Moments(tuple(latency.groups[i] for i in chosen), latency.n[pick],
                                latency.mean[pick], latency.variance[pick])))
    return arms
