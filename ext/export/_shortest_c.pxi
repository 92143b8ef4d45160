# Shortest round-trip digits of a double: Ulf Adams' Ryū algorithm (PLDI 2018).
#
# ``repr(float)`` gives the shortest decimal that reads back as the same double, and of
# those the nearest; Ryū finds the same digits in a few 128-bit multiplications instead of
# David Gay's big-number arithmetic (about 30 ns instead of 400 ns a number). Exposition
# bodies at thousands of keys hold hundreds of thousands of non-integral sums, and
# formatting them was most of a scrape.
#
# The two tables of 5^i and 2^k / 5^i, scaled to 125 significant bits, are computed
# exactly from Python integers when the module is imported, rather than pasted in.

from libc.stdint cimport int32_t, uint32_t, uint64_t
from libc.string cimport memcpy

cdef extern from *:
    """
    #include <stdint.h>
    /* (m * mul) >> j for a 128-bit mul given as {low, high} words; j >= 64. */
    static inline uint64_t bizops_mul_shift_64(uint64_t m, const uint64_t *mul, int32_t j) {
        unsigned __int128 low = (unsigned __int128)m * mul[0];
        unsigned __int128 high = (unsigned __int128)m * mul[1];
        return (uint64_t)(((low >> 64) + high) >> (j - 64));
    }
    """
    uint64_t mul_shift_64 "bizops_mul_shift_64"(uint64_t m, const uint64_t *mul,
                                                 int32_t j) nogil

cdef enum:
    MANTISSA_BITS = 52
    EXPONENT_BIAS = 1023
    POW5_BITS = 125          # significant bits kept of 5^i
    POW5_INV_BITS = 125      # and of 2^k / 5^i
    POW5_TABLE = 326         # 5^i for i < 326 covers the smallest subnormal
    POW5_INV_TABLE = 342     # 2^k / 5^q for q < 342 covers the largest double

cdef uint64_t POW5_SPLIT[POW5_TABLE][2]
cdef uint64_t POW5_INV_SPLIT[POW5_INV_TABLE][2]


cdef inline int32_t pow5_bits(int32_t e) nogil:
    """Bits of 5^e: ceil(log2(5^e)), and 1 for e = 0."""
    return <int32_t>((<uint32_t>e * 1217359) >> 19) + 1


cdef inline uint32_t log10_pow2(int32_t e) nogil:
    """floor(log10(2^e)) for 0 <= e <= 1650."""
    return (<uint32_t>e * 78913) >> 18


cdef inline uint32_t log10_pow5(int32_t e) nogil:
    """floor(log10(5^e)) for 0 <= e <= 2620."""
    return (<uint32_t>e * 732923) >> 20


cdef inline uint32_t pow5_factor(uint64_t value) nogil:
    cdef uint32_t count = 0
    while value % 5 == 0:
        value //= 5
        count += 1
    return count


cdef inline bint multiple_of_pow5(uint64_t value, uint32_t p) nogil:
    return pow5_factor(value) >= p


cdef inline bint multiple_of_pow2(uint64_t value, uint32_t p) nogil:
    return (value & ((<uint64_t>1 << p) - 1)) == 0


def _fill_power_tables():
    mask = (1 << 64) - 1
    for i in range(POW5_TABLE):
        power = 5 ** i
        length = power.bit_length()
        assert length == pow5_bits(i)
        if length > POW5_BITS:
            scaled = power >> (length - POW5_BITS)
        else:
            scaled = power << (POW5_BITS - length)
        POW5_SPLIT[i][0] = scaled & mask
        POW5_SPLIT[i][1] = scaled >> 64
    for i in range(POW5_INV_TABLE):
        power = 5 ** i
        inverse = (1 << (power.bit_length() - 1 + POW5_INV_BITS)) // power + 1
        POW5_INV_SPLIT[i][0] = inverse & mask
        POW5_INV_SPLIT[i][1] = inverse >> 64


_fill_power_tables()


