"""Routing rules: a condition over the request, and where matching requests go.

A ``RoutingCondition`` is a conjunction: every field that is set must hold, unset fields match
everything. A ``RoutingRule`` sends matching requests to a vendor, a deployment or a model group,
and may name the strategy that orders the deployments. ``first_match`` picks the enabled
matching rule with the lowest ``priority`` number (ties: the first listed).

Conditions look at the request and at ``RequestFacts``, the per-request values the router works
out once (the estimated prompt tokens, the text length, whether it is a stream call, and the
wall-clock time from the injected clock)::

    RoutingRule(RoutingCondition(request_types=("tools",), metadata={"tier": "pro"}),
                group="smart", strategy="latency", priority=1)
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ..types import Request
from .routing import STRATEGIES, StrategyName

RequestType = Literal["chat", "streaming", "tools", "vision", "json", "embedding"]
REQUEST_TYPES: tuple[str, ...] = ("chat", "streaming", "tools", "vision", "json", "embedding")
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MetadataValue = str | int | float | bool
_DAY_MINUTES = 24 * 60
_HHMM = re.compile(r"(\d\d):(\d\d)")


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What conditions need besides the request, computed once per request.

    ``prompt_tokens``: the local estimate; ``chars``: characters of message text (see
    ``message_chars``); ``stream``: a stream call; ``now_wall``: Unix time from the clock.
    """

    prompt_tokens: int
    chars: int
    stream: bool
    now_wall: float

    @classmethod
    def of(
        cls, request: Request, *, prompt_tokens: int, stream: bool, now_wall: float
    ) -> RequestFacts:
        return cls(prompt_tokens, message_chars(request), stream, now_wall)


def message_chars(request: Request) -> int:
    """Characters of text over all messages (multi-part text joined; images count 0)."""
    return sum(len(m.text) for m in request.message_list)


def request_types(request: Request, stream: bool) -> frozenset[str]:
    """The types a request has: always ``chat``; ``streaming`` for a stream call; ``tools``
    when it offers tools; ``vision`` when a message has an image part; ``json`` when it sets a
    ``response_format`` other than ``{"type": "text"}``. An embedding request
    (``Dispatcher.embed``) has the one type ``embedding``."""
    if request.kind == "embedding":
        return frozenset({"embedding"})
    found = {"chat"}
    if stream:
        found.add("streaming")
    if request.tool_list:
        found.add("tools")
    if any(m.images for m in request.message_list):
        found.add("vision")
    fmt = request.response_format
    if fmt is not None and fmt.get("type") != "text":
        found.add("json")
    return frozenset(found)


