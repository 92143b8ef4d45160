"""The runnable examples in docstrings stay true, for both twins."""

from __future__ import annotations

import doctest
from typing import Any

import pytest

from bizops_otel import config, stats


@pytest.mark.parametrize("module", [config, stats])
def test_module_examples(module: Any) -> None:
    result = doctest.testmod(module)
    assert result.failed == 0


def test_aggregator_example(Aggregator: Any) -> None:
    finder = doctest.DocTestFinder()
    tests = finder.find(Aggregator, "Aggregator", globs={"Aggregator": Aggregator})
    examples = sum(len(t.examples) for t in tests)
    assert examples >= 4
    runner = doctest.DocTestRunner()
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
