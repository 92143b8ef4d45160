# Two commands matter: `make demo` runs the main job, `make test` passes the whole suite.
# Each creates its own virtualenv in .venv and installs the package from this checkout
# (building the native extension) before it runs.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# opentelemetry-instrumentation-flask pins the API behind the newest SDK: its tests get
# an environment of their own, so the main one resolves the newest releases.
FLASK_VENV ?= .venv-flask
FLASK_BIN := $(FLASK_VENV)/bin

.PHONY: demo test test-long test-flask lint bench clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# DEMO_ARGS passes options through, e.g. make demo DEMO_ARGS="--duration 0 --rate 8".
demo: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[demo]"
	$(BIN)/bizops-otel demo $(DEMO_ARGS)

# Debian's prometheus package gives the tests a real Prometheus server and promtool;
# valgrind counts the span path's instructions for its budget test.
system-deps:
	@{ command -v promtool && command -v valgrind; } >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus valgrind >/dev/null; }

# The whole suite runs twice: on the native twins, then on the pure ones alone (as msgpack
# does), so the pure export and span paths are exercised end to end, not just compared.
test: $(BIN)/python system-deps
	$(BIN)/python -m pip install --quiet ".[dev]"
	$(BIN)/python -m pytest
	BIZOPS_OTEL_NO_EXTENSIONS=1 $(BIN)/python -m pytest -q
	$(MAKE) test-flask
	$(MAKE) lint

# For releases: the property tests under Hypothesis's long profile (tests/hypothesis_profiles.py),
# 5,000 examples a test and a fresh random draw each run. They pick each twin explicitly, so
# one run covers native and pure.
test-long: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[dev]"
	$(BIN)/python -m pytest -q --hypothesis-profile=long tests/test_properties.py

test-flask:
	test -x $(FLASK_BIN)/python || $(PYTHON) -m venv $(FLASK_VENV)
	$(FLASK_BIN)/python -m pip install --quiet --upgrade pip
	$(FLASK_BIN)/python -m pip install --quiet ".[test-flask]"
	$(FLASK_BIN)/python -m pytest -q tests/flask

lint: $(BIN)/python
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/mypy
	# The source tree, not the installed copy, is what the layering contracts judge.
	PYTHONPATH=src $(BIN)/lint-imports

bench: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[dev]"
	OPENBLAS_NUM_THREADS=1 $(BIN)/python benchmarks/bench_aggregator.py

clean:
	rm -rf $(VENV) $(FLASK_VENV) build dist src/*.egg-info src/bizops_otel/*/_*_c.*.so ext/*/*.c
