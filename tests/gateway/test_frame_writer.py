"""``FrameWriter`` behind a real aiohttp server: every frame arrives, in order, whether the
handler never waits or waits for room at every frame (the end included)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from llmdispatcher.gateway.stream_writer import FrameWriter

FRAMES = [f"data: {i}\n\n".encode() * (i + 1) for i in range(40)]


async def served(limit: int) -> bytes:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        writer = FrameWriter(response, limit=limit)
        for frame in FRAMES[:-1]:
            if writer.put(frame):
                await writer.room()
        await writer.close(FRAMES[-1])
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    async with TestClient(TestServer(app)) as client, asyncio.timeout(30):  # a hang fails
        reply = await client.get("/")
        return await reply.read()


@pytest.mark.parametrize("limit", [1, 64 * 1024])
async def test_every_frame_arrives_in_order(limit: int) -> None:
    assert await served(limit) == b"".join(FRAMES)
