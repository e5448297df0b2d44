"""Routing conditions and rules: every condition, its edge cases, and rule validation."""

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import pytest

from llmdispatcher import Config, Request, RoutingCondition, RoutingRule
from llmdispatcher.errors import ConfigError
from llmdispatcher.settings.rules import RequestFacts, first_match, message_chars, request_types

FRIDAY_2300 = datetime(2024, 1, 5, 23, 0, tzinfo=UTC).timestamp()  # 2024-01-05 is a Friday


def at(day: int, hour: int, minute: int = 0) -> float:
    """Unix time on 2024-01-<day> (1 = Monday) at hour:minute UTC."""
    return datetime(2024, 1, day, hour, minute, tzinfo=UTC).timestamp()


def req(**kwargs: Any) -> Request:
    return Request(**{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **kwargs})


def facts(
    prompt_tokens: int = 10, chars: int = 2, stream: bool = False, now: float = FRIDAY_2300
) -> RequestFacts:
    return RequestFacts(prompt_tokens=prompt_tokens, chars=chars, stream=stream, now_wall=now)


def ok(cond: RoutingCondition, request: Request | None = None, **fact: Any) -> bool:
    return cond.matches(request or req(), facts(**fact))


# --- model -------------------------------------------------------------------------------
def test_model_regex_must_match_the_whole_name() -> None:
    cond = RoutingCondition(model_regex=r"gpt-4o?")
    assert ok(cond, req(model="gpt-4o"))
    assert ok(cond, req(model="gpt-4"))
    assert not ok(cond, req(model="gpt-4o-mini"))  # a prefix match is not enough
    assert not ok(cond, req(model="my-gpt-4o"))
    assert ok(RoutingCondition(model_regex=r"(claude|gpt)-.*"), req(model="claude-3"))


def test_glob_and_regex_must_both_hold() -> None:
    cond = RoutingCondition(model_pattern="gpt-*", model_regex=r".*-mini")
    assert ok(cond, req(model="gpt-4o-mini"))
    assert not ok(cond, req(model="gpt-4o"))
    assert not ok(cond, req(model="o3-mini"))


def test_invalid_regex_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"condition\.model_regex: '\(gpt' is not a valid"):
        RoutingCondition(model_regex="(gpt")


# --- tokens, characters, temperature ------------------------------------------------------
def test_requested_max_tokens_bounds_are_inclusive_and_need_max_tokens() -> None:
    cond = RoutingCondition(min_tokens=100, max_tokens=200)
    assert ok(cond, req(max_tokens=100))
    assert ok(cond, req(max_tokens=200))
    assert not ok(cond, req(max_tokens=99))
    assert not ok(cond, req(max_tokens=201))
    assert not ok(cond, req())  # no max_tokens: a bound cannot match
    assert ok(RoutingCondition(min_tokens=4000), req(max_tokens=8000))


def test_estimated_prompt_tokens_bounds() -> None:
    cond = RoutingCondition(min_prompt_tokens=1000, max_prompt_tokens=5000)
    assert ok(cond, prompt_tokens=1000)
    assert ok(cond, prompt_tokens=5000)
    assert not ok(cond, prompt_tokens=999)
    assert not ok(cond, prompt_tokens=5001)
    assert ok(RoutingCondition(max_prompt_tokens=0), prompt_tokens=0)


def test_character_bounds() -> None:
    cond = RoutingCondition(min_chars=3, max_chars=10)
    assert ok(cond, chars=3)
    assert ok(cond, chars=10)
    assert not ok(cond, chars=2)
    assert not ok(cond, chars=11)


def test_message_chars_counts_text_of_every_message_and_ignores_images() -> None:
    request = req(
        messages=[
            {"role": "system", "content": "abc"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "de"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                    {"type": "text", "text": "f"},
                ],
            },
            {"role": "assistant", "content": None, "tool_calls": []},
        ]
    )
    assert message_chars(request) == 6
    made = RequestFacts.of(request, prompt_tokens=7, stream=True, now_wall=1.5)
    assert made == RequestFacts(prompt_tokens=7, chars=6, stream=True, now_wall=1.5)


