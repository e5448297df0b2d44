"""BedrockVendor beyond the shared behaviour suite: its credential paths, request translation
and error mapping against the strict fake, and its event-stream decoding (our decoder checked
frame for frame against botocore's)."""

from __future__ import annotations

import json
import struct
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer

from llmdispatcher import Request
from llmdispatcher.errors import (
    AuthenticationError,
    ConfigError,
    InvalidRequestError,
    MalformedResponse,
    ModelNotFound,
    RateLimitError,
    ResponseTooLarge,
    UnsupportedRequest,
    VendorConnectionError,
    VendorServerError,
    VendorTimeout,
)
from llmdispatcher.vendors import BedrockVendor, Connection
from llmdispatcher.vendors.eventstream import (
    EventStreamDecoder,
    EventStreamError,
    FrameOverBound,
    encode_message,
)
from llmdispatcher.vendors.transport import BufferedResponse, HttpRequest, HttpResponse
from tests.fakes.bedrock_fake import (
    FAKE_AWS_KEY_ID,
    FAKE_AWS_SECRET,
    FAKE_BEDROCK_API_KEY,
    FakeBedrock,
    adapter_for,
    event,
)
from tests.fakes.script import Fail, Reply

MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"
PNG = "data:image/png;base64,iVBORw0KGgo="
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def ask(text: str = "hi", **kw: Any) -> Request:
    return Request(model=kw.pop("model", MODEL), messages=[{"role": "user", "content": text}], **kw)


@pytest.fixture(autouse=True)
def no_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing from the machine's AWS setup: no variables, no ~/.aws files."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


# --- credentials ----------------------------------------------------------------------------------
async def test_keys_from_the_environment_sign_requests(
    fake_bedrock: FakeBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_AWS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_AWS_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", fake_bedrock.region)
    fake_bedrock.enqueue(Reply(text="signed"))
    vendor = BedrockVendor(endpoint_url=fake_bedrock.url)
    assert (await vendor.send(ask())).content == "signed"
    assert "/bedrock/aws4_request" in fake_bedrock.last_request.headers["authorization"]
    assert FAKE_AWS_SECRET in vendor.secrets()
    await vendor.aclose()


async def test_a_profile_gives_keys_and_region(
    fake_bedrock: FakeBedrock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[team]\naws_access_key_id = {FAKE_AWS_KEY_ID}\n"
        f"aws_secret_access_key = {FAKE_AWS_SECRET}\n"
    )
    config = tmp_path / "config"
    config.write_text(f"[profile team]\nregion = {fake_bedrock.region}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    fake_bedrock.enqueue(Reply(text="from the profile"))
    vendor = BedrockVendor(profile="team", endpoint_url=fake_bedrock.url)
    assert vendor.region == fake_bedrock.region
    assert (await vendor.send(ask())).content == "from the profile"
    await vendor.aclose()


async def test_a_bedrock_api_key_is_a_bearer_token(
    fake_bedrock: FakeBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", FAKE_BEDROCK_API_KEY)
    fake_bedrock.enqueue(Reply(text="by key"))
    vendor = BedrockVendor(region=fake_bedrock.region, endpoint_url=fake_bedrock.url)
    assert (await vendor.send(ask())).content == "by key"
    assert fake_bedrock.last_request.headers["authorization"] == f"Bearer {FAKE_BEDROCK_API_KEY}"
    wrong = BedrockVendor(
        api_key="ABSK-wrong-key-000", region="us-east-1", endpoint_url=fake_bedrock.url
    )
    with pytest.raises(AuthenticationError) as caught:
        await wrong.send(ask())
    assert "ABSK-wrong-key-000" not in str(caught.value)
    await vendor.aclose()
    await wrong.aclose()


async def test_no_credentials_is_an_authentication_error(fake_bedrock: FakeBedrock) -> None:
    vendor = BedrockVendor(region=fake_bedrock.region, endpoint_url=fake_bedrock.url)
    with pytest.raises(AuthenticationError, match="AWS_ACCESS_KEY_ID"):
        await vendor.send(ask())
    assert not (await vendor.health()).ok
    assert fake_bedrock.requests == []


def test_no_region_says_where_to_set_one() -> None:
    with pytest.raises(ConfigError, match="AWS_DEFAULT_REGION"):
        BedrockVendor(api_key="ABSK-x")


def test_from_env_needs_a_key_or_a_region(monkeypatch: pytest.MonkeyPatch) -> None:
    assert BedrockVendor.from_env() is None
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_AWS_KEY_ID)
    assert BedrockVendor.from_env() is None  # keys but no region
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    found = BedrockVendor.from_env()
    assert found is not None
    assert (found.region, found.pricing_name) == ("eu-central-1", "bedrock/eu-central-1")


# --- translation against the strict fake ----------------------------------------------------------
async def test_foreign_tool_ids_are_rewritten_consistently(fake_bedrock: FakeBedrock) -> None:
    vendor = adapter_for(fake_bedrock)
    long_id = "call_abc__ts_" + "x/y+z=" * 20  # a Gemini id with its thought signature
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": long_id, "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": long_id, "content": "sunny"},
    ]
    fake_bedrock.enqueue(Reply(text="ok"))
    await vendor.send(Request(model=MODEL, messages=messages, tools=[TOOL]))
    body = fake_bedrock.last_request.json
    use = body["messages"][1]["content"][0]["toolUse"]
    result = body["messages"][2]["content"][0]["toolResult"]
    assert use["toolUseId"] == result["toolUseId"] != long_id
    assert result["content"] == [{"text": "sunny"}]
    await vendor.aclose()


async def test_json_schema_and_options_pass_botocores_model(fake_bedrock: FakeBedrock) -> None:
    vendor = adapter_for(fake_bedrock)
    fake_bedrock.enqueue(Reply(text='{"a": 1}'))
    schema = {"type": "json_schema", "json_schema": {"name": "A", "schema": {"type": "object"}}}
    request = Request(
        model=MODEL,
        messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}],
        response_format=schema,
        temperature=0.5,
        top_p=0.9,
        max_tokens=50,
        stop=["END"],
        extra={"additionalModelRequestFields": {"top_k": 5}},
    )
    assert (await vendor.send(request)).content == '{"a": 1}'
    body = fake_bedrock.last_request.json
    assert body["inferenceConfig"] == {
        "maxTokens": 50,
        "temperature": 0.5,
        "topP": 0.9,
        "stopSequences": ["END"],
    }
    structure = body["outputConfig"]["textFormat"]["structure"]["jsonSchema"]
    assert json.loads(structure["schema"]) == {"type": "object"}
    assert body["additionalModelRequestFields"] == {"top_k": 5}
    assert body["system"] == [{"text": "Be terse."}]
    await vendor.aclose()


