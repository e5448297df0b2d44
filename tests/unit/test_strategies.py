"""Strategies: every one orders all deployments, deterministically for a seeded random.Random."""

import random
from collections import Counter
from collections.abc import Mapping, Sequence

import pytest

from llmdispatcher import Request
from llmdispatcher.routing.model import HealthView, RankContext
from llmdispatcher.routing.strategies import estimate_cost_usd, get_strategy
from llmdispatcher.settings.routing import STRATEGIES, Deployment, ModelGroup, Objective

A, B, C = (Deployment("v", m) for m in ("a", "b", "c"))
REQUEST = Request(model="m", messages=[{"role": "user", "content": "hi"}])


def context(
    *,
    health: Mapping[str, HealthView] | None = None,
    costs: Mapping[str, float | None] | None = None,
    group: ModelGroup | None = None,
    stream: bool = False,
    seed: int = 0,
    rng: random.Random | None = None,
) -> RankContext:
    return RankContext(
        request=REQUEST,
        prompt_tokens=1000,
        max_tokens=500,
        stream=stream,
        health=health or {},
        cost_per_request=costs if costs is not None else {},
        rng=rng or random.Random(seed),
        group=group,
    )


def ids(candidates: Sequence[object]) -> list[str]:
    return [c.deployment.model for c in candidates]  # type: ignore[attr-defined]


def rank(name: str, deployments: Sequence[Deployment], ctx: RankContext) -> list[str]:
    return ids(get_strategy(name).rank(deployments, ctx))


# --- the registry and the contract ---------------------------------------------------------
def test_every_strategy_is_registered_by_its_name() -> None:
    assert [get_strategy(name).name for name in STRATEGIES] == list(STRATEGIES)


def test_unknown_strategy_lists_the_names() -> None:
    with pytest.raises(ValueError, match=r"'fastest'; expected one of priority, weighted, least"):
        get_strategy("fastest")


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_deployment_is_returned_once_with_a_reason(name: str) -> None:
    deployments = [Deployment("v", f"m{i}", weight=i % 3) for i in range(7)]
    health = {
        d.id: HealthView(
            in_flight=i,
            latency_ewma_s=0.1 * i or None,
            ttft_p95_s=0.5 * i,
            error_rate=0.1,
            samples=i,
        )
        for i, d in enumerate(deployments)
    }
    costs = {d.id: (None if i % 2 else 0.001 * i) for i, d in enumerate(deployments)}
    group = ModelGroup(
        "g", tuple(deployments), objective=Objective(max_p95_ttft_s=1.0, max_error_rate=0.5)
    )
    for seed in range(20):
        ctx = context(health=health, costs=costs, group=group, seed=seed)
        ranked = get_strategy(name).rank(deployments, ctx)
        assert sorted(ids(ranked)) == sorted(d.model for d in deployments)
        assert all(c.detail for c in ranked)
        assert all(c.score is None or isinstance(c.score, float) for c in ranked)
    assert get_strategy(name).rank([], context()) == []


# --- priority ------------------------------------------------------------------------------
def test_priority_keeps_the_listed_order() -> None:
    ranked = get_strategy("priority").rank([C, A, B], context())
    assert ids(ranked) == ["c", "a", "b"]
    assert [c.score for c in ranked] == [0.0, 1.0, 2.0]
    assert ranked[0].detail == "priority 1 of 3"


# --- weighted ------------------------------------------------------------------------------
def test_weighted_first_choice_is_proportional_to_weight() -> None:
    deployments = [
        Deployment("v", "a", weight=1),
        Deployment("v", "b", weight=3),
        Deployment("v", "c", weight=6),
    ]
    rng = random.Random(1234)
    draws = 20_000
    first = Counter(rank("weighted", deployments, context(rng=rng))[0] for _ in range(draws))
    for model, share in (("a", 0.1), ("b", 0.3), ("c", 0.6)):
        assert first[model] / draws == pytest.approx(share, abs=0.015)


