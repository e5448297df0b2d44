"""The load of the cluster scenario (bench/cluster.py): chat requests through the load balancer,
each checked end to end and kept as an ``Outcome``.

A request is ``ok`` only when it is complete: a 200 whose answer is exactly the fake vendor's
text, and for a stream every chunk up to ``data: [DONE]``. Each carries ``"user": <its id>``,
which the ledger stores, so rows can be matched to requests one by one.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import orjson

JSON = {"Content-Type": "application/json"}


@dataclass
class Outcome:
    rid: str
    stream: bool
    started: float
    ended: float = 0.0
    status: int = 0
    ok: bool = False
    served_by: str = ""
    error: str = ""

    def describe(self) -> str:
        kind = "stream" if self.stream else "plain"
        return f"{self.rid} {kind} status {self.status} via {self.served_by or '?'}: {self.error}"


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for: {what}")
        time.sleep(0.05)


class Load:
    """``concurrency`` workers sending requests for model ``group`` until stopped."""

    def __init__(
        self, url: str, concurrency: int, group: str, chunks: int, *, stream_share: float
    ) -> None:
        self.url = f"{url}/v1/chat/completions"
        self.concurrency, self.group = concurrency, group
        self.expected = "".join(f"w{i} " for i in range(chunks))
        self.stream_every = round(1 / stream_share) if stream_share else 0
        self.outcomes: list[Outcome] = []
        self._stop = asyncio.Event()
        self._serial = itertools.count()

    async def run(self, limit: int | None = None) -> list[Outcome]:
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            workers = [self._worker(session, limit) for _ in range(self.concurrency)]
            await asyncio.gather(*workers)
        return self.outcomes

    async def stop(self, runner: asyncio.Task[list[Outcome]]) -> list[Outcome]:
        self._stop.set()
        return await runner

    async def burst(self, count: int) -> list[Outcome]:
        return await self.run(limit=count)

    async def timed(self, seconds: float) -> list[Outcome]:
        self.outcomes, self._stop = [], asyncio.Event()
        runner = asyncio.create_task(self.run())
        await asyncio.sleep(seconds)
        return await self.stop(runner)

    async def _worker(self, session: aiohttp.ClientSession, limit: int | None) -> None:
        while not self._stop.is_set():
            serial = next(self._serial)
            if limit is not None and serial >= limit:
                return
            stream = bool(self.stream_every) and serial % self.stream_every == 0
            self.outcomes.append(await self._one(session, stream))

    async def _one(self, session: aiohttp.ClientSession, stream: bool) -> Outcome:
        rid = uuid.uuid4().hex
        out = Outcome(rid, stream, time.monotonic())
        body = {"model": self.group, "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 200, "user": rid, "stream": stream}  # fmt: skip
        try:
            async with session.post(self.url, data=orjson.dumps(body), headers=JSON) as response:
                out.status = response.status
                out.served_by = response.headers.get("x-served-by", "")
                if response.status != 200:
                    out.error = (await response.read())[:200].decode(errors="replace")
                elif stream:
                    await self._read_stream(response, out)
                else:
                    text = (await response.json())["choices"][0]["message"]["content"]
                    out.ok = text == self.expected
                    out.error = "" if out.ok else f"wrong text {text[:80]!r}"
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            out.error = f"{type(exc).__name__}: {exc}"
        out.ended = time.monotonic()
        return out

    async def _read_stream(self, response: aiohttp.ClientResponse, out: Outcome) -> None:
        text, done = "", False
        async for line in response.content:
            if not line.startswith(b"data: "):
                continue
            data = line[6:].strip()
            if data == b"[DONE]":
                done = True
                continue
            for choice in orjson.loads(data).get("choices") or ():
                text += (choice.get("delta") or {}).get("content") or ""
        out.ok = done and text == self.expected
        if not out.ok:
            out.error = f"stream cut: done={done}, text {text[:80]!r}"
