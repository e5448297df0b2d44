"""The whole loop with no key store configured: ``llmdispatcher serve`` and
``llmdispatcher keys`` share the data directory's database, so a key made (or revoked) with the
CLI works (or stops working) on the running gateway; the requests land in ``stats``."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.cli import run_cli
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.gateway import GatewayProcess, call

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _status(url: str, key: str, want: int) -> int:
    """Poll (20 ms apart, at most 3 s) until ``want``; the last status."""
    deadline = time.monotonic() + 3
    while True:
        status = call(
            "POST", f"{url}/v1/chat/completions", CHAT, {"Authorization": f"Bearer {key}"}
        ).status
        if status == want or time.monotonic() > deadline:
            return status
        time.sleep(0.02)


def test_keys_made_with_the_cli_work_on_a_running_gateway(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    env = {"LLMDISPATCHER_HOME": str(tmp_path / "home")}
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "gateway: {auth_failures_per_minute: 100000}\nvendors:\n"
        f"  openai: {{type: openai, base_url: '{fake_openai.url}/v1', "
        f"api_key: {FAKE_OPENAI_KEY}}}\n"
    )
    made = run_cli("--config", config, "keys", "create", "cli-made", "--json", env=env)
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    server = GatewayProcess("--config", config, env=env)
    try:
        url = server.wait_listening()
        assert _status(url, created["key"], 200) == 200
        assert _status(url, "sk-llmd-" + "x" * 40, 401) == 401
        assert run_cli("--config", config, "keys", "revoke", created["id"], env=env).returncode == 0
        assert _status(url, created["key"], 401) == 401
    finally:
        server.stop()
    stats = json.loads(run_cli("stats", "--json", env=env).stdout)
    assert (
        stats["by_key"]["cli-made"]["requests"] >= 1
    )  # and those before the revocation reached it