def test_weighted_second_place_is_drawn_from_the_rest() -> None:
    deployments = [
        Deployment("v", "a", weight=1),
        Deployment("v", "b", weight=1),
        Deployment("v", "c", weight=2),
    ]
    rng = random.Random(7)
    orders = Counter(tuple(rank("weighted", deployments, context(rng=rng))) for _ in range(8000))
    # P(c, a, b) = 2/4 * 1/2 = 0.25; P(a, c, b) = 1/4 * 2/3 = 1/6
    assert orders[("c", "a", "b")] / 8000 == pytest.approx(0.25, abs=0.02)
    assert orders[("a", "c", "b")] / 8000 == pytest.approx(1 / 6, abs=0.02)


def test_weight_zero_is_only_a_last_resort() -> None:
    zero = Deployment("v", "z", weight=0)
    deployments = [zero, Deployment("v", "a", weight=1), Deployment("v", "b", weight=1)]
    for seed in range(200):
        ranked = get_strategy("weighted").rank(deployments, context(seed=seed))
        assert ranked[-1].deployment is zero
        assert ranked[-1].detail == "weight 0: last resort"
    all_zero = [Deployment("v", "x", weight=0), Deployment("v", "y", weight=0)]
    assert rank("weighted", all_zero, context()) == ["x", "y"]


def test_weighted_is_deterministic_for_a_seed_and_explains_the_share() -> None:
    deployments = [Deployment("v", m, weight=w) for m, w in (("a", 2), ("b", 3), ("c", 5))]
    orders = {tuple(rank("weighted", deployments, context(seed=42))) for _ in range(5)}
    assert len(orders) == 1
    by_model = {
        c.deployment.model: c for c in get_strategy("weighted").rank(deployments, context())
    }
    assert by_model["b"].detail == "weight 3/10"
    assert by_model["b"].score == pytest.approx(0.3)


# --- least busy ----------------------------------------------------------------------------
def test_least_busy_orders_by_requests_in_flight_ties_in_listed_order() -> None:
    health = {A.id: HealthView(in_flight=3), B.id: HealthView(in_flight=1)}  # C: no view = 0
    ranked = get_strategy("least_busy").rank([A, B, C], context(health=health))
    assert ids(ranked) == ["c", "b", "a"]
    assert [c.detail for c in ranked] == ["0 in flight", "1 in flight", "3 in flight"]
    tie = {A.id: HealthView(in_flight=2), B.id: HealthView(in_flight=2), C.id: HealthView(5)}
    assert rank("least_busy", [B, A, C], context(health=tie)) == ["b", "a", "c"]


# --- latency -------------------------------------------------------------------------------
NO_EXPLORATION = ModelGroup("g", (A, B, C), exploration=0.0)


def test_latency_uses_ttft_for_streams_and_total_latency_otherwise() -> None:
    health = {
        A.id: HealthView(latency_ewma_s=1.0, ttft_ewma_s=0.1),
        B.id: HealthView(latency_ewma_s=0.5, ttft_ewma_s=0.3),
        C.id: HealthView(latency_ewma_s=0.7, ttft_ewma_s=0.2),
    }
    plain = get_strategy("latency").rank([A, B, C], context(health=health, group=NO_EXPLORATION))
    assert ids(plain) == ["b", "c", "a"]
    assert plain[0].detail == "latency ewma 0.50s"
    streamed = context(health=health, group=NO_EXPLORATION, stream=True)
    ranked = get_strategy("latency").rank([A, B, C], streamed)
    assert ids(ranked) == ["a", "c", "b"]
    assert (ranked[0].score, ranked[0].detail) == (0.1, "ttft ewma 0.10s")


def test_unmeasured_deployments_are_tried_first_without_exploring() -> None:
    health = {A.id: HealthView(latency_ewma_s=0.9), C.id: HealthView(latency_ewma_s=0.1)}
    group = ModelGroup("g", (A, B, C), exploration=1.0)  # would always explore if it applied
    for seed in range(50):
        ranked = get_strategy("latency").rank(
            [A, B, C], context(health=health, group=group, seed=seed)
        )
        assert ids(ranked) == ["b", "c", "a"]
    assert ranked[0].score is None
    assert ranked[0].detail == "unmeasured: tried first"
    stream_only = {A.id: HealthView(latency_ewma_s=0.1)}  # no ttft measured yet
    assert rank("latency", [A], context(health=stream_only, stream=True)) == ["a"]


