"""``Request.with_model``: the same request for a deployment's model, not re-checked."""

from __future__ import annotations

import dataclasses

import pytest

from llmdispatcher.types import REQUEST_FIELDS, Request


def test_with_model_changes_only_the_model_and_equals_a_checked_copy() -> None:
    request = Request(
        model="group",
        messages=[{"role": "user", "content": "hi"}],
        temperature=0.5,
        max_tokens=9,
        tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        tool_choice="auto",
        stop="END",
        metadata={"team": "a"},
        n=2,
        cache={"ttl_s": 5},
    )
    copy = request.with_model("gpt-4o")
    assert copy == dataclasses.replace(request, model="gpt-4o")
    assert copy.model == "gpt-4o"
    assert request.model == "group"
    for name in REQUEST_FIELDS:
        if name != "model":
            assert getattr(copy, name) is getattr(request, name), name
    assert tuple(f.name for f in dataclasses.fields(Request)) == REQUEST_FIELDS


@pytest.mark.parametrize("model", ["", None, 5])
def test_with_model_refuses_an_empty_or_non_text_model(model: object) -> None:
    request = Request(model="m", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(ValueError, match=r"request\.model"):
        request.with_model(model)  # type: ignore[arg-type]


def test_a_deployment_id_is_derived_once_and_never_configured() -> None:
    from llmdispatcher.config_file import config_from_mapping
    from llmdispatcher.errors import ConfigError
    from llmdispatcher.settings.routing import Deployment

    assert Deployment("openai", "gpt-4o").id == "openai/gpt-4o"
    assert Deployment("openai", "gpt-4o", name="main").id == "main"
    assert dataclasses.replace(Deployment("a", "m"), model="n").id == "a/n"
    assert Deployment("a", "m") == Deployment("a", "m")
    group = {"name": "g", "deployments": [{"vendor": "a", "model": "m", "_id": "x"}]}
    with pytest.raises(ConfigError, match="_id"):
        config_from_mapping({"vendors": {"a": {"type": "openai"}}, "model_groups": [group]}, "test")
