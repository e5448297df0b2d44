"""The recorded requests a replay reads: ledger rows in the order they started, a page at a time
(bounded memory however long the ledger), optionally a deterministic sample of them."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from ..observability.ledger import open_ledger
from ..observability.ledger_sql import REQUESTS

PAGE = 5_000
_COLUMNS = (
    "id, ts, request_id, user_id, api_key_name, team, model_group, vendor, deployment, model, "
    "status, error_type, stream, attempts, fallbacks, prompt_tokens, completion_tokens, "
    "cached_tokens, reasoning_tokens, cost_nano_usd, latency_s, ttft_s, detail"
)


@dataclass(frozen=True, slots=True)
class Try:
    """One recorded try: the deployment it went to, ``ok`` or the error's class name, and how
    long it took."""

    vendor: str
    model: str
    outcome: str
    seconds: float


@dataclass(frozen=True, slots=True)
class LedgerRow:
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


def _detail(row: tuple[Any, ...]) -> tuple[tuple[Try, ...], bool, str | None]:
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
        return tries, hedged, (found.get("routing") or {}).get("rule")
    vendor, model, status, error_type, attempts, latency = (
        row[7], row[9], row[10], row[11], row[13], row[20]
    )  # fmt: skip
    if vendor is None or model is None or attempts != 1:
        return (), False, None
    outcome = "ok" if status == "ok" else (error_type or "error")
    return (Try(vendor, model, outcome, float(latency)),), False, None


def _row(row: tuple[Any, ...]) -> LedgerRow:
    latency = float(row[20])
    tries, hedged, rule = _detail(row)
    requested = row[6] or (tries[0].model if tries else None) or row[9] or "?"
    return LedgerRow(
        started=float(row[1]) - latency, request_id=row[2], user=row[3], key_name=row[4],
        team=row[5], requested=requested, vendor=row[7], status=row[10], error_type=row[11],
        stream=bool(row[12]), fallbacks=int(row[14]), prompt_tokens=int(row[15]),
        completion_tokens=int(row[16]), cached_tokens=int(row[17]),
        reasoning_tokens=int(row[18]), cost_nano=row[19], latency_s=latency,
        ttft_s=None if row[21] is None else float(row[21]), tries=tries, hedged=hedged,
        rule=rule, group=row[6],
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
    sql = (
        f"SELECT MIN(ts - latency_s), MAX(ts - latency_s) FROM {REQUESTS} "
        "WHERE ts - latency_s >= ? AND ts - latency_s < ? AND status != ?"
    )
    async with open_ledger(url, spill_dir=None, max_spill_bytes=0) as ledger:
        ((first, last),) = (await ledger.select([(sql, (start, end, "cancelled"))]))[0]
    return None if first is None else (float(first), float(last))


async def read_rows(
    url: str, start: float, end: float, *, sample: float = 1.0, seed: int = 0
) -> AsyncIterator[LedgerRow]:
    """Every request that started in [start, end), in start order (ties by id), a page at a
    time. Cancelled requests are left out: their client went away, they say nothing of the
    vendors, and a config cannot change them."""
    started = "(ts - latency_s)"
    after: tuple[float, int] = (start, -1)
    async with open_ledger(url, spill_dir=None, max_spill_bytes=0) as ledger:
        while True:
            sql = (
                f"SELECT {_COLUMNS} FROM {REQUESTS} WHERE {started} < ? AND status != ? "
                f"AND ({started} > ? OR ({started} = ? AND id > ?)) "
                f"ORDER BY {started}, id LIMIT {PAGE}"
            )
            (page,) = await ledger.select([(sql, (end, "cancelled", after[0], after[0], after[1]))])
            for raw in page:
                if sampled(raw[2], sample, seed):
                    yield _row(raw)
            if len(page) < PAGE:
                return
            last = page[-1]
            after = (float(last[1]) - float(last[20]), int(last[0]))
