"""A fake OpenAI vendor for the cluster scenario (bench/cluster.py), as a process of its own.

``POST /v1/chat/completions`` answers a fixed completion (usage 57 + 73 tokens), or with
``"stream": true`` ``--chunks`` content chunks ``--chunk-delay-ms`` apart (so that a stream is
still open when a replica is stopped), then the finish, usage and ``[DONE]``.
``POST /_fail`` with ``{"fail": true}`` makes every chat request a 500 until told otherwise;
``GET /_stats`` says how many chat requests arrived (failed ones included).

    python bench/cluster_vendor.py --chunks 10 --chunk-delay-ms 50

prints ``port N`` once it listens, then serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from contextlib import suppress

import orjson
from aiohttp import web

MODEL = "gpt-4o-mini-2024-07-18"
USAGE = {"prompt_tokens": 57, "completion_tokens": 73, "total_tokens": 130}
ERROR = orjson.dumps({"error": {"message": "overloaded", "type": "server_error", "code": None}})


def completion(text: str) -> bytes:
    message = {"role": "assistant", "content": text, "refusal": None}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
    return orjson.dumps(
        {
            "id": "chatcmpl-cluster",
            "object": "chat.completion",
            "created": 1764115200,
            "model": MODEL,
            "choices": [choice],
            "usage": USAGE,
        }
    )


def frame(choices: list[object], usage: object = None) -> bytes:
    body = {
        "id": "chatcmpl-cluster",
        "object": "chat.completion.chunk",
        "created": 1764115200,
        "model": MODEL,
        "choices": choices,
        "usage": usage,
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


def delta(content: dict[str, object], finish: str | None = None) -> bytes:
    return frame([{"index": 0, "delta": content, "logprobs": None, "finish_reason": finish}])


def make_app(chunks: int, chunk_delay_s: float) -> web.Application:
    state = {"requests": 0, "fail": False}
    words = [f"w{i} " for i in range(chunks)]
    plain = completion("".join(words))

    async def chat(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        state["requests"] += 1
        if state["fail"]:
            return web.Response(status=500, body=ERROR, content_type="application/json")
        if not orjson.loads(raw).get("stream"):
            return web.Response(body=plain, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(delta({"role": "assistant", "content": ""}))
        for word in words:
            await asyncio.sleep(chunk_delay_s)
            await response.write(delta({"content": word}))
        await response.write(delta({}, "stop") + frame([], USAGE) + b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def fail(request: web.Request) -> web.StreamResponse:
        state["fail"] = bool((await request.json())["fail"])
        return web.json_response(state)

    async def stats(_request: web.Request) -> web.StreamResponse:
        return web.json_response(state)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/_fail", fail)
    app.router.add_get("/_stats", stats)
    return app


async def serve(chunks: int, chunk_delay_s: float) -> None:
    runner = web.AppRunner(make_app(chunks, chunk_delay_s), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, backlog=4096).start()
    print(f"port {runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--chunk-delay-ms", type=float, default=50.0)
    args = parser.parse_args()
    with suppress(KeyboardInterrupt):
        asyncio.run(serve(args.chunks, args.chunk_delay_ms / 1000))


if __name__ == "__main__":
    main()