@pytest.mark.parametrize(
    ("request_kw", "match"),
    [
        ({"temperature": 1.5}, "0 to 1"),
        ({"tools": [TOOL], "tool_choice": "none"}, "no 'none'"),
        ({"response_format": {"type": "json_object"}, "tools": [TOOL]}, "forced tool"),
    ],
)
async def test_refused_before_sending(
    fake_bedrock: FakeBedrock, request_kw: dict[str, Any], match: str
) -> None:
    vendor = adapter_for(fake_bedrock)
    with pytest.raises(UnsupportedRequest, match=match):
        await vendor.send(ask(**request_kw))
    assert fake_bedrock.requests == []


async def test_images_by_data_uri_or_s3_only(fake_bedrock: FakeBedrock) -> None:
    vendor = adapter_for(fake_bedrock)

    def with_image(url: str) -> Request:
        parts = [{"type": "text", "text": "see"}, {"type": "image_url", "image_url": {"url": url}}]
        return Request(model=MODEL, messages=[{"role": "user", "content": parts}])

    fake_bedrock.enqueue(Reply(text="a bucket image"))
    await vendor.send(with_image("s3://bucket/cat.jpg"))
    image = fake_bedrock.last_request.json["messages"][0]["content"][1]["image"]
    assert image == {"format": "jpeg", "source": {"s3Location": {"uri": "s3://bucket/cat.jpg"}}}
    with pytest.raises(UnsupportedRequest, match="data: URIs or s3://"):
        await vendor.send(with_image("https://example.com/cat.png"))
    with pytest.raises(UnsupportedRequest, match="image/bmp"):
        await vendor.send(with_image("data:image/bmp;base64,Qk0="))
    await vendor.aclose()


