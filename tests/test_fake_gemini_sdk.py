"""The fake Gemini server is faithful: the official ``google-genai`` SDK talks to it like to the
real API (sync, async, streaming, function calling with thought signatures, errors)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import httpx2
import pytest
from google import genai
from google.genai import errors, types

from tests.fakes.fixtures_gemini import FAKE_GEMINI_KEY as KEY
from tests.fakes.gemini_fake import FakeGemini
from tests.fakes.script import BreakStream, Fail, MidStreamError, Reply, ToolCallSpec

MODEL = "gemini-2.5-flash"
NO_AFC = types.AutomaticFunctionCallingConfig(disable=True)
WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Weather for a city",
    parameters_json_schema={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "additionalProperties": False,
    },
)
TIME = types.FunctionDeclaration(name="get_time", parameters=types.Schema(type="OBJECT"))
TOOLS_CONFIG = types.GenerateContentConfig(
    tools=[types.Tool(function_declarations=[WEATHER, TIME])], automatic_function_calling=NO_AFC
)


def make_client(fake: FakeGemini, key: str = KEY, version: str | None = "v1beta") -> genai.Client:
    # google-genai does not retry unless HttpOptions.retry_options is set
    options = types.HttpOptions(base_url=fake.url, api_version=version)
    return genai.Client(api_key=key, http_options=options)


@pytest.fixture
def client(fake_gemini: FakeGemini) -> Iterator[genai.Client]:
    c = make_client(fake_gemini)
    yield c
    c.close()


def raw_post(fake: FakeGemini, path: str, body: Any, key: str | None = KEY) -> httpx.Response:
    headers = {"x-goog-api-key": key} if key else {}
    return httpx.post(fake.url + path, json=body, headers=headers, timeout=5)


def user(text: str = "hi") -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


# --------------------------------------------------------------------------- success paths
def test_generate_content_text_usage_and_wire(
    fake_gemini: FakeGemini, client: genai.Client
) -> None:
    fake_gemini.enqueue(
        Reply(
            text="Bonjour",
            prompt_tokens=11,
            completion_tokens=9,
            cached_tokens=4,
            reasoning_tokens=3,
            headers={"x-extra": "yes"},
        )
    )
    config = types.GenerateContentConfig(
        system_instruction="Be brief.",
        temperature=0.2,
        top_p=0.9,
        max_output_tokens=50,
        stop_sequences=["END"],
        thinking_config=types.ThinkingConfig(thinking_budget=0),
    )
    done = client.models.generate_content(model=MODEL, contents="Say hi", config=config)
    assert done.text == "Bonjour"
    assert done.candidates is not None
    assert done.candidates[0].finish_reason == types.FinishReason.STOP
    assert done.model_version == MODEL
    assert done.response_id
    usage = done.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count) == (11, 6)
    assert (usage.thoughts_token_count, usage.cached_content_token_count) == (3, 4)
    assert usage.total_token_count == 20
    assert done.sdk_http_response is not None
    assert done.sdk_http_response.headers is not None
    assert done.sdk_http_response.headers["x-extra"] == "yes"
    sent = fake_gemini.last_request
    assert (sent.method, sent.path, sent.query) == (
        "POST",
        f"/v1beta/models/{MODEL}:generateContent",
        {},
    )
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.json["contents"] == [user("Say hi")]
    assert sent.json["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    # the SDK mixes camelCase and snake_case; the proto-JSON parser takes both
    assert sent.json["generationConfig"]["thinkingConfig"] == {"thinking_budget": 0}
    assert sent.json["generationConfig"]["stopSequences"] == ["END"]


def test_sdk_default_api_version_is_v1(fake_gemini: FakeGemini) -> None:
    with make_client(fake_gemini, version=None) as c:
        assert c.models.generate_content(model=MODEL, contents="hi").text
    assert fake_gemini.last_request.path == f"/v1/models/{MODEL}:generateContent"


@pytest.mark.parametrize(
    ("finish", "expected"),
    [("stop", "STOP"), ("length", "MAX_TOKENS"), ("content_filter", "SAFETY")],
)
def test_finish_reasons(
    fake_gemini: FakeGemini, client: genai.Client, finish: str, expected: str
) -> None:
    fake_gemini.enqueue(Reply(text="partial", finish=finish), Reply(text="partial", finish=finish))
    done = client.models.generate_content(model=MODEL, contents="hi")
    assert done.candidates is not None
    assert done.candidates[0].finish_reason == expected
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="hi"))
    assert chunks[-1].candidates is not None
    assert chunks[-1].candidates[0].finish_reason == expected
    assert all(c.candidates and c.candidates[0].finish_reason is None for c in chunks[:-1])


def test_blocked_prompt_has_prompt_feedback_and_no_candidates(
    fake_gemini: FakeGemini, client: genai.Client
) -> None:
    fake_gemini.enqueue(Reply(text="", finish="content_filter"))
    done = client.models.generate_content(model=MODEL, contents="something bad")
    assert not done.candidates
    assert done.prompt_feedback is not None
    assert done.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    assert done.text is None


def test_stream_sse_text_usage_and_framing(fake_gemini: FakeGemini, client: genai.Client) -> None:
    text = "The quick brown fox jumps over the lazy dog"
    fake_gemini.enqueue(Reply(text=text, chunk_size=5, prompt_tokens=7, completion_tokens=10))
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="hi"))
    assert "".join(c.text or "" for c in chunks) == text
    assert len(chunks) == 10  # 9 text deltas + the finishing chunk with empty text
    last = chunks[-1]
    assert last.usage_metadata is not None
    assert (last.usage_metadata.prompt_token_count, last.usage_metadata.total_token_count) == (
        7,
        17,
    )
    assert chunks[0].usage_metadata is not None
    assert chunks[0].usage_metadata.candidates_token_count is None  # running counts only
    assert len({c.response_id for c in chunks}) == 1
    sent = fake_gemini.last_request
    assert (sent.path, sent.query) == (
        f"/v1beta/models/{MODEL}:streamGenerateContent",
        {"alt": "sse"},
    )
    fake_gemini.enqueue(Reply(text="abcdefgh"))
    with httpx.stream(
        "POST",
        fake_gemini.url + f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
        json={"contents": [user()]},
        headers={"x-goog-api-key": KEY},
    ) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        raw = resp.read()
    events = raw.split(b"\r\n\r\n")
    assert events[-1] == b""  # every event ends with \r\n\r\n; no [DONE]
    assert all(e.startswith(b"data: {") for e in events[:-1])
    assert b"[DONE]" not in raw


def test_stream_without_alt_sse_is_one_json_array(fake_gemini: FakeGemini) -> None:
    fake_gemini.enqueue(Reply(text="abcdefgh", chunk_size=4))
    resp = raw_post(
        fake_gemini, f"/v1beta/models/{MODEL}:streamGenerateContent", {"contents": [user()]}
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.content.startswith(b"[{")
    assert resp.content.endswith(b"}\n]")
    assert b"\n,\r\n" in resp.content
    items = json.loads(resp.content)
    texts = [p["text"] for i in items for p in i["candidates"][0]["content"]["parts"]]
    assert "".join(texts) == "abcdefgh"
    assert items[-1]["candidates"][0]["finishReason"] == "STOP"
    fake_gemini.enqueue(MidStreamError(text="abcdefgh", after_chunks=1))
    resp = raw_post(
        fake_gemini, f"/v1beta/models/{MODEL}:streamGenerateContent", {"contents": [user()]}
    )
    items = json.loads(resp.content)  # still one valid array, the error is its last element
    assert items[-1]["error"]["status"] == "INTERNAL"
    assert len(items) == 2


async def test_async_client_streams(fake_gemini: FakeGemini) -> None:
    fake_gemini.enqueue(Reply(text="async works", chunk_size=3), BreakStream(after_chunks=1))
    c = make_client(fake_gemini)
    stream = await c.aio.models.generate_content_stream(model=MODEL, contents="hi")
    got = [chunk.text or "" async for chunk in stream]
    assert "".join(got) == "async works"
    broken = await c.aio.models.generate_content_stream(model=MODEL, contents="hi")
    partial: list[str] = []
    with pytest.raises(aiohttp.ClientPayloadError):  # the async client uses aiohttp when present
        async for chunk in broken:
            partial.append(chunk.text or "")
    await c.aio.aclose()
    assert partial == ["Hell"]


# ---------------------------------------------------------------------------- tools
def test_function_calls_and_round_trip_with_thought_signatures(
    fake_gemini: FakeGemini, client: genai.Client
) -> None:
    specs = [ToolCallSpec("get_weather", {"city": "Paris"}), ToolCallSpec("get_time", {})]
    fake_gemini.enqueue(Reply(text="", tool_calls=specs, finish="tool_calls"))
    done = client.models.generate_content(model=MODEL, contents="weather?", config=TOOLS_CONFIG)
    assert done.function_calls is not None
    assert [(c.name, c.args) for c in done.function_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {}),
    ]
    assert done.candidates is not None
    content = done.candidates[0].content
    assert content is not None
    assert content.parts is not None
    assert done.candidates[0].finish_reason == types.FinishReason.STOP  # no tool finish value
    assert content.parts[0].thought_signature  # only the first call of a step is signed
    assert content.parts[1].thought_signature is None
    sent_tools = fake_gemini.last_request.json["tools"][0]["functionDeclarations"]
    assert sent_tools[0]["parameters_json_schema"]["additionalProperties"] is False
    fake_gemini.require_thought_signatures = True
    responses = [
        types.Part.from_function_response(name="get_weather", response={"temp": 18}),
        types.Part.from_function_response(name="get_time", response={"time": "noon"}),
    ]
    history = [
        types.Content(role="user", parts=[types.Part(text="weather?")]),
        content,
        types.Content(role="user", parts=responses),
    ]
    follow = client.models.generate_content(model=MODEL, contents=history, config=TOOLS_CONFIG)
    assert follow.text == "Hello from the fake"
    echoed = fake_gemini.last_request.json["contents"][1]["parts"][0]
    assert echoed["functionCall"]["name"] == "get_weather"
    assert echoed["thoughtSignature"]  # the SDK echoes it (URL-safe base64)


def test_missing_or_forged_thought_signature_is_rejected(
    fake_gemini: FakeGemini, client: genai.Client
) -> None:
    fake_gemini.require_thought_signatures = True
    call = types.Part(function_call=types.FunctionCall(name="get_time", args={}))
    history = [
        types.Content(role="user", parts=[types.Part(text="time?")]),
        types.Content(role="model", parts=[call]),
        types.Content(
            role="user", parts=[types.Part.from_function_response(name="get_time", response={})]
        ),
    ]
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=MODEL, contents=history, config=TOOLS_CONFIG)
    assert info.value.code == 400
    assert "missing a `thought_signature`" in str(info.value.message)
    call.thought_signature = b"not issued by the fake"
    with pytest.raises(errors.ClientError, match="Corrupted thought signature"):
        client.models.generate_content(model=MODEL, contents=history, config=TOOLS_CONFIG)


def test_streamed_function_call_arrives_whole(
    fake_gemini: FakeGemini, client: genai.Client
) -> None:
    specs = [ToolCallSpec("get_weather", {"city": "Oslo"}), ToolCallSpec("get_weather", {})]
    fake_gemini.enqueue(Reply(text="Checking.", tool_calls=specs, finish="tool_calls"))
    chunks = list(
        client.models.generate_content_stream(model=MODEL, contents="hi", config=TOOLS_CONFIG)
    )
    with_calls = [c for c in chunks if c.function_calls]
    assert len(with_calls) == 1  # parallel calls share one chunk
    assert [c.args for c in with_calls[0].function_calls or []] == [{"city": "Oslo"}, {}]
    assert "".join(c.text or "" for c in chunks if not c.function_calls) == "Checking."


# ------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"contents": [user()], "bogus": 1}, 'Unknown name "bogus": Cannot find field.'),
        (
            {"contents": [{"role": "user", "parts": [{"txt": "hi"}]}]},
            "Unknown name \"txt\" at 'contents[0].parts[0]': Cannot find field.",
        ),
        (
            {"contents": [user()], "generationConfig": {"max_tokens": 5}},
            "Unknown name \"max_tokens\" at 'generation_config'",
        ),
        (
            {
                "contents": [user()],
                "tools": [
                    {
                        "functionDeclarations": [
                            {
                                "name": "f",
                                "parameters": {"type": "object", "additionalProperties": False},
                            }
                        ]
                    }
                ],
            },
            'Unknown name "additionalProperties"',
        ),
        (
            {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
            "valid role: user, model",
        ),
        ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "valid role: user, model"),
        ({"contents": []}, "contents is not specified"),
        ({}, "contents is not specified"),
        ({"contents": [{"role": "user", "parts": []}]}, "contents.parts must not be empty"),
        (
            {"contents": [{"role": "user", "parts": [{"thought": True}]}]},
            "required oneof field 'data'",
        ),
        (
            {"contents": [{"role": "user", "parts": [{"text": "a", "inlineData": {}}]}]},
            "oneof field 'data' is already set",
        ),
        (
            {"contents": [user()], "generationConfig": {"stopSequences": list("abcdef")}},
            "at most 5",
        ),
        (
            {"contents": [user()], "generationConfig": {"responseJsonSchema": {"type": "object"}}},
            "response_mime_type",
        ),
        (
            {"contents": [user()], "generationConfig": {"temperature": "hot"}},
            "Invalid value at 'generation_config.temperature' (TYPE_FLOAT)",
        ),
    ],
)
def test_strict_validation(fake_gemini: FakeGemini, body: dict[str, Any], message: str) -> None:
    resp = raw_post(fake_gemini, f"/v1beta/models/{MODEL}:generateContent", body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert message in error["message"]


CALL_TURN = {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]}


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        (
            [
                user(),
                CALL_TURN,
                {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": "18C"}}]},
            ],
            "Invalid value at 'contents[2].parts[0].function_response.response'",
        ),
        (
            [
                user(),
                CALL_TURN,
                {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": [1]}}]},
            ],
            "Invalid value at 'contents[2].parts[0].function_response.response'",
        ),
        (
            [
                user(),
                {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]},
            ],
            "function response turn comes immediately after a function call turn",
        ),
        (
            [user(), {"role": "model", "parts": [{"text": "x"}]}, CALL_TURN],
            "function call turn comes immediately after a user turn",
        ),
        (
            [
                user(),
                {"role": "model", "parts": [CALL_TURN["parts"][0], CALL_TURN["parts"][0]]},
                {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]},
            ],
            "number of function response parts is equal to the number of function call parts",
        ),
    ],
)
def test_function_turn_rules(
    fake_gemini: FakeGemini, contents: list[dict[str, Any]], message: str
) -> None:
    resp = raw_post(fake_gemini, f"/v1/models/{MODEL}:generateContent", {"contents": contents})
    assert resp.status_code == 400
    assert message in resp.json()["error"]["message"]


def test_valid_function_round_trip_and_snake_case_are_accepted(fake_gemini: FakeGemini) -> None:
    contents = [
        user(),
        CALL_TURN,
        {"role": "user", "parts": [{"function_response": {"name": "f", "response": {"r": 1}}}]},
    ]
    resp = raw_post(fake_gemini, f"/v1/models/{MODEL}:generateContent", {"contents": contents})
    assert resp.status_code == 200, resp.text


# ------------------------------------------------------------------------------ auth
def test_auth_missing_wrong_and_query_key(fake_gemini: FakeGemini) -> None:
    path = f"/v1beta/models/{MODEL}:generateContent"
    missing = raw_post(fake_gemini, path, {"contents": [user()]}, key=None)
    assert missing.status_code == 403
    assert missing.json()["error"]["status"] == "PERMISSION_DENIED"
    assert "unregistered callers" in missing.json()["error"]["message"]
    with (
        make_client(fake_gemini, key="AIzaSy-wrong-key") as c,
        pytest.raises(errors.ClientError) as info,
    ):
        c.models.generate_content(model=MODEL, contents="hi")
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    details = info.value.details["error"]["details"]
    assert details[0]["reason"] == "API_KEY_INVALID"
    assert "AIzaSy-wrong-key" not in str(info.value)
    by_query = httpx.post(
        fake_gemini.url + path + f"?key={KEY}", json={"contents": [user()]}, timeout=5
    )
    assert by_query.status_code == 200  # the real API takes ?key= too (our adapter never does)


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kind", "exc", "code", "status"),
    [
        ("rate_limit", errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
        ("quota", errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
        ("server", errors.ServerError, 500, "INTERNAL"),
        ("overloaded", errors.ServerError, 503, "UNAVAILABLE"),
        ("auth", errors.ClientError, 400, "INVALID_ARGUMENT"),
        ("bad_request", errors.ClientError, 400, "INVALID_ARGUMENT"),
        ("not_found", errors.ClientError, 404, "NOT_FOUND"),
        ("context_length", errors.ClientError, 400, "INVALID_ARGUMENT"),
        ("timeout", errors.ServerError, 504, "DEADLINE_EXCEEDED"),
        ("conflict", errors.ClientError, 409, "ABORTED"),
    ],
)
def test_fail_kinds_raise_sdk_classes(
    fake_gemini: FakeGemini,
    client: genai.Client,
    kind: str,
    exc: type[errors.APIError],
    code: int,
    status: str,
) -> None:
    fake_gemini.enqueue(Fail(kind))
    with pytest.raises(exc) as info:
        client.models.generate_content(model=MODEL, contents="hi")
    err = info.value
    assert type(err) is exc
    assert (err.code, err.status) == (code, status)
    assert set(err.details["error"]) <= {"code", "message", "status", "details"}
    assert err.message
    assert len(fake_gemini.requests) == 1  # no SDK retries
    if kind == "not_found":
        assert f"models/{MODEL} is not found for API version v1beta" in err.message
    if kind == "context_length":
        assert "exceeds the maximum number of tokens allowed" in err.message


def test_rate_limit_carries_quota_failure_and_retry_info(
    fake_gemini: FakeGemini, client: genai.Client
) -> None:
    fake_gemini.enqueue(Fail("rate_limit", retry_after="37s"), Fail("quota"), Fail("rate_limit"))
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=MODEL, contents="hi")
    details = {d["@type"].rsplit(".", 1)[-1]: d for d in info.value.details["error"]["details"]}
    assert details["RetryInfo"]["retryDelay"] == "37s"
    assert "PerMinute" in details["QuotaFailure"]["violations"][0]["quotaId"]
    assert "retry-after" not in info.value.response.headers  # the hint is in the body only
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=MODEL, contents="hi")
    kinds = [d["@type"] for d in info.value.details["error"]["details"]]
    assert not any(k.endswith("RetryInfo") for k in kinds)  # unscripted: no hint
    quota = info.value.details["error"]["details"][1]["violations"][0]
    assert "PerDay" in quota["quotaId"]
    fake_gemini.default_retry_delay = "52s"
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=MODEL, contents="hi")
    assert info.value.details["error"]["details"][-1]["retryDelay"] == "52s"


def test_mid_stream_error_raises_server_error(
    fake_gemini: FakeGemini, client: genai.Client
) -> None:
    fake_gemini.enqueue(MidStreamError(text="abcdefghijkl", after_chunks=2, kind="overloaded"))
    got: list[str] = []
    with pytest.raises(errors.ServerError) as info:
        got.extend(
            c.text or "" for c in client.models.generate_content_stream(model=MODEL, contents="hi")
        )
    assert "".join(got) == "abcdefgh"
    assert (info.value.code, info.value.status) == (503, "UNAVAILABLE")


def test_break_stream_lets_the_transport_error_through(
    fake_gemini: FakeGemini, client: genai.Client
) -> None:
    fake_gemini.enqueue(BreakStream(text="abcdefghijkl", after_chunks=1))
    got: list[str] = []
    with pytest.raises(httpx2.RemoteProtocolError):  # google-genai 3.x sends through httpx2
        got.extend(
            c.text or "" for c in client.models.generate_content_stream(model=MODEL, contents="hi")
        )
    assert got == ["abcd"]


def test_scripted_fail_wins_over_auth_and_validation(fake_gemini: FakeGemini) -> None:
    fake_gemini.enqueue(Fail("server"), Reply(text="never"))
    with make_client(fake_gemini, key="AIzaSy-bad") as c:
        with pytest.raises(errors.ServerError):
            c.models.generate_content(model=MODEL, contents="hi")
        with pytest.raises(errors.ClientError) as info:  # a Reply needs an acceptable request
            c.models.generate_content(model=MODEL, contents="hi")
    assert info.value.code == 400
    assert fake_gemini.pending == 1


# ---------------------------------------------------------------------------- models
def test_list_and_get_models(fake_gemini: FakeGemini, client: genai.Client) -> None:
    names = [m.name for m in client.models.list()]
    assert names == [f"models/{m}" for m in fake_gemini.models]
    model = client.models.get(model=MODEL)
    assert model.supported_actions is not None
    assert "generateContent" in model.supported_actions
    with pytest.raises(errors.ClientError) as info:
        client.models.get(model="gemini-nope")
    assert info.value.code == 404
    page = httpx.get(
        fake_gemini.url + "/v1beta/models?pageSize=2", headers={"x-goog-api-key": KEY}
    ).json()
    assert len(page["models"]) == 2
    assert page["nextPageToken"]


def test_logprobs(fake_gemini: FakeGemini, client: genai.Client) -> None:
    fake_gemini.enqueue(Reply(text="Hi there", chunk_size=4), Reply(text="Hi there", chunk_size=4))
    config = types.GenerateContentConfig(response_logprobs=True, logprobs=2)
    done = client.models.generate_content(model=MODEL, contents="Say hi", config=config)
    result = done.candidates[0].logprobs_result  # type: ignore[index]
    assert result is not None
    assert [c.token for c in result.chosen_candidates or ()] == ["Hi t", "here"]
    assert len((result.top_candidates or [])[0].candidates or ()) == 2
    streamed: list[str | None] = []
    for part in client.models.generate_content_stream(
        model=MODEL, contents="Say hi", config=config
    ):
        found = part.candidates[0].logprobs_result if part.candidates else None
        streamed += [c.token for c in (found.chosen_candidates or ())] if found else []
    assert streamed == ["Hi t", "here"]
