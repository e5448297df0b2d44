"""What the ledger saw each deployment do, as distributions a simulated vendor draws from.

Per deployment (vendor and model): the durations of its successful tries and of its failed
ones by error, the share of a streamed answer's time spent before its first token, and its
outcomes (``ok`` or the error's class) per ``BUCKET_S`` of wall time. A simulated try at time
``t`` draws its outcome from the bucket holding ``t``, so an outage last Tuesday happens again
at the same hour; a bucket with too few tries falls back to the deployment's whole record. The
samples are reservoirs of bounded size, so memory does not grow with the ledger.

Learning comes first (pass one), drawing after (pass two): a bucket's draw table is built on
its first draw and kept, so a draw is one random number and a bisection, or no random number
at all where the bucket saw one outcome only (most of them: most tries succeed).
"""

from __future__ import annotations

import random
from bisect import bisect_right
from itertools import accumulate
from typing import NamedTuple

from .ledger_rows import LedgerRow

BUCKET_S = 300.0  # outcome rates are kept per 5 minutes of wall time
MIN_TRIES = 5  # fewer in a bucket: draw from the deployment's whole record instead
RESERVOIR = 10_000  # samples kept per distribution


class Reservoir:
    """A uniform sample of at most ``size`` values from a stream of any length."""

    __slots__ = ("_rng", "seen", "size", "values")

    def __init__(self, size: int, rng: random.Random) -> None:
        self.size, self._rng = size, rng
        self.values: list[float] = []
        self.seen = 0

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.values) < self.size:
            self.values.append(value)
            return
        slot = self._rng.randrange(self.seen)
        if slot < self.size:
            self.values[slot] = value

    def draw(self, rng: random.Random) -> float:
        values = self.values
        return values[int(rng.random() * len(values))]  # random() < 1: always an index


class _Table(NamedTuple):
    """One bucket's outcomes ready to draw: names, cumulative counts, and whether they are
    the bucket's own (False: too few, the whole record's)."""

    names: tuple[str, ...]
    cumulative: tuple[int, ...]
    local: bool


class Behaviour:
    """One deployment's record."""

    __slots__ = ("_tables", "buckets", "first_token_share", "outcomes", "rng", "seconds")

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.buckets: dict[int, dict[str, int]] = {}
        self.outcomes: dict[str, int] = {}
        self.seconds: dict[str, Reservoir] = {}  # by outcome
        self.first_token_share: Reservoir | None = None
        self._tables: dict[int, _Table] = {}

    def record(self, wall: float, outcome: str, seconds: float) -> None:
        index = int(wall // BUCKET_S)
        bucket = self.buckets.get(index)
        if bucket is None:
            bucket = self.buckets[index] = {}
        bucket[outcome] = bucket.get(outcome, 0) + 1
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        found = self.seconds.get(outcome)
        if found is None:
            found = self.seconds[outcome] = Reservoir(RESERVOIR, self.rng)
        found.add(seconds)

    def record_first_token(self, share: float) -> None:
        if self.first_token_share is None:
            self.first_token_share = Reservoir(RESERVOIR, self.rng)
        self.first_token_share.add(min(1.0, max(0.0, share)))

    def outcome_at(self, wall: float, rng: random.Random) -> tuple[str, bool]:
        """An outcome for a try at ``wall``, and whether it came from that time's own record
        (False: the bucket was too thin, the whole record was used)."""
        index = int(wall // BUCKET_S)
        table = self._tables.get(index)
        if table is None:
            table = self._tables[index] = self._table(index)
        names = table.names
        if len(names) == 1:
            return names[0], table.local
        cumulative = table.cumulative
        return names[bisect_right(cumulative, rng.random() * cumulative[-1])], table.local

    def _table(self, index: int) -> _Table:
        bucket = self.buckets.get(index)
        local = bucket is not None and sum(bucket.values()) >= MIN_TRIES
        counts = bucket if bucket is not None and local else self.outcomes
        return _Table(tuple(counts), tuple(accumulate(counts.values())), local)

    def seconds_for(self, outcome: str, rng: random.Random) -> float:
        return self.seconds[outcome].draw(rng)

    def first_token_after(self, seconds: float, rng: random.Random) -> float:
        share = 1.0 if self.first_token_share is None else self.first_token_share.draw(rng)
        return seconds * share


class Observations:
    """Every deployment's ``Behaviour``, keyed ``vendor/model``."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"observations:{seed}")
        self.deployments: dict[str, Behaviour] = {}
        self.first: float | None = None
        self.last: float | None = None

    def add(self, row: LedgerRow) -> None:
        if self.first is None:
            self.first = row.started
        self.last = at = row.started
        tries = row.tries
        for vendor, model, outcome, seconds in tries:
            behaviour = self.deployment(f"{vendor}/{model}", create=True)
            assert behaviour is not None
            behaviour.record(at, outcome, seconds)
            at += seconds
        if row.stream and row.ttft_s is not None and tries and tries[-1].outcome == "ok":
            last = tries[-1]
            share = row.ttft_s / row.latency_s if row.latency_s > 0 else 1.0
            behaviour = self.deployment(f"{last.vendor}/{last.model}")
            if behaviour is not None:
                behaviour.record_first_token(share)

    def deployment(self, key: str, *, create: bool = False) -> Behaviour | None:
        found = self.deployments.get(key)
        if found is None and create:
            found = self.deployments[key] = Behaviour(self._rng)
        return found
