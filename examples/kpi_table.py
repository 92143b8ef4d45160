"""Feed generated request spans through the aggregator and print the KPI table.

Traffic: four page groups and three campaigns, log-normal latencies, order values that
shrink and conversions that fall as checkout gets slower. The table shows what the
aggregator recovers, per key, with no knowledge of how the traffic was made.

    python examples/kpi_table.py [--spans N] [--seed S]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import bizops_otel
from bizops_otel import Aggregator, Config, attributes

PAGES = {  # page group: (median latency s, conversion slope per s, order slope per s)
    "landing": (0.25, 0.0, 0.0),
    "product": (0.40, -0.3, 0.0),
    "cart": (0.30, -0.5, 0.0),
    "checkout": (0.60, -1.6, -25.0),
}
CAMPAIGNS = ("", "spring_sale", "newsletter")


def generate(aggregator: Aggregator, spans: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    now = time.time_ns()
    pages = list(PAGES)
    for i in range(spans):
        page = pages[int(rng.integers(0, len(pages)))]
        median, conversion_slope, order_slope = PAGES[page]
        latency = float(rng.lognormal(math.log(median), 0.5))
        attrs: dict[str, object] = {
            attributes.PAGE_GROUP: page,
            attributes.CAMPAIGN_ID: CAMPAIGNS[int(rng.integers(0, 3))],
        }
        chance = 1.0 / (1.0 + math.exp(-(-0.4 + conversion_slope * latency)))
        converted = bool(rng.random() < chance)
        attrs[attributes.CONVERSION] = converted
        if converted and page == "checkout":
            attrs[attributes.ORDER_VALUE] = max(
                1.0, float(90.0 + order_slope * latency + rng.normal(0.0, 20.0)))
        end = now + i * 1_000_000
        aggregator.record_span(attrs, end - int(latency * 1e9), end)


def fmt(value: float, spec: str) -> str:
    return "-" if math.isnan(value) else format(value, spec)


def print_table(snapshot: bizops_otel.Snapshot) -> None:
    header = (f"{'page group':<10} {'campaign':<12} {'reqs':>6} {'p50 ms':>7} {'p95 ms':>7} "
              f"{'conv':>6} {'rho':>6} {'r(order)':>8} {'d€/s':>7}")
    print(header)
    print("-" * len(header))
    for key in sorted(snapshot):
        stats = snapshot[key]
        page, campaign = key
        print(f"{page:<10} {campaign or '(none)':<12} {stats.count:>6} "
              f"{fmt(stats.quantile(0.5) * 1e3, '.0f'):>7} "
              f"{fmt(stats.quantile(0.95) * 1e3, '.0f'):>7} "
              f"{fmt(stats.conversion_rate(), '.1%'):>6} "
              f"{fmt(stats.spearman('conversion'), '+.2f'):>6} "
              f"{fmt(stats.pearson('order_value').r, '+.2f'):>8} "
              f"{fmt(stats.slope('order_value'), '+.1f'):>7}")
    total = snapshot.total()
    print("-" * len(header))
    print(f"{'all':<23} {total.count:>6} {total.quantile(0.5) * 1e3:>7.0f} "
          f"{total.quantile(0.95) * 1e3:>7.0f} {total.conversion_rate():>6.1%} "
          f"{fmt(total.spearman('conversion'), '+.2f'):>6}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    aggregator = Aggregator(Config())
    started = time.perf_counter()
    generate(aggregator, args.spans, args.seed)
    elapsed = time.perf_counter() - started
    implementation = "native" if bizops_otel.NATIVE else "pure-Python"
    print(f"{args.spans} spans generated and aggregated in {elapsed:.2f} s "
          f"({implementation} aggregator)\n")
    print_table(aggregator.snapshot())
    print("\nrho: Spearman of latency and conversion (negative: slowness costs "
          "conversions).\nr(order), d€/s: Pearson r and slope of order value on latency.")


if __name__ == "__main__":
    main()
