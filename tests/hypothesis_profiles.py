"""Hypothesis profiles of the property tests (``tests/test_properties.py``).

``default`` runs on every ``pytest``, CI included. It is derandomized: each test draws its
examples from a seed derived from the test itself, so every run of a commit tries the same
inputs. A red CI run then reproduces on any machine from the commit alone, and a change to
unrelated code can never turn the suite red through a new random draw. The price is that
the default run never explores beyond those inputs; that is the ``long`` profile's job.
Examples are bounded so that the whole property suite stays within about a minute on two
cores, and there is no deadline, because a shared machine's timings mean nothing.

``long`` is for releases (``make test-long``, or ``pytest --hypothesis-profile=long``):
5,000 examples a test, a fresh random draw each run, and failing examples kept in
``.hypothesis/`` so that the next run replays them first. A failure prints the blob for
``@reproduce_failure``; add the shrunk example to the test as an explicit ``@example``.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

DEFAULT_EXAMPLES = 200
LONG_EXAMPLES = 5000

# Hostile inputs are large on purpose (strings of up to a million characters), and the
# strategies that build them are recursive: neither is a problem to be warned about.
_QUIET = (HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example)

settings.register_profile("default", max_examples=DEFAULT_EXAMPLES, deadline=None,
                          derandomize=True, database=None, print_blob=True,
                          suppress_health_check=_QUIET)
settings.register_profile("long", max_examples=LONG_EXAMPLES, deadline=None,
                          derandomize=False, print_blob=True, suppress_health_check=_QUIET,
                          database=DirectoryBasedExampleDatabase(".hypothesis/examples"))
settings.load_profile("default")

