"""The fake Bedrock server, proven with the official boto3 ``bedrock-runtime`` client: what the
SDK sends (SigV4 signed by botocore, the body it serialises) the fake accepts, and what the fake
answers (JSON, binary event-stream frames, errors) the SDK parses into the documented shapes."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

from tests.fakes.bedrock_fake import FAKE_AWS_KEY_ID, FAKE_AWS_SECRET, FakeBedrock
from tests.fakes.script import Fail, MidStreamError, Reply, ToolCallSpec

MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489")


def client_for(fake: FakeBedrock, secret: str = FAKE_AWS_SECRET, region: str = "") -> Any:
    return boto3.client(
        "bedrock-runtime",
        region_name=region or fake.region,
        endpoint_url=fake.url,
        aws_access_key_id=FAKE_AWS_KEY_ID,
        aws_secret_access_key=secret,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


@pytest.fixture
def client(fake_bedrock: FakeBedrock) -> Any:
    return client_for(fake_bedrock)


def ask(text: str = "hi") -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


def test_converse_text_and_usage(fake_bedrock: FakeBedrock, client: Any) -> None:
    fake_bedrock.enqueue(
        Reply(text="Hello!", prompt_tokens=11, completion_tokens=3, cached_tokens=4)
    )
    out = client.converse(
        modelId=MODEL,
        messages=ask(),
        system=[{"text": "Be brief."}],
        inferenceConfig={"maxTokens": 64, "temperature": 0.2},
    )
    assert out["output"]["message"]["content"] == [{"text": "Hello!"}]
    assert out["stopReason"] == "end_turn"
    assert out["usage"]["inputTokens"] == 7
    assert out["usage"]["cacheReadInputTokens"] == 4
    sent = fake_bedrock.last_request
    assert sent.target == "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"
    assert sent.headers["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={FAKE_AWS_KEY_ID}/"
    )
    assert "/us-east-1/bedrock/aws4_request" in sent.headers["authorization"]
    assert sent.json["system"] == [{"text": "Be brief."}]


def test_converse_stream_frames(fake_bedrock: FakeBedrock, client: Any) -> None:
    fake_bedrock.enqueue(Reply(text="Streaming here", chunk_size=5))
    events = list(client.converse_stream(modelId=MODEL, messages=ask())["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart"
    assert kinds[-2:] == ["messageStop", "metadata"]
    text = "".join(
        e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e
    )
    assert text == "Streaming here"
    assert events[-1]["metadata"]["usage"]["outputTokens"] == 12
    assert fake_bedrock.last_request.target.endswith("%3A0/converse-stream")


def test_tool_round_trip_with_image(fake_bedrock: FakeBedrock, client: Any) -> None:
    fake_bedrock.enqueue(
        Reply(
            text="",
            tool_calls=[ToolCallSpec("get_weather", {"city": "Paris"})],
            finish="tool_calls",
        ),
        Reply(text="18C"),
    )
    tools = {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "Weather",
                    "inputSchema": {
                        "json": {"type": "object", "properties": {"city": {"type": "string"}}}
                    },
                }
            }
        ],
        "toolChoice": {"auto": {}},
    }
    question = {
        "role": "user",
        "content": [{"text": "Weather?"}, {"image": {"format": "png", "source": {"bytes": PNG}}}],
    }
    first = client.converse(modelId=MODEL, messages=[question], toolConfig=tools)
    assert first["stopReason"] == "tool_use"
    use = first["output"]["message"]["content"][0]["toolUse"]
    assert use["input"] == {"city": "Paris"}
    result = {"toolResult": {"toolUseId": use["toolUseId"], "content": [{"json": {"t": 18}}]}}
    messages = [question, first["output"]["message"], {"role": "user", "content": [result]}]
    final = client.converse(modelId=MODEL, messages=messages, toolConfig=tools)
    assert final["output"]["message"]["content"] == [{"text": "18C"}]


def test_streamed_tool_call(fake_bedrock: FakeBedrock, client: Any) -> None:
    spec = ToolCallSpec("get_weather", {"city": "Paris"})
    fake_bedrock.enqueue(Reply(text="", tool_calls=[spec], finish="tool_calls", chunk_size=4))
    tools = {
        "tools": [
            {"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}
        ]
    }
    events = list(client.converse_stream(modelId=MODEL, messages=ask(), toolConfig=tools)["stream"])
    start = next(e["contentBlockStart"] for e in events if "contentBlockStart" in e)
    assert start["start"]["toolUse"]["name"] == "get_weather"
    pieces = [
        e["contentBlockDelta"]["delta"]["toolUse"]["input"]
        for e in events
        if "contentBlockDelta" in e
    ]
    assert json.loads("".join(pieces)) == {"city": "Paris"}
    assert next(e for e in events if "messageStop" in e)["messageStop"]["stopReason"] == "tool_use"


@pytest.mark.parametrize(
    ("kind", "code", "status"),
    [
        ("rate_limit", "ThrottlingException", 429),
        ("server", "InternalServerException", 500),
        ("overloaded", "ServiceUnavailableException", 503),
        ("auth", "UnrecognizedClientException", 403),
        ("not_found", "ResourceNotFoundException", 404),
        ("timeout", "ModelTimeoutException", 408),
    ],
)
def test_errors_parse_into_sdk_codes(
    fake_bedrock: FakeBedrock, client: Any, kind: str, code: str, status: int
) -> None:
    fake_bedrock.enqueue(Fail(kind))
    with pytest.raises(ClientError) as caught:
        client.converse(modelId=MODEL, messages=ask())
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_mid_stream_exception_frame(fake_bedrock: FakeBedrock, client: Any) -> None:
    fake_bedrock.enqueue(MidStreamError(text="Hello world", after_chunks=1))
    stream = client.converse_stream(modelId=MODEL, messages=ask())["stream"]
    with pytest.raises(EventStreamError) as caught:
        list(stream)
    assert caught.value.response["Error"]["Code"] == "internalServerException"


def test_a_wrong_secret_fails_the_signature_check(fake_bedrock: FakeBedrock) -> None:
    with pytest.raises(ClientError) as caught:
        client_for(fake_bedrock, secret="not-the-secret").converse(modelId=MODEL, messages=ask())
    assert caught.value.response["Error"]["Code"] == "InvalidSignatureException"
    with pytest.raises(ClientError) as caught:
        client_for(fake_bedrock, region="eu-west-1").converse(modelId=MODEL, messages=ask())
    assert caught.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_invalid_bodies_are_refused(fake_bedrock: FakeBedrock, client: Any) -> None:
    blank = [{"role": "user", "content": [{"text": " "}]}]
    assistant_first = [{"role": "assistant", "content": [{"text": "hi"}]}]
    for messages in (blank, assistant_first):
        with pytest.raises(ClientError) as caught:
            client.converse(modelId=MODEL, messages=messages)
        assert caught.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as caught:
        client.converse(modelId="no.such-model-v1:0", messages=ask())
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_list_foundation_models_on_the_control_plane(fake_bedrock: FakeBedrock) -> None:
    control = boto3.client(
        "bedrock",
        region_name=fake_bedrock.region,
        endpoint_url=fake_bedrock.url,
        aws_access_key_id=FAKE_AWS_KEY_ID,
        aws_secret_access_key=FAKE_AWS_SECRET,
    )
    found = control.list_foundation_models(byOutputModality="TEXT", byInferenceType="ON_DEMAND")
    ids = [m["modelId"] for m in found["modelSummaries"]]
    assert MODEL in ids
    assert not any(i.startswith("us.") for i in ids)


def test_an_image_to_a_text_model_is_refused(fake_bedrock: FakeBedrock, client: Any) -> None:
    question = {"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": PNG}}}]}
    with pytest.raises(ClientError) as caught:
        client.converse(modelId="amazon.nova-micro-v1:0", messages=[question])
    assert caught.value.response["Error"]["Code"] == "ValidationException"
