"""``n`` answers from a vendor whose API gives one per call: n calls at once, merged into one
``Response`` whose usage is the sum of theirs (so cost and limits count every call).

The calls are one try for the dispatcher: if any fails, the others are cancelled and the
failure is the try's (retried or failed over as a whole; a partial set of answers is never
passed off as n). Streams cannot be merged this way: ``refuse_streamed_n`` says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import fields, replace

from ..errors import UnsupportedRequest
from ..types import Choice, Request, Response, Usage


async def fan_out(send_one: Callable[[Request], Awaitable[Response]], request: Request) -> Response:
    """``request.n`` answers by sending ``request`` (with ``n`` unset) that many times."""
    single = replace(request, n=None)
    tasks = [asyncio.ensure_future(send_one(single)) for _ in range(request.answer_count)]
    try:
        answers = await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return merge(answers)


def merge(answers: Sequence[Response]) -> Response:
    """The first answer, the others as its ``alternatives``, every usage summed."""
    first, rest = answers[0], answers[1:]
    alternatives = tuple(
        Choice(i, a.content, a.finish_reason, a.tool_calls, a.logprobs, a.stop_sequence)
        for i, a in enumerate(rest, start=1)
    )
    return replace(first, usage=sum_usage(a.usage for a in answers), alternatives=alternatives)


def sum_usage(usages: Iterable[Usage]) -> Usage:
    totals = dict.fromkeys((f.name for f in fields(Usage)), 0)
    for usage in usages:
        for name in totals:
            totals[name] += getattr(usage, name)
    return Usage(**totals)


def refuse_streamed_n(request: Request, vendor: str) -> None:
    """``UnsupportedRequest`` for ``n`` > 1 on a stream from a vendor that cannot stream it."""
    if request.answer_count > 1:
        raise UnsupportedRequest(
            f"request.n: {request.n} answers cannot be streamed from vendor {vendor!r} (its API "
            "gives one per call); ask without stream, or set n to 1",
            vendor=vendor,
        ).naming("n")
