"""How each native twin is chosen over its pure-Python reference, and the two flags that
steer it. ``setup.py`` reads the flags by the same rule (it cannot import the package).

``BIZOPS_OTEL_NO_EXTENSIONS`` makes every switch pick its pure twin;
``BIZOPS_OTEL_REQUIRE_EXTENSIONS`` makes a missing native build an error (CI sets it).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

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


def load_twin(package: str, native: str, pure: ModuleType) -> tuple[ModuleType, bool]:
    """The native module ``package.native`` when it loads and is allowed, else ``pure``;
    and whether the native one was taken. Each pair decides alone (yarl's pattern), so
    one kernel that fails to load does not send the others back to Python."""
    if no_extensions():
        return pure, False
    try:
        return importlib.import_module(f"{package}.{native}"), True
    except ImportError:
        return pure, False
