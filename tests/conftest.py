"""Every aggregator test runs against both twins: the native extension and the pure one."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

import pytest

import bizops_otel
from bizops_otel._twins import extensions_required, no_extensions
from bizops_otel.aggregate import _aggregator_py

IMPLEMENTATIONS = ("native", "pure")


def _flask_instrumentation() -> bool:
    try:
        importlib.import_module("opentelemetry.instrumentation.flask")
    except ImportError:
        return False
    return True


# tests/flask needs opentelemetry-instrumentation-flask, which the main environment cannot
# carry (it pins the API behind the newest SDK); `make test` runs the folder in its own
# environment, so the main run leaves it out instead of failing or skipping test by test.
collect_ignore = [] if _flask_instrumentation() else ["flask"]

# The property tests' Hypothesis profiles must be registered before the Hypothesis plugin
# reads --hypothesis-profile, which happens after this file is imported. tests/flask runs
# in an environment of its own, without Hypothesis.
if importlib.util.find_spec("hypothesis") is not None:
    importlib.import_module("tests.hypothesis_profiles")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--oldest", action="store_true",
                     help="the environment holds the oldest releases pyproject.toml declares "
                          "(constraints/oldest.txt, make test-oldest), not the newest")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In the pure-only pass (``BIZOPS_OTEL_NO_EXTENSIONS=1``), leave out the tests that
    name the native twin through the ``Aggregator`` fixture, and those marked
    ``native_pass_only``: they ran in the native pass, and this pass is for the pure twins,
    which it runs in full. In the native pass, leave out the pure parametrisation of the
    tests marked ``pure_pass_covers``: the pure-only pass runs it."""
    if not no_extensions():
        # The native pass leaves the pure parametrisation of tests marked
        # ``pure_pass_covers`` (slow statistical runs) to the pure-only pass, which runs it
        # with every twin pure: running it here as well would only repeat it.
        repeated = [item for item in items
                    if item.get_closest_marker("pure_pass_covers") is not None
                    and getattr(item, "callspec", None) is not None
                    and item.callspec.params.get("Aggregator") == "pure"]
        if repeated:
            config.hook.pytest_deselected(items=repeated)
            items[:] = [item for item in items if item not in repeated]
        return
    kept, native = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        pinned = ((callspec is not None and callspec.params.get("Aggregator") == "native")
                  or item.get_closest_marker("native_pass_only") is not None)
        (native if pinned else kept).append(item)
    if native:
        config.hook.pytest_deselected(items=native)
        items[:] = kept


def pytest_report_header(config: pytest.Config) -> list[str]:
    return ["tests/flask: " + ("collected" if not collect_ignore
                               else "left out; run by `make test-flask` in its own venv"),
            "releases: " + ("the oldest declared (constraints/oldest.txt)"
                            if config.getoption("oldest") else "the newest")]


#: Every native twin, by module path under ``bizops_otel`` (built from ``ext/<stage>/``).
NATIVE_MODULES = ("aggregate._aggregator_c", "span._hooks_c", "export._lines_c",
                  "export._digest_c", "export.otlp._points_c")


def native_built() -> bool:
    """Whether any compiled native twin sits in the installed package."""
    package = Path(bizops_otel.__file__).parent
    return any(package.glob("*/_*_c.*.so")) or any(package.glob("*/_*_c.*.pyd"))


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
        return _aggregator_py.Aggregator
    return native_module("aggregate._aggregator_c").Aggregator


def load_hooks(aggregator_cls: Any) -> Any:
    """The span hooks of the same implementation as ``aggregator_cls``."""
    if aggregator_cls.implementation == "pure":
        return importlib.import_module("bizops_otel.span._hooks_py").SpanHooks
    try:
        return importlib.import_module("bizops_otel.span._hooks_c").SpanHooks
    except ImportError as error:
        pytest.fail(f"the native aggregator loaded but its span hooks did not: {error}")


@pytest.fixture(params=IMPLEMENTATIONS)
def Aggregator(request: pytest.FixtureRequest) -> Any:
    return load(request.param)
