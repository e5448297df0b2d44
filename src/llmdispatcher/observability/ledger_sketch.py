"""A log-bucket histogram of seconds (DDSketch's mapping), what the ledger's rollups keep per
group and period so that percentiles over a long window need no sort of its rows.

A value ``v`` above ``ZERO_S`` counts in bucket ``i = ceil(ln v / ln GAMMA)``, which holds
``(GAMMA**(i-1), GAMMA**i]``; the bucket reads back as ``2 * GAMMA**i / (GAMMA + 1)``, within
``RELATIVE_ERROR`` (1 %) of every value it holds. Values at or below ``ZERO_S`` (1 us) count as
zero and read back as 0.0; values above ``MAX_S`` (about 28 hours, far beyond any timeout)
count in the bucket of ``MAX_S``. Bucket counts add, so sketches of periods merge exactly: a
nearest-rank percentile of the merged sketch is the bucket holding the value of that rank,
hence within 1 % (or 1 us) of the exact nearest-rank percentile of the same rows.

In memory a sketch is one Python integer holding every count in a 32-bit field (the zero
bucket in the lowest), so merging two is one integer addition, done in C: a window merges
thousands of period sketches in a few ms, where adding dicts bucket by bucket took a second.
A field holds up to 2**32 - 1: some four billion values of one bucket in one window.

Stored as text, two forms, both read back by three C calls or fewer (no Python loop per
field): ``d<first field>:<hex of the fields from the first to the last non-zero one,
little-endian>`` (dense: the fastest to write and read, for the wide spans' full histograms;
base64 was 3x slower), or ``z<first field>:<the same bytes compressed by zlib level 1, in
hex>`` (for a minute's few values, however far apart: some 80 characters where dense takes
1,000+; it replaced a ``field:count`` list, built and parsed by a Python loop per field).
Plain text on SQLite and PostgreSQL.
"""

from __future__ import annotations

import binascii
import math
import sys
import zlib
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate

RELATIVE_ERROR = 0.01
GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
LN_GAMMA = math.log(GAMMA)
ZERO_S = 1e-6
MAX_S = 1e5
LOWEST = math.ceil(math.log(ZERO_S) / LN_GAMMA)  # the bucket of field 1
HIGHEST = math.ceil(math.log(MAX_S) / LN_GAMMA)
BITS = 32
assert array("I").itemsize * 8 == BITS  # C unsigned int: 32 bits on every CPython target
FIELD_BYTES = BITS // 8
COMPRESSION = 1  # zlib's fastest: a minute's long runs of zero fields compress at any level


def position(value: float) -> int:
    """The field of ``value`` seconds: 0 for zero, else its bucket's (clamped to MAX_S)."""
    if value <= ZERO_S:
        return 0
    return min(math.ceil(math.log(value) / LN_GAMMA), HIGHEST) - LOWEST + 1


def value_of(field: int) -> float:
    """What field ``field`` reads back as: within RELATIVE_ERROR of all it holds."""
    return 0.0 if field == 0 else 2 * GAMMA ** (field - 1 + LOWEST) / (GAMMA + 1)


@dataclass(slots=True)
class Sketch:
    packed: int = 0  # the count of field f in bits [BITS * f, BITS * (f + 1))

    @classmethod
    def of(cls, fields: Iterable[int]) -> Sketch:
        """The sketch of values given by their ``position`` s."""
        return cls(sum(count << (BITS * f) for f, count in Counter(fields).items()))

    def add(self, value: float) -> None:
        self.packed += 1 << (BITS * position(value))

    def merge(self, other: Sketch) -> None:
        self.packed += other.packed

    def counts(self) -> array[int]:
        """The count of every field, from 0 to the last non-zero one."""
        size = (self.packed.bit_length() + BITS - 1) // BITS * FIELD_BYTES
        found = array("I", self.packed.to_bytes(size, "little"))
        if sys.byteorder == "big":
            found.byteswap()
        return found

    @property
    def total(self) -> int:
        return sum(self.counts())

    def percentiles(self, *pcts: int) -> tuple[float | None, ...]:
        """Nearest-rank percentiles (rank ceil(n * p / 100), as ``ledger_sql``'s SQL)."""
        running = list(accumulate(self.counts()))
        n = running[-1] if running else 0
        if not n:
            return tuple(None for _ in pcts)
        return tuple(value_of(bisect_left(running, (n * p + 99) // 100)) for p in pcts)

    def encode(self, compress: bool = False) -> str | None:
        """The stored text (see the module doc), compressed or dense; None when empty (a NULL
        column)."""
        if not self.packed:
            return None
        first = ((self.packed & -self.packed).bit_length() - 1) // BITS
        shifted = self.packed >> (BITS * first)
        fields = shifted.to_bytes((shifted.bit_length() + BITS - 1) // BITS * FIELD_BYTES, "little")
        if compress:
            return f"z{first}:{zlib.compress(fields, COMPRESSION).hex()}"
        return f"d{first}:{fields.hex()}"

    @classmethod
    def decode(cls, text: str | None) -> Sketch:
        return cls(unpack(text))


def unpack(text: str | None) -> int:
    """A stored sketch's ``packed`` integer (what a reader adds up)."""
    if not text:
        return 0
    first, _, data = text.partition(":")
    fields = binascii.a2b_hex(data)
    if first[0] == "z":
        fields = zlib.decompress(fields)
    return int.from_bytes(fields, "little") << (BITS * int(first[1:]))
