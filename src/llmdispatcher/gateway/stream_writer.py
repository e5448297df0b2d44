"""A stream's frames to the client, what is ready in one write.

A vendor's bytes often arrive several frames at a time (a fast upstream, a busy gateway, a
proxy that buffers): one write per frame costs a ``send()`` each. Here the handler ``put``s
encoded frames as it decodes them and does not wait on the socket; a writer task writes
everything gathered as soon as the handler stops to wait for the vendor. A frame is never
held back waiting for another (time to first token is unchanged); frames that arrived
together leave together.

Back-pressure: the handler waits (``room``) once more than ``limit`` bytes are unwritten (a
client reading slowly), and so stops reading from the vendor, as a blocking write did;
``response.write`` drains only when the transport is above its high-water mark (aiohttp's
rule). A failed write (the client hung up) is raised to the handler at its next ``put``,
``room`` or ``close``.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

UNWRITTEN_LIMIT = 64 * 1024


class FrameWriter:
    """Owns the writer task: ``close`` ends the response, ``cancel`` drops what is left."""

    def __init__(self, response: web.StreamResponse, limit: int = UNWRITTEN_LIMIT) -> None:
        self._response = response
        self._limit = limit
        self._frames: list[bytes] = []
        self._size = 0
        self._closing = False
        self._error: BaseException | None = None
        self._loop = asyncio.get_running_loop()
        self._wake: asyncio.Future[None] = self._loop.create_future()  # the writer waits on it
        self._room: asyncio.Future[None] | None = None  # the handler waits on it when full
        self._task: asyncio.Task[None] | None = None  # started by the first put

    def put(self, data: bytes) -> bool:
        """Queue ``data`` for the writer; True when more than ``limit`` bytes wait unwritten
        (then ``await room()`` before the next). Not a coroutine: most frames never wait."""
        if self._error is not None:
            raise self._error
        self._frames.append(data)
        self._size += len(data)
        if self._task is None:
            self._task = self._loop.create_task(self._run())
        if not self._wake.done():
            self._wake.set_result(None)
        return self._size > self._limit

    async def room(self) -> None:
        """Until the writer took what waits (it is writing it)."""
        if self._task is None or self._task.done():  # nothing waits, or nothing will write
            return
        self._room = self._loop.create_future()
        await self._room
        if self._error is not None:
            raise self._error

    async def close(self, tail: bytes) -> None:
        """Write what is left and ``tail``, and end the response."""
        self._closing = True
        self.put(tail)  # starts the task if no frame did
        if self._task is not None:
            await self._task
        if self._error is not None:
            raise self._error

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        response = self._response
        try:
            while True:
                await self._wake
                self._wake = self._loop.create_future()
                data = b"".join(self._frames)
                self._frames.clear()
                self._size = 0
                self._release()
                if self._closing:
                    await response.write_eof(data)
                    return
                await response.write(data)
        except Exception as exc:  # kept for the handler: a task's error must not go unseen
            self._error = exc
            self._release()

    def _release(self) -> None:
        """Wakes a handler waiting for room (unless it was cancelled meanwhile)."""
        if self._room is not None and not self._room.done():
            self._room.set_result(None)
        self._room = None
