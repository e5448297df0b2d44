"""Gateway tests: end-to-end against ``llmdispatcher serve`` as a real server process, with the
fake vendor servers behind it and the official SDKs in front; plus in-process tests."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.cli import ROOT, clean_environ, cli_command, popen
from tests.fakes.anthropic_fake import FakeAnthropic
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.fixtures_anthropic import FAKE_ANTHROPIC_KEY
from tests.fakes.openai_fake import FakeOpenAI

KEY = "gw-test-key-full-0123456789"
ADMIN_KEY = "gw-test-admin-key-0123456789"
MINI_KEY = "gw-test-key-mini-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
MINI_AUTH = {"Authorization": f"Bearer {MINI_KEY}"}
_LISTENING = re.compile(rb"listening on (http://\S+)")


def gateway_yaml(
    openai: FakeOpenAI,
    backup: FakeOpenAI,
    anthropic: FakeAnthropic,
    grace_s: float = 5,
    key_store: Path | None = None,
) -> str:
    """``openai`` (falls back to ``backup``), and ``anthropic`` for ``claude-*`` models;
    ``key_store``: a SQLite file of its own for stored keys, and the admin API on."""
    mini = hashlib.sha256(MINI_KEY.encode()).hexdigest()
    vendors = {
        "openai": {"type": "openai", "base_url": f"{openai.url}/v1", "api_key": FAKE_OPENAI_KEY},
        "backup": {"type": "openai", "base_url": f"{backup.url}/v1", "api_key": FAKE_OPENAI_KEY},
        "anthropic": {
            "type": "anthropic",
            "base_url": anthropic.url,
            "api_key": FAKE_ANTHROPIC_KEY,
        },
    }
    return "\n".join(
        [
            "retry_policy: {max_retries: 1, base_delay: 0, jitter: false}",
            "fallback_vendors: [backup]",
            # tests share one gateway: no breaker or retry budget carries over between them
            "circuit_breaker: {enabled: false}",
            "retry_budget: {min_per_second: 1000}",
            "routing_rules:",
            '  - {vendor: anthropic, priority: 1, condition: {model_pattern: "claude-*"}}',
            "gateway:",
            f"  shutdown_grace_s: {grace_s}",
            *(
                [f"  key_store_url: 'sqlite:///{key_store}'", f"  admin_key: {ADMIN_KEY}"]
                if key_store
                else []
            ),
            # tests share one gateway (and address): the throttles are tested in-process
            "  auth_failures_per_minute: 100000",
            "  vendor_checks_per_minute: 100000",
            "  api_keys:",
            f"    - {{name: full, key: {KEY}}}",
            f'    - {{name: mini, key_sha256: "{mini}", allowed_models: ["gpt-4o-mini*"]}}',
            "vendors:",
            *(f"  {name}: {json.dumps(spec)}" for name, spec in vendors.items()),
        ]
    )


class GatewayProcess:
    """``python -m llmdispatcher serve ...`` with its stderr log; ``url`` once it listens."""

    def __init__(self, *args: str | Path, env: dict[str, str] | None = None) -> None:
        self.proc = popen(
            cli_command("serve", "--port", "0", *args),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env={**clean_environ(), **(env or {})},
            cwd=ROOT,
        )
        self.log = b""
        self.url = ""

    def wait_listening(self, timeout: float = 20.0) -> str:
        found = self.read_until(_LISTENING, timeout)
        self.url = found.group(1).decode()
        return self.url

    def read_until(self, pattern: re.Pattern[bytes], timeout: float = 10.0) -> re.Match[bytes]:
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        while (found := pattern.search(self.log)) is None:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{pattern.pattern!r} never logged: {self.log.decode()}"
            if select.select([self.proc.stderr], [], [], remaining)[0]:
                data = os.read(self.proc.stderr.fileno(), 65536)
                assert data, f"the gateway exited ({self.proc.poll()}): {self.log.decode()}"
                self.log += data
        return found

    @property
    def lines(self) -> list[str]:
        return self.log.decode().splitlines()

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, rest = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, rest = self.proc.communicate()
        self.log += rest or b""
        return self.proc.returncode


class HttpReply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    *,
    raw: bytes | None = None,
    timeout: float = 10.0,
) -> HttpReply:
    """One plain HTTP request (no SDK), the whole body read."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        sent = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), data, sent)
        response = conn.getresponse()
        found = {k.lower(): v for k, v in response.getheaders()}
        return HttpReply(response.status, found, response.read())
    finally:
        conn.close()


def open_stream(
    url: str, body: Any, headers: dict[str, str] | None = None, timeout: float = 10.0
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """POST and return the open response, body unread (the caller reads or hangs up)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    sent = {"Content-Type": "application/json", **(headers or {})}
    conn.request("POST", parts.path, json.dumps(body).encode(), sent)
    return conn, conn.getresponse()
