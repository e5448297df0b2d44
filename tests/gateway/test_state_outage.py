"""Redis dies under a real gateway process (the case measured in issue 17: every request a 500
and a traceback each). ``open``: every request still 200; ``closed``: a 503 saying why; either
way one warning for the outage, one for the recovery, no traceback, and no restart needed."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.gateway import GatewayProcess, call
from tests.state.own_redis import OwnRedis

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.kill()


def start_gateway(tmp_path: Path, fake: FakeOpenAI, redis_url: str, failure: str) -> GatewayProcess:
    vendor = {"type": "openai", "base_url": f"{fake.url}/v1", "api_key": FAKE_OPENAI_KEY}
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "\n".join(
            [
                "retry_policy: {max_retries: 0}",
                f"state_url: {redis_url}",
                f"state_failure: {failure}",
                "state_timeout_s: 0.2",
                "state_connect_timeout_s: 0.2",
                "vendors:",
                f"  a: {json.dumps({**vendor, 'rpm': 1_000_000})}",
            ]
        )
    )
    gateway = GatewayProcess("--config", config)
    gateway.wait_listening()
    return gateway


def statuses(gateway: GatewayProcess, count: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(count):
        reply = call("POST", gateway.url + "/v1/chat/completions", BODY, timeout=5)
        code = reply.json().get("error", {}).get("code", "") if reply.status != 200 else ""
        seen[f"{reply.status} {code}".strip()] += 1
    return seen


def recover(gateway: GatewayProcess) -> None:
    """A trickle of requests (a request due for a probe starts one) until the recovery line."""
    deadline = time.monotonic() + 30
    while True:
        statuses(gateway, 1)
        try:
            gateway.read_until(re.compile(rb"state backend \S+ is back"), timeout=0.1)
        except AssertionError:
            assert time.monotonic() < deadline, gateway.log.decode()
        else:
            return


@pytest.mark.parametrize("failure", ["open", "closed"])
def test_a_redis_outage_under_the_gateway(
    tmp_path: Path, fake_openai: FakeOpenAI, own_redis: OwnRedis, failure: str
) -> None:
    gateway = start_gateway(tmp_path, fake_openai, own_redis.url, failure)
    try:
        before = statuses(gateway, 20)
        own_redis.kill()
        during = statuses(gateway, 200)
        gateway.read_until(re.compile(rb"state backend unavailable"))
        own_redis.start()
        recover(gateway)
        gateway.read_until(re.compile(rb"shared health: Redis is back"), timeout=15)
        again = statuses(gateway, 20)
    finally:
        gateway.stop()
    assert before == {"200": 20}
    assert during == ({"200": 200} if failure == "open" else {"503 state_unavailable": 200})
    assert again == {"200": 20}
    log = gateway.log.decode()
    assert log.count("state backend unavailable") == 1
    assert len(re.findall(r"state backend \S+ is back", log)) == 1
    # the replicas' shared health (routing.shared_health) lost Redis too, and says so once each
    assert log.count("shared health: Redis unreachable") == 1
    assert log.count("shared health: Redis is back") == 1
    assert "Traceback" not in log
