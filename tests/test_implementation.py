"""Which twin is in use, and that a built extension really loads."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import bizops_otel
from bizops_otel import implementation
from bizops_otel._twins import no_extensions
from tests.conftest import NATIVE_MODULES, extensions_required, native_built, native_module


@pytest.mark.parametrize("name", NATIVE_MODULES)
def test_each_native_twin_loads_when_built_or_required(name: str) -> None:
    if not (native_built() or extensions_required()):
        pytest.skip("no native build")
    module = native_module(name)  # fails the test if the import breaks
    assert module._is_compiled() is True


def test_switches_pick_the_native_twins_when_built() -> None:
    if no_extensions():  # the suite's pure pass: every switch must honour the flag
        assert set(implementation.kernels().values()) == {"pure"}
        assert bizops_otel.NATIVE is False
    elif native_built() or extensions_required():
        from bizops_otel.aggregate import _aggregator_c
        from bizops_otel.export import _digest_c, _lines_c, digest, lines
        from bizops_otel.export.otlp import _points_c, points
        from bizops_otel.span import _hooks_c, hooks
        assert implementation.kernels() == {
            "aggregator": "native", "span_hooks": "native", "exposition_lines": "native",
            "histogram_digest": "native", "otlp_points": "native"}
        assert bizops_otel.NATIVE is True
        assert bizops_otel.Aggregator is _aggregator_c.Aggregator
        assert bizops_otel.Aggregator.implementation == "native"
        assert hooks.SpanHooks is _hooks_c.SpanHooks
        assert lines.Writer is _lines_c.Writer
        assert digest.digest is _digest_c.digest
        assert points.number_points is _points_c.number_points
    else:
        assert bizops_otel.NATIVE is False


def test_environment_variable_forces_every_pure_twin() -> None:
    code = ("import bizops_otel as b; from bizops_otel import implementation as i; "
            "from bizops_otel.span.hooks import SpanHooks; "
            "print(b.NATIVE, b.Aggregator.implementation, SpanHooks.implementation, "
            "*sorted(set(i.kernels().values())))")
    env = {**os.environ, "BIZOPS_OTEL_NO_EXTENSIONS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["False", "pure", "pure", "pure"]
