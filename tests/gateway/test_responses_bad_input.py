"""``POST /v1/responses`` refuses what it cannot honour with OpenAI's error shape, naming the
field in ``param``: unknown items and fields, tool outputs for calls never made, a
``previous_response_id`` that does not exist, hosted tools off OpenAI. A stream that fails
after its first event ends with ``response.failed`` and an ``error`` event."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient, TestServer

from llmdispatcher import Dispatcher, StreamChunk
from llmdispatcher.clock import FakeClock
from llmdispatcher.errors import VendorServerError
from llmdispatcher.gateway.app import create_app
from tests.gateway.inprocess import OneModelVendor

MODEL = "known-model"


class BreaksAfterHello(OneModelVendor):
    """Streams "Hello", then fails as a vendor's server would."""

    async def stream(self, request: Any) -> AsyncIterator[StreamChunk]:
        yield StreamChunk(delta="Hello", vendor=self.name, model=request.model)
        raise VendorServerError("the vendor fell over", vendor=self.name, status=500)


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    dispatcher = Dispatcher(vendors=[BreaksAfterHello(MODEL)], clock=FakeClock())
    client = TestClient(TestServer(create_app(dispatcher)))
    await client.start_server()
    yield client
    await client.close()


async def refused(client: TestClient[Any, Any], body: dict[str, Any]) -> tuple[int, Any]:
    reply = await client.post("/v1/responses", json={"model": MODEL, **body})
    return reply.status, (await reply.json())["error"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type"),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
         "input[0].content[0].type"),
        ({"input": [{"role": "robot", "content": "hi"}]}, "input[0].role"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
         "input[0].content[0].image_url"),
        ({"input": [{"type": "function_call_output", "call_id": "call_nope", "output": "x"}]},
         "input[0].call_id"),
        ({"input": "hi", "frobnicate": True}, "frobnicate"),
        ({"input": "hi", "temperature": "hot"}, "temperature"),
        ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "hi", "text": {"format": {"type": "xml"}}}, "text.format.type"),
        ({"input": "hi", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"input": "hi", "tools": [{"type": "function", "name": "f", "parameters": []}]},
         "tools[0].parameters"),
        ({"input": "hi", "truncation": "auto"}, "truncation"),
        ({"input": "hi", "background": True}, "background"),
        ({"input": "hi", "conversation": "conv_1"}, "conversation"),
        ({}, "input"),
    ],
)  # fmt: skip
async def test_bad_input_names_the_field(
    client: TestClient[Any, Any], body: dict[str, Any], param: str
) -> None:
    status, error = await refused(client, body)
    assert status == 400
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert param.split("[", maxsplit=1)[0] in error["message"]


async def test_tool_output_must_follow_its_call(client: TestClient[Any, Any]) -> None:
    """A call made earlier in the same input is answered; one made nowhere is refused."""
    call = {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"}
    answer = {"type": "function_call_output", "call_id": "call_1", "output": "42"}
    reply = await client.post("/v1/responses", json={"model": MODEL, "input": [call, answer]})
    assert reply.status == 200
    status, error = await refused(client, {"input": [answer, call]})
    assert (status, error["param"]) == (400, "input[0].call_id")


async def test_missing_previous_response_is_404(client: TestClient[Any, Any]) -> None:
    status, error = await refused(client, {"input": "hi", "previous_response_id": "resp_nope"})
    assert status == 404
    assert error["param"] == "previous_response_id"
    assert error["code"] == "previous_response_not_found"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"tools": [{"type": "function", "name": "f"}, {"type": "file_search"}]}, "tools[1]"),
        (
            {"tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "web_search"}},
            "tool_choice",
        ),
    ],
)
async def test_hosted_tools_are_refused_off_openai(
    client: TestClient[Any, Any], body: dict[str, Any], param: str
) -> None:
    status, error = await refused(client, {"input": "hi", **body})
    assert (status, error["param"]) == (400, param)
    assert "vendor 'echo'" in error["message"]
    assert "api: responses" in error["message"]


async def test_failure_mid_stream_is_response_failed_then_error(
    client: TestClient[Any, Any],
) -> None:
    async with openai.AsyncOpenAI(
        base_url=str(client.make_url("/v1")), api_key="unused", max_retries=0
    ) as sdk:
        stream = await sdk.responses.create(model=MODEL, input="hi", stream=True)
        events = [event async for event in stream]
    kinds = [event.type for event in events]
    assert "response.output_text.delta" in kinds
    assert kinds[-2:] == ["response.failed", "error"]
    failed = events[-2].response  # type: ignore[union-attr]
    assert failed.status == "failed"
    assert failed.error is not None
    assert "fell over" in failed.error.message
    assert failed.output[0].content[0].text == "Hello"  # type: ignore[union-attr]
    assert events[-1].code == "vendor_error"  # type: ignore[union-attr]


async def test_echoed_items_are_read(client: TestClient[Any, Any]) -> None:
    """What agent frameworks send back: reasoning items (skipped: no other vendor can read
    them), output items with their ids and status, a tool output as text parts."""
    body = {
        "model": MODEL,
        "input": [
            {"role": "user", "content": "hi"},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": "x", "annotations": [], "logprobs": []}]},
            {"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "f",
             "arguments": "{}", "status": "completed"},
            {"type": "function_call_output", "call_id": "c1",
             "output": [{"type": "input_text", "text": "4"}, {"type": "input_text", "text": "2"}]},
        ],
    }  # fmt: skip
    reply = await client.post("/v1/responses", json=body)
    assert reply.status == 200
    made = await reply.json()
    listed = await (await client.get(f"/v1/responses/{made['id']}/input_items?order=asc")).json()
    assert [item["type"] for item in listed["data"]] == [
        "message", "message", "function_call", "function_call_output",
    ]  # fmt: skip
    assert listed["data"][1]["id"] == "msg_1"
    assert listed["data"][3]["output"] == "42"
    deleted = await client.delete(f"/v1/responses/{made['id']}")
    assert await deleted.json() == {"id": made["id"], "object": "response.deleted", "deleted": True}
