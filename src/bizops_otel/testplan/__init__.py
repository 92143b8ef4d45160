"""Load tests from real traffic: ``bizops-otel testplan SOURCE -o locustfile.py``.

:class:`~bizops_otel.analytics.TestPlan` says what a load test should reproduce; this
package writes it out as a self-contained Locust file (:func:`render_locustfile`), with the
page paths a plan's page groups are requested at (:func:`parse_paths`).
"""

from __future__ import annotations

from .locustfile import render_locustfile
from .paths import Route, parse_paths

__all__ = ["Route", "parse_paths", "render_locustfile"]
