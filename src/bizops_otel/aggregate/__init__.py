"""Aggregation: mergeable sufficient statistics per key and per session, kept by a native
aggregator or its pure-Python twin, read out as immutable snapshots, saved and merged
across processes.

Each twin pair has a switch module (``aggregator``) that picks the native build when it
loads; the pure twin is the readable reference and the test oracle.
"""
