"""Boolean environment flags, read one way everywhere (``setup.py`` keeps the same rule).

``BIZOPS_OTEL_NO_EXTENSIONS`` makes every switch module pick its pure-Python twin;
``BIZOPS_OTEL_REQUIRE_EXTENSIONS`` makes a missing native build an error (CI sets it).
"""

from __future__ import annotations

import os

TRUE_VALUES = frozenset({"1", "true", "yes", "on"})


def flag(name: str) -> bool:
    """Whether the environment variable ``name`` is set to a true value."""
    return os.environ.get(name, "").strip().lower() in TRUE_VALUES


def no_extensions() -> bool:
    """Whether the switch modules must pick the pure twins (read at import)."""
    return flag("BIZOPS_OTEL_NO_EXTENSIONS")


def extensions_required() -> bool:
    """Whether a native twin that does not build or load is an error."""
    return flag("BIZOPS_OTEL_REQUIRE_EXTENSIONS")
