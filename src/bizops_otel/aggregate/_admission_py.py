"""Admission by frequency: a count-min sketch as TinyLFU's doorkeeper (pure twin of
``ext/aggregate/_admission_c.pxi``).

A value seen once (a bot's unique ``utm_campaign``, a random path) must not take a key from
values that recur. Every sighting of a key that does not exist yet adds one to ``DEPTH``
counters, one per row of the sketch, chosen by a hash of the key; the smallest of them
over-estimates how often the key was seen (Cormode and Muthukrishnan 2005, count-min). A
key is admitted once that estimate reaches ``admission_count``; until then its spans go to
the overflow key. Every ``admission_window`` all counters halve (Einziger, Friedman and
Manes 2017, TinyLFU's reset), so the sketch forgets one-off values and never saturates,
while a value that keeps recurring keeps half its count across the boundary.

Sizing. A value seen once is admitted by mistake when all its ``DEPTH`` counters already
hold sightings of other values: with N values since the last halving spread over rows of
``WIDTH`` counters, about ``(1 − e^(−N/WIDTH))^DEPTH``. At 1,000 unique values per second and
the default 60 s window, N grows to 60,000 before each halving; with 4 rows of 2^19
one-byte counters (2 MiB) that is 1.4e-4 just before a halving and some 3e-5 on average
(measured: 25 keys in ten minutes of such an attack), which ``key_ttl`` hands back again.
Half the width (1 MiB) would admit 13 times as many.

The hash is the twins' contract, so it is defined here on the UTF-8 bytes of the sanitised
values, never with Python's per-process randomised ``hash()``: the same key lands on the
same counters in both twins and in every process.
"""

from __future__ import annotations

from typing import Final

DEPTH: Final = 4
WIDTH_BITS: Final = 19
WIDTH: Final = 1 << WIDTH_BITS
#: Counters are bytes and stop at this value, far above any sensible admission count.
SATURATED: Final = 255

_MASK: Final = (1 << 64) - 1
_SEED: Final = 0x243F6A8885A308D3  # the first digits of π: nothing up the sleeve
_PRIME: Final = 0x100000001B3  # FNV-1a's 64-bit prime
_HALVES: Final = [bytes((b >> shift) for b in range(256)) for shift in range(8)]


def _fmix(h: int) -> int:
    """MurmurHash3's 64-bit finaliser: every input bit reaches every output bit."""
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _MASK
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _MASK
    return h ^ (h >> 33)


def key_hash(values: tuple[str, ...]) -> int:
    """64-bit hash of a key: FNV-1a's multiply, eight bytes of UTF-8 at a time, each value
    closed by its length (so ``("ab", "c")`` and ``("a", "bc")`` differ), then ``_fmix``."""
    h = _SEED
    for value in values:
        data = value.encode()
        size = len(data)
        for start in range(0, size, 8):
            h = ((h ^ int.from_bytes(data[start:start + 8], "little")) * _PRIME) & _MASK
            h ^= h >> 29
        h = ((h ^ size) * _PRIME) & _MASK
        h ^= h >> 29
    return _fmix(h)


def cells(h: int) -> list[int]:
    """The counter of each row for hash ``h``: ``row·WIDTH + (low + row·high) mod WIDTH``,
    two halves of one hash giving ``DEPTH`` indices (Kirsch and Mitzenmacher 2006)."""
    low = h & 0xFFFFFFFF
    step = (h >> 32) | 1
    return [row * WIDTH + ((low + row * step) & (WIDTH - 1)) for row in range(DEPTH)]


class Doorkeeper:
    """Counts sightings of keys that do not exist yet; admits one at ``threshold``.

    >>> door = Doorkeeper(2, period_ns=60 * 10**9)
    >>> door.admit(("landing", "spring"), 0), door.admit(("landing", "spring"), 10**9)
    (False, True)
    """

    __slots__ = ("counts", "period", "period_ns", "threshold")

    def __init__(self, threshold: int, period_ns: int) -> None:
        self.threshold = threshold
        self.period_ns = period_ns
        self.counts = bytearray(DEPTH * WIDTH)
        self.period = -1  # the aging period of the newest sighting so far

    def _age(self, now_ns: int) -> None:
        """Halve every counter once per period boundary passed since the last sighting;
        a sighting older than the newest one (a straggler) ages nothing."""
        period = now_ns // self.period_ns
        if self.period < 0:
            self.period = period
        elif period > self.period:
            shift = period - self.period
            if shift >= 8:
                self.counts = bytearray(DEPTH * WIDTH)
            else:
                self.counts = bytearray(self.counts.translate(_HALVES[shift]))
            self.period = period

    def admit(self, values: tuple[str, ...], now_ns: int, sightings: int = 1) -> bool:
        """Count ``sightings`` of ``values`` at ``now_ns`` (a batch of rows is as many);
        whether the key may be created."""
        self._age(now_ns)
        counts = self.counts
        estimate = SATURATED
        for cell in cells(key_hash(values)):
            count = min(counts[cell] + sightings, SATURATED)
            counts[cell] = count
            estimate = min(estimate, count)
        return estimate >= self.threshold
