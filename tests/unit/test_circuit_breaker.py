"""The breaker state machine on an injected clock, and the retry budget's arithmetic."""

from llmdispatcher import FakeClock
from llmdispatcher.resilience.circuit_breaker import BreakerBoard
from llmdispatcher.resilience.retry_budget import RetryBudgets
from llmdispatcher.routing.health import HealthTracker
from llmdispatcher.settings.resilience import CircuitBreaker, RetryBudget


def board(clock: FakeClock, **settings: object) -> BreakerBoard:
    return BreakerBoard(CircuitBreaker(**settings), clock)  # type: ignore[arg-type]


def test_consecutive_failures_open_then_half_open_probe_closes() -> None:
    clock = FakeClock()
    breakers = board(clock, failure_threshold=3, cooldown_s=10)
    for _ in range(2):
        breakers.record_failure("d", "VendorServerError")
    assert breakers.state("d") == "closed"
    breakers.record_success("d")  # a success resets the count
    for _ in range(3):
        breakers.record_failure("d", "VendorServerError")
    assert breakers.state("d") == "open"
    assert breakers.blocked("d") == "circuit breaker open for 10.0s more (VendorServerError)"
    assert not breakers.admit("d")
    clock.advance(10)
    assert breakers.state("d") == "half_open"
    assert breakers.admit("d")  # the probe
    assert not breakers.admit("d")  # only one probe at a time
    assert breakers.blocked("d") == "circuit breaker half-open: its probe request is in flight"
    breakers.record_success("d")
    assert breakers.state("d") == "closed"
    assert breakers.admit("d")


def test_a_failed_probe_reopens_and_retry_after_lengthens_the_cooldown() -> None:
    clock = FakeClock()
    breakers = board(clock, failure_threshold=1, cooldown_s=5)
    breakers.record_failure("d", "RateLimitError", retry_after=60)
    clock.advance(5)
    assert breakers.state("d") == "open"  # the vendor asked for 60 s
    clock.advance(55)
    assert breakers.admit("d")
    breakers.record_failure("d", "VendorTimeout")
    assert breakers.state("d") == "open"
    assert (
        breakers.blocked("d") == "circuit breaker open for 5.0s more (probe failed: VendorTimeout)"
    )


def test_a_cancelled_probe_frees_the_slot() -> None:
    clock = FakeClock()
    breakers = board(clock, failure_threshold=1, cooldown_s=1)
    breakers.record_failure("d", "x")
    clock.advance(1)
    assert breakers.admit("d")
    breakers.release_probe("d")
    assert breakers.admit("d")


def test_error_rate_over_the_window_opens_it() -> None:
    clock = FakeClock()
    breakers = board(
        clock, failure_threshold=100, error_rate_threshold=0.5, min_requests=10, window_s=60
    )
    for i in range(10):
        clock.advance(1)
        if i % 3 == 0:
            breakers.record_failure("d", "x")
        else:
            breakers.record_success("d")
    assert breakers.state("d") == "closed"  # 4 of 10 failed: under 50 %
    for _ in range(4):
        breakers.record_failure("d", "x")  # 8 of 14 now
    assert breakers.state("d") == "open"


def test_disabled_breakers_never_block() -> None:
    breakers = board(FakeClock(), failure_threshold=1, enabled=False)
    breakers.record_failure("d", "x")
    assert breakers.blocked("d") is None
    assert breakers.state("d") == "closed"


def test_retry_budget_ratio_floor_and_window() -> None:
    clock = FakeClock()
    budgets = RetryBudgets(RetryBudget(ratio=0.2, min_per_second=0.2, window_s=10), clock)
    assert [budgets.try_spend("v") for _ in range(3)] == [True, True, False]  # floor: 2
    for _ in range(10):
        budgets.record_request("v")
    assert [budgets.try_spend("v") for _ in range(3)] == [True, True, False]  # +20 % of 10
    clock.advance(10.5)
    assert budgets.try_spend("v")  # the window moved on
    assert budgets.try_spend("other")  # per vendor


def test_health_tracks_in_flight_ewma_percentiles_and_errors() -> None:
    health = HealthTracker()
    health.started("d")
    health.started("d")
    assert health.view("d").in_flight == 2
    health.finished("d", ok=True, latency_s=1.0)
    health.finished("d", ok=True, latency_s=2.0)
    view = health.view("d")
    assert view.in_flight == 0
    assert view.latency_ewma_s == 1.0 * 0.7 + 2.0 * 0.3
    health.started("d")
    health.finished("d", ok=True, ttft_s=0.5, still_open=True)
    assert health.view("d").in_flight == 1  # a stream being read is still in flight
    health.closed("d")
    health.started("d")
    health.finished("d", ok=False)
    health.started("d")
    health.finished("d", ok=False, counts=False)  # a caller's error says nothing
    view = health.view("d")
    assert (view.in_flight, view.samples, view.ttft_p90_s) == (0, 4, 0.5)
    assert view.error_rate == 0.25


def test_idle_breakers_are_forgotten_past_the_cap() -> None:
    """Deployment ids can carry client-chosen model names: the board must not grow without
    bound, but it never forgets a breaker that holds state."""
    from llmdispatcher.resilience.circuit_breaker import MAX_BREAKERS

    board = BreakerBoard(CircuitBreaker(failure_threshold=1, cooldown_s=30), FakeClock())
    board.record_failure("real/model", "VendorServerError")
    for i in range(MAX_BREAKERS * 3):
        board.record_success(f"openai/client-model-{i}")
    assert len(board.keys()) <= MAX_BREAKERS
    assert board.state("real/model") == "open"


def test_openings_are_told_and_a_remote_one_is_applied_without_an_echo() -> None:
    clock = FakeClock()
    told: list[tuple[str, float, str]] = []
    breakers = board(clock, failure_threshold=2, cooldown_s=30)
    breakers.on_open = lambda key, open_for_s, reason: told.append((key, open_for_s, reason))
    breakers.record_failure("d", "VendorServerError")
    assert told == []
    breakers.record_failure("d", "VendorServerError")
    assert told == [("d", 30.0, "VendorServerError")]
    breakers.open_remotely("e", 12.5, "opened by replica r2: VendorTimeout")
    assert breakers.state("e") == "open"
    assert breakers.blocked("e") == (
        "circuit breaker open for 12.5s more (opened by replica r2: VendorTimeout)"
    )
    assert len(told) == 1  # a remote opening is not told again
    clock.advance(12.5)
    assert breakers.admit("e")  # then probed here, on this replica's own schedule


def test_a_remote_opening_never_shortens_one_nor_overrides_a_probe_in_flight() -> None:
    clock = FakeClock()
    breakers = board(clock, failure_threshold=1, cooldown_s=30)
    breakers.record_failure("d", "VendorServerError")
    breakers.open_remotely("d", 5, "opened by replica r2: VendorTimeout")
    assert breakers.blocked("d") == "circuit breaker open for 30.0s more (VendorServerError)"
    clock.advance(30)
    assert breakers.admit("d")  # our probe is in flight
    breakers.open_remotely("d", 60, "opened by replica r2: VendorTimeout")
    breakers.record_success("d")  # its verdict decides
    assert breakers.state("d") == "closed"


def test_disabled_breakers_ignore_remote_openings() -> None:
    breakers = board(FakeClock(), enabled=False)
    breakers.open_remotely("d", 60, "opened by replica r2: VendorTimeout")
    assert breakers.blocked("d") is None
