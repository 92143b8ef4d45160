"""What-if: how conversion would move if latency moved, from bucketed counts.

A logistic model of conversion on latency is fitted to the conversion-by-latency curve
(trials and conversions per latency bucket) by iteratively reweighted least squares, and
the fitted curve is shifted by Δ to project the conversion rate. Its uncertainty comes from
the fit's covariance by the delta method.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from ..stats import z_critical

FloatArray = npt.NDArray[np.float64]


class LogisticFit(NamedTuple):
    """P(convert | latency x) = σ(intercept + slope·x), slope per second."""

    intercept: float
    slope: float
    covariance: FloatArray  # of (intercept, slope)
    iterations: int
    converged: bool

    def slope_interval(self, confidence: float = 0.95) -> tuple[float, float]:
        half = z_critical(confidence) * math.sqrt(max(float(self.covariance[1, 1]), 0.0))
        return self.slope - half, self.slope + half


class WhatIf(NamedTuple):
    """Conversion now and after a latency shift, with a confidence interval on the change."""

    delta_s: float
    rate: float
    projected: float
    change: float
    low: float
    high: float


def _sigmoid(eta: FloatArray) -> FloatArray:
    return 0.5 * (1.0 + np.tanh(0.5 * eta))  # stable for large |eta|


def fit_logistic(x: npt.ArrayLike, trials: npt.ArrayLike, successes: npt.ArrayLike, *,
                 max_iterations: int = 100, tolerance: float = 1e-12) -> LogisticFit:
    """Binomial logistic regression on grouped data by IRLS (Newton–Raphson)::

        η = β₀ + β₁x,  p = σ(η),  W = n·p(1 − p)
        β ← β + (XᵀWX)⁻¹ Xᵀ(y − n·p)

    Groups without trials are ignored. The covariance is (XᵀWX)⁻¹ at the optimum. Data
    that separate perfectly (every group all or nothing) have no finite optimum; the fit
    then reports ``converged=False``.
    """
    xs = np.asarray(x, np.float64)
    n = np.asarray(trials, np.float64)
    y = np.asarray(successes, np.float64)
    keep = n > 0
    xs, n, y = xs[keep], n[keep], y[keep]
    nan2 = np.full((2, 2), np.nan)
    if xs.size < 2 or y.sum() in (0.0, n.sum()) or np.ptp(xs) == 0.0:
        return LogisticFit(math.nan, math.nan, nan2, 0, False)
    design = np.column_stack([np.ones_like(xs), xs])
    rate = y.sum() / n.sum()
    beta = np.array([math.log(rate / (1.0 - rate)), 0.0])
    information = nan2
    for iteration in range(1, max_iterations + 1):
        p = _sigmoid(design @ beta)
        weights = n * p * (1.0 - p)
        information = design.T @ (design * weights[:, None])
        gradient = design.T @ (y - n * p)
        try:
            step = np.linalg.solve(information, gradient)
        except np.linalg.LinAlgError:
            return LogisticFit(float(beta[0]), float(beta[1]), nan2, iteration, False)
        beta = beta + step
        if np.max(np.abs(step)) <= tolerance * (1.0 + np.max(np.abs(beta))):
            p = _sigmoid(design @ beta)
            information = design.T @ (design * (n * p * (1.0 - p))[:, None])
            covariance: FloatArray = np.linalg.inv(information).astype(np.float64)
            return LogisticFit(float(beta[0]), float(beta[1]), covariance, iteration, True)
    return LogisticFit(float(beta[0]), float(beta[1]),
                       np.linalg.pinv(information).astype(np.float64), max_iterations, False)


def project(fit: LogisticFit, x: npt.ArrayLike, weights: npt.ArrayLike, delta_s: float,
            confidence: float = 0.95) -> WhatIf:
    """Conversion rate if every latency ``x`` (weighted by ``weights``, e.g. trials per
    bucket) moved by ``delta_s``::

        CR(Δ) = Σ w_b σ(β₀ + β₁ (x_b + Δ)) / Σ w_b

    The change CR(Δ) − CR(0) gets a delta-method interval: its gradient in β is
    g = Σ w_b [σ'(η_b(Δ))·(1, x_b + Δ) − σ'(η_b(0))·(1, x_b)] / Σ w_b, its variance gᵀΣg.
    Latencies are clamped at zero after the shift.
    """
    xs = np.asarray(x, np.float64)
    w = np.asarray(weights, np.float64)
    total = w.sum()
    if not fit.converged or total <= 0:
        return WhatIf(delta_s, math.nan, math.nan, math.nan, math.nan, math.nan)
    shifted = np.maximum(xs + delta_s, 0.0)
    beta = np.array([fit.intercept, fit.slope])
    p0 = _sigmoid(beta[0] + beta[1] * xs)
    p1 = _sigmoid(beta[0] + beta[1] * shifted)
    rate = float((w * p0).sum() / total)
    projected = float((w * p1).sum() / total)
    d0 = w * p0 * (1.0 - p0)
    d1 = w * p1 * (1.0 - p1)
    gradient = np.array([(d1 - d0).sum(), (d1 * shifted - d0 * xs).sum()]) / total
    variance = float(gradient @ fit.covariance @ gradient)
    half = z_critical(confidence) * math.sqrt(max(variance, 0.0))
    change = projected - rate
    return WhatIf(delta_s, rate, projected, change, change - half, change + half)