def test_temperature_range_only_matches_requests_that_set_one() -> None:
    cond = RoutingCondition(temperature_min=0.7)
    assert ok(cond, req(temperature=0.7))
    assert ok(cond, req(temperature=2.0))
    assert not ok(cond, req(temperature=0.69))
    assert not ok(cond, req())


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"min_tokens": 10, "max_tokens": 5}, r"condition\.min_tokens: 10 is more than max_tokens"),
        ({"min_chars": -1}, r"condition\.min_chars: must be >= 0"),
        ({"max_prompt_tokens": -5}, r"condition\.max_prompt_tokens: must be >= 0"),
        ({"temperature_min": 1.0, "temperature_max": 0.5}, r"condition\.temperature_min: 1.0"),
    ],
)
def test_impossible_ranges_are_rejected(kwargs: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        RoutingCondition(**kwargs)


# --- user ------------------------------------------------------------------------------------
def test_users_list_is_any_of_exact_ids() -> None:
    cond = RoutingCondition(users=("alice", "bob"))
    assert ok(cond, req(user="alice"))
    assert ok(cond, req(user="bob"))
    assert not ok(cond, req(user="alice2"))
    assert not ok(cond, req())  # no user given


def test_user_pattern_is_a_glob_and_combines_with_the_list() -> None:
    cond = RoutingCondition(user_pattern="team-*")
    assert ok(cond, req(user="team-ml"))
    assert not ok(cond, req(user="other"))
    assert not ok(cond, req())
    both = RoutingCondition(users=("team-ml", "carol"), user_pattern="team-*")
    assert ok(both, req(user="team-ml"))
    assert not ok(both, req(user="carol"))  # in the list but not matching the pattern
    assert not ok(both, req(user="team-ops"))  # matching the pattern but not in the list


# --- request types -----------------------------------------------------------------------
IMAGE_MESSAGE = {
    "role": "user",
    "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}],
}
TOOL = {"type": "function", "function": {"name": "f"}}


def test_request_types_are_derived_from_the_request() -> None:
    assert request_types(req(), stream=False) == {"chat"}
    assert request_types(req(), stream=True) == {"chat", "streaming"}
    assert "tools" in request_types(req(tools=[TOOL]), stream=False)
    assert "vision" in request_types(req(messages=[IMAGE_MESSAGE]), stream=False)
    assert "json" in request_types(req(response_format={"type": "json_object"}), stream=False)
    assert "json" in request_types(
        req(response_format={"type": "json_schema", "json_schema": {}}), stream=False
    )
    assert "json" not in request_types(req(response_format={"type": "text"}), stream=False)


def test_request_must_have_every_listed_type() -> None:
    cond = RoutingCondition(request_types=("streaming", "tools"))
    assert ok(cond, req(tools=[TOOL]), stream=True)
    assert not ok(cond, req(tools=[TOOL]), stream=False)
    assert not ok(cond, req(), stream=True)
    assert ok(RoutingCondition(request_types=("chat",)), req())
    vision = RoutingCondition(request_types=("vision",))
    assert ok(vision, req(messages=[IMAGE_MESSAGE]))
    assert not ok(vision, req())
    json_only = RoutingCondition(request_types=("json",))
    assert ok(json_only, req(response_format={"type": "json_object"}))
    assert not ok(json_only, req())


def test_unknown_request_type_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"condition\.request_types: 'audio' is not one of chat"):
        RoutingCondition(request_types=("audio",))  # type: ignore[arg-type]


# --- metadata ----------------------------------------------------------------------------
def test_metadata_every_key_must_be_equal() -> None:
    cond = RoutingCondition(metadata={"tier": "pro", "region": "eu"})
    assert ok(cond, req(metadata={"tier": "pro", "region": "eu", "other": 1}))
    assert not ok(cond, req(metadata={"tier": "pro"}))  # a key is missing
    assert not ok(cond, req(metadata={"tier": "free", "region": "eu"}))
    assert not ok(cond, req())  # no metadata at all
    assert ok(RoutingCondition(metadata={}), req())


