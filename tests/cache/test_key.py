"""The cache key is a pure function of what decides the answer, the same in every process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llmdispatcher import Cache, CacheControl, Config, Request
from llmdispatcher.cache.key import cache_key
from llmdispatcher.errors import ConfigError

TOOL = {
    "type": "function",
    "function": {"name": "f", "parameters": {"type": "object", "properties": {"b": {}, "a": {}}}},
}
CODE = """
from llmdispatcher import Cache, Request
from llmdispatcher.cache.key import cache_key
tool = {"type": "function", "function": {"name": "f",
        "parameters": {"type": "object", "properties": {"a": {}, "b": {}}}}}
request = Request(model="m", messages=[{"role": "user", "content": "hi"}], temperature=0,
                  tools=[tool], extra={"seed": 1})
print(cache_key(Cache(), request, "g"))
"""


def test_the_key_is_the_same_in_another_process_and_ignores_dict_order() -> None:
    request = Request(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        temperature=0,
        tools=[TOOL],
        extra={"seed": 1},
    )
    here = cache_key(Cache(), request, "g")
    there = subprocess.run(
        [sys.executable, "-c", CODE],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
    ).stdout.strip()
    assert here == there
    assert len(here) == 64


def test_the_resolved_model_and_a_forced_vendor_are_in_the_key() -> None:
    request = Request(model="m", messages=[{"role": "user", "content": "hi"}], temperature=0)
    keys = {
        cache_key(Cache(), request, "group-a"),
        cache_key(Cache(), request, "group-b"),
        cache_key(Cache(), Request(**{**_fields(request), "vendor": "x"}), "group-a"),
    }
    assert len(keys) == 3


def _fields(request: Request) -> dict[str, object]:
    return {name: getattr(request, name) for name in request.__dataclass_fields__}


def test_the_config_file_section_and_its_errors() -> None:
    config = Config.from_dict({"cache": {"url": "sqlite:///c.db", "ttl_s": 60, "shared": True}})
    assert config.cache == Cache(url="sqlite:///c.db", ttl_s=60, shared=True)
    with pytest.raises(ConfigError, match=r"cache\.when"):
        Config.from_dict({"cache": {"when": "sometimes"}})
    with pytest.raises(ConfigError, match=r"cache\.url"):
        Config.from_dict({"cache": {"url": "mongodb://x"}})


def test_cache_control_may_be_given_as_a_mapping_and_is_checked() -> None:
    hi = [{"role": "user", "content": "hi"}]
    given = Request(model="m", messages=hi, cache={"no_store": True})
    assert given.cache_control == CacheControl(no_store=True)
    with pytest.raises(ValueError, match=r"request\.cache"):
        Request(model="m", messages=hi, cache={"forever": True})
    with pytest.raises(ValueError, match=r"request\.cache\.ttl_s"):
        Request(model="m", messages=hi, cache=CacheControl(ttl_s=0))
