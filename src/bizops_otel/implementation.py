"""Which twin each kernel runs: the native build or its pure-Python reference.

Each twin pair picks on its own (its switch module sits beside it), so one kernel that
fails to load does not send the others back to Python. ``NATIVE`` is true only when all
of them are native, which is what CI requires.
"""

from __future__ import annotations

from .aggregate import aggregator
from .export import digest, lines
from .export.otlp import points
from .span import hooks


def kernels() -> dict[str, str]:
    """``{"aggregator": "native" | "pure", ...}`` for every twin pair."""
    switches = {"aggregator": aggregator.NATIVE, "span_hooks": hooks.NATIVE,
                "exposition_lines": lines.NATIVE, "histogram_digest": digest.NATIVE,
                "otlp_points": points.NATIVE}
    return {name: "native" if native else "pure" for name, native in switches.items()}


NATIVE = all(kind == "native" for kind in kernels().values())

__all__ = ["NATIVE", "kernels"]
