"""Bedrock and Vertex AI from a config file, with the option names of their constructors (and
boto3's key names, flat), reaching the strict fakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmdispatcher import Dispatcher, Request
from llmdispatcher.config_file import load_config
from llmdispatcher.errors import ConfigError
from llmdispatcher.vendors import BedrockVendor, VertexVendor
from tests.fakes.bedrock_fake import FAKE_AWS_KEY_ID, FAKE_AWS_SECRET, FakeBedrock
from tests.fakes.script import Reply
from tests.fakes.vertex_fake import FakeVertex, write_service_account


async def test_both_vendors_from_one_file(
    fake_bedrock: FakeBedrock,
    fake_vertex: FakeVertex,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key_file = write_service_account(fake_vertex, tmp_path / "sa.json")
    monkeypatch.setenv("TEST_AWS_SECRET", FAKE_AWS_SECRET)
    config = tmp_path / "llmdispatcher.yaml"
    config.write_text(
        f"""
vendors:
  bedrock:
    region: {fake_bedrock.region}
    endpoint_url: {fake_bedrock.url}
    aws_access_key_id: {FAKE_AWS_KEY_ID}
    aws_secret_access_key: "${{TEST_AWS_SECRET}}"
    timeout: 30
  vertex:
    project: {fake_vertex.project}
    location: {fake_vertex.location}
    base_url: {fake_vertex.url}
    credentials: {key_file}
    anthropic_version: vertex-2023-10-16
"""
    )
    fake_bedrock.enqueue(Reply(text="from bedrock"))
    fake_vertex.enqueue(Reply(text="from vertex"))
    async with Dispatcher(load_config(config)) as dispatcher:
        assert isinstance(dispatcher.vendors["bedrock"], BedrockVendor)
        assert isinstance(dispatcher.vendors["vertex"], VertexVendor)
        hi = [{"role": "user", "content": "hi"}]
        aws = await dispatcher.send(
            Request(model="amazon.nova-pro-v1:0", messages=hi, vendor="bedrock")
        )
        google = await dispatcher.send(
            Request(model="claude-sonnet-4-5@20250929", messages=hi, vendor="vertex")
        )
    assert (aws.content, google.content) == ("from bedrock", "from vertex")
    assert aws.cost_usd is not None
    assert google.cost_usd is not None
    assert fake_vertex.last_request.json["anthropic_version"] == "vertex-2023-10-16"


def test_an_unknown_option_lists_the_right_ones(tmp_path: Path) -> None:
    config = tmp_path / "llmdispatcher.yaml"
    config.write_text("vendors:\n  bedrock:\n    region_name: us-east-1\n")
    with pytest.raises(ConfigError, match=r"vendors\.bedrock\.region_name.*profile"):
        load_config(config)