def test_metadata_value_types() -> None:
    assert ok(RoutingCondition(metadata={"level": 2}), req(metadata={"level": 2}))
    assert ok(RoutingCondition(metadata={"level": 2}), req(metadata={"level": 2.0}))
    assert not ok(RoutingCondition(metadata={"level": 2}), req(metadata={"level": "2"}))
    assert ok(RoutingCondition(metadata={"beta": True}), req(metadata={"beta": True}))
    assert not ok(RoutingCondition(metadata={"beta": True}), req(metadata={"beta": 1}))
    assert not ok(RoutingCondition(metadata={"n": 1}), req(metadata={"n": True}))
    assert not ok(RoutingCondition(metadata={"beta": False}), req(metadata={"beta": 0}))
    assert ok(RoutingCondition(metadata={"ratio": 0.5}), req(metadata={"ratio": 0.5}))


# --- time ----------------------------------------------------------------------------------
def test_hours_window_start_inclusive_end_exclusive() -> None:
    cond = RoutingCondition(hours_utc="09:00-17:30")
    assert ok(cond, now=at(3, 9, 0))
    assert ok(cond, now=at(3, 17, 29))
    assert not ok(cond, now=at(3, 17, 30))
    assert not ok(cond, now=at(3, 8, 59))
    assert ok(RoutingCondition(hours_utc="00:00-24:00"), now=at(3, 23, 59))
    assert ok(RoutingCondition(hours_utc="18:00-24:00"), now=at(3, 23, 59))
    assert not ok(RoutingCondition(hours_utc="18:00-24:00"), now=at(3, 0, 0))


def test_hours_window_wraps_midnight() -> None:
    cond = RoutingCondition(hours_utc="22:00-06:00")
    assert ok(cond, now=at(3, 22, 0))
    assert ok(cond, now=at(3, 23, 59))
    assert ok(cond, now=at(3, 0, 0))
    assert ok(cond, now=at(3, 5, 59))
    assert not ok(cond, now=at(3, 6, 0))
    assert not ok(cond, now=at(3, 12, 0))
    assert not ok(cond, now=at(3, 21, 59))


def test_weekdays_use_the_utc_day() -> None:
    weekend = RoutingCondition(weekdays=("sat", "sun"))
    assert ok(weekend, now=at(6, 0, 0))  # Saturday
    assert ok(weekend, now=at(7, 23, 59))  # Sunday
    assert not ok(weekend, now=at(5, 23, 59))  # Friday
    assert not ok(weekend, now=at(8, 0, 0))  # Monday
    assert ok(RoutingCondition(weekdays=("Fri",)), now=FRIDAY_2300)  # case does not matter


def test_weekdays_name_the_day_a_wrapping_window_starts() -> None:
    friday_night = RoutingCondition(hours_utc="22:00-06:00", weekdays=("fri",))
    assert ok(friday_night, now=at(5, 23, 0))  # Friday 23:00
    assert ok(friday_night, now=at(6, 2, 0))  # Saturday 02:00: still Friday night
    assert not ok(friday_night, now=at(5, 2, 0))  # Friday 02:00 is Thursday night
    assert not ok(friday_night, now=at(6, 23, 0))  # Saturday night
    office = RoutingCondition(hours_utc="09:00-17:00", weekdays=("mon", "tue", "wed", "thu", "fri"))
    assert ok(office, now=at(1, 10, 0))
    assert not ok(office, now=at(6, 10, 0))


@pytest.mark.parametrize(
    "window", ["9-17", "09:00", "25:00-26:00", "10:60-11:00", "10:00-10:00", "24:00-01:00", ""]
)
def test_bad_hours_are_rejected(window: str) -> None:
    with pytest.raises(ValueError, match=r"condition\.hours_utc: .* is not a window"):
        RoutingCondition(hours_utc=window)


def test_bad_weekday_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"condition\.weekdays: 'monday' is not one of mon"):
        RoutingCondition(weekdays=("monday",))


