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
# The oldest releases pyproject.toml declares (constraints/oldest.txt, held to its floors by
# tests/test_environment.py) get a third environment, where the package is built with the
# oldest setuptools and Cython declared and the tests of the code that meets OpenTelemetry,
# numpy and prometheus_client run: the span path, the exporters, the zero-code examples.
OLDEST_VENV ?= .venv-oldest
OLDEST_BIN := $(OLDEST_VENV)/bin
OLDEST_TESTS := tests/test_environment.py tests/test_implementation.py \
	tests/test_span_hooks.py tests/test_processor.py tests/test_session_middleware.py \
	tests/test_hostile_keys.py tests/test_aggregator.py tests/test_differential.py \
	tests/test_statistics.py tests/test_significance.py tests/test_whatif.py \
	tests/test_persist.py tests/test_analytics_export.py tests/test_exposition_lines.py \
	tests/test_digest.py tests/test_metric_names.py tests/test_prometheus_export.py \
	tests/test_prometheus_server.py tests/test_otlp_encode.py tests/test_otlp_export.py \
	tests/test_otlp_push.py tests/test_examples.py tests/test_gunicorn.py

.PHONY: demo test test-long test-flask test-oldest lint bench clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# DEMO_ARGS passes options through, e.g. make demo DEMO_ARGS="--duration 0 --rate 8".
demo: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[demo]"
	$(BIN)/bizops-otel demo $(DEMO_ARGS)

# Debian's prometheus package gives the tests a real Prometheus server and promtool;
# valgrind counts the span path's instructions for its budget test; chromium opens the HTML
# report headless, as a reader would.
system-deps:
	@{ command -v promtool && command -v valgrind && command -v chromium; } >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		prometheus valgrind chromium >/dev/null; }

# The whole suite runs twice: on the native twins, then on the pure ones alone (as msgpack
# does), so the pure export and span paths are exercised end to end, not just compared.
test: $(BIN)/python system-deps
	$(BIN)/python -m pip install --quiet ".[dev]"
	$(BIN)/python -m pytest
	BIZOPS_OTEL_NO_EXTENSIONS=1 $(BIN)/python -m pytest -q
	$(MAKE) test-flask
	$(MAKE) test-oldest
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

# Without build isolation, so the extension is built by the pinned setuptools and Cython.
test-oldest: system-deps
	test -x $(OLDEST_BIN)/python || $(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_BIN)/python -m pip install --quiet --upgrade pip
	$(OLDEST_BIN)/python -m pip install --quiet -c constraints/oldest.txt setuptools Cython
	$(OLDEST_BIN)/python -m pip install --quiet --no-build-isolation -c constraints/oldest.txt \
		".[test]"
	$(OLDEST_BIN)/python -m pytest -q --oldest $(OLDEST_TESTS)

lint: $(BIN)/python
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/mypy
	# The source tree, not the installed copy, is what the layering contracts judge.
	PYTHONPATH=src $(BIN)/lint-imports

bench: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[dev]"
	OPENBLAS_NUM_THREADS=1 $(BIN)/python benchmarks/bench_aggregator.py

clean:
	rm -rf $(VENV) $(FLASK_VENV) $(OLDEST_VENV) build dist src/*.egg-info src/bizops_otel/*/_*_c.*.so ext/*/*.c