async def test_a_model_arn_travels_as_one_segment(fake_bedrock: FakeBedrock) -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-v1:0"
    fake_bedrock.models.append(arn)
    vendor = adapter_for(fake_bedrock)
    fake_bedrock.enqueue(Reply(text="via a profile"))
    try:
        assert (await vendor.send(ask(model=arn))).content == "via a profile"
    finally:
        fake_bedrock.models.remove(arn)
    assert fake_bedrock.last_request.target == (
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile"
        "%2Fus.anthropic.claude-v1%3A0/converse"
    )
    await vendor.aclose()


@pytest.mark.parametrize(
    ("kind", "error", "retryable"),
    [
        ("quota", RateLimitError, False),
        ("timeout", VendorTimeout, True),
        ("not_found", ModelNotFound, False),
        ("context_length", InvalidRequestError, False),
        ("overloaded", VendorServerError, True),
    ],
)
async def test_error_types(
    fake_bedrock: FakeBedrock, kind: str, error: type[Exception], retryable: bool
) -> None:
    vendor = adapter_for(fake_bedrock)
    fake_bedrock.enqueue(Fail(kind))
    with pytest.raises(error) as caught:
        await vendor.send(ask())
    assert type(caught.value) is error
    assert caught.value.retryable is retryable  # type: ignore[attr-defined]
    assert caught.value.request_id  # type: ignore[attr-defined]  # x-amzn-RequestId
    await vendor.aclose()


