"""Each test environment holds the releases it claims. The main one resolves the newest
OpenTelemetry releases, as a new user's does; `make test-oldest`'s (``pytest --oldest``)
holds the oldest releases pyproject.toml declares, pinned in constraints/oldest.txt, and
those pins are pyproject's floors."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).parent.parent
OLDEST = ROOT / "constraints" / "oldest.txt"


def _version(package: str) -> tuple[int, ...]:
    return tuple(int(part) for part in metadata.version(package).split(".")[:3])


def _pins() -> dict[str, Version]:
    pins = {}
    for line in OLDEST.read_text().splitlines():
        line = line.partition("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def _floors() -> dict[str, Version]:
    """The lower bound of every requirement of pyproject.toml: the build's and the
    package's own (the extras are test and development tools, free to be the newest)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    floors = {}
    for text in [*pyproject["build-system"]["requires"], *pyproject["project"]["dependencies"]]:
        requirement = Requirement(text)
        lower = [s.version for s in requirement.specifier if s.operator == ">="]
        assert len(lower) == 1, f"{text}: a requirement needs one floor to be tested at"
        floors[canonicalize_name(requirement.name)] = Version(lower[0])
    return floors


def test_the_oldest_pins_are_the_declared_floors() -> None:
    """A floor raised or lowered in pyproject.toml moves make test-oldest with it."""
    pins, floors = _pins(), _floors()
    assert {"opentelemetry-sdk", "numpy", "setuptools", "cython"} <= floors.keys()
    assert {name: pins.get(name) for name in floors} == floors


def test_the_environment_holds_the_releases_it_claims(request: pytest.FixtureRequest) -> None:
    if request.config.getoption("oldest"):
        _holds_the_oldest()
    else:
        _holds_the_newest()


def _holds_the_oldest() -> None:
    """Every pin of constraints/oldest.txt is what is installed: the floors, and the
    instrumentations released with the oldest SDK."""
    installed = {name: Version(metadata.version(name)) for name in _pins()}
    assert installed == _pins()
    assert _version("opentelemetry-api") == _version("opentelemetry-sdk") == (1, 25, 0)


def _holds_the_newest() -> None:
    """opentelemetry-sdk 1.45.2 is the first release that enforces the specification's
    cardinality limit (2,000 points per stream by default), which the OTLP path must meet;
    a package pinning the API behind it (opentelemetry-instrumentation-flask does) would
    hold the suite on an SDK no new user gets."""
    assert _version("opentelemetry-sdk") >= (1, 45, 2)
    assert _version("opentelemetry-api") == _version("opentelemetry-sdk")
    assert _version("opentelemetry-exporter-otlp-proto-common") == _version("opentelemetry-sdk")
