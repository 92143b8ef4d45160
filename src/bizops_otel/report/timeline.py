"""Campaign states over time: the changes seen by successive health checks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ..analytics.health import CampaignHealth

#: Campaigns and changes per campaign kept: traffic names campaigns, so both are bounded.
MAX_CAMPAIGNS = 200
MAX_CHANGES = 500


class Timeline:
    """Each campaign's state changes, oldest first, as (Unix ns, state)."""

    def __init__(self) -> None:
        self._changes: dict[str, list[tuple[int, str]]] = {}

    def observe(self, health: Iterable[CampaignHealth], at_ns: int) -> None:
        """Record the states of one health check made at ``at_ns``; a campaign seen for
        the first time starts at its first-seen time."""
        for campaign in health:
            changes = self._changes.get(campaign.campaign)
            if changes is None:
                if len(self._changes) >= MAX_CAMPAIGNS:
                    continue
                changes = self._changes[campaign.campaign] = []
            if changes and changes[-1][1] == campaign.state:
                continue
            if len(changes) < MAX_CHANGES:
                start = campaign.first_seen_ns if not changes else at_ns
                changes.append((min(start, at_ns), campaign.state))

    @property
    def changes(self) -> Mapping[str, Sequence[tuple[int, str]]]:
        return {name: tuple(changes) for name, changes in self._changes.items()}
