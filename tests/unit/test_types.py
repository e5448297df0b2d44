"""Request/Message construction: dict coercion and validation errors that name the field."""

import pytest

from llmdispatcher import ImagePart, Message, Request, TextPart, Tool, ToolCall, ToolCallDelta


def test_dict_messages_and_tools_become_typed() -> None:
    request = Request(
        model="m",
        messages=[
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a": 1}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        ],
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        stop="END",
    )
    system, user, assistant, tool = request.message_list
    assert system.text == "Be brief."
    assert user.content == (TextPart("What is this?"), ImagePart("data:image/png;base64,AAAA"))
    assert user.images[0].data_uri_parts() == ("image/png", "AAAA")
    assert assistant.tool_calls == (ToolCall("call_1", "f", '{"a": 1}'),)
    assert tool.tool_call_id == "call_1"
    assert request.tool_list == (Tool("f", None, {"type": "object"}),)
    assert request.stop_list == ("END",)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"model": ""}, "request.model"),
        ({"messages": []}, "request.messages"),
        ({"temperature": 3.0}, "request.temperature"),
        ({"top_p": -0.1}, "request.top_p"),
        ({"max_tokens": 0}, "request.max_tokens"),
        ({"max_tokens": True}, "request.max_tokens"),
        ({"timeout": 0}, "request.timeout"),
        ({"tool_choice": "auto"}, "request.tool_choice"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "message.role"),
        ({"messages": [{"role": "user", "content": "x", "colour": "red"}]}, "request.messages[0]"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
        ({"messages": [{"role": "user", "content": [{"type": "audio"}]}]}, "message.content[0]"),
        ({"tools": [{"type": "function", "function": {}}]}, "request.tools[0].function.name"),
    ],
)
def test_bad_requests_name_the_field(kwargs: dict, field: str) -> None:
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        Request(**{**base, **kwargs})


def test_tool_call_arguments_must_be_a_json_string() -> None:
    with pytest.raises(ValueError, match="JSON string"):
        Message(
            role="assistant",
            tool_calls=[  # type: ignore[list-item]
                {"id": "c", "function": {"name": "f", "arguments": {"a": 1}}}
            ],
        )


def test_tool_call_delta_unpacks_like_a_tuple() -> None:
    index, call_id, name, fragment = ToolCallDelta(0, "call_1", "f", '{"a"')
    assert (index, call_id, name, fragment) == (0, "call_1", "f", '{"a"')


def test_image_part_rejects_a_non_data_uri_split() -> None:
    with pytest.raises(ValueError, match="data URI"):
        ImagePart("https://example.com/cat.png").data_uri_parts()
