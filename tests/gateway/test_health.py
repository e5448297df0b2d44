"""``/livez``, ``/readyz`` and the SIGTERM drain (gateway/health.py, gateway/server.py).

In-process apps for the endpoints and their checks; a real ``llmdispatcher serve`` process
for the drain: ``/readyz`` turns 503 at the signal while requests are still served (with
``Connection: close``), and a second signal ends the drain at once.
"""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from llmdispatcher import Config, Dispatcher
from llmdispatcher.clock import FakeClock
from llmdispatcher.config import ApiKeyConfig, GatewayConfig
from llmdispatcher.gateway.app import create_app
from llmdispatcher.gateway.health import READINESS
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.gateway import AUTH, KEY, GatewayProcess, call
from tests.gateway.inprocess import CHAT, OneModelVendor
from tests.state.own_redis import free_port

KEYED = GatewayConfig(api_keys=(ApiKeyConfig(name="k", key=KEY),))


async def client_for(config: Config, settings: GatewayConfig = KEYED) -> TestClient[Any, Any]:
    dispatcher = Dispatcher(config, vendors=[OneModelVendor()], clock=FakeClock())
    client = TestClient(TestServer(create_app(dispatcher, settings)))
    await client.start_server()
    return client


async def test_livez_and_readyz_answer_without_a_key() -> None:
    client = await client_for(Config(ledger_url="none"))
    try:
        live = await client.get("/livez")
        assert live.status == 200
        assert await live.json() == {"status": "alive"}
        ready = await client.get("/readyz")
        assert ready.status == 200
        assert await ready.json() == {
            "ready": True,
            "draining": False,
            "not_ready": [],
            "degraded": [],
            "checks": {"vendors": {"ok": True, "required": True, "error": None}},
        }
        assert (await client.post("/v1/chat/completions", json=CHAT)).status == 401
    finally:
        await client.close()


async def test_an_unreachable_state_backend_is_required_only_when_failing_closed() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    for failure, status in (("closed", 503), ("open", 200)):
        config = Config(ledger_url="none", state_url=dead, state_failure=failure)
        client = await client_for(config)
        try:
            ready = await client.get("/readyz")
            body = await ready.json()
            assert ready.status == status, body
            state = body["checks"]["state"]
            assert state["ok"] is False
            assert "Redis state 127.0.0.1" in state["error"]
            assert body["checks"]["shared_health"]["ok"] is False
            if failure == "closed":
                assert body["not_ready"] == ["state"]
                assert body["degraded"] == ["shared_health"]
            else:
                assert body["not_ready"] == []
                assert body["degraded"] == ["state", "shared_health"]
        finally:
            await client.close()


async def test_readyz_reports_a_ledger_that_cannot_write(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the ledger's directory should be")
    client = await client_for(Config(ledger_url=f"sqlite:///{blocked}/ledger.db"))
    try:
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=AUTH)).status == 200
        dispatcher = client.app[READINESS].gateway.dispatcher
        for _ in range(200):  # the writer fails in the background
            if (await dispatcher.check_dependencies())["ledger"] is not None:
                break
            await asyncio.sleep(0.01)
        await client.app[READINESS].refresh()
        body = await (await client.get("/readyz")).json()
        assert body["ready"] is True
        assert body["degraded"] == ["ledger"]
        assert body["checks"]["ledger"]["error"].startswith("writes failing for")
    finally:
        await client.close()


async def test_draining_turns_readyz_503_and_closes_each_connection() -> None:
    client = await client_for(Config(ledger_url="none"))
    try:
        client.app[READINESS].drain()
        ready = await client.get("/readyz")
        assert ready.status == 503
        body = await ready.json()
        assert body["draining"] is True
        assert body["not_ready"] == ["draining"]
        served = await client.post("/v1/chat/completions", json=CHAT, headers=AUTH)
        assert served.status == 200  # still served while draining...
        assert served.headers["Connection"] == "close"  # ...on a connection that then closes
    finally:
        await client.close()


def test_sigterm_drains_then_a_second_signal_stops_at_once(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "\n".join(
            [
                "ledger_url: none",
                "gateway:",
                "  drain_s: 600",  # far longer than the test: only the second signal ends it
                "  shutdown_grace_s: 5",
                "  api_keys: [{name: k, key: " + KEY + "}]",
                "vendors:",
                f"  openai: {{type: openai, base_url: '{fake_openai.url}/v1', "
                f"api_key: {FAKE_OPENAI_KEY}}}",
            ]
        )
    )
    server = GatewayProcess("--config", config)
    try:
        url = server.wait_listening()
        assert call("GET", f"{url}/readyz").status == 200
        server.proc.send_signal(signal.SIGTERM)
        server.read_until(re.compile(rb"draining: /readyz answers 503"))
        ready = call("GET", f"{url}/readyz")
        assert ready.status == 503
        assert ready.json()["not_ready"] == ["draining"]
        chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        served = call("POST", f"{url}/v1/chat/completions", chat, AUTH)
        assert served.status == 200
        assert served.headers["connection"] == "close"
        assert call("GET", f"{url}/livez").status == 200  # alive while draining
        server.proc.send_signal(signal.SIGTERM)
        assert server.stop() == 0
        assert "stopped" in server.lines[-1]
    finally:
        server.stop()
