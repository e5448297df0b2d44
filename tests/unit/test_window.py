"""The sliding-window counter behind breakers' error rates and retry budgets."""

from __future__ import annotations

import tracemalloc

from llmdispatcher.clock import FakeClock
from llmdispatcher.resilience.window import WindowCounter


def test_counts_what_happened_within_the_window() -> None:
    clock = FakeClock()
    counter = WindowCounter(10.0, clock)
    counter.add()
    clock.advance(4)
    counter.add(2)
    assert counter.count() == 3
    clock.advance(6.5)  # the first event is 10.5 s old, the others 6.5 s
    assert counter.count() == 2
    clock.advance(4)
    assert counter.count() == 0
    counter.add()
    assert counter.count() == 1


def test_an_event_leaves_within_one_bucket_of_the_window() -> None:
    clock = FakeClock()
    counter = WindowCounter(60.0, clock, buckets=60)  # one-second buckets
    counter.add()
    clock.advance(58.9)
    assert counter.count() == 1
    clock.advance(1.2)  # 60.1 s later: gone
    assert counter.count() == 0


def test_memory_stays_flat_however_many_events() -> None:
    clock = FakeClock()
    counter = WindowCounter(60.0, clock)
    for _ in range(1000):  # reach the steady state: every bucket in use
        counter.add()
        clock.advance(0.1)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(100_000):  # 1,000 events a second for 100 s
        counter.add()
        clock.advance(0.001)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert 59_000 <= counter.count() <= 60_000  # the last 60 s, to within one 1 s bucket
    assert grown < 16_384  # one timestamp per event would be several MB
