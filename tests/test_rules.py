"""The recording and alerting rules pass promtool's checks and unit tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.tools import require

#: The subject (promtool judges the rule files) does not depend on the twin:
#: the native pass runs it, the pure-only pass leaves it out.
pytestmark = pytest.mark.native_pass_only

RULES = Path(__file__).parent.parent / "deploy" / "prometheus"


def test_promtool_check_rules() -> None:
    result = subprocess.run([require("promtool"), "check", "rules", "bizops-rules.yml"],
                            cwd=RULES, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("tests", ["bizops-rules.test.yml", "bizops-objectives.test.yml"])
def test_promtool_unit_tests(tests: str) -> None:
    """The fleet analytics, and the operation objectives: compliance, burn rates, the
    remaining budget, and the burn-rate alerts firing and not firing when they should."""
    result = subprocess.run([require("promtool"), "test", "rules", tests],
                            cwd=RULES, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
