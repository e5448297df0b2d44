"""What a simulated try draws from a deployment's record: the outcomes of its own 5 minutes
at their recorded rates, or the whole record's where those 5 minutes saw too few tries."""

from __future__ import annotations

import random
from collections import Counter

from llmdispatcher.replay.observed import BUCKET_S, MIN_TRIES, Behaviour

T0 = 1_765_000_200.0  # inside a bucket, away from its edges


def behaviour(outcomes: dict[float, list[str]]) -> Behaviour:
    """A record of tries (wall time -> their outcomes), each taking a second."""
    found = Behaviour(random.Random(1))
    for wall, names in outcomes.items():
        for name in names:
            found.record(wall, name, 1.0)
    return found


def test_a_bucket_that_saw_one_outcome_always_gives_it() -> None:
    record = behaviour({T0: ["ok"] * MIN_TRIES, T0 + BUCKET_S: ["RateLimitError"] * 50})
    rng = random.Random(2)
    assert {record.outcome_at(T0, rng) for _ in range(100)} == {("ok", True)}


def test_outcomes_come_at_their_recorded_rates() -> None:
    record = behaviour({T0: ["ok"] * 300 + ["VendorServerError"] * 100})
    rng = random.Random(3)
    drawn = Counter(record.outcome_at(T0 + 1, rng)[0] for _ in range(4000))
    assert 0.2 < drawn["VendorServerError"] / 4000 < 0.3


def test_a_thin_bucket_draws_from_the_whole_record() -> None:
    record = behaviour({T0: ["VendorServerError"] * (MIN_TRIES - 1),
                        T0 + 10 * BUCKET_S: ["ok"] * 100})  # fmt: skip
    rng = random.Random(4)
    drawn = Counter(record.outcome_at(T0, rng) for _ in range(1000))
    assert set(drawn) == {("ok", False), ("VendorServerError", False)}
    assert drawn["ok", False] > drawn["VendorServerError", False]


def test_the_same_seed_draws_the_same() -> None:
    record = behaviour({T0: ["ok"] * 30 + ["RateLimitError"] * 20})

    def draws(seed: int) -> list[tuple[str, float]]:
        rng = random.Random(seed)
        out = []
        for _ in range(50):
            outcome, _local = record.outcome_at(T0, rng)
            out.append((outcome, record.seconds_for(outcome, rng)))
        return out

    assert draws(9) == draws(9)
    assert draws(9) != draws(10)
