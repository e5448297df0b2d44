"""The sync facade: a private event loop in a daemon thread runs the async core for scripts.

There is one code path (the async one); these helpers only carry calls across threads.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="llmdispatcher-sync", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise RuntimeError(
                "the *_sync methods cannot run inside an event loop; "
                "await the async method instead (send / stream)"
            )
        finished = threading.Event()

        async def tracked() -> T:
            try:
                return await coro
            finally:
                finished.set()

        future = asyncio.run_coroutine_threadsafe(tracked(), self._ensure())
        try:
            return future.result()
        except BaseException:
            future.cancel()  # Ctrl-C in the caller: stop the work (and its HTTP request) too
            finished.wait(timeout=5)  # let the cancellation land before the caller cleans up
            raise

    def iterate(self, agen: AsyncIterator[T]) -> Iterator[T]:
        async def next_item() -> T:
            return await anext(agen)

        try:
            while True:
                try:
                    item = self.run(next_item())
                except StopAsyncIteration:
                    return
                yield item
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None and self._loop is not None:
                self.run(aclose())

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            loop.close()
