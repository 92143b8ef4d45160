"""The exposition line writer: the native twin writes exactly the pure twin's bytes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from bizops_otel.export import _lines_py as pure
from tests.conftest import native_module


def native() -> Any:
    return native_module("export._lines_c")


SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.1, 1e-7, 123456.789, 1e15, 1e16 - 2, 1e16, 2.5e16, -3e17,
           1e300, 5e-324, math.inf, -math.inf, math.nan, 2.0**53, -(2.0**62), 9.999999999999999e15]


def test_numbers_are_written_as_repr_writes_them() -> None:
    rng = np.random.default_rng(1)
    values = np.concatenate([SPECIAL, rng.normal(0, 1e6, 500),
                             rng.integers(-10**9, 10**9, 500), rng.lognormal(0, 8, 500)])
    rows = np.arange(values.size, dtype=np.int64) % 7
    labels = [f'k="{i}"'.encode() for i in range(7)]
    expected = pure.column_lines(b"metric_total", labels, b',x="y"', rows, values)
    assert native().column_lines(b"metric_total", labels, b',x="y"', rows, values) == expected
    lines = expected.decode().splitlines()
    assert lines[0] == 'metric_total{k="0",x="y"} 0.0'
    assert lines[1] == 'metric_total{k="1",x="y"} -0.0'
    written = [line.rsplit(" ", 1)[1] for line in lines]
    for text in ("1e+16", "1e-07", "1000000000000000.0", "+Inf", "-Inf", "nan", "5e-324"):
        assert text in written
    for text, value in zip(written, values, strict=True):
        assert math.isnan(value) or float(text.replace("Inf", "inf")) == value


def test_bucket_lines_match() -> None:
    rng = np.random.default_rng(2)
    counts = np.cumsum(rng.integers(0, 1000, size=(50, 12)), axis=1).astype(np.int64)
    totals = counts[:, -1] + rng.integers(0, 5, 50)
    rows = rng.permutation(50).astype(np.int64)
    labels = [f'page="p{i}"'.encode() for i in range(50)]
    bounds = [f'le="{b:.6g}"'.encode() for b in np.geomspace(0.005, 30, 12)]
    expected = pure.bucket_lines(b"d_bucket", labels, b"", bounds, rows, counts, totals)
    assert native().bucket_lines(b"d_bucket", labels, b"", bounds, rows, counts, totals) == expected
    first = expected.decode().splitlines()[:13]
    assert first[0] == f'd_bucket{{page="p{rows[0]}",{bounds[0].decode()}}} {counts[0, 0]}.0'
    assert first[12] == f'd_bucket{{page="p{rows[0]}",le="+Inf"}} {totals[0]}.0'


def test_bad_arguments_raise_instead_of_reading_out_of_bounds() -> None:
    module = native()
    with pytest.raises(IndexError):
        module.column_lines(b"m", [b"a"], b"", np.array([3], np.int64), np.array([1.0]))
    with pytest.raises(ValueError):
        module.column_lines(b"m", [b"a"], b"", np.array([0], np.int64), np.array([1.0, 2.0]))
    with pytest.raises(TypeError):
        module.column_lines(b"m", ["a"], b"", np.array([0], np.int64), np.array([1.0]))
    with pytest.raises(TypeError):
        module.column_lines(None, [b"a"], b"", np.array([0], np.int64), np.array([1.0]))
    with pytest.raises(TypeError):
        module.Writer().buckets(b"h", [b"a"], None, [b'le="1"'], np.array([0], np.int64),
                                np.array([[1]], np.int64), np.array([1], np.int64))
    with pytest.raises(TypeError):
        module.bucket_lines(b"h", [b"a"], b"", [1.0], np.array([0], np.int64),
                            np.array([[1]], np.int64), np.array([1], np.int64))


def test_writers_collect_the_same_exposition() -> None:
    rng = np.random.default_rng(3)
    labels = [f'k="{i}"'.encode() for i in range(20)]
    rows = rng.permutation(20).astype(np.int64)
    counts = np.cumsum(rng.integers(0, 9, size=(20, 3)), axis=1).astype(np.int64)
    outputs = []
    for module in (pure, native()):
        writer = module.Writer()
        writer.text(b"# TYPE a gauge\n")
        writer.column(b"a", labels, b"", rows, rng.normal(size=20))
        writer.buckets(b"h_bucket", labels, b',o="x"', [b'le="1"', b'le="2"', b'le="3"'],
                       rows, counts, counts[:, -1] + 1)
        outputs.append(writer.getvalue())
        rng = np.random.default_rng(3)
        rows = rng.permutation(20).astype(np.int64)
        counts = np.cumsum(rng.integers(0, 9, size=(20, 3)), axis=1).astype(np.int64)
    assert outputs[0] == outputs[1]
    assert outputs[0].startswith(b"# TYPE a gauge\na{") and outputs[0].count(b"\n") == 101


def test_shortest_digits_equal_repr_across_every_exponent() -> None:
    """The native formatter (Ryū) against Python's ``repr`` on random bit patterns (all
    exponents, subnormals included), values typical of sums, and every power of two and
    ten a double holds."""
    shortest = native().shortest_repr
    rng = np.random.default_rng(4)
    patterns = rng.integers(0, 2**64 - 1, 300_000, dtype=np.uint64, endpoint=True)
    values = patterns.view(np.float64)
    sums = np.concatenate([rng.lognormal(0, 3, 100_000),
                           np.round(rng.normal(0, 1e4, 50_000), 3),
                           rng.integers(0, 10**7, 50_000) / 1000.0])
    ladders = [2.0**e for e in range(-1074, 1024)] + [float(f"1e{e}") for e in range(-323, 309)]
    every = [float(v) for v in np.concatenate([values[np.isfinite(values)], sums])] + ladders
    wrong = [v for v in every if shortest(v) != repr(v).encode()]
    assert not wrong, f"{len(wrong)} differ, e.g. {wrong[:5]}"
    assert len(every) > 500_000
    with pytest.raises(ValueError):
        shortest(math.nan)


def test_writer_output_stays_unchanged_when_writing_on() -> None:
    """getvalue() hands over the buffer without copying; writing on must not change
    what was handed over."""
    writer = native().Writer()
    writer.text(b"a 1\n")
    first = writer.getvalue()
    writer.text(b"b 2\n")
    assert first == b"a 1\n"
    assert writer.getvalue() == b"a 1\nb 2\n"
    # Even once nobody holds it, what was handed out (and perhaps hashed) stays as it was.
    hash(writer.getvalue())
    writer.text(b"c 3\n")
    final = writer.getvalue()
    assert final == b"a 1\nb 2\nc 3\n" and hash(final) == hash(bytes(bytearray(final)))
    assert native().Writer().getvalue() == b""


def test_rows_without_labels_write_valid_lines() -> None:
    """A row whose labels are all empty renders as empty bytes: the extra labels then
    follow the brace directly, in both twins."""
    rows = np.array([0, 1], np.int64)
    labels = [b"", b'k="v"']
    for module in (pure, native()):
        assert module.column_lines(b"m", labels, b',x="y"', rows, np.array([1.0, 2.0])) == \
            b'm{x="y"} 1.0\nm{k="v",x="y"} 2.0\n'
        assert module.column_lines(b"m", labels, b"", rows, np.array([1.0, 2.0])) == \
            b'm{} 1.0\nm{k="v"} 2.0\n'
        assert module.bucket_lines(b"h", labels, b"", [b'le="1"'], rows,
                                   np.array([[1], [2]], np.int64), np.array([3, 4], np.int64)
                                   ) == (b'h{le="1"} 1.0\nh{le="+Inf"} 3.0\n'
                                         b'h{k="v",le="1"} 2.0\nh{k="v",le="+Inf"} 4.0\n')
