"""Gateway CPU per request with 10,000 stored keys against configured keys, in one run.

A stored key is looked up in the gateway's in-memory index (no database query per request) and
settles its usage counters after each request; a configured key is compared with every
configured digest. Is the stored-key path within 5 % of the configured-key path?

    .venv/bin/python bench/keys.py                # about 1 minute
    .venv/bin/python bench/keys.py --seconds 3    # shorter cells

One 0 ms mock OpenAI upstream and ``llmdispatcher serve`` (one worker, ``ledger_url: none``,
``state_url: memory://``). Cell "config": a key from ``gateway.api_keys``, with an empty key
store. Cell "stored": a key store of 10,000 stored keys (no limits, no budget) and a request
with one of them. Cells alternate (config, stored, config, stored); each gets a fresh gateway,
a 2 s warm-up, then wrk at concurrency 64. CPU is the gateway process's user + system time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from workers import gateway, tree_cpu

from gateway import KEY, LOAD_CPU, ROOT, lua, start, wrk
from llmdispatcher.keys import open_key_store
from llmdispatcher.keys.model import (
    StoredKey,
    digest_of,
    display_prefix,
    new_id,
    new_key,
)
from llmdispatcher.keys.sql import INSERT_KEY, key_row

STORED_KEYS = 10_000
CONCURRENCY = 64
WARMUP_S = 2.0
MESSAGES = [{"role": "user", "content": "hi"}]


async def fill(url: str, count: int) -> str:
    """``count`` stored keys in one transaction; the plaintext of the last one."""
    store = open_key_store(url)
    plaintext, now = "", time.time()
    async with store.database.transaction() as tx:
        ((seq,),) = await tx.execute("UPDATE llmd_key_sequence SET seq = seq + 1 RETURNING seq")
        for i in range(count):
            plaintext = new_key()
            key = StoredKey(
                id=new_id(), name=f"bench-{i}", digest=digest_of(plaintext),
                prefix=display_prefix(plaintext), created_at=now, updated_at=now,
            )  # fmt: skip
            await tx.execute(INSERT_KEY, (*key_row(key), seq))
    await store.aclose()
    return plaintext


def write_config(workdir: Path, name: str, upstream: str, store: Path) -> Path:
    config = workdir / f"{name}.yaml"
    config.write_text(
        "\n".join(
            [
                "ledger_url: none",
                "gateway:",
                f"  api_keys: [{{name: bench, key: {KEY}}}]",
                f"  key_store_url: 'sqlite:///{store}'",
                "vendors:",
                f"  openai: {{type: openai, base_url: {upstream}/v1, api_key: sk-up-0123456789}}",
            ]
        )
        + "\n"
    )
    return config


def script(workdir: Path, name: str, key: str) -> Path:
    path = lua(workdir, name, {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 128})
    path.write_text(path.read_text().replace(KEY, key))
    return path


def cell(config: Path, body: Path, seconds: float) -> tuple[float, float, int]:
    """(CPU us per request, requests/s, errors) of one fresh gateway."""
    with gateway(config, 1) as (proc, url):
        wrk(url, body, CONCURRENCY, WARMUP_S)
        _, before = tree_cpu(proc.pid)
        found = wrk(url, body, CONCURRENCY, seconds)
        _, after = tree_cpu(proc.pid)
    return (after - before) / max(1, found.requests) * 1e6, found.rps, found.errors


def run(seconds: float) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    mock_command = [sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port", "0"]
    mock, port = start([*mock_command, "--latency-ms", "0"], LOAD_CPU, rb"port (\d+)")
    results: dict[str, list[tuple[float, float, int]]] = {"config": [], "stored": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            os.environ["LLMDISPATCHER_HOME"] = str(work / "home")  # never the real one
            os.environ["PYTHONPATH"] = str(ROOT / "src")  # this checkout's gateway
            upstream = f"http://127.0.0.1:{port}"
            stored_key = asyncio.run(fill(f"sqlite:///{work / 'stored.db'}", STORED_KEYS))
            asyncio.run(fill(f"sqlite:///{work / 'empty.db'}", 0))
            cells = {
                "config": (write_config(work, "config", upstream, work / "empty.db"),
                           script(work, "config", KEY)),
                "stored": (write_config(work, "stored", upstream, work / "stored.db"),
                           script(work, "stored", stored_key)),
            }  # fmt: skip
            print(f"{'cell':<8}{'CPU/req us':>11}{'req/s':>8}{'errs':>6}")
            for name in ("config", "stored", "config", "stored"):
                found = cell(*cells[name], seconds)
                results[name].append(found)
                print(f"{name:<8}{found[0]:>11.0f}{found[1]:>8.0f}{found[2]:>6}", flush=True)
    finally:
        mock.send_signal(signal.SIGTERM)
        try:
            mock.wait(15)
        except subprocess.TimeoutExpired:
            mock.kill()
    config_us = sum(r[0] for r in results["config"]) / len(results["config"])
    stored_us = sum(r[0] for r in results["stored"]) / len(results["stored"])
    ratio = stored_us / config_us
    print(
        f"\n{STORED_KEYS:,} stored keys: {stored_us:.0f} us CPU/request; configured key: "
        f"{config_us:.0f} us; ratio {ratio:.3f} (within 5 %: {'yes' if ratio <= 1.05 else 'NO'})"
    )
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each cell")
    sys.exit(run(parser.parse_args().seconds))


if __name__ == "__main__":
    main()
