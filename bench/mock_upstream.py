"""A fast mock OpenAI upstream for the gateway benchmark (aiohttp.web + uvloop).

``POST /v1/chat/completions`` answers a fixed completion, or with ``"stream": true`` an SSE
stream of ``--chunks`` content chunks, a finish chunk, a usage chunk and ``[DONE]``;
``--latency-ms`` delays every answer (before the first byte). ``GET /v1/models`` lists one model.

``--proxy-to URL`` turns it into the reference point instead: a bare aiohttp pass-through proxy
(one pooled ClientSession; body and status forwarded, streams relayed chunk by chunk), the least
any Python gateway built on aiohttp can cost.

    python bench/mock_upstream.py --port 0 --latency-ms 0 --cpu 1

prints ``port N`` on stdout once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from contextlib import suppress

import aiohttp
import orjson
import uvloop
from aiohttp import web

MODEL = "gpt-4o-mini-2024-07-18"
USAGE = {"prompt_tokens": 57, "completion_tokens": 73, "total_tokens": 130}
COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-bench0001",
        "object": "chat.completion",
        "created": 1764115200,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "The quick brown fox jumps over the lazy dog. " * 7,
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }
)
MODELS = orjson.dumps({"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]})


def sse_frames(chunks: int) -> list[bytes]:
    def frame(choices: list[object], usage: object = None) -> bytes:
        body = {
            "id": "chatcmpl-bench0001",
            "object": "chat.completion.chunk",
            "created": 1764115200,
            "model": MODEL,
            "choices": choices,
            "usage": usage,
        }
        return b"data: " + orjson.dumps(body) + b"\n\n"

    def delta(d: dict[str, object], finish: str | None = None) -> bytes:
        return frame([{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}])

    frames = [delta({"role": "assistant", "content": ""})]
    frames += [delta({"content": f"token{i} "}) for i in range(chunks)]
    return [*frames, delta({}, "stop"), frame([], USAGE), b"data: [DONE]\n\n"]


def make_app(latency_s: float, chunks: int) -> web.Application:
    frames = sse_frames(chunks)

    async def chat(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if latency_s:
            await asyncio.sleep(latency_s)
        if b'"stream":true' not in raw and b'"stream": true' not in raw:
            return web.Response(body=COMPLETION, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for data in frames:
            await response.write(data)
        await response.write_eof()
        return response

    async def models(request: web.Request) -> web.StreamResponse:
        return web.Response(body=MODELS, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return app


def make_proxy(target: str) -> web.Application:
    session: list[aiohttp.ClientSession] = []

    async def forward(request: web.Request) -> web.StreamResponse:
        if not session:
            session.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)))
        body = await request.read()
        headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-up"}
        async with session[0].post(f"{target}{request.path}", data=body, headers=headers) as up:
            if up.content_type != "text/event-stream":
                data = await up.read()
                return web.Response(status=up.status, body=data, content_type=up.content_type)
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            async for chunk in up.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", forward)
    return app


async def serve(port: int, latency_s: float, chunks: int, proxy_to: str | None) -> None:
    app = make_proxy(proxy_to) if proxy_to else make_app(latency_s, chunks)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    print(f"port {runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    parser.add_argument("--proxy-to", default=None, help="be a bare pass-through proxy to URL")
    args = parser.parse_args()
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        with suppress(OSError):
            os.sched_setaffinity(0, {args.cpu})
    with suppress(KeyboardInterrupt):
        uvloop.run(serve(args.port, args.latency_ms / 1000, args.chunks, args.proxy_to))
    sys.exit(0)


if __name__ == "__main__":
    main()
