"""Analytics: from a snapshot to answers. Which pages cost conversions when slow (session
impact scores and conversion curves), what latency changes would earn (what-if), whether a
variant changed conversion or latency (A/B), whether one hurts enough to act on (guardrails),
whether a campaign is healthy, and what a load test should look like (test plans).

Everything here reads snapshots and never touches live state, so the same answers come
from a running service, a saved state file or a merged fleet of processes.
"""

from __future__ import annotations

from .abtest import Comparison
from .abtest import compare as compare_variants
from .guardrails import GuardrailSettings, VariantAlert
from .health import CampaignHealth
from .sessions import Projection, SessionStats, session_stats, whatif_projection
from .testplan import TestPlan

__all__ = [
    "CampaignHealth",
    "Comparison",
    "GuardrailSettings",
    "Projection",
    "SessionStats",
    "TestPlan",
    "VariantAlert",
    "compare_variants",
    "session_stats",
    "whatif_projection",
]
