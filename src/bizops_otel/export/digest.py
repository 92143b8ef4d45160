"""Per-row histogram digests for the exporters: the native twin
(``ext/export/_digest_c.pyx``) when it is built, else the numpy one (``_digest_py``), which
type checkers always see."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._flags import no_extensions
from ._digest_py import Digest

if TYPE_CHECKING:
    from ._digest_py import digest

    NATIVE = False
else:
    try:
        if no_extensions():
            raise ImportError("BIZOPS_OTEL_NO_EXTENSIONS is set")
        from ._digest_c import digest
    except ImportError:
        from ._digest_py import digest

        NATIVE = False
    else:
        NATIVE = True

__all__ = ["NATIVE", "Digest", "digest"]
