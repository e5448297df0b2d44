"""One behaviour suite, run against every vendor adapter through the Dispatcher.

Every test takes the ``case`` fixture, which is parametrized over ``CASES``: one row per vendor
adapter, pointed at that vendor's strict fake server. What differs between vendors (the model a
fake serves, how a request looks on that vendor's wire, which usage counts it reports, how it
refuses an image to a model that cannot see) is data in the row, never an if-branch in a test.
Adding a vendor is adding a row (and, for a new wire shape, one ``Wire``).

Backoff waits go through a FakeClock, so nothing here sleeps in real time.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import pytest

from llmdispatcher import (
    Config,
    Dispatcher,
    FakeClock,
    Request,
    Response,
    RetryPolicy,
    StreamChunk,
    Usage,
)
from llmdispatcher.errors import (
    AuthenticationError,
    InvalidRequestError,
    RateLimitError,
    StreamInterrupted,
    UnsupportedRequest,
    VendorError,
)
from llmdispatcher.limits import MAX_VENDOR_DELAY_S
from llmdispatcher.observability.events import AttemptFinished, Event
from llmdispatcher.streaming import StreamAccumulator
from llmdispatcher.vendors.base import Vendor
from llmdispatcher.vendors.openai_compatible import OpenAICompatibleVendor
from tests.fakes import (
    anthropic_fake,
    azure_fake,
    bedrock_fake,
    cohere_fake,
    gemini_fake,
    llamacpp_fake,
    mistral_fake,
    ollama_fake,
    openai_fake,
    vertex_fake,
)
from tests.fakes.http_examples import ollama_generate_adapter, tgi_adapter
from tests.fakes.llamacpp_fake import FakeLlamaServer
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import (
    BreakStream,
    Fail,
    MidStreamError,
    Reply,
    Step,
    ToolCallSpec,
)
from tests.fakes.server import FakeServer

Body = dict[str, Any]

# A 1x1 PNG.
PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kg"
    "AAAABJRU5ErkJggg=="
)
PNG_URI = f"data:image/png;base64,{PNG_B64}"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
WEATHER_CALL = ToolCallSpec("get_weather", {"city": "Paris"})
WEATHER_RESULT = {"temp_c": 18, "sky": "clear"}
JSON_ANSWER = {"answer": 42, "items": ["a", "b"]}
POLICY = RetryPolicy(max_retries=2, base_delay=0.5, max_delay=8.0)


# --- how each wire shape carries what the suite checks -------------------------------------------
# Each reader takes the JSON body the fake received and returns the piece the test compares.


def _tool_message(body: Body) -> Body:
    return next(m for m in body["messages"] if m.get("role") == "tool")


def openai_tool_result(body: Body) -> tuple[str, Any]:
    message = _tool_message(body)
    return message["tool_call_id"], json.loads(message["content"])


def anthropic_tool_result(body: Body) -> tuple[str, Any]:
    block = next(
        b
        for m in body["messages"]
        if m["role"] == "user" and isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    )
    inner = block.get("content")
    text = inner if isinstance(inner, str) else "".join(p["text"] for p in inner or ())
    return block["tool_use_id"], json.loads(text)


def gemini_tool_result(body: Body) -> tuple[str, Any]:
    part = next(p for c in body["contents"] for p in c["parts"] if "functionResponse" in p)
    return part["functionResponse"]["name"], part["functionResponse"]["response"]


def bedrock_tool_result(body: Body) -> tuple[str, Any]:
    block = next(
        b["toolResult"] for m in body["messages"] for b in m["content"] if "toolResult" in b
    )
    return block["toolUseId"], block["content"][0]["json"]


def ollama_tool_result(body: Body) -> tuple[str, Any]:
    message = _tool_message(body)
    return message["tool_name"], json.loads(message["content"])


def cohere_tool_result(body: Body) -> tuple[str, Any]:
    message = _tool_message(body)
    return message["tool_call_id"], json.loads("".join(p["text"] for p in message["content"]))


def last_message_parts(body: Body) -> list[Any]:
    content = body["messages"][-1]["content"]
    return content if isinstance(content, list) else []


@dataclass(frozen=True)
class Wire:
    """How one wire format carries an image, the JSON-mode ask and a tool result."""

    image: Callable[[Body], Any]  # the image as the fake received it ...
    image_expected: Any  # ... must equal this
    json_ask: Callable[[Body], Any]  # the JSON-mode ask as the fake received it ...
    json_expected: Any  # ... must equal this
    tool_result: Callable[[Body], tuple[str, Any]]  # (reference to the call, result)
    tool_result_by: str  # the reference is the call's "id" or its "name"


OPENAI_WIRE = Wire(
    image=lambda body: [p for p in last_message_parts(body) if p["type"] == "image_url"],
    image_expected=[{"type": "image_url", "image_url": {"url": PNG_URI}}],
    json_ask=lambda body: body.get("response_format"),
    json_expected={"type": "json_object"},
    tool_result=openai_tool_result,
    tool_result_by="id",
)
ANTHROPIC_WIRE = Wire(
    image=lambda body: [b for b in last_message_parts(body) if b["type"] == "image"],
    image_expected=[
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}}
    ],
    # no schema-free JSON mode: a forced tool whose input is the answer (anthropic_request.py)
    json_ask=lambda body: (body.get("tool_choice"), [t["name"] for t in body.get("tools", ())]),
    json_expected=({"type": "tool", "name": "json_output"}, ["json_output"]),
    tool_result=anthropic_tool_result,
    tool_result_by="id",
)
GEMINI_WIRE = Wire(
    image=lambda body: [p for p in body["contents"][-1]["parts"] if "inlineData" in p],
    image_expected=[{"inlineData": {"mimeType": "image/png", "data": PNG_B64}}],
    json_ask=lambda body: body.get("generationConfig", {}).get("responseMimeType"),
    json_expected="application/json",
    tool_result=gemini_tool_result,
    tool_result_by="name",  # Gemini pairs results with calls by name and order
)


def responses_tool_result(body: Body) -> tuple[str, Any]:
    (item,) = [i for i in body["input"] if i.get("type") == "function_call_output"]
    return item["call_id"], json.loads(item["output"])


RESPONSES_WIRE = Wire(  # OpenAI's Responses API (OpenAIVendor(api="responses"))
    image=lambda body: [p for p in body["input"][-1]["content"] if p["type"] == "input_image"],
    image_expected=[{"type": "input_image", "image_url": PNG_URI, "detail": "auto"}],
    json_ask=lambda body: body.get("text"),
    json_expected={"format": {"type": "json_object"}},
    tool_result=responses_tool_result,
    tool_result_by="id",
)
BEDROCK_WIRE = Wire(
    image=lambda body: [b for b in body["messages"][-1]["content"] if "image" in b],
    image_expected=[{"image": {"format": "png", "source": {"bytes": PNG_B64}}}],
    # no schema-free JSON mode in Converse: the forced tool, as for Anthropic
    json_ask=lambda body: (
        body["toolConfig"].get("toolChoice"),
        [t["toolSpec"]["name"] for t in body["toolConfig"]["tools"]],
    ),
    json_expected=({"tool": {"name": "json_output"}}, ["json_output"]),
    tool_result=bedrock_tool_result,
    tool_result_by="id",
)
OLLAMA_WIRE = Wire(
    image=lambda body: body["messages"][-1].get("images"),
    image_expected=[PNG_B64],  # bare base64, no data: prefix
    json_ask=lambda body: body.get("format"),
    json_expected="json",
    tool_result=ollama_tool_result,
    tool_result_by="name",  # tool_name, looked up from the call id
)
COHERE_WIRE = Wire(
    image=OPENAI_WIRE.image,
    image_expected=OPENAI_WIRE.image_expected,
    json_ask=lambda body: body.get("response_format"),
    json_expected={"type": "json_object"},
    tool_result=cohere_tool_result,
    tool_result_by="id",
)


def _not_on_this_wire(body: Body) -> Any:
    raise AssertionError("a text-only vendor carries no images, JSON asks or tool results")


# A custom HTTP server described by a template: text in, text out (see TEXT_ONLY below).
TEXT_WIRE = Wire(
    image=_not_on_this_wire,
    image_expected=None,
    json_ask=_not_on_this_wire,
    json_expected=None,
    tool_result=_not_on_this_wire,
    tool_result_by="id",
)


# --- per-vendor scripting and refusals ------------------------------------------------------------
def json_as_text(payload: dict[str, Any]) -> Step:
    return Reply(text=json.dumps(payload))


def json_as_forced_tool(payload: dict[str, Any]) -> Step:
    """What Anthropic answers to the forced ``json_output`` tool: a tool_use block."""
    return Reply(text="", tool_calls=[ToolCallSpec("json_output", payload)], finish="tool_calls")


@contextmanager
def without_mmproj(fake: FakeLlamaServer) -> Iterator[None]:
    """A llama-server started without a multimodal projector (restored afterwards: the
    fake's ``reset()`` does not restore it)."""
    fake.multimodal = False
    try:
        yield
    finally:
        fake.multimodal = True


@dataclass(frozen=True)
class Blind:
    """How an image sent to a model that cannot see is refused."""

    model: str
    error: type[VendorError]  # exactly this class
    reaches_vendor: bool  # False: refused by the adapter before sending
    setup: Callable[[Any], AbstractContextManager[None]] = lambda fake: nullcontext()


@dataclass(frozen=True)
class Case:
    """One vendor adapter against its fake. Everything vendor-specific the suite needs."""

    id: str
    vendor: str  # the adapter's name (Response.vendor)
    fixture: str  # the fake's pytest fixture
    adapter: Callable[[Any], Vendor]  # builds the adapter pointed at the fake
    model: str  # a model the fake serves
    wire: Wire
    image_model: str  # a model that takes images
    blind: Blind | None  # None: the adapter refuses images to no model
    reports_cached: bool  # the vendor reports cached prompt tokens
    reports_reasoning: bool  # the vendor reports reasoning tokens
    json_step: Callable[[dict[str, Any]], Step] = json_as_text
    # tests of what this vendor's format cannot carry (skipped, with the reason, for it)
    cannot: frozenset[str] = frozenset()

    def __str__(self) -> str:
        return self.id


def openai_compatible_adapter(fake: FakeOpenAI) -> Vendor:
    return OpenAICompatibleVendor(
        name="vllm-box", preset="vllm", base_url=fake.url + "/v1", api_key=fake.api_key
    )


LLAMA_MODEL = llamacpp_fake.DEFAULT_ALIAS
# What a template vendor (type http) cannot do: its config describes text in and text out, so
# tools, images and JSON mode are refused before sending (tests/test_vendor_http_template.py).
TEXT_ONLY = frozenset(
    {
        "test_tool_round_trip",
        "test_streamed_tool_call",
        "test_image_reaches_the_vendor_in_its_shape",
        "test_json_mode",
    }
)
CASES = [
    Case(
        id="openai",
        vendor="openai",
        fixture="fake_openai",
        adapter=openai_fake.adapter_for,
        model="gpt-4o-mini",
        wire=OPENAI_WIRE,
        image_model="gpt-4o-mini",
        blind=None,
        reports_cached=True,
        reports_reasoning=True,
    ),
    Case(
        id="openai_responses",
        vendor="openai",
        fixture="fake_openai",
        adapter=lambda fake: openai_fake.adapter_for(fake, api="responses"),
        model="gpt-5",
        wire=RESPONSES_WIRE,
        image_model="gpt-5",
        blind=None,
        reports_cached=True,
        reports_reasoning=True,
    ),
    Case(
        id="anthropic",
        vendor="anthropic",
        fixture="fake_anthropic",
        adapter=anthropic_fake.adapter_for,
        model="claude-sonnet-4-6",
        wire=ANTHROPIC_WIRE,
        image_model="claude-sonnet-4-6",
        blind=None,
        reports_cached=True,
        reports_reasoning=True,
        json_step=json_as_forced_tool,
    ),
    Case(
        id="google",
        vendor="google",
        fixture="fake_gemini",
        adapter=gemini_fake.adapter_for,
        model="gemini-2.5-flash",
        wire=GEMINI_WIRE,
        image_model="gemini-2.5-flash",
        blind=None,
        reports_cached=True,
        reports_reasoning=True,
    ),
    Case(
        id="azure",
        vendor="azure",
        fixture="fake_azure",
        adapter=azure_fake.adapter_for,
        model="gpt-4o-mini",  # the deployment
        wire=OPENAI_WIRE,
        image_model="gpt-4o-mini",
        blind=None,
        reports_cached=True,
        reports_reasoning=True,
    ),
    Case(
        id="bedrock",
        vendor="bedrock",
        fixture="fake_bedrock",
        adapter=bedrock_fake.adapter_for,
        model="anthropic.claude-sonnet-4-5-20250929-v1:0",
        wire=BEDROCK_WIRE,
        image_model="anthropic.claude-sonnet-4-5-20250929-v1:0",
        # vision is per model and Converse refuses images to a text model with a 400
        blind=Blind("amazon.nova-micro-v1:0", InvalidRequestError, reaches_vendor=True),
        reports_cached=True,
        reports_reasoning=False,  # Converse usage has no reasoning count
        json_step=json_as_forced_tool,
    ),
    Case(
        id="vertex_gemini",
        vendor="vertex",
        fixture="fake_vertex",
        adapter=vertex_fake.adapter_for,
        model="gemini-2.5-flash",
        wire=GEMINI_WIRE,
        image_model="gemini-2.5-flash",
        blind=None,
        reports_cached=True,
        reports_reasoning=True,
    ),
    Case(
        id="vertex_claude",
        vendor="vertex",
        fixture="fake_vertex",
        adapter=vertex_fake.adapter_for,
        model="claude-sonnet-4-5@20250929",
        wire=ANTHROPIC_WIRE,
        image_model="claude-sonnet-4-5@20250929",
        blind=None,
        reports_cached=True,
        reports_reasoning=True,
        json_step=json_as_forced_tool,
    ),
    Case(
        id="ollama",
        vendor="ollama",
        fixture="fake_ollama",
        adapter=ollama_fake.adapter_for,
        model="llama3.2",
        wire=OLLAMA_WIRE,
        image_model="llava",
        # vision is per model: the adapter refuses images to a model not known to see
        blind=Blind("llama3.2", UnsupportedRequest, reaches_vendor=False),
        reports_cached=False,  # only prompt_eval_count / eval_count
        reports_reasoning=False,
    ),
    Case(
        id="llamacpp",
        vendor="llamacpp",
        fixture="fake_llamacpp",
        adapter=llamacpp_fake.adapter_for,
        model=LLAMA_MODEL,
        wire=OPENAI_WIRE,
        image_model=LLAMA_MODEL,
        # the server refuses images without --mmproj; the adapter cannot know beforehand
        blind=Blind(LLAMA_MODEL, InvalidRequestError, reaches_vendor=True, setup=without_mmproj),
        reports_cached=False,  # cache_n only in ``timings`` (left in Response.raw)
        reports_reasoning=False,
    ),
    Case(
        id="openai_compatible",
        vendor="vllm-box",
        fixture="fake_openai",
        adapter=openai_compatible_adapter,
        model="gpt-4o-mini",
        wire=OPENAI_WIRE,
        image_model="gpt-4o-mini",
        blind=None,
        reports_cached=True,
        reports_reasoning=True,
    ),
    Case(
        id="cohere",
        vendor="cohere",
        fixture="fake_cohere",
        adapter=cohere_fake.adapter_for,
        model="command-a-03-2025",
        wire=COHERE_WIRE,
        image_model="command-a-vision-07-2025",
        # only the vision models see; Cohere refuses images to the others itself
        blind=Blind("command-a-03-2025", InvalidRequestError, reaches_vendor=True),
        reports_cached=True,
        reports_reasoning=False,  # no reasoning count in Cohere's usage
    ),
    Case(
        id="mistral",
        vendor="mistral",
        fixture="fake_mistral",
        adapter=mistral_fake.adapter_for,
        model="mistral-small-latest",
        wire=OPENAI_WIRE,
        image_model="pixtral-large-latest",
        blind=None,
        reports_cached=False,  # prompt, completion and total only
        reports_reasoning=False,
    ),
    Case(
        id="http_tgi",
        vendor="tgi",
        fixture="fake_tgi",
        adapter=tgi_adapter,  # examples/http/tgi.yaml
        model="tgi",
        wire=TEXT_WIRE,
        image_model="tgi",
        blind=Blind("tgi", UnsupportedRequest, reaches_vendor=False),
        reports_cached=False,
        reports_reasoning=False,
        cannot=TEXT_ONLY,
    ),
    Case(
        id="http_ollama_generate",
        vendor="ollama-generate",
        fixture="fake_ollama_generate",
        adapter=ollama_generate_adapter,  # examples/http/ollama_generate.yaml
        model="llama3.2",
        wire=TEXT_WIRE,
        image_model="llama3.2",
        blind=Blind("llama3.2", UnsupportedRequest, reaches_vendor=False),
        reports_cached=False,
        reports_reasoning=False,
        cannot=TEXT_ONLY,
    ),
]


# --- the rig: a dispatcher over the case's adapter, with a fake clock ----------------------------
@dataclass
class Rig:
    case: Case
    fake: FakeServer
    vendor: Vendor
    dispatcher: Dispatcher
    clock: FakeClock
    statuses: list[str] = field(default_factory=list)  # every attempt's status, in order

    def on_event(self, event: Event) -> None:
        if isinstance(event, AttemptFinished):
            self.statuses.append(event.attempt.status)

    def ask(self, text: str = "Say hello", *, model: str | None = None, **kw: Any) -> Request:
        return Request(
            model=model or self.case.model, messages=[{"role": "user", "content": text}], **kw
        )

    async def send(self, request: Request | None = None) -> Response:
        return await self.dispatcher.send(request or self.ask())

    async def stream(self, request: Request | None = None) -> list[StreamChunk]:
        return [chunk async for chunk in self.dispatcher.stream(request or self.ask())]

    @property
    def bodies(self) -> list[Body]:
        return [r.json for r in self.fake.requests]


@pytest.fixture(params=CASES, ids=str)
def case(request: pytest.FixtureRequest) -> Case:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def fake(case: Case, request: pytest.FixtureRequest) -> FakeServer:
    return request.getfixturevalue(case.fixture)  # type: ignore[no-any-return]


@pytest.fixture
async def rig(case: Case, fake: FakeServer, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    if request.node.originalname in case.cannot:
        pytest.skip(f"{case.id}: its wire format cannot carry what this test sends")
    vendor = case.adapter(fake)
    clock = FakeClock()
    dispatcher = Dispatcher(
        Config(retry_policy=POLICY), vendors=[vendor], clock=clock, rng=random.Random(7)
    )
    rig = Rig(case, fake, vendor, dispatcher, clock)
    dispatcher.subscribe(rig.on_event)
    async with dispatcher:
        yield rig


def text_of(chunks: list[StreamChunk]) -> str:
    return "".join(c.delta for c in chunks)


# --- the suite ------------------------------------------------------------------------------------
async def test_text(rig: Rig) -> None:
    rig.fake.enqueue(Reply(text="Hello there, traveller!"))
    response = await rig.send()
    assert response.content == "Hello there, traveller!"
    assert response.finish_reason == "stop"
    assert response.vendor == rig.case.vendor
    assert response.tool_calls == ()
    assert [(a.vendor, a.model, a.status) for a in response.attempts] == [
        (rig.case.vendor, rig.case.model, "ok")
    ]
    assert len(rig.fake.requests) == 1


async def test_stream(rig: Rig) -> None:
    reply = Reply(text="Streaming works fine.", chunk_size=4, prompt_tokens=5, completion_tokens=4)
    rig.fake.enqueue(reply)
    *body, last = await rig.stream()
    assert text_of(body) == "Streaming works fine."
    assert len(body) == len(reply.text_pieces()) > 1
    assert all(c.delta for c in body)
    assert all(c.finish_reason is None and c.usage is None for c in body)
    assert (last.delta, last.tool_call_deltas) == ("", ())
    assert last.finish_reason == "stop"
    assert last.usage == Usage(5, 4, 9)
    assert {c.vendor for c in [*body, last]} == {rig.case.vendor}
    assert rig.statuses == ["ok"]


async def test_usage(rig: Rig) -> None:
    scripted = Reply(
        text="counted", prompt_tokens=20, completion_tokens=7, cached_tokens=5, reasoning_tokens=3
    )
    rig.fake.enqueue(scripted, scripted)  # one for send, one for stream
    expected = Usage(
        prompt_tokens=20,  # OpenAI's sense: includes the cached tokens
        completion_tokens=7,  # and includes the reasoning tokens
        total_tokens=27,
        cached_tokens=5 if rig.case.reports_cached else 0,
        reasoning_tokens=3 if rig.case.reports_reasoning else 0,
    )
    response = await rig.send()
    chunks = await rig.stream()
    assert response.usage == expected
    assert chunks[-1].usage == expected


async def test_tool_round_trip(rig: Rig) -> None:
    rig.fake.enqueue(
        Reply(text="", tool_calls=[WEATHER_CALL], finish="tool_calls"),
        Reply(text="It is 18C and clear in Paris."),
    )
    question: dict[str, Any] = {"role": "user", "content": "What is the weather in Paris?"}
    first = await rig.send(Request(model=rig.case.model, messages=[question], tools=[WEATHER_TOOL]))
    assert first.finish_reason == "tool_calls"
    assert [(c.name, json.loads(c.arguments)) for c in first.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    (call,) = first.tool_calls
    assert call.id

    follow_up: list[dict[str, Any]] = [
        question,
        {"role": "assistant", "content": None, "tool_calls": list(first.tool_calls)},
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps(WEATHER_RESULT)},
    ]
    final = await rig.send(Request(model=rig.case.model, messages=follow_up, tools=[WEATHER_TOOL]))
    assert final.content == "It is 18C and clear in Paris."
    assert final.finish_reason == "stop"
    assert len(rig.fake.requests) == 2  # the strict fake accepted the pairing at once
    reference = call.id if rig.case.wire.tool_result_by == "id" else call.name
    assert rig.case.wire.tool_result(rig.bodies[-1]) == (reference, WEATHER_RESULT)


async def test_streamed_tool_call(rig: Rig) -> None:
    rig.fake.enqueue(Reply(text="", tool_calls=[WEATHER_CALL], finish="tool_calls", chunk_size=5))
    request = Request(
        model=rig.case.model,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
    )
    chunks = await rig.stream(request)
    accumulated = StreamAccumulator()
    for chunk in chunks:
        accumulated.add(chunk)
    answer = accumulated.response()
    assert [(c.name, json.loads(c.arguments)) for c in answer.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert all(c.id for c in answer.tool_calls)
    assert answer.content == ""
    assert answer.finish_reason == "tool_calls"
    assert chunks[-1].finish_reason == "tool_calls"
    assert all(c.finish_reason is None for c in chunks[:-1])


async def test_image_reaches_the_vendor_in_its_shape(rig: Rig) -> None:
    rig.fake.enqueue(Reply(text="A single pixel."))
    request = Request(
        model=rig.case.image_model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": PNG_URI}},
                ],
            }
        ],
    )
    response = await rig.send(request)
    assert response.content == "A single pixel."
    assert len(rig.fake.requests) == 1
    assert rig.case.wire.image(rig.bodies[-1]) == rig.case.wire.image_expected