def exploring_share(group: ModelGroup | None, draws: int = 20_000) -> tuple[float, Counter[str]]:
    health = {
        A.id: HealthView(latency_ewma_s=0.1),
        B.id: HealthView(latency_ewma_s=0.2),
        C.id: HealthView(latency_ewma_s=0.3),
    }
    rng = random.Random(99)
    first: Counter[str] = Counter()
    for _ in range(draws):
        ranked = get_strategy("latency").rank(
            [C, B, A], context(health=health, group=group, rng=rng)
        )
        first[ranked[0].deployment.model] += 1
        if ranked[0].deployment.model != "a":
            assert ranked[0].detail.endswith("(exploring)")
            assert ids(ranked[1:]) == [
                m for m in ("a", "b", "c") if m != ranked[0].deployment.model
            ]
    return 1 - first["a"] / draws, first


def test_latency_explores_at_the_groups_rate_spread_over_the_others() -> None:
    share, first = exploring_share(ModelGroup("g", (A, B, C), exploration=0.2))
    assert share == pytest.approx(0.2, abs=0.015)
    assert first["b"] / 20_000 == pytest.approx(0.1, abs=0.01)
    assert first["c"] / 20_000 == pytest.approx(0.1, abs=0.01)


def test_latency_explores_five_percent_without_a_group_and_never_at_zero() -> None:
    share, _ = exploring_share(None)
    assert share == pytest.approx(0.05, abs=0.008)
    assert exploring_share(NO_EXPLORATION, draws=2000)[0] == 0.0


# --- cost ----------------------------------------------------------------------------------
def test_estimate_cost_uses_the_deployments_prices_per_million_tokens() -> None:
    priced = Deployment("v", "p", input_price=2.5, output_price=10.0)
    assert estimate_cost_usd(priced, 1000, 500) == pytest.approx(0.0075)
    assert estimate_cost_usd(priced, 0, 0) == 0.0
    assert estimate_cost_usd(Deployment("v", "x", input_price=1.0), 10, 10) is None
    assert estimate_cost_usd(Deployment("v", "x"), 10, 10) is None


def test_cost_cheapest_first_unknown_prices_last_in_listed_order() -> None:
    d = [Deployment("v", m) for m in ("u1", "mid", "u2", "cheap", "dear")]
    costs = {"v/u1": None, "v/mid": 0.002, "v/cheap": 0.000412, "v/dear": 0.01}  # u2: missing
    ranked = get_strategy("cost").rank(d, context(costs=costs))
    assert ids(ranked) == ["cheap", "mid", "dear", "u1", "u2"]
    assert ranked[0].detail == "est $0.000412"
    assert ranked[-1].score is None
    assert ranked[-1].detail == "price unknown: after priced ones"


def test_cost_falls_back_to_the_deployments_own_prices_and_ties_keep_order() -> None:
    own = Deployment("v", "own", input_price=1.0, output_price=1.0)  # 1500 tokens: $0.0015
    tie1, tie2 = Deployment("v", "t1"), Deployment("v", "t2")
    costs = {"v/t1": 0.002, "v/t2": 0.002}
    assert rank("cost", [tie2, tie1, own], context(costs=costs)) == ["own", "t2", "t1"]
    explicit_none = {"v/own": None, **costs}  # the map's None wins over the deployment's prices
    assert rank("cost", [own, tie1], context(costs=explicit_none)) == ["t1", "own"]


# --- objective -----------------------------------------------------------------------------
def objective_group(**kwargs: float | None) -> ModelGroup:
    return ModelGroup("g", (A, B, C), strategy="objective", objective=Objective(**kwargs))  # type: ignore[arg-type]