cdef inline int shortest_digits(uint64_t bits, uint64_t *digits, int32_t *exponent) nogil:
    """The shortest, then nearest, ``digits × 10^exponent`` that reads back as the
    finite, non-zero double with IEEE ``bits`` (sign ignored)."""
    cdef uint64_t ieee_mantissa = bits & ((<uint64_t>1 << MANTISSA_BITS) - 1)
    cdef uint32_t ieee_exponent = <uint32_t>((bits >> MANTISSA_BITS) & 0x7FF)
    cdef int32_t e2, e10, q, k, i, j
    cdef uint64_t m2, mv, vr, vp, vm, output
    cdef uint32_t mm_shift, removed = 0
    cdef bint accept_bounds, vm_trailing_zeros = False, vr_trailing_zeros = False
    cdef bint round_up = False
    cdef uint64_t last_removed = 0
    if ieee_exponent == 0:
        e2 = 1 - EXPONENT_BIAS - MANTISSA_BITS - 2
        m2 = ieee_mantissa
    else:
        e2 = <int32_t>ieee_exponent - EXPONENT_BIAS - MANTISSA_BITS - 2
        m2 = (<uint64_t>1 << MANTISSA_BITS) | ieee_mantissa
    accept_bounds = (m2 & 1) == 0
    # The interval of decimals that read back as this double is (4·m2 − 1 − mm_shift,
    # 4·m2 + 2) × 2^e2, the lower gap halved at powers of two.
    mv = 4 * m2
    mm_shift = 1 if (ieee_mantissa != 0 or ieee_exponent <= 1) else 0
    if e2 >= 0:
        q = <int32_t>log10_pow2(e2) - (1 if e2 > 3 else 0)
        e10 = q
        k = POW5_INV_BITS + pow5_bits(q) - 1
        i = -e2 + q + k
        vr = mul_shift_64(4 * m2, POW5_INV_SPLIT[q], i)
        vp = mul_shift_64(4 * m2 + 2, POW5_INV_SPLIT[q], i)
        vm = mul_shift_64(4 * m2 - 1 - mm_shift, POW5_INV_SPLIT[q], i)
        if q <= 21:
            # Only then can the interval's ends be exact multiples of 10^q.
            if mv % 5 == 0:
                vr_trailing_zeros = multiple_of_pow5(mv, q)
            elif accept_bounds:
                vm_trailing_zeros = multiple_of_pow5(mv - 1 - mm_shift, q)
            else:
                vp -= multiple_of_pow5(mv + 2, q)
    else:
        q = <int32_t>log10_pow5(-e2) - (1 if -e2 > 1 else 0)
        e10 = q + e2
        i = -e2 - q
        k = pow5_bits(i) - POW5_BITS
        j = q - k
        vr = mul_shift_64(4 * m2, POW5_SPLIT[i], j)
        vp = mul_shift_64(4 * m2 + 2, POW5_SPLIT[i], j)
        vm = mul_shift_64(4 * m2 - 1 - mm_shift, POW5_SPLIT[i], j)
        if q <= 1:
            vr_trailing_zeros = True
            if accept_bounds:
                vm_trailing_zeros = mm_shift == 1
            else:
                vp -= 1
        elif q < 63:
            vr_trailing_zeros = multiple_of_pow2(mv, q)
    if vm_trailing_zeros or vr_trailing_zeros:
        # Rare: an end of the interval is exact, so ties need care.
        while vp // 10 > vm // 10:
            vm_trailing_zeros = vm_trailing_zeros and vm % 10 == 0
            vr_trailing_zeros = vr_trailing_zeros and last_removed == 0
            last_removed = vr % 10
            vr //= 10
            vp //= 10
            vm //= 10
            removed += 1
        if vm_trailing_zeros:
            while vm % 10 == 0:
                vr_trailing_zeros = vr_trailing_zeros and last_removed == 0
                last_removed = vr % 10
                vr //= 10
                vp //= 10
                vm //= 10
                removed += 1
        if vr_trailing_zeros and last_removed == 5 and vr % 2 == 0:
            last_removed = 4    # exactly halfway: round to even
        output = vr + (1 if ((vr == vm and (not accept_bounds or not vm_trailing_zeros))
                             or last_removed >= 5) else 0)
    else:
        while vp // 10 > vm // 10:
            round_up = vr % 10 >= 5
            vr //= 10
            vp //= 10
            vm //= 10
            removed += 1
        output = vr + (1 if (vr == vm or round_up) else 0)
    digits[0] = output
    exponent[0] = e10 + <int32_t>removed
    return 0


cdef inline int decimal_length(uint64_t value) nogil:
    cdef int n = 1
    while value >= 10:
        value //= 10
        n += 1
    return n


cdef int format_shortest(double value, char *out) nogil:
    """Writes ``repr(value)`` for a finite double into ``out`` (at least 32 bytes) and
    returns its length: positional between 1e-4 and 1e16, else ``d.ddde±XX``."""
    cdef uint64_t bits
    cdef uint64_t digits
    cdef int32_t exponent, point, shown
    cdef char text[20]
    cdef int n, at = 0, z
    memcpy(&bits, &value, 8)
    if bits >> 63:
        out[0] = b"-"
        at = 1
    if (bits << 1) == 0:
        memcpy(out + at, b"0.0", 3)
        return at + 3
    shortest_digits(bits, &digits, &exponent)
    n = decimal_length(digits)
    for z in range(n - 1, -1, -1):
        text[z] = <char>(48 + digits % 10)
        digits //= 10
    point = n + exponent    # value = 0.text × 10^point
    if -4 < point <= 16:
        if point <= 0:
            memcpy(out + at, b"0.", 2)
            at += 2
            for z in range(-point):
                out[at + z] = b"0"
            at += -point
            memcpy(out + at, text, n)
            return at + n
        if point >= n:
            memcpy(out + at, text, n)
            at += n
            for z in range(point - n):
                out[at + z] = b"0"
            at += point - n
            memcpy(out + at, b".0", 2)
            return at + 2
        memcpy(out + at, text, point)
        out[at + point] = b"."
        memcpy(out + at + point + 1, text + point, n - point)
        return at + n + 1
    out[at] = text[0]
    at += 1
    if n > 1:
        out[at] = b"."
        memcpy(out + at + 1, text + 1, n - 1)
        at += n
    shown = point - 1
    out[at] = b"e"
    out[at + 1] = b"-" if shown < 0 else b"+"
    at += 2
    if shown < 0:
        shown = -shown
    if shown >= 100:
        out[at] = <char>(48 + shown // 100)
        at += 1
    out[at] = <char>(48 + (shown // 10) % 10)
    out[at + 1] = <char>(48 + shown % 10)
    return at + 2
