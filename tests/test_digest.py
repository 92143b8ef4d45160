"""Per-row histogram digests for export: the native and pure twins, against the scalar
statistics on each row's dense histogram."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from bizops_otel import stats
from bizops_otel.aggregate._layout import (
    BLOCK,
    BLOCK_CODES,
    BLOCKS_PER_OUTCOME,
    BUCKETS,
    OUTCOME_CONVERTED,
    OUTCOME_NOT_CONVERTED,
    OUTCOMES,
    bucket_edges,
)
from bizops_otel.export import _digest_py as pure
from tests.conftest import native_module

QUANTILES = (0.5, 0.9, 0.99)
BOUNDARIES = np.array([1, 17, 30, 41, 52, 60, 70, 76, 86, 96, 105, 117], np.int64)


def twins() -> list[Any]:
    return [pure, native_module("export._digest_c")]


def random_blocks(rng: np.random.Generator, rows: int, empty_rows: int = 0
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted sparse blocks: each row holds a few random blocks, except ``empty_rows``
    rows chosen at random, which hold none. Edge buckets 0 and 117 get counts too."""
    empty = set(rng.choice(rows, empty_rows, replace=False).tolist()) if empty_rows else set()
    row_of, code_of, counts = [], [], []
    for row in range(rows):
        if row in empty:
            continue
        codes = np.sort(rng.choice(BLOCK_CODES, rng.integers(1, 6), replace=False))
        for code in codes.tolist():
            block = rng.integers(0, 40, BLOCK) * (rng.random(BLOCK) < 0.6)
            if (code % 8) * BLOCK + BLOCK > BUCKETS:
                block[BUCKETS % BLOCK:] = 0    # past the last bucket: never counted
            row_of.append(row)
            code_of.append(code)
            counts.append(block)
    return (np.array(row_of, np.int64), np.array(code_of, np.int64),
            np.array(counts, np.uint64).reshape(-1, BLOCK))


def dense(row_of: np.ndarray, code_of: np.ndarray, counts: np.ndarray, rows: int) -> np.ndarray:
    full = np.zeros((rows, BLOCK_CODES * BLOCK), np.float64)
    for row, code, block in zip(row_of, code_of, counts, strict=True):
        full[row, code * BLOCK:(code + 1) * BLOCK] = block
    return full.reshape(rows, len(OUTCOMES), -1)[:, :, :BUCKETS]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_digest_equals_scalar_statistics_per_row(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = 300
    blocks = random_blocks(rng, rows, empty_rows=20)
    histograms = dense(*blocks, rows)
    edges = bucket_edges()
    for twin in twins():
        result = twin.digest(*blocks, rows, BOUNDARIES, QUANTILES, True)
        cumulative = np.cumsum(histograms, axis=2)
        np.testing.assert_array_equal(result.totals, cumulative[:, :, -1])
        np.testing.assert_array_equal(result.below,
                                      np.concatenate([np.zeros((rows, 3, 1)), cumulative],
                                                     axis=2)[:, :, BOUNDARIES])
        for row in range(rows):
            negatives = histograms[row, OUTCOME_NOT_CONVERTED]
            positives = histograms[row, OUTCOME_CONVERTED]
            trials = negatives.sum() + positives.sum()
            expected_rate = positives.sum() / trials if trials else math.nan
            assert result.conversion[row] == pytest.approx(expected_rate, rel=1e-12,
                                                           nan_ok=True)
            assert result.spearman[row] == pytest.approx(
                stats.spearman_binary(negatives, positives), rel=1e-9, abs=1e-12, nan_ok=True)
            everyone = histograms[row].sum(axis=0)
            for i, q in enumerate(QUANTILES):
                expected = stats.histogram_quantile(everyone, edges, q) if everyone.sum() else \
                    math.nan
                assert result.quantiles[i, row] == pytest.approx(expected, rel=1e-12,
                                                                 nan_ok=True)


def test_twins_agree_and_spearman_recovers_a_planted_effect() -> None:
    """Slow requests convert less: ρ must come out clearly negative in both twins, and
    equal to scipy's on the bucketed latencies."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(7)
    latency = rng.lognormal(-1.0, 0.7, 20_000)
    converted = rng.random(latency.size) < 0.3 * np.exp(-latency)
    bucket = np.clip(np.floor(np.log(latency / 1e-3) / np.log(1.1)).astype(int) + 1, 0, 117)
    histogram = np.zeros((len(OUTCOMES), BLOCKS_PER_OUTCOME * BLOCK), np.uint64)
    np.add.at(histogram, (np.where(converted, OUTCOME_CONVERTED, OUTCOME_NOT_CONVERTED),
                          bucket), 1)
    per_block = histogram.reshape(len(OUTCOMES), BLOCKS_PER_OUTCOME, BLOCK)
    outcomes, indices = np.nonzero(per_block.any(axis=2))
    blocks = (np.zeros(outcomes.size, np.int64),
              (outcomes * BLOCKS_PER_OUTCOME + indices).astype(np.int64),
              per_block[outcomes, indices])
    results = [twin.digest(*blocks, 1, BOUNDARIES, QUANTILES, True) for twin in twins()]
    expected = spearmanr(bucket, converted).statistic
    for result in results:
        assert result.spearman[0] == pytest.approx(expected, rel=1e-9)
        assert result.spearman[0] < -0.1
        assert result.quantiles[0, 0] == pytest.approx(np.median(latency), rel=0.1)
    np.testing.assert_array_equal(results[0].below, results[1].below)


def test_rows_without_blocks_and_lean_digests() -> None:
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, BLOCK), np.uint64))
    for twin in twins():
        result = twin.digest(*empty, 4, BOUNDARIES, QUANTILES, True)
        assert result.below.shape == (4, 3, BOUNDARIES.size) and not result.below.any()
        assert np.isnan(result.quantiles).all() and np.isnan(result.spearman).all()
        lean = twin.digest(*random_blocks(np.random.default_rng(3), 5), 5, BOUNDARIES,
                           QUANTILES, False)
        assert lean.conversion is None and lean.spearman is None and lean.quantiles is None
        assert lean.totals.sum() > 0


def test_bad_boundaries_raise_in_both_twins() -> None:
    blocks = random_blocks(np.random.default_rng(4), 3)
    for twin in twins():
        for boundaries in ([5, 3], [-1], [BUCKETS + 1]):
            with pytest.raises(ValueError):
                twin.digest(*blocks, 3, np.array(boundaries, np.int64), QUANTILES, True)
