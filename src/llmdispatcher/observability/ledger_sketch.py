"""A log-bucket histogram of seconds (DDSketch's mapping), what the ledger's rollups keep per
group and period so that percentiles over a long window need no sort of its rows.

A value ``v`` above ``ZERO_S`` counts in bucket ``i = ceil(ln v / ln GAMMA)``, which holds
``(GAMMA**(i-1), GAMMA**i]``; the bucket reads back as ``2 * GAMMA**i / (GAMMA + 1)``, within
``RELATIVE_ERROR`` (1 %) of every value it holds. Values at or below ``ZERO_S`` (1 us) count as
zero and read back as 0.0. Bucket counts add, so sketches of periods merge exactly: a nearest-rank
percentile of the merged sketch is the bucket holding the value of that rank, hence within 1 %
(or 1 us) of the exact nearest-rank percentile of the same rows.

Counts are kept dense from the lowest to the highest bucket seen (a window's latencies span a
few hundred buckets at most), so merging is one slice addition done in C (``map(add, ...)``),
which is what keeps merging thousands of period sketches fast. Stored as compact JSON text
``[zeros, offset, count, count, ...]`` (portable between SQLite and PostgreSQL).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import accumulate
from operator import add

import orjson

RELATIVE_ERROR = 0.01
GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
LN_GAMMA = math.log(GAMMA)
ZERO_S = 1e-6


def bucket(value: float) -> int | None:
    """The bucket of ``value`` seconds; None for the zero bucket."""
    return None if value <= ZERO_S else math.ceil(math.log(value) / LN_GAMMA)


@dataclass(slots=True)
class Sketch:
    zeros: int = 0
    offset: int = 0  # the bucket index of counts[0]
    counts: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.zeros + sum(self.counts)

    def add(self, value: float) -> None:
        self.add_bucket(bucket(value))

    def add_bucket(self, index: int | None) -> None:
        """Count one value of bucket ``index`` (``bucket(value)``; None: zero)."""
        if index is None:
            self.zeros += 1
            return
        self._cover(index, index + 1)
        self.counts[index - self.offset] += 1

    def merge(self, other: Sketch) -> None:
        self.zeros += other.zeros
        width = len(other.counts)
        if not width:
            return
        self._cover(other.offset, other.offset + width)
        at = other.offset - self.offset
        self.counts[at : at + width] = map(add, self.counts[at : at + width], other.counts)

    def _cover(self, low: int, high: int) -> None:
        """Grow ``counts`` to hold buckets ``low`` to ``high - 1``."""
        if not self.counts:
            self.offset, self.counts = low, [0] * (high - low)
            return
        if low < self.offset:
            self.counts[0:0] = [0] * (self.offset - low)
            self.offset = low
        end = self.offset + len(self.counts)
        if high > end:
            self.counts.extend([0] * (high - end))

    def percentiles(self, *pcts: int) -> tuple[float | None, ...]:
        """Nearest-rank percentiles (rank ceil(n * p / 100), as ``ledger_sql``'s SQL)."""
        running = list(accumulate(self.counts, initial=self.zeros))  # [zeros, zeros + c0, ...]
        n = running[-1]
        if not n:
            return tuple(None for _ in pcts)
        return tuple(self._value(bisect_left(running, (n * p + 99) // 100)) for p in pcts)

    def _value(self, position: int) -> float:
        """Position 0 is the zero bucket; position k is ``counts[k - 1]``."""
        if position == 0:
            return 0.0
        return 2 * GAMMA ** (self.offset + position - 1) / (GAMMA + 1)

    def encode(self) -> str | None:
        """The stored text; None when empty (a NULL column)."""
        if not self.zeros and not any(self.counts):
            return None
        return orjson.dumps([self.zeros, self.offset, *self.counts]).decode()

    @classmethod
    def decode(cls, text: str | None) -> Sketch:
        if not text:
            return cls()
        zeros, offset, *counts = orjson.loads(text)
        return cls(zeros, offset, counts)
