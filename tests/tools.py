"""External programs the tests need (Debian's prometheus, valgrind and chromium packages
provide them; .ci/run and ``make test`` install them). Missing locally, their tests skip;
missing in CI, they fail."""

from __future__ import annotations

import os
import shutil

import pytest


def require(program: str, package: str = "prometheus") -> str:
    path = shutil.which(program)
    if path is None:
        message = f"{program} is not installed (Debian package: {package})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
