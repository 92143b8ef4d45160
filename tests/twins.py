"""How a native and a pure snapshot of the same input are compared: counts exactly, floats
to a tight relative tolerance (the twins do the same arithmetic, but merge sub-windows in
their own order). Shared by the differential and the property tests."""

from __future__ import annotations

from typing import Any

import numpy as np

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
        np.testing.assert_allclose(sa.kpi_f, sb.kpi_f, rtol=1e-9, atol=1e-9)
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
