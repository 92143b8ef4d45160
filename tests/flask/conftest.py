"""Tests of opentelemetry-instrumentation-flask, in an environment of their own.

Its newest release pins the semantic conventions, and so the OpenTelemetry API, behind the
newest SDK; the main test environment must resolve the newest SDK, so it cannot carry it.
``make test-flask`` builds the environment from the ``test-flask`` extra and runs this
folder there; the main run leaves the folder out (see ``tests/conftest.py``).
"""
