"""Generated traffic with known answers: log-normal latencies, order values that rise or
fall with latency, and conversions that follow a logistic curve in latency."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


@dataclass
class Traffic:
    latency: Floats
    order_value: Floats
    conversion: Floats  # 0.0 / 1.0
    items: Floats


def traffic(seed: int, n: int = 20_000, median_s: float = 0.35, sigma: float = 0.6,
            value_slope: float = -40.0, conversion_slope: float = -1.2) -> Traffic:
    """Latencies ~ LogNormal(ln median, sigma); order value linear in latency plus noise;
    conversion ~ Bernoulli(logistic(0.2 + conversion_slope · latency))."""
    rng = np.random.default_rng(seed)
    latency = rng.lognormal(np.log(median_s), sigma, n)
    order_value = np.clip(80.0 + value_slope * latency + rng.normal(0.0, 15.0, n), 0.0, None)
    probability = 1.0 / (1.0 + np.exp(-(0.2 + conversion_slope * latency)))
    conversion = (rng.random(n) < probability).astype(np.float64)
    items = rng.integers(1, 6, n).astype(np.float64)
    return Traffic(latency, order_value, conversion, items)


#: Latency shapes for the quantile guarantee, in the spirit of DDSketch's datasets.
DISTRIBUTIONS = {
    "lognormal_fast": lambda rng, n: rng.lognormal(np.log(0.05), 0.4, n),
    "lognormal_slow": lambda rng, n: rng.lognormal(np.log(2.5), 0.8, n),
    "lognormal_wide": lambda rng, n: rng.lognormal(np.log(0.3), 1.5, n),
    "exponential": lambda rng, n: 0.002 + rng.exponential(0.2, n),
    "uniform": lambda rng, n: rng.uniform(0.01, 5.0, n),
    "pareto": lambda rng, n: 0.01 * (1.0 + rng.pareto(1.5, n)),
    "gamma": lambda rng, n: rng.gamma(2.0, 0.15, n) + 0.001,
    "bimodal": lambda rng, n: np.where(rng.random(n) < 0.8, rng.lognormal(np.log(0.08), 0.2, n),
                                       rng.lognormal(np.log(1.8), 0.3, n)),
    "weibull": lambda rng, n: 0.4 * rng.weibull(1.5, n) + 0.001,
    "narrow": lambda rng, n: rng.normal(0.75, 0.01, n),
}