async def test_image_to_a_model_that_cannot_see(rig: Rig) -> None:
    blind = rig.case.blind
    parts = [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": PNG_URI}},
    ]
    if blind is None:  # documented: every model of this vendor takes images
        request = Request(model=rig.case.model, messages=[{"role": "user", "content": parts}])
        assert rig.vendor.capabilities.vision
        rig.vendor.check(request)  # no refusal before sending
        return
    request = Request(model=blind.model, messages=[{"role": "user", "content": parts}])
    with blind.setup(rig.fake), pytest.raises(InvalidRequestError) as caught:
        await rig.send(request)
    assert type(caught.value) is blind.error
    assert caught.value.vendor == rig.case.vendor
    assert len(rig.fake.requests) == (1 if blind.reaches_vendor else 0)
    assert rig.clock.sleeps == []  # not retried


async def test_json_mode(rig: Rig) -> None:
    rig.fake.enqueue(rig.case.json_step(JSON_ANSWER))
    request = rig.ask("Answer in JSON, please.", response_format={"type": "json_object"})
    response = await rig.send(request)
    assert json.loads(response.content) == JSON_ANSWER
    assert response.finish_reason == "stop"
    assert response.tool_calls == ()
    assert rig.case.wire.json_ask(rig.bodies[-1]) == rig.case.wire.json_expected


