"""The recorded requests a replay reads: ledger rows in the order they started, a page at a
time (bounded memory however long the ledger), optionally a deterministic sample of them.

The ledger indexes ``ts`` (when a request ended), not when it started (``ts - latency_s``).
Paging by start time alone made every page scan and sort the whole table: at a million rows,
200 pages of 0.4 s each, per pass. So each page is also bounded by ``ts``, which the index
serves: a request that started in [a, b) ended in [a, b + the longest latency]. The pages
walk the window in slices of start time sized to hold about a page of rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, NamedTuple

import orjson

from ..observability.ledger import open_ledger
from ..observability.ledger_sql import REQUESTS

PAGE = 5_000
_COLUMNS = (
    "id, ts, request_id, user_id, api_key_name, team, model_group, vendor, deployment, model, "
    "status, error_type, stream, attempts, fallbacks, prompt_tokens, completion_tokens, "
    "cached_tokens, reasoning_tokens, cost_nano_usd, latency_s, ttft_s, detail"
)
_STARTED = "(ts - latency_s)"
# Latencies are durations on a monotonic clock (never negative), so a request ended no sooner
# than it started: ``ts >= start`` lets the index bound every query below.
_EXTENT_SQL = (
    f"SELECT COUNT(*), MIN({_STARTED}), MAX({_STARTED}), MAX(latency_s) FROM {REQUESTS} "
    f"WHERE ts >= ? AND {_STARTED} >= ? AND {_STARTED} < ? AND status != ?"
)
_PAGE_SQL = (
    f"SELECT {_COLUMNS} FROM {REQUESTS} WHERE ts >= ? AND ts <= ? AND {_STARTED} < ? "
    f"AND status != ? AND ({_STARTED} > ? OR ({_STARTED} = ? AND id > ?)) "
    f"ORDER BY {_STARTED}, id LIMIT ?"
)
_SLACK_S = 1.0  # on the ``ts`` bound, for the rounding of ``ts - latency_s``
_NARROWEST_S = 1e-3  # a slice stays wider than the float spacing of epoch seconds (~2e-7)


class Try(NamedTuple):
    """One recorded try: the deployment it went to, ``ok`` or the error's class name, and how
    long it took."""

    vendor: str
    model: str
    outcome: str
    seconds: float


class LedgerRow(NamedTuple):
    """One recorded request (a tuple: a million of them are built per pass)."""

    started: float  # wall-clock epoch seconds
    request_id: str
    user: str | None
    key_name: str | None
    team: str | None
    requested: str  # the model (or group) the client asked for, as well as the ledger knows
    vendor: str | None
    status: str
    error_type: str | None
    stream: bool
    fallbacks: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost_nano: int | None
    latency_s: float
    ttft_s: float | None
    tries: tuple[Try, ...]
    hedged: bool = False  # a try was cancelled because a hedge partner won
    rule: str | None = None  # the routing rule it matched (its name, or where it sends)
    group: str | None = None
    reached: frozenset[str] = frozenset()  # the deployments (vendor/model) it tried


def _detail(row: Sequence[Any]) -> tuple[tuple[Try, ...], bool, str | None]:
    """The row's tries, whether a hedge raced, and its rule, from ``detail``; a row written
    before ``detail`` existed counts as one try on its deployment when it had one."""
    detail = row[22]
    if detail:
        found = orjson.loads(detail)
        attempts = found.get("attempts") or []
        tries = tuple(
            Try(a["vendor"], a["model"], a["status"], float(a["duration_s"]))
            for a in attempts
            if a.get("status") != "cancelled"  # a hedge's loser says nothing of its vendor
        )
        hedged = len(tries) < len(attempts)
        routing = found.get("routing")
        return tries, hedged, routing.get("rule") if routing else None
    vendor, model, status, error_type, attempts, latency = (
        row[7], row[9], row[10], row[11], row[13], row[20]
    )  # fmt: skip
    if vendor is None or model is None or attempts != 1:
        return (), False, None
    outcome = "ok" if status == "ok" else (error_type or "error")
    return (Try(vendor, model, outcome, float(latency)),), False, None


def _row(row: Sequence[Any]) -> LedgerRow:
    latency = float(row[20])
    tries, hedged, rule = _detail(row)
    requested = row[6] or (tries[0].model if tries else None) or row[9] or "?"
    return LedgerRow(
        float(row[1]) - latency, row[2], row[3], row[4], row[5], requested, row[7], row[10],
        row[11], bool(row[12]), int(row[14]), int(row[15]), int(row[16]), int(row[17]),
        int(row[18]), row[19], latency, None if row[21] is None else float(row[21]), tries,
        hedged, rule, row[6], frozenset(f"{t.vendor}/{t.model}" for t in tries),
    )  # fmt: skip


def sampled(request_id: str, sample: float, seed: int) -> bool:
    """Whether a request is in a ``sample`` (0-1] of the traffic: decided by its id and the
    seed alone, so a rerun and both sides of a comparison see the same requests."""
    if sample >= 1.0:
        return True
    digest = hashlib.blake2b(f"{seed}:{request_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < sample


async def span(url: str, start: float, end: float) -> tuple[float, float] | None:
    """When the first and the last request that started in [start, end) started."""
    async with open_ledger(url, spill_dir=None, max_spill_bytes=0) as ledger:
        ((rows, first, last, _),) = (
            await ledger.select([(_EXTENT_SQL, (start, start, end, "cancelled"))])
        )[0]
    return None if not rows else (float(first), float(last))


async def read_pages(
    url: str, start: float, end: float, *, sample: float = 1.0, seed: int = 0, page: int = PAGE
) -> AsyncIterator[list[LedgerRow]]:
    """Every request that started in [start, end), in start order (ties by id), at most
    ``page`` rows at a time (a page may be empty). Cancelled requests are left out: their
    client went away, they say nothing of the vendors, and a config cannot change them."""
    async with open_ledger(url, spill_dir=None, max_spill_bytes=0) as ledger:
        ((rows, first, last, longest),) = (
            await ledger.select([(_EXTENT_SQL, (start, start, end, "cancelled"))])
        )[0]
        if not rows:
            return
        width = max((float(last) - float(first)) * page / rows, 1.0)  # about a page of starts
        after: tuple[float, int] = (start, -1)  # the (start, id) read last
        while after[0] < end:
            upto = min(end, after[0] + width)
            bound = upto + float(longest) + _SLACK_S
            (found,) = await ledger.select([(_PAGE_SQL, (
                after[0], bound, upto, "cancelled", after[0], after[0], after[1], page
            ))])  # fmt: skip
            yield [_row(raw) for raw in found if sample >= 1.0 or sampled(raw[2], sample, seed)]
            if len(found) == page:  # more in this slice: go on from the last row read
                last_row = found[-1]
                after = (float(last_row[1]) - float(last_row[20]), int(last_row[0]))
                width = max(width / 2, _NARROWEST_S)
            else:  # the slice is done: the next starts where it ended
                after = (upto, -1)
                width *= 2 if len(found) <= page // 2 else 1  # sparse: widen


async def read_rows(
    url: str, start: float, end: float, *, sample: float = 1.0, seed: int = 0
) -> AsyncIterator[LedgerRow]:
    """``read_pages``, a row at a time."""
    async for page in read_pages(url, start, end, sample=sample, seed=seed):
        for row in page:
            yield row
