"""Giving the memory of large answers back to the system (vendors/heap.py): glibc only."""

from __future__ import annotations

import asyncio
import ctypes

import pytest

from llmdispatcher.vendors.heap import HEAP, LARGE_ANSWER, Heap
from llmdispatcher.vendors.http import HttpClient

from .raw_server import read_request, response, serve


def _on_glibc() -> bool:
    return hasattr(ctypes.CDLL(None), "gnu_get_libc_version")


pytestmark = pytest.mark.skipif(not _on_glibc(), reason="mallopt and malloc_trim are glibc's")


def test_the_thresholds_can_be_set() -> None:
    assert Heap().tune()


async def test_a_burst_of_large_answers_costs_one_trim() -> None:
    heap = Heap()
    loop = asyncio.get_running_loop()
    for _ in range(5):
        heap.trim_soon(loop, delay=0)
    assert heap.due
    await asyncio.sleep(0)  # the loop runs what is due
    await asyncio.sleep(0)
    assert (heap.trims, heap.due) == (1, False)
    heap.trim_soon(loop, delay=0)  # a later answer gets a trim of its own
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert heap.trims == 2


@pytest.mark.parametrize(("size", "trimmed"), [(LARGE_ANSWER, True), (64 * 1024, False)])
async def test_the_client_asks_for_a_trim_after_a_large_answer(size: int, trimmed: bool) -> None:
    body = b"x" * size

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(response(body))
        await writer.drain()

    if HEAP.due:  # one scheduled by an earlier test: let it run first
        await asyncio.sleep(1.5)
    async with serve(handler) as server:
        client = HttpClient("v")
        answer = await client.request("GET", server.url, headers={})
        await client.aclose()
    assert len(answer.body) == size
    assert HEAP.due is trimmed
