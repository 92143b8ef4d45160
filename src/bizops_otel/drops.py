"""Process-wide counters of what the span path and the context helpers refused.

The aggregator counts what it drops itself; this counts what never reached it: a rule
that raised, a record_order() in the wrong currency, a helper called outside a request.
Each reason is also logged once, so a misconfiguration shows up without flooding logs.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter

_logger = logging.getLogger("bizops_otel")
_counts: Counter[str] = Counter()
_logged: set[str] = set()
_lock = threading.Lock()

# Reasons counted here (besides the aggregator's own, see attributes.DROP_REASONS).
PROCESSOR_ERROR = "processor_error"
RULE_ERROR = "rule_error"
CURRENCY_MISMATCH = "currency_mismatch"
NO_RECORDING_SPAN = "no_recording_span"
UNKNOWN_CONTEXT_NAME = "unknown_context_name"
REQUEST_REGISTRY_FULL = "request_registry_full"


def count(reason: str, detail: str = "") -> None:
    """Count one drop; log the first of each reason. Never raises."""
    try:
        with _lock:
            _counts[reason] += 1
            first = reason not in _logged
            _logged.add(reason)
        if first:
            _logger.warning("bizops-otel dropped a value (%s)%s; further drops of this kind "
                            "are only counted", reason, f": {detail}" if detail else "")
    except Exception:
        pass  # counting must never become the failure


def counts() -> dict[str, int]:
    with _lock:
        return dict(_counts)


def reset() -> None:
    """Forget all counts (tests, forked children)."""
    with _lock:
        _counts.clear()
        _logged.clear()


def _after_fork_in_child() -> None:
    # A forked worker starts counting afresh, like its aggregator: the parent's drops are
    # the parent's, and merged across workers they would be counted twice.
    global _lock
    _lock = threading.Lock()  # the parent's may have been held by another thread
    _counts.clear()
    _logged.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
