"""Which twin is in use, and that a built extension really loads."""

from __future__ import annotations

import os
import subprocess
import sys

import bizops_otel
from tests.conftest import extensions_required, load, native_built


def test_native_extension_loads_when_built_or_required() -> None:
    if native_built() or extensions_required():
        aggregator_cls = load("native")  # fails the test if the import breaks
        assert aggregator_cls.implementation == "native"
        assert bizops_otel.NATIVE is True
        assert bizops_otel.Aggregator is aggregator_cls
        from bizops_otel import _impl, _native, _native_hooks
        assert _native._is_compiled() is True
        assert _native_hooks._is_compiled() is True
        assert _impl.SpanHooks is _native_hooks.SpanHooks
    else:
        assert bizops_otel.NATIVE is False


def test_environment_variable_forces_the_pure_twin() -> None:
    code = ("import bizops_otel as b; from bizops_otel import _impl; "
            "print(b.NATIVE, b.Aggregator.implementation, _impl.SpanHooks.implementation)")
    env = {**os.environ, "BIZOPS_OTEL_NO_EXTENSIONS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["False", "pure", "pure"]
