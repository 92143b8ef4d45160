"""Reset aggregators in a forked child, so pre-fork workers never inherit the parent's
counts (they would be exported twice, once by the parent and once by each worker)."""

from __future__ import annotations

import os
import weakref
from typing import Protocol


class _Resettable(Protocol):
    def _after_fork_in_child(self) -> None: ...


_live: weakref.WeakSet[_Resettable] = weakref.WeakSet()
_registered = False


def _reset_all() -> None:
    for aggregator in list(_live):
        aggregator._after_fork_in_child()


def track(aggregator: _Resettable) -> None:
    """Remember ``aggregator`` so that a forked child starts it empty."""
    global _registered
    if not _registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_reset_all)
        _registered = True
    _live.add(aggregator)
