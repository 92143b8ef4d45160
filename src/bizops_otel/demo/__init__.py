"""The ``bizops-otel demo``: a real shop on 127.0.0.1, driven by simulated visitors."""
