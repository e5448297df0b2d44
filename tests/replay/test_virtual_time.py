"""The virtual-time loop: time jumps to the next timer, callbacks queued from other threads
still run, and anything registered besides the loop's own pipe is still polled."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from llmdispatcher.replay.virtual_time import START, ReplayStalled, VirtualTimeLoop


def run(main: object) -> object:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main)  # type: ignore[arg-type]
    finally:
        loop.close()


def test_an_hour_of_sleep_passes_at_once() -> None:
    async def main() -> float:
        await asyncio.sleep(3600)
        return asyncio.get_running_loop().time()

    assert run(main()) == START + 3600


def test_a_callback_from_another_thread_runs() -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str] = loop.create_future()
        thread = threading.Thread(target=loop.call_soon_threadsafe,
                                  args=(done.set_result, "from the thread"))  # fmt: skip
        thread.start()
        thread.join()
        return await done

    assert run(main()) == "from the thread"


def test_a_registered_socket_is_still_polled() -> None:
    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        got: asyncio.Future[bytes] = loop.create_future()
        loop.add_reader(ours, lambda: got.set_result(ours.recv(16)))
        theirs.send(b"ready")
        heartbeat = loop.call_later(60, lambda: None)  # a timer, so the loop does not stall
        try:
            return await got
        finally:
            heartbeat.cancel()
            loop.remove_reader(ours)
            ours.close()
            theirs.close()

    assert run(main()) == b"ready"


def test_waiting_on_nothing_says_so() -> None:
    async def main() -> None:
        await asyncio.get_running_loop().create_future()

    with pytest.raises(ReplayStalled, match="stalled"):
        run(main())
