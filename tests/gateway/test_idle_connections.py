"""5,000 idle keep-alive connections on a real gateway process: all held at once (each has had
one answer), another client is served meanwhile, the gateway's memory per idle connection is
bounded, and every file descriptor is given back when they go."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.gateway import GatewayProcess, call

IDLE = 5000
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def roomy_gateway(tmp_path: Path, fake_openai: FakeOpenAI) -> Iterator[GatewayProcess]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * IDLE + 1000  # this process's sockets, and the gateway's (it inherits this)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.fail(f"RLIMIT_NOFILE hard limit {hard} < {wanted}: raise it (ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    spec = {"type": "openai", "base_url": f"{fake_openai.url}/v1", "api_key": FAKE_OPENAI_KEY}
    config = tmp_path / "llmdispatcher.yaml"
    config.write_text(
        "ledger_url: none\n"
        "gateway: {header_timeout_s: 120}\n"  # idle connections are kept; the test closes them
        f"vendors: {{openai: {json.dumps(spec)}}}\n"
    )
    server = GatewayProcess("--config", config)
    server.wait_listening()
    yield server
    server.stop()
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _usage(pid: int) -> tuple[int, float]:
    """Open file descriptors and resident memory (MiB) of a process."""
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return fds, rss_kib / 1024


async def _open_idle(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return reader, writer


async def _hold_idle(url: str, gateway_pid: int) -> dict[str, float]:
    host, port = url.removeprefix("http://").split(":")
    gate = asyncio.Semaphore(100)

    async def one() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with gate:
            return await _open_idle(host, int(port))

    before = _usage(gateway_pid)
    connections = await asyncio.gather(*(one() for _ in range(IDLE)))
    held = _usage(gateway_pid)
    started = time.monotonic()
    reply = await asyncio.to_thread(call, "POST", f"{url}/v1/chat/completions", CHAT)
    other_s = time.monotonic() - started
    assert reply.status == 200, reply.body
    for _, writer in connections:
        writer.close()
    await asyncio.gather(*(writer.wait_closed() for _, writer in connections))
    return {"fds_before": before[0], "fds_held": held[0], "rss_before": before[1],
            "rss_held": held[1], "other_s": other_s}  # fmt: skip


def test_five_thousand_idle_keep_alive_connections(roomy_gateway: GatewayProcess) -> None:
    pid = roomy_gateway.proc.pid
    seen = asyncio.run(_hold_idle(roomy_gateway.url, pid))
    per_connection_kib = (seen["rss_held"] - seen["rss_before"]) * 1024 / IDLE
    print(
        f"{IDLE} idle connections: fds {seen['fds_before']:.0f} -> {seen['fds_held']:.0f}, "
        f"RSS {seen['rss_before']:.0f} -> {seen['rss_held']:.0f} MiB "
        f"({per_connection_kib:.1f} KiB each); another client served in "
        f"{seen['other_s'] * 1000:.0f} ms"
    )
    assert seen["fds_held"] >= seen["fds_before"] + IDLE  # all held at once
    assert per_connection_kib < 64  # bounded: no per-connection buffers left behind
    deadline = time.monotonic() + 30
    while _usage(pid)[0] > seen["fds_before"] + 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _usage(pid)[0] <= seen["fds_before"] + 10  # every descriptor given back
    assert call("POST", f"{roomy_gateway.url}/v1/chat/completions", CHAT).status == 200