# --- answers through the transport seam ----------------------------------------------------------
class Canned:
    """A transport answering one canned response (the documented ``Transport`` seam)."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.answer = BufferedResponse(status, headers or {}, body)

    async def handle_async_request(self, request: HttpRequest) -> HttpResponse:
        return self.answer

    async def aclose(self) -> None:
        return None


def canned_vendor(status: int, body: bytes, headers: dict[str, str] | None = None) -> BedrockVendor:
    return BedrockVendor(
        api_key="ABSK-test",
        region="us-east-1",
        connection=Connection(transport=Canned(status, body, headers)),
    )


async def test_a_model_error_424_is_a_retryable_server_error() -> None:
    vendor = canned_vendor(
        424,
        b'{"message": "Received error from the model", "originalStatusCode": 500}',
        {"x-amzn-ErrorType": "ModelErrorException:http://internal.amazon.com/coral/"},
    )
    with pytest.raises(VendorServerError) as caught:
        await vendor.send(ask())
    assert (caught.value.retryable, caught.value.error_type) == (True, "ModelErrorException")


async def test_a_corrupt_frame_is_a_malformed_answer() -> None:
    frame = bytearray(event("messageStart", {"role": "assistant"}))
    frame[-1] ^= 0xFF
    with pytest.raises(MalformedResponse, match="CRC"):
        [c async for c in canned_vendor(200, bytes(frame)).stream(ask())]


async def test_a_stream_without_metadata_is_incomplete() -> None:
    frames = event("messageStart", {"role": "assistant"}) + event(
        "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}}
    )
    frames += event("messageStop", {"stopReason": "end_turn"})
    with pytest.raises(VendorConnectionError, match="metadata"):
        [c async for c in canned_vendor(200, frames).stream(ask())]


async def test_a_malformed_tool_use_stop_is_retryable() -> None:
    message = {"output": {"message": {"role": "assistant", "content": []}}}
    body = json.dumps({**message, "stopReason": "malformed_tool_use", "usage": {}}).encode()
    with pytest.raises(VendorServerError) as caught:
        await canned_vendor(200, body).send(ask())
    assert caught.value.retryable


# --- the event-stream decoder -----------------------------------------------------------------
def typed_frame() -> bytes:
    """A frame with a header of every value type, built by hand (as botocore documents it)."""

    def header(name: str, kind: int, value: bytes) -> bytes:
        return bytes([len(name)]) + name.encode() + bytes([kind]) + value

    headers = b"".join(
        [
            header("t", 0, b""),
            header("f", 1, b""),
            header("i8", 2, struct.pack(">b", -5)),
            header("i16", 3, struct.pack(">h", 300)),
            header("i32", 4, struct.pack(">i", -70000)),
            header("i64", 5, struct.pack(">q", 2**40)),
            header("raw", 6, struct.pack(">H", 3) + b"\x00\x01\x02"),
            header("s", 7, struct.pack(">H", 5) + b"h\xc3\xa9ll"),
            header("ts", 8, struct.pack(">q", 1_700_000_000_000)),
            header("id", 9, uuid.UUID(int=7).bytes),
        ]
    )
    payload = b'{"x": 1}'
    prelude = struct.pack(">II", 12 + len(headers) + len(payload) + 4, len(headers))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + payload
    return head + struct.pack(">I", zlib.crc32(head))


def test_every_header_type_decodes_as_botocore_decodes_it() -> None:
    frame = typed_frame()
    ours = next(iter(EventStreamDecoder().feed(frame)))
    buffer = EventStreamBuffer()
    buffer.add_data(frame)
    theirs = next(iter(buffer))
    assert ours.payload == theirs.payload
    assert set(ours.headers) == set(theirs.headers)
    for name in ("t", "f", "i8", "i16", "i32", "i64", "raw", "s"):
        assert ours.headers[name] == theirs.headers[name], name
    assert ours.headers["id"] == uuid.UUID(int=7)


def test_frames_split_anywhere_decode_whole() -> None:
    frames = [encode_message({":event-type": f"e{i}"}, b"x" * i) for i in range(5)]
    data = b"".join(frames)
    for cut in range(1, len(data)):
        decoder = EventStreamDecoder()
        got = [*decoder.feed(data[:cut]), *decoder.feed(data[cut:])]
        assert [m.header(":event-type") for m in got] == [f"e{i}" for i in range(5)]
        assert decoder.pending == 0


def test_bad_frames_are_refused() -> None:
    good = encode_message({":event-type": "x"}, b"{}")
    bad_prelude = bytearray(good)
    bad_prelude[9] ^= 1
    with pytest.raises(EventStreamError, match="prelude CRC"):
        list(EventStreamDecoder().feed(bytes(bad_prelude)))
    huge = struct.pack(">II", 12 + 4 + 25 * 2**20, 0)
    with pytest.raises(FrameOverBound):
        list(EventStreamDecoder().feed(huge + struct.pack(">I", zlib.crc32(huge))))
    assert issubclass(FrameOverBound, ValueError)


async def test_an_oversized_frame_is_response_too_large() -> None:
    huge = struct.pack(">II", 12 + 4 + 25 * 2**20, 0)
    with pytest.raises(ResponseTooLarge):
        [
            c
            async for c in canned_vendor(200, huge + struct.pack(">I", zlib.crc32(huge))).stream(
                ask()
            )
        ]


async def test_streamed_tool_call_without_input_gets_empty_arguments() -> None:
    start = {"toolUse": {"toolUseId": "tooluse_1", "name": "f"}}
    frames = b"".join(
        [
            event("messageStart", {"role": "assistant"}),
            event("contentBlockStart", {"contentBlockIndex": 0, "start": start}),
            event("contentBlockStop", {"contentBlockIndex": 0}),
            event("messageStop", {"stopReason": "tool_use"}),
            event("metadata", {"usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4}}),
        ]
    )
    chunks = [c async for c in canned_vendor(200, frames).stream(ask(tools=[TOOL]))]
    pieces = [d for c in chunks for d in c.tool_call_deltas]
    assert [(d.id, d.name, d.arguments) for d in pieces] == [
        ("tooluse_1", "f", ""),
        (None, None, "{}"),
    ]
    assert chunks[-1].finish_reason == "tool_calls"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 4


def test_secrets_and_repr(fake_bedrock: FakeBedrock) -> None:
    vendor = BedrockVendor(api_key=FAKE_BEDROCK_API_KEY, region="eu-west-3")
    assert vendor.secrets() == (FAKE_BEDROCK_API_KEY,)
    assert FAKE_BEDROCK_API_KEY not in repr(vendor)
    assert vendor.base_url == "https://bedrock-runtime.eu-west-3.amazonaws.com"
    assert vendor.serves(MODEL)
    assert vendor.serves("us.amazon.nova-pro-v1:0")
    assert not vendor.serves("gpt-4o")


async def test_list_models_reads_the_control_plane(fake_bedrock: FakeBedrock) -> None:
    vendor = adapter_for(fake_bedrock)
    models = await vendor.list_models()
    assert MODEL in models
    assert "amazon.nova-micro-v1:0" in models
    assert all(not m.startswith("us.") for m in models)
    request = fake_bedrock.last_request
    assert request.query == {"byOutputModality": "TEXT", "byInferenceType": "ON_DEMAND"}
    await vendor.aclose()
