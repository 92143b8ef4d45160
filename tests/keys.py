"""Key life-cycle settings for tests of other behaviours.

By default a value gets a key of its own at its second sighting and loses it after ten idle
minutes (tests/test_key_lifecycle.py pins both). Tests of statistics, spans and exports
count every span under its own key, on clocks of their own that may be years in the past,
so they admit every key on first sight and never expire one.
"""

from __future__ import annotations

from typing import Any, Final

EVERY_KEY: Final[dict[str, Any]] = {"admission_count": 1, "key_ttl": 0}
