"""The rollups' latency sketch: nearest-rank percentiles within its stated error of the exact
ones, merging equal to sketching the union, and its stored form."""

from __future__ import annotations

import random

import pytest

from llmdispatcher.observability.ledger_sketch import RELATIVE_ERROR, ZERO_S, Sketch
from llmdispatcher.observability.stats import percentile

PCTS = (1, 25, 50, 90, 95, 99, 100)


def within_bound(estimate: float | None, exact: float | None) -> bool:
    """The documented bound: 1 % of the value, or the value itself below ZERO_S."""
    if estimate is None or exact is None:
        return estimate is exact
    if exact <= ZERO_S:
        return estimate == 0.0
    return abs(estimate - exact) <= RELATIVE_ERROR * exact * (1 + 1e-9)


def samples(rng: random.Random, n: int) -> list[float]:
    draw = (
        lambda: rng.lognormvariate(-1, 1.5),
        lambda: rng.uniform(0, 30),
        lambda: 0.0,
        lambda: rng.uniform(0, 2 * ZERO_S),
    )
    return [rng.choice(draw)() for _ in range(n)]


@pytest.mark.parametrize("seed", range(20))
def test_percentiles_are_within_one_percent_of_the_exact_nearest_rank(seed: int) -> None:
    rng = random.Random(seed)
    values = samples(rng, rng.randrange(1, 3000))
    sketch = Sketch()
    for value in values:
        sketch.add(value)
    ordered = sorted(values)
    estimates = sketch.percentiles(*PCTS)
    for pct, estimate in zip(PCTS, estimates, strict=True):
        assert within_bound(estimate, percentile(ordered, pct)), (pct, estimate)


def test_merged_sketches_equal_the_sketch_of_all_their_values() -> None:
    rng = random.Random(3)
    parts = [samples(rng, rng.randrange(0, 200)) for _ in range(30)]
    merged, whole = Sketch(), Sketch()
    for part in parts:
        piece = Sketch()
        for value in part:
            piece.add(value)
            whole.add(value)
        merged.merge(Sketch.decode(piece.encode()))  # as stored and read back
    assert merged.total == whole.total == sum(map(len, parts))
    assert merged.percentiles(*PCTS) == whole.percentiles(*PCTS)
    assert Sketch.decode(merged.encode()) == merged


def test_an_empty_sketch_has_no_percentiles_and_stores_as_null() -> None:
    assert Sketch().percentiles(50, 99) == (None, None)
    assert Sketch().encode() is None
    assert Sketch.decode(None).total == 0


def test_a_single_value_reads_back_within_the_bound_at_every_rank() -> None:
    sketch = Sketch()
    sketch.add(0.25)
    assert all(within_bound(p, 0.25) for p in sketch.percentiles(*PCTS))


def test_few_far_apart_and_many_values_both_store_short_and_read_back() -> None:
    few, many = Sketch(), Sketch()
    for value in (0.0, 0.001, 40.0):
        few.add(value)
    rng = random.Random(1)
    for _ in range(5000):
        many.add(rng.lognormvariate(-1, 0.5))
    # Compressed, the fields between far-apart values cost next to nothing, so a minute's
    # rollup row stays short (dense, ``few`` takes some 8,000 characters).
    assert len(few.encode(compress=True) or "") < 200 < len(few.encode() or "")
    assert len(many.encode(compress=True) or "") < 4 * len(many.counts())  # half of dense
    for sketch in (few, many):
        assert Sketch.decode(sketch.encode(compress=True)) == sketch
        assert Sketch.decode(sketch.encode()) == sketch
    assert all(map(within_bound, few.percentiles(1, 50, 100), (0.0, 0.001, 40.0)))