def test_objective_constraints_rank_violators_last_with_the_reason() -> None:
    health = {
        A.id: HealthView(ttft_p95_s=0.95, samples=10),
        B.id: HealthView(error_rate=0.07, samples=100),
        C.id: HealthView(),  # never observed: passes
    }
    costs = {A.id: 0.001, B.id: 0.002, C.id: 0.004}
    group = objective_group(max_p95_ttft_s=0.8, max_error_rate=0.05)
    ranked = get_strategy("objective").rank(
        [B, A, C], context(health=health, costs=costs, group=group)
    )
    assert ids(ranked) == [
        "c",
        "a",
        "b",
    ]  # violators by score, not listed order
    assert ranked[1].detail.startswith("p95 ttft 0.95s > 0.80s: last; score")
    assert ranked[2].detail.startswith("error rate 7.0% > 5.0%: last; score")
    unconstrained = get_strategy("objective").rank([B, A, C], context(health=health, costs=costs))
    assert ids(unconstrained) == ["a", "b", "c"]  # no group: no constraints


def test_error_rate_without_samples_passes_the_constraint() -> None:
    health = {
        A.id: HealthView(error_rate=0.9, samples=0),
        B.id: HealthView(error_rate=0.2, samples=5),
    }
    group = objective_group(max_error_rate=0.1, error_weight=0.0)
    assert rank("objective", [B, A], context(health=health, group=group)) == ["a", "b"]


def test_objective_weights_pick_cheap_or_fast() -> None:
    health = {A.id: HealthView(latency_ewma_s=0.4), B.id: HealthView(latency_ewma_s=0.1)}
    costs = {A.id: 0.001, B.id: 0.004}
    cheap = objective_group(cost_weight=1.0, latency_weight=0.0)
    fast = objective_group(cost_weight=0.0, latency_weight=1.0)
    assert rank("objective", [B, A], context(health=health, costs=costs, group=cheap)) == ["a", "b"]
    assert rank("objective", [A, B], context(health=health, costs=costs, group=fast)) == ["b", "a"]
    # equal weights: a = 0.25 + 1.0, b = 1.0 + 0.25 -> a tie, kept in listed order
    both = objective_group()
    assert rank("objective", [B, A], context(health=health, costs=costs, group=both)) == ["b", "a"]
    leaning = objective_group(cost_weight=1.1)
    assert rank("objective", [B, A], context(health=health, costs=costs, group=leaning)) == [
        "a",
        "b",
    ]


def test_objective_score_is_each_value_over_the_largest_plus_the_error_rate() -> None:
    health = {
        A.id: HealthView(latency_ewma_s=0.2, error_rate=0.1, samples=10),
        B.id: HealthView(latency_ewma_s=0.4),
    }
    costs = {A.id: 0.003, B.id: 0.001, C.id: None}  # C: unknown price, unmeasured
    group = objective_group(cost_weight=2.0, latency_weight=1.0, error_weight=3.0)
    ranked = get_strategy("objective").rank(
        [A, B, C], context(health=health, costs=costs, group=group)
    )
    scores = {c.deployment.model: c.score for c in ranked}
    assert scores["a"] == pytest.approx(2.0 * 1.0 + 1.0 * 0.5 + 3.0 * 0.1)
    assert scores["b"] == pytest.approx(2.0 * (1 / 3) + 1.0 * 1.0)
    assert scores["c"] == pytest.approx(2.0 * 1.0 + 0.0)  # unknown cost 1.0, unmeasured 0.0
    assert ids(ranked) == ["b", "c", "a"]
    assert ranked[0].detail == "score 1.67 (cost 0.67, latency 1.00, errors 0.00)"


def test_objective_uses_ttft_for_streams() -> None:
    health = {
        A.id: HealthView(latency_ewma_s=0.1, ttft_ewma_s=0.9),
        B.id: HealthView(latency_ewma_s=0.9, ttft_ewma_s=0.1),
    }
    group = objective_group(cost_weight=0.0)
    assert rank("objective", [A, B], context(health=health, group=group)) == ["a", "b"]
    assert rank("objective", [A, B], context(health=health, group=group, stream=True)) == ["b", "a"]
