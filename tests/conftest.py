"""Every aggregator test runs against both twins: the native extension and the pure one."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import pytest

import bizops_otel
from bizops_otel import _pure

IMPLEMENTATIONS = ("native", "pure")


def native_built() -> bool:
    """Whether a compiled ``_native`` module sits in the installed package."""
    package = Path(bizops_otel.__file__).parent
    return any(package.glob("_native*.so")) or any(package.glob("_native*.pyd"))


def extensions_required() -> bool:
    return os.environ.get("BIZOPS_OTEL_REQUIRE_EXTENSIONS", "") in {"1", "true", "yes"}


def native_module(name: str) -> Any:
    """``bizops_otel.<name>``; the test fails if it was built or is required but does not
    load, and is skipped only when no native build exists."""
    try:
        return importlib.import_module(f"bizops_otel.{name}")
    except ImportError as error:
        if native_built() or extensions_required():
            pytest.fail(f"the native extension exists or is required but did not load: {error}")
        pytest.skip("native extension not built")


def load(name: str) -> Any:
    if name == "pure":
        return _pure.Aggregator
    return native_module("_native").Aggregator


def load_hooks(aggregator_cls: Any) -> Any:
    """The span hooks of the same implementation as ``aggregator_cls``."""
    if aggregator_cls.implementation == "pure":
        return importlib.import_module("bizops_otel._hooks").SpanHooks
    try:
        return importlib.import_module("bizops_otel._native_hooks").SpanHooks
    except ImportError as error:
        pytest.fail(f"the native aggregator loaded but its span hooks did not: {error}")


@pytest.fixture(params=IMPLEMENTATIONS)
def Aggregator(request: pytest.FixtureRequest) -> Any:
    return load(request.param)