# --- rules ---------------------------------------------------------------------------------
def test_a_rule_needs_one_target() -> None:
    with pytest.raises(ValueError, match=r"vendor/deployment/group/strategy: a rule needs"):
        RoutingRule()
    with pytest.raises(ValueError, match=r"routing_rules\[\]\.group: give one of .*vendor and"):
        RoutingRule(vendor="a", group="g")
    with pytest.raises(ValueError, match=r"routing_rules\[\]\.vendor: must not be empty"):
        RoutingRule(vendor="")


def test_strategy_goes_with_a_group_or_alone() -> None:
    assert RoutingRule(strategy="cost").strategy == "cost"
    assert RoutingRule(group="g", strategy="latency").group == "g"
    with pytest.raises(ValueError, match=r"strategy: .*not with vendor"):
        RoutingRule(vendor="a", strategy="cost")
    with pytest.raises(ValueError, match=r"strategy: .*not with deployment"):
        RoutingRule(deployment="a/m", strategy="cost")
    with pytest.raises(ValueError, match=r"strategy: 'fastest' is not one of priority"):
        RoutingRule(strategy="fastest")  # type: ignore[arg-type]


def test_first_match_lowest_priority_enabled_and_ties_first_listed() -> None:
    streaming = RoutingCondition(request_types=("streaming",))
    rules = (
        RoutingRule(vendor="late", priority=50),
        RoutingRule(streaming, vendor="stream", priority=1),
        RoutingRule(vendor="off", priority=0, enabled=False),
        RoutingRule(group="first-tie", priority=10),
        RoutingRule(group="second-tie", priority=10),
    )
    assert first_match(rules, req(), facts(stream=True)) is rules[1]
    assert first_match(rules, req(), facts(stream=False)) is rules[3]
    assert first_match(rules[:1], req(model="x"), facts()) is rules[0]
    assert first_match(rules[2:3], req(), facts()) is None


def test_rules_hash_compare_and_serialise_with_metadata() -> None:
    a = RoutingRule(RoutingCondition(metadata={"tier": "pro"}, users=["u"]), group="g")  # type: ignore[arg-type]
    b = RoutingRule(RoutingCondition(metadata={"tier": "pro"}, users=("u",)), group="g")
    assert a == b
    assert hash(a) == hash(b)
    assert a != RoutingRule(RoutingCondition(metadata={"tier": "free"}), group="g")
    assert json.loads(json.dumps(asdict(a)))["condition"]["metadata"] == {"tier": "pro"}


def test_config_files_spell_every_condition() -> None:
    rule = {
        "group": "smart",
        "strategy": "latency",
        "priority": 3,
        "name": "pro tools",
        "condition": {
            "model_regex": "gpt-.*",
            "min_tokens": 10,
            "min_prompt_tokens": 1,
            "max_chars": 1000,
            "users": ["alice"],
            "user_pattern": "a*",
            "request_types": ["tools"],
            "metadata": {"tier": "pro", "beta": True},
            "hours_utc": "08:00-20:00",
            "weekdays": ["mon", "fri"],
        },
    }
    (loaded,) = Config.from_dict({"routing_rules": [rule]}).routing_rules
    assert loaded.condition.users == ("alice",)
    assert loaded.condition.request_types == ("tools",)
    request = req(max_tokens=20, user="alice", tools=[TOOL], metadata={"tier": "pro", "beta": True})
    assert loaded.condition.matches(request, facts(now=at(5, 12, 0)))
    assert not loaded.condition.matches(request, facts(now=at(4, 12, 0)))  # Thursday


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"request_types": ["audio"]}, r"condition\.request_types\[0\]: 'audio' is not one of"),
        ({"hours_utc": "late"}, r"routing_rules\[0\]\.condition: .*hours_utc: 'late'"),
        ({"model_regex": "("}, r"routing_rules\[0\]\.condition: .*model_regex"),
    ],
)
def test_config_file_errors_name_the_condition(condition: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        Config.from_dict({"routing_rules": [{"vendor": "a", "condition": condition}]})