@dataclass(frozen=True)
class RoutingCondition:
    """What a request must look like for a rule to apply. Every set field must hold.

    Model: ``model_pattern`` is a glob (``gpt-4*``); ``model_regex`` must match the whole name.
    Tokens (bounds inclusive): ``max_tokens``/``min_tokens`` bound the request's ``max_tokens``
    and match only requests that set it; ``min_prompt_tokens``/``max_prompt_tokens`` bound the
    estimated prompt; ``min_chars``/``max_chars`` bound the characters of message text.
    ``temperature_min``/``temperature_max``: inclusive, matches only requests that set one.
    User: ``users`` lists exact ids (any of); ``user_pattern`` is a glob; both match only
    requests that name a user. ``request_types``: the request has ALL of them (see
    ``request_types``). ``metadata``: every key is present in ``request.metadata`` with an equal
    value (``True`` does not equal ``1``; ``1`` equals ``1.0``).
    Time (UTC, from the injected clock): ``hours_utc`` is ``"HH:MM-HH:MM"``, start inclusive,
    end exclusive, ``24:00`` allowed as an end; a window may wrap midnight (``"22:00-06:00"``).
    ``weekdays`` (``mon``..``sun``) name the day a window *starts*: with
    ``hours_utc="22:00-06:00", weekdays=("fri",)`` Saturday 02:00 matches and Friday 02:00 does
    not. Without ``hours_utc`` it is the current UTC day.
    """

    model_pattern: str | None = None
    max_tokens: int | None = None
    temperature_min: float | None = None
    temperature_max: float | None = None
    model_regex: str | None = None
    min_tokens: int | None = None
    min_prompt_tokens: int | None = None
    max_prompt_tokens: int | None = None
    min_chars: int | None = None
    max_chars: int | None = None
    users: tuple[str, ...] = ()
    user_pattern: str | None = None
    request_types: tuple[RequestType, ...] = ()
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict, hash=False)
    hours_utc: str | None = None
    weekdays: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "users", tuple(self.users))
        object.__setattr__(self, "request_types", tuple(self.request_types))
        object.__setattr__(self, "weekdays", tuple(d.lower() for d in self.weekdays))
        object.__setattr__(self, "metadata", dict(self.metadata))
        _check_ranges(self)
        _check_words("request_types", self.request_types, REQUEST_TYPES)
        _check_words("weekdays", self.weekdays, WEEKDAYS)
        # compiled once; kept out of the fields so they stay out of eq, repr and config files
        object.__setattr__(self, "_regex", _compile(self.model_regex))
        object.__setattr__(self, "_window", _parse_window(self.hours_utc))

    def matches(self, request: Request, facts: RequestFacts) -> bool:
        return (
            self._model_matches(request.model)
            and _within(request.max_tokens, self.min_tokens, self.max_tokens)
            and _within(request.temperature, self.temperature_min, self.temperature_max)
            and _within(facts.prompt_tokens, self.min_prompt_tokens, self.max_prompt_tokens)
            and _within(facts.chars, self.min_chars, self.max_chars)
            and self._user_matches(request.user)
            and (not self.request_types or self._types_match(request, facts.stream))
            and _metadata_matches(self.metadata, request.metadata)
            and self._time_matches(facts.now_wall)
        )

    def _model_matches(self, model: str) -> bool:
        if self.model_pattern is not None and not fnmatch.fnmatchcase(model, self.model_pattern):
            return False
        regex: re.Pattern[str] | None = self.__dict__["_regex"]
        return regex is None or regex.fullmatch(model) is not None

    def _user_matches(self, user: str | None) -> bool:
        if not self.users and self.user_pattern is None:
            return True
        if user is None or (self.users and user not in self.users):
            return False
        return self.user_pattern is None or fnmatch.fnmatchcase(user, self.user_pattern)

    def _types_match(self, request: Request, stream: bool) -> bool:
        return request_types(request, stream).issuperset(self.request_types)

    def _time_matches(self, now_wall: float) -> bool:
        window: tuple[int, int] | None = self.__dict__["_window"]
        if window is None and not self.weekdays:
            return True
        now = time.gmtime(now_wall)
        minute, day = now.tm_hour * 60 + now.tm_min, now.tm_wday  # tm_wday: Monday is 0
        if window is not None:
            start, end = window
            if start < end and not start <= minute < end:
                return False
            if start > end:  # wraps midnight
                if end <= minute < start:
                    return False
                if minute < end:  # the tail of the window that started yesterday
                    day = (day - 1) % 7
        return not self.weekdays or WEEKDAYS[day] in self.weekdays


def _within(value: float | None, low: float | None, high: float | None) -> bool:
    """Inclusive bounds; an unset value matches only when no bound is set."""
    if low is None and high is None:
        return True
    if value is None:
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def _metadata_matches(
    wanted: Mapping[str, MetadataValue], given: Mapping[str, object] | None
) -> bool:
    if not wanted:
        return True
    if given is None:
        return False
    missing = object()
    for key, value in wanted.items():
        found = given.get(key, missing)
        if isinstance(found, bool) is not isinstance(value, bool) or found != value:
            return False
    return True