async def test_length_truncation(rig: Rig) -> None:
    rig.fake.enqueue(
        Reply(text="This answer was cut", finish="length"),
        Reply(text="This answer was cut", finish="length"),
    )
    response = await rig.send()
    chunks = await rig.stream()
    assert (response.content, response.finish_reason) == ("This answer was cut", "length")
    assert (text_of(chunks), chunks[-1].finish_reason) == ("This answer was cut", "length")


async def test_rate_limit_honours_the_retry_delay(rig: Rig) -> None:
    rig.fake.enqueue(Fail("rate_limit", retry_after="2"), Reply(text="after the wait"))
    response = await rig.send()
    assert response.content == "after the wait"
    assert rig.clock.sleeps == [2.0]
    assert [a.status for a in response.attempts] == ["RateLimitError", "ok"]
    assert len(rig.fake.requests) == 2


async def test_a_vendor_cannot_ask_for_an_endless_wait(rig: Rig) -> None:
    rig.fake.enqueue(Fail("rate_limit", retry_after="1000000000"))
    with pytest.raises(RateLimitError) as caught:
        await rig.vendor.send(rig.ask())
    assert caught.value.retry_after == MAX_VENDOR_DELAY_S


@pytest.mark.parametrize("kind", ["overloaded", "server"])
async def test_server_failures_are_retried(rig: Rig, kind: str) -> None:
    rig.fake.enqueue(Fail(kind), Reply(text="second time lucky"))
    response = await rig.send()
    assert response.content == "second time lucky"
    assert [a.status for a in response.attempts] == ["VendorServerError", "ok"]
    assert response.attempts[0].error
    assert len(rig.clock.sleeps) == 1
    assert len(rig.fake.requests) == 2


