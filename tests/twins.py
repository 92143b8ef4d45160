"""How a native and a pure snapshot of the same input are compared: counts exactly, floats
to a tight relative tolerance (the twins do the same arithmetic, but merge sub-windows in
their own order). Shared by the differential and the property tests."""

from __future__ import annotations

from typing import Any

import numpy as np

#: Positions in a KPI's fields (``_layout.KPI_FIELDS``): means and raw sums, co-moments,
#: and the raw second moments each co-moment is the remainder of.
PLAIN_FIELDS = [0, 1, 5, 6, 7, 8, 9]
M2_T, M2_V, C_TV, SUM_T2, SUM_V2 = 2, 3, 4, 6, 8

#: State arrays that hold counts, compared exactly.
COUNT_ARRAYS = ("key_ids", "count", "errors", "kpi_n", "block_row", "block_code",
                "block_counts")


def assert_twins_agree(native: Any, pure: Any) -> None:
    """The two snapshots hold the same drops, keys (in creation order), overflow, state
    and sessions, for the cumulative state and for the recent window."""
    assert dict(native.dropped) == dict(pure.dropped)
    for left, right in ((native, pure), (native.recent(), pure.recent())):
        assert list(left) == list(right)  # same keys, created in the same order
        assert (left.overflow is None) == (right.overflow is None)
        sa, sb = left.state, right.state
        for name in COUNT_ARRAYS:
            np.testing.assert_array_equal(getattr(sa, name), getattr(sb, name), err_msg=name)
        np.testing.assert_allclose(sa.latency_sum, sb.latency_sum, rtol=1e-12)
        assert_kpi_fields_close(sa.kpi_f, sb.kpi_f)
    sessions_a, sessions_b = native.session_arrays, pure.session_arrays
    assert (sessions_a is None) == (sessions_b is None)
    if sessions_a is None:
        return
    assert sessions_a.groups == sessions_b.groups
    for name in ("table", "requests", "pages", "counters"):
        np.testing.assert_array_equal(getattr(sessions_a, name), getattr(sessions_b, name),
                                      err_msg=name)
    for name in ("latency_sum", "revenue"):
        np.testing.assert_allclose(getattr(sessions_a, name), getattr(sessions_b, name),
                                   rtol=1e-9, err_msg=name)
    assert_journeys_agree(sessions_a.journeys, sessions_b.journeys)
    assert_flows_agree(sessions_a.flow, sessions_b.flow)


def assert_journeys_agree(native: Any, pure: Any) -> None:
    """Journey counts (``JourneyArrays``) are all counts: equal exactly."""
    assert native.names == pure.names and native.steps == pure.steps
    for name in ("entered", "continued", "think", "latency"):
        np.testing.assert_array_equal(getattr(native, name), getattr(pure, name),
                                      err_msg=f"journeys.{name}")


def assert_flows_agree(a: Any, b: Any) -> None:
    """Session-flow counts equal exactly, think-time and duration sums to 1e-9."""
    assert (a is None) == (b is None)
    if a is None:
        return
    for name in ("transitions", "think_pairs", "think", "duration", "arrival_minutes",
                 "arrival_counts", "late_arrivals"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("think_sum", "latency_sum", "duration_sum"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9,
                                   err_msg=name)


def assert_kpi_fields_close(a: Any, b: Any) -> None:
    """Means and raw sums agree to a relative 1e-9. A co-moment (M2, C) is what remains of
    its raw second moment once the mean is taken out: when the values are large and close
    together, little remains, and merging sub-windows in another order (Chan's formula)
    rounds it differently. So a co-moment agrees to 1e-9 of its raw second moment."""
    np.testing.assert_allclose(a[..., PLAIN_FIELDS], b[..., PLAIN_FIELDS], rtol=1e-9,
                               atol=1e-9)
    scale_t, scale_v = np.abs(b[..., SUM_T2]), np.abs(b[..., SUM_V2])
    with np.errstate(invalid="ignore", over="ignore"):
        for field, scale in ((M2_T, scale_t), (M2_V, scale_v),
                             (C_TV, np.sqrt(scale_t * scale_v))):
            x, y = a[..., field], b[..., field]
            close = ((x == y) | (np.isnan(x) & np.isnan(y))
                     | (np.abs(x - y) <= 1e-9 * (np.abs(y) + scale) + 1e-9))
            assert close.all(), (field, x[~close], y[~close])
