"""Alerts to the application, one way for every kind: a campaign that changed health
state, a feature-flag variant worse than its control, an operation's objective burning
its error budget too fast (or no longer).

The monitors publish here from their own threads, never from the request path, and the
application subscribes to one kind (``on_campaign_alert``, ``on_variant_alert`` on the
handle) or to all (``on_alert``), to act: switch a flag off, roll back. A callback that
raises is counted (:attr:`AlertBus.errors`, by kind) and logged, never raised into the
monitor or the host, and the other callbacks still run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from .analytics.burn import ObjectiveAlert
from .analytics.guardrails import VariantAlert
from .analytics.health import CampaignHealth

_logger = logging.getLogger("bizops_otel")

Alert = CampaignHealth | VariantAlert | ObjectiveAlert
AlertCallback = Callable[[Any], Any]
CAMPAIGN, VARIANT, OBJECTIVE = "campaign", "variant", "objective"
KINDS = (CAMPAIGN, VARIANT, OBJECTIVE)


def kind_of(alert: Alert) -> str:
    """The kind of an alert: "campaign", "variant" or "objective"."""
    if isinstance(alert, CampaignHealth):
        return CAMPAIGN
    return OBJECTIVE if isinstance(alert, ObjectiveAlert) else VARIANT


class AlertBus:
    """Callbacks by kind, and the count of those that raised."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[tuple[frozenset[str], AlertCallback]] = []
        self._errors = dict.fromkeys(KINDS, 0)

    def on_alert(self, callback: AlertCallback,
                 kinds: Iterable[str] | None = None) -> AlertCallback:
        """Call ``callback(alert)`` for every alert of ``kinds`` (None: every kind);
        usable as a decorator. ``ValueError`` naming an unknown kind."""
        chosen = frozenset(KINDS if kinds is None else
                           ([kinds] if isinstance(kinds, str) else kinds))
        unknown = sorted(chosen - set(KINDS))
        if unknown or not chosen:
            raise ValueError(f"bizops-otel: alert kinds must be among {list(KINDS)}, "
                             f"got {sorted(chosen)}")
        with self._lock:
            self._subscribers.append((chosen, callback))
        return callback

    def publish(self, alert: Alert) -> None:
        """Hand ``alert`` to its subscribers; never raises."""
        kind = kind_of(alert)
        with self._lock:
            subscribers = [cb for kinds, cb in self._subscribers if kind in kinds]
        for callback in subscribers:
            try:
                callback(alert)
            except Exception:
                with self._lock:
                    self._errors[kind] += 1
                _logger.exception("bizops-otel: a %s alert callback raised", kind)

    @property
    def errors(self) -> Mapping[str, int]:
        """Callbacks that raised, by alert kind."""
        with self._lock:
            return MappingProxyType(dict(self._errors))
