"""The HTML report: what the analytics say about a snapshot, as one self-contained page.

``content`` chooses what to show from the analytics functions, ``svg`` draws the charts,
``page`` lays them out, and ``replay`` turns recorded spans (OTLP/JSON lines, CSV) into a
snapshot to report on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from ..aggregate.snapshot import Snapshot
from ..analytics.health import CampaignHealth, assess
from . import content, page

__all__ = ["html_report"]


def html_report(snapshot: Snapshot, health: Sequence[CampaignHealth] | None = None,
                title: str = "bizops-otel report", period_s: float = math.nan,
                timeline: Mapping[str, Sequence[content.StateChange]] | None = None) -> str:
    """The report of ``snapshot`` as one HTML page. ``health`` is the campaign health to
    show (None: judged afresh from the snapshot); ``period_s`` the seconds of traffic the
    snapshot covers, for revenue per day; ``timeline`` each campaign's state changes."""
    if health is None:
        health = assess(snapshot, {})
    return page.render(content.build(snapshot, health, title, period_s, timeline))