STREAM_FAILURES = {
    # a dropped connection / an in-stream error event, and what the dispatcher calls it
    "broken": (BreakStream, "VendorConnectionError"),
    "error_event": (MidStreamError, "VendorServerError"),
}


@pytest.mark.parametrize("failure", list(STREAM_FAILURES))
async def test_stream_failing_before_the_first_token_is_retried(rig: Rig, failure: str) -> None:
    step, status = STREAM_FAILURES[failure]
    rig.fake.enqueue(step(after_chunks=0), Reply(text="clean stream"))
    chunks = await rig.stream()
    assert text_of(chunks) == "clean stream"
    assert chunks[-1].finish_reason == "stop"
    assert rig.statuses == [status, "ok"]
    assert len(rig.clock.sleeps) == 1
    assert len(rig.fake.requests) == 2


@pytest.mark.parametrize("failure", list(STREAM_FAILURES))
async def test_stream_failing_after_text_keeps_the_partial_text(rig: Rig, failure: str) -> None:
    step, _ = STREAM_FAILURES[failure]
    rig.fake.enqueue(step(text="Hello world, this breaks", after_chunks=2, chunk_size=4))
    seen: list[str] = []
    with pytest.raises(StreamInterrupted) as caught:
        async for chunk in rig.dispatcher.stream(rig.ask()):
            seen.append(chunk.delta)
    assert "".join(seen) == "Hello wo"
    assert caught.value.partial_text == "Hello wo"
    assert caught.value.vendor == rig.case.vendor
    assert rig.statuses == ["StreamInterrupted"]
    assert len(rig.fake.requests) == 1  # never replayed
    assert rig.clock.sleeps == []


async def test_auth_failure_is_not_retried(rig: Rig) -> None:
    rig.fake.enqueue(Fail("auth"), Reply(text="must not be reached"))
    with pytest.raises(AuthenticationError) as caught:
        await rig.send()
    error = caught.value
    assert error.vendor == rig.case.vendor
    assert error.retryable is False
    assert [a.status for a in error.attempts] == ["AuthenticationError"]
    assert len(rig.fake.requests) == 1
    assert rig.clock.sleeps == []
    secrets = rig.vendor.secrets()
    assert secrets  # every case sends a key
    for secret in secrets:
        assert secret not in str(error)
        assert secret not in repr(error)
        assert all(secret not in (a.error or "") for a in error.attempts)
