"""A process that records known traffic and serves it for Prometheus to scrape.

    python metrics_app.py SEED PORT

The traffic is ``tests.datasets.traffic(SEED)``, so a test can regenerate exactly what each
process recorded.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from prometheus_client import CollectorRegistry, start_http_server

from bizops_otel import Aggregator, Config
from bizops_otel.export.prometheus import BizOpsCollector
from tests.datasets import traffic

SPANS = 3000


def main() -> None:
    seed, port = int(sys.argv[1]), int(sys.argv[2])
    aggregator = Aggregator(Config())
    data = traffic(seed, n=SPANS)
    aggregator.record_many(("checkout", ""), data.latency,
                           {"order_value": data.order_value, "conversion": data.conversion})
    registry = CollectorRegistry()
    registry.register(BizOpsCollector(aggregator.snapshot))
    start_http_server(port, addr="127.0.0.1", registry=registry)
    print("serving", flush=True)
    deadline = time.monotonic() + 300  # never outlive a stuck test
    while time.monotonic() < deadline:
        time.sleep(0.5)


if __name__ == "__main__":
    main()
