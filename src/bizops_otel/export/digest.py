"""Per-row histogram digests for the exporters: the native twin
(``ext/export/_digest_c.pyx``) when it is built, else the numpy one (``_digest_py``), which
type checkers always see."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._twins import load_twin
from . import _digest_py
from ._digest_py import Digest

if TYPE_CHECKING:
    from ._digest_py import digest

    NATIVE = False
else:
    _twin, NATIVE = load_twin(__package__, "_digest_c", _digest_py)
    digest = _twin.digest

__all__ = ["NATIVE", "Digest", "digest"]