def _check_ranges(cond: RoutingCondition) -> None:
    pairs = (
        ("min_tokens", "max_tokens"),
        ("min_prompt_tokens", "max_prompt_tokens"),
        ("min_chars", "max_chars"),
        ("temperature_min", "temperature_max"),
    )
    for low_name, high_name in pairs:
        low, high = getattr(cond, low_name), getattr(cond, high_name)
        for name, value in ((low_name, low), (high_name, high)):
            if value is not None and value < 0:
                raise ValueError(f"routing_rules[].condition.{name}: must be >= 0")
        if low is not None and high is not None and low > high:
            raise ValueError(
                f"routing_rules[].condition.{low_name}: {low} is more than {high_name} {high}"
            )


def _check_words(name: str, given: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    for word in given:
        if word not in allowed:
            raise ValueError(
                f"routing_rules[].condition.{name}: {word!r} is not one of {', '.join(allowed)}"
            )


def _compile(pattern: str | None) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(
            f"routing_rules[].condition.model_regex: {pattern!r} is not a valid regular "
            f"expression ({exc})"
        ) from None


def _parse_window(text: str | None) -> tuple[int, int] | None:
    """``"09:00-17:30"`` -> (540, 1050) minutes after midnight UTC."""
    if text is None:
        return None
    start_text, _, end_text = text.partition("-")
    start, end = _minutes(start_text.strip()), _minutes(end_text.strip())
    if start is None or end is None or start >= _DAY_MINUTES or start == end:
        raise ValueError(
            f"routing_rules[].condition.hours_utc: {text!r} is not a window like "
            '"09:00-17:30" or "22:00-06:00" (UTC; start and end differ)'
        )
    return start, end


def _minutes(text: str) -> int | None:
    match = _HHMM.fullmatch(text)
    if match is None:
        return None
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        return None
    return hours * 60 + minutes


@dataclass(frozen=True, slots=True)
class RoutingRule:
    """Send requests matching ``condition`` to one target. Lower ``priority`` numbers win.

    The target is one of ``vendor``, ``deployment`` (a deployment id) or ``group`` (a model
    group); ``strategy`` re-ranks the group's deployments, or, alone, whatever the request would
    otherwise go to. A disabled rule is never matched.
    """

    condition: RoutingCondition = field(default_factory=RoutingCondition)
    vendor: str | None = None
    deployment: str | None = None
    group: str | None = None
    strategy: StrategyName | None = None
    priority: int = 100
    enabled: bool = True
    name: str | None = None

    def __post_init__(self) -> None:
        targets = {"vendor": self.vendor, "deployment": self.deployment, "group": self.group}
        for key, value in targets.items():
            if value is not None and not value:
                raise ValueError(f"routing_rules[].{key}: must not be empty")
        given = [key for key, value in targets.items() if value]
        if not given and self.strategy is None:
            raise ValueError(
                "routing_rules[].vendor/deployment/group/strategy: a rule needs a target"
            )
        if len(given) > 1:
            raise ValueError(
                f"routing_rules[].{given[1]}: give one of vendor, deployment or group "
                f"(got {' and '.join(given)})"
            )
        if self.strategy is not None and self.strategy not in STRATEGIES:
            raise ValueError(
                f"routing_rules[].strategy: {self.strategy!r} is not one of {', '.join(STRATEGIES)}"
            )
        if self.strategy is not None and given and given[0] != "group":
            raise ValueError(
                f"routing_rules[].strategy: a strategy orders a group's deployments; use it "
                f"with group or alone, not with {given[0]} (one deployment)"
            )


def first_match(
    rules: tuple[RoutingRule, ...], request: Request, facts: RequestFacts
) -> RoutingRule | None:
    """The enabled matching rule with the lowest priority number (ties: first listed)."""
    best: RoutingRule | None = None
    for rule in rules:
        if (
            rule.enabled
            and (best is None or rule.priority < best.priority)
            and rule.condition.matches(request, facts)
        ):
            best = rule
    return best
