"""What the ledger saw each deployment do, as distributions a simulated vendor draws from.

Per deployment (vendor and model): the durations of its successful tries and of its failed
ones by error, the share of a streamed answer's time spent before its first token, and its
outcomes (``ok`` or the error's class) per ``BUCKET_S`` of wall time. A simulated try at time
``t`` draws its outcome from the bucket holding ``t``, so an outage last Tuesday happens again
at the same hour; a bucket with too few tries falls back to the deployment's whole record. The
samples are reservoirs of bounded size, so memory does not grow with the ledger.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

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
        return rng.choice(self.values)


@dataclass
class Behaviour:
    """One deployment's record."""

    rng: random.Random
    buckets: dict[int, Counter[str]] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, Reservoir] = field(default_factory=dict)  # by outcome
    first_token_share: Reservoir | None = None

    def record(self, wall: float, outcome: str, seconds: float) -> None:
        self.buckets.setdefault(int(wall // BUCKET_S), Counter())[outcome] += 1
        self.outcomes[outcome] += 1
        if outcome not in self.seconds:
            self.seconds[outcome] = Reservoir(RESERVOIR, self.rng)
        self.seconds[outcome].add(seconds)

    def record_first_token(self, share: float) -> None:
        if self.first_token_share is None:
            self.first_token_share = Reservoir(RESERVOIR, self.rng)
        self.first_token_share.add(min(1.0, max(0.0, share)))

    def outcome_at(self, wall: float, rng: random.Random) -> tuple[str, bool]:
        """An outcome for a try at ``wall``, and whether it came from that time's own record
        (False: the bucket was too thin, the whole record was used)."""
        bucket = self.buckets.get(int(wall // BUCKET_S))
        local = bucket is not None and bucket.total() >= MIN_TRIES
        counts = bucket if bucket is not None and local else self.outcomes
        names = list(counts)
        return rng.choices(names, weights=[counts[n] for n in names])[0], local

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
        self.first = row.started if self.first is None else self.first
        self.last = row.started
        at = row.started
        for attempt in row.tries:
            behaviour = self.deployment(f"{attempt.vendor}/{attempt.model}", create=True)
            assert behaviour is not None
            behaviour.record(at, attempt.outcome, attempt.seconds)
            at += attempt.seconds
        last = row.tries[-1] if row.tries else None
        if row.stream and row.ttft_s is not None and last is not None and last.outcome == "ok":
            share = row.ttft_s / row.latency_s if row.latency_s > 0 else 1.0
            behaviour = self.deployment(f"{last.vendor}/{last.model}")
            if behaviour is not None:
                behaviour.record_first_token(share)

    def deployment(self, key: str, *, create: bool = False) -> Behaviour | None:
        found = self.deployments.get(key)
        if found is None and create:
            found = self.deployments[key] = Behaviour(self._rng)
        return found
