"""The ledger against real databases: a SQLite file, and PostgreSQL when one is reachable.

Every test taking ``url`` runs on both backends (one contract suite). The PostgreSQL run uses a
fresh schema per test, dropped afterwards; it is skipped when no server answers, except in CI
(``CI=true``), where it must run (``scripts/postgres.sh`` starts or installs one). Set
``LLMDISPATCHER_TEST_POSTGRES_URL`` to use another server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from llmdispatcher import Config, Dispatcher, FakeClock, Request, RetryPolicy, Usage
from llmdispatcher.errors import AuthenticationError, ConfigError
from llmdispatcher.observability.events import AttemptFinished, RequestFinished
from llmdispatcher.observability.ledger import (
    MIGRATIONS,
    Ledger,
    LedgerRecord,
    RecordExtra,
    Writing,
    open_ledger,
    open_store,
)
from llmdispatcher.observability.ledger_sql import COLUMNS
from llmdispatcher.types import Attempt
from llmdispatcher.vendors import OpenAIVendor
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Fail, Reply
from tests.unit.echo_vendor import EchoVendor

POSTGRES_URL = os.environ.get(
    "LLMDISPATCHER_TEST_POSTGRES_URL", "postgresql://postgres:postgres@127.0.0.1:5432/test"
)
ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-live-abcdef123456"
V1_COLUMNS = 23  # the columns of 001_create_requests


# --- backends --------------------------------------------------------------------------------
def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run the PostgreSQL suite (run scripts/postgres.sh)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The server's URL, once reachability is known."""
    try:
        import psycopg
    except ImportError:
        _unavailable("psycopg is not installed: pip install -e '.[dev,postgres]'")
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        _unavailable(f"PostgreSQL is unreachable: {exc}".strip())
    return POSTGRES_URL


def _postgres_schema(server: str) -> Iterator[str]:
    import psycopg

    schema = f"ledger_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")  # type: ignore[arg-type]
    sep = "&" if "?" in server else "?"
    try:
        yield f"{server}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL naming an empty ledger database on one backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        yield from _postgres_schema(request.getfixturevalue("postgres_server"))


# --- events ----------------------------------------------------------------------------------
def finished(
    request_id: str = "r1",
    *,
    vendor: str | None = "openai",
    model: str | None = "gpt-4o-mini",
    error: str | None = None,
    latency: float = 0.5,
    ttft: float | None = None,
    usage: Usage | None = None,
    attempts: tuple[Attempt, ...] | None = None,
    **fields: Any,  # user, content; cost_usd, group, deployment, fallbacks, price_version
) -> RequestFinished:
    user = fields.pop("user", "alice")
    content = fields.pop("content", "Say hello")
    if attempts is None:
        status = "ok" if error is None else error
        attempts = (Attempt(vendor or "openai", model or "m", status, error, latency),)
    if usage is None and error is None:
        usage = Usage(10, 5, 15, cached_tokens=2, reasoning_tokens=1)
    return RequestFinished(
        request_id=request_id,
        request=Request(
            model="gpt-4o-mini", messages=[{"role": "user", "content": content}], user=user
        ),
        vendor=vendor,
        model=model,
        stream=ttft is not None,
        latency_s=latency,
        ttft_s=ttft,
        usage=usage,
        error=error,
        attempts=attempts,
        **fields,
    )


def ledger_at(url: str, clock: FakeClock | None = None, **options: Any) -> Ledger:
    """``options``: open_ledger's own, and the fields of its ``Writing``."""
    fields = {k: options.pop(k) for k in list(options) if k in Writing.__dataclass_fields__}
    fields.setdefault("flush_interval_s", 60.0)  # only size, flush() and aclose() write
    return open_ledger(url, clock=clock or FakeClock(), writing=Writing(**fields), **options)


ROW_SQL = (
    "SELECT request_id, status, error_type, user_id, vendor, model, attempts, fallbacks, "
    "prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, cost_nano_usd, "
    "latency_s, ttft_s, stream, messages, output, model_group, deployment, api_key_id, "
    "price_version, finish_reason, tool_calls, detail, ts FROM ledger_requests ORDER BY id"
)
FIELDS = ROW_SQL.removeprefix("SELECT ").split(" FROM ")[0].split(", ")


def pick(row: dict[str, Any], *names: str) -> tuple[Any, ...]:
    return tuple(row[name] for name in names)


async def rows(ledger: Ledger) -> list[dict[str, Any]]:
    await ledger.flush()
    [found] = await ledger.store.query([(ROW_SQL, [])])
    return [dict(zip(FIELDS, row, strict=True)) for row in found]


# --- records ---------------------------------------------------------------------------------
async def test_success_and_failure_are_recorded(url: str) -> None:
    clock = FakeClock(wall_start=1_750_000_000.0)
    failed_over = (
        Attempt("openai", "gpt-4o-mini", "RateLimitError", "429", 0.1),
        Attempt("anthropic", "claude", "VendorServerError", "500", 0.2),
    )
    async with ledger_at(url, clock) as ledger:
        ledger.on_event(finished("ok-1", ttft=0.12, latency=0.75))
        ledger.on_event(
            finished(
                "bad-1",
                vendor="anthropic",
                model=None,
                user=None,
                error="VendorUnavailable",
                latency=0.3,
                attempts=failed_over,
                fallbacks=1,
            )
        )
        ok, bad = await rows(ledger)
    assert [a["status"] for a in json.loads(ok.pop("detail"))["attempts"]] == ["ok"]
    tried = [a["vendor"] for a in json.loads(bad.pop("detail"))["attempts"]]
    assert tried == ["openai", "anthropic"]
    # fmt: off
    assert ok | {"ts": None} == {
        "request_id": "ok-1", "status": "ok", "error_type": None, "user_id": "alice",
        "vendor": "openai", "model": "gpt-4o-mini", "attempts": 1, "fallbacks": 0,
        "prompt_tokens": 10, "completion_tokens": 5, "cached_tokens": 2, "reasoning_tokens": 1,
        "cost_nano_usd": None, "latency_s": 0.75, "ttft_s": 0.12, "stream": 1, "messages": None,
        "output": None, "model_group": None, "deployment": None, "api_key_id": None,
        "price_version": None, "finish_reason": None, "tool_calls": 0, "ts": None,
    }
    assert ok["ts"] == pytest.approx(1_750_000_000.0)
    assert bad | {"ts": None, "latency_s": None} == ok | {
        "request_id": "bad-1", "status": "error", "error_type": "VendorUnavailable",
        "vendor": "anthropic", "model": "gpt-4o-mini", "user_id": None, "attempts": 2,
        "fallbacks": 1, "prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0,
        "reasoning_tokens": 0, "ttft_s": None, "stream": 0, "ts": None, "latency_s": None,
    }
    # fmt: on


async def test_explicit_extra_fields_and_exact_cost(url: str) -> None:
    extra = RecordExtra(
        group="fast",
        deployment="openai-eu",
        api_key_id="key_7f3a",
        cost_usd=Decimal("0.000123456789"),
        price_version="2026-10-01",
        fallbacks=3,
    )
    async with ledger_at(url) as ledger:
        for i in range(3):
            ledger.record(LedgerRecord.from_event(finished(f"r{i}"), extra, at=1.0))
        first = (await rows(ledger))[0]
        stats = await ledger.stats()
    assert pick(first, "model_group", "deployment", "api_key_id") == (
        "fast",
        "openai-eu",
        "key_7f3a",
    )
    assert pick(first, "price_version", "fallbacks") == ("2026-10-01", 3)
    assert first["cost_nano_usd"] == 123457  # rounded half-even to the nano-dollar
    assert stats.totals.cost_usd == Decimal("0.000370371")
    assert isinstance(stats.totals.cost_usd, Decimal)


async def test_fields_the_event_carries(url: str) -> None:
    event = finished(
        "e1",
        cost_usd=0.00042,
        group="fast",
        deployment="openai-eu",
        fallbacks=2,
        price_version="2026-10-01",
    )
    async with ledger_at(url) as ledger:
        ledger.on_event(event)
        [row] = await rows(ledger)
        stats = await ledger.stats()
    assert pick(row, "model_group", "deployment", "fallbacks") == ("fast", "openai-eu", 2)
    assert pick(row, "cost_nano_usd", "price_version") == (420_000, "2026-10-01")
    assert stats.totals.cost_usd == Decimal("0.00042")


async def test_contents_only_when_enabled_and_scrubbed(url: str) -> None:
    event = finished("c1", content=f"my key is {SECRET}")
    extra = RecordExtra(output=f"echo {SECRET}")
    async with ledger_at(url) as plain:
        plain.on_event(event)
        plain.record_event(event, extra)
        assert [(r["messages"], r["output"]) for r in await rows(plain)] == [(None, None)] * 2
    async with ledger_at(url, log_content=True, secrets=lambda: [SECRET]) as logged:
        logged.record_event(event, extra)
        logged.on_event(event)
        found = (await rows(logged))[2:]
    assert found[0]["messages"] == '[{"role":"user","content":"my key is ***"}]'
    assert found[0]["output"] == "echo ***"
    assert found[1]["messages"] == found[0]["messages"]
    assert SECRET not in repr(found)


# --- batching and draining -------------------------------------------------------------------
async def test_many_records_few_transactions(url: str) -> None:
    async with ledger_at(url, batch_size=100) as batched:
        for i in range(1000):
            batched.on_event(finished(f"b{i}"))
        await batched.flush()
        assert (batched.store.transactions, batched.pending) == (10, 0)
    async with ledger_at(url, batch_size=1) as unbatched:
        for i in range(20):
            unbatched.on_event(finished(f"u{i}"))
        await unbatched.flush()
        assert unbatched.store.transactions == 20
        assert (await unbatched.stats()).totals.requests == 1020


async def _until(condition: Any, timeout_s: float = 10.0) -> None:
    """Wait (bounded) for the background writer."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - the writer's progress is the thing observed
            await asyncio.sleep(0.005)


async def test_writer_commits_by_size_and_by_interval_without_flush(url: str) -> None:
    async with ledger_at(url, batch_size=10) as by_size:
        await by_size.open()
        for i in range(10):
            by_size.on_event(finished(f"s{i}"))
        await _until(lambda: by_size.store.transactions == 1)
        assert by_size.pending == 0
    async with ledger_at(url, batch_size=1000, flush_interval_s=0.02) as by_time:
        await by_time.open()
        for i in range(3):
            by_time.on_event(finished(f"t{i}"))
        await _until(lambda: by_time.store.transactions == 1)
        assert by_time.pending == 0


async def test_aclose_drains_and_a_reopened_ledger_sees_everything(url: str) -> None:
    first = ledger_at(url, batch_size=100)
    for i in range(250):
        first.on_event(finished(f"a{i}"))
    await first.aclose()
    await first.aclose()  # idempotent
    first.on_event(finished("late"))
    assert first.dropped == 1
    async with ledger_at(url) as restarted:  # a new process would see the same
        restarted.on_event(finished("after-restart"))
        stats = await restarted.stats()
    assert stats.totals.requests == 251


async def test_two_replicas_write_to_one_database_concurrently(url: str) -> None:
    replicas = [ledger_at(url, batch_size=7, flush_interval_s=0.001) for _ in range(2)]
    await asyncio.gather(*(r.open() for r in replicas))

    async def serve(index: int, ledger: Ledger) -> None:
        for i in range(300):
            ledger.on_event(finished(f"replica{index}-{i}", vendor=f"v{index}"))
            if i % 10 == 0:
                await asyncio.sleep(0)  # let both writers run between requests

    await asyncio.gather(*(serve(i, r) for i, r in enumerate(replicas)))
    await asyncio.gather(*(r.aclose() for r in replicas))
    async with ledger_at(url) as reader:
        stats = await reader.stats()
        [[(distinct,)]] = await reader.store.query(
            [("SELECT COUNT(DISTINCT request_id) FROM ledger_requests", [])]
        )
    assert (stats.totals.requests, distinct) == (600, 600)
    assert {k: g.requests for k, g in stats.by_vendor.items()} == {"v0": 300, "v1": 300}


async def test_a_locked_database_keeps_the_records_until_it_frees(tmp_path: Path) -> None:
    import sqlite3

    from llmdispatcher.observability.ledger_sqlite import SQLiteStore

    path = tmp_path / "locked.db"
    store = SQLiteStore(str(path), busy_timeout_s=0.05)
    ledger = Ledger(store, writing=Writing(batch_size=2, retry_after_s=0.01))
    await ledger.open()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    for i in range(3):
        ledger.on_event(finished(f"k{i}"))
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        await ledger.flush()
    assert ledger.pending == 3
    blocker.execute("ROLLBACK")
    blocker.close()
    await _until(lambda: ledger.pending == 0)  # the background writer tried again
    assert (await ledger.stats()).totals.requests == 3
    await ledger.aclose()


# --- migrations ------------------------------------------------------------------------------
async def _migration_names(ledger: Ledger) -> list[str]:
    [found] = await ledger.store.query(
        [("SELECT name FROM ledger_migrations ORDER BY applied_at, name", [])]
    )
    return [name for (name,) in found]


async def _index_names(ledger: Ledger) -> set[str]:
    sql = (
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'ledger_requests'"
        if ledger.store.dialect == "sqlite"
        else "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = 'ledger_requests'"
    )
    [found] = await ledger.store.query([(sql, [])])
    return {name for (name,) in found}


async def test_a_v1_database_is_upgraded_to_the_latest_schema(url: str) -> None:
    old = open_store(url)
    await old.open(MIGRATIONS[:1])  # a database as the first release left it
    await old.aclose()
    await asyncio.to_thread(_insert_v1_row, url)  # as the first release wrote them

    async with ledger_at(url) as upgraded:
        assert await _migration_names(upgraded) == [m.name for m in MIGRATIONS]
        assert {"ledger_requests_ts", "ledger_requests_request_id"} <= await _index_names(upgraded)
        assert (await upgraded.stats()).totals.requests == 1
    async with ledger_at(url) as again:  # opening an up-to-date database changes nothing
        assert await _migration_names(again) == [m.name for m in MIGRATIONS]


def _insert_v1_row(url: str) -> None:
    row = LedgerRecord.from_event(finished("from-v1"), at=1.0).as_row()[:V1_COLUMNS]
    sql = f"INSERT INTO ledger_requests ({', '.join(COLUMNS[:V1_COLUMNS])}) VALUES "
    if url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            conn.execute(sql + f"({', '.join('?' * V1_COLUMNS)})", row)
            conn.commit()
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql + f"({', '.join(['%s'] * V1_COLUMNS)})", row)  # type: ignore[arg-type]


# --- statistics ------------------------------------------------------------------------------
async def test_stats_group_count_and_rank(url: str) -> None:
    clock = FakeClock(wall_start=1_750_000_000.0)
    extra = RecordExtra(cost_usd=Decimal("0.000001"))
    async with ledger_at(url, clock) as ledger:
        for i in range(1, 101):  # latencies 0.01 .. 1.00 s, shuffled
            latency = (i * 37 % 100 + 1) / 100
            event = finished(
                f"a{i}",
                vendor="a",
                user="alice" if i % 2 else "bob",
                latency=latency,
                ttft=latency / 2 if i <= 11 else None,
            )
            ledger.record(LedgerRecord.from_event(event, extra, at=clock.wall()))
        for i in range(3):
            ledger.on_event(
                finished(
                    f"b{i}",
                    vendor="b",
                    model="claude",
                    user=None,
                    error="AuthenticationError",
                    latency=9.0,
                )
            )
        clock.advance(3600)
        ledger.on_event(finished("recent", vendor="c", latency=2.0))
        everything = await ledger.stats()
        last_minute = await ledger.stats(since=clock.wall() - 60)

    totals = everything.totals
    assert (totals.requests, totals.successes, totals.failures) == (104, 101, 3)
    assert totals.success_rate == pytest.approx(101 / 104)
    assert (totals.latency_p50_s, totals.latency_p95_s, totals.latency_p99_s) == (0.51, 0.96, 1.0)
    assert (totals.prompt_tokens, totals.completion_tokens) == (1010, 505)
    assert (totals.cached_tokens, totals.reasoning_tokens) == (202, 101)
    assert totals.cost_usd == Decimal("0.0001")
    a, b = everything.by_vendor["a"], everything.by_vendor["b"]
    assert (a.requests, a.success_rate, a.latency_p50_s, a.latency_p95_s) == (100, 1.0, 0.5, 0.95)
    assert a.latency_p99_s == 0.99
    assert a.ttft_p50_s is not None
    assert (b.requests, b.successes, b.success_rate, b.latency_p50_s) == (3, 0, 0.0, None)
    assert set(everything.by_model) == {"gpt-4o-mini", "claude"}
    assert {k: g.requests for k, g in everything.by_user.items()} == {
        "alice": 51,
        "bob": 50,
        None: 3,
    }
    assert last_minute.totals.requests == 1
    assert set(last_minute.by_vendor) == {"c"}
    assert last_minute.totals.latency_p50_s == 2.0


async def test_ttft_median_and_the_stats_shape(url: str) -> None:
    async with ledger_at(url) as ledger:
        for i, ttft in enumerate([0.3, 0.1, 0.2, 0.5, 0.4]):
            ledger.on_event(finished(f"s{i}", ttft=ttft))
        retried = (
            Attempt("openai", "m", "RateLimitError", "429", 0.1),
            Attempt("openai", "m", "RateLimitError", "429", 0.1),
            Attempt("anthropic", "m", "ok", None, 0.1),
        )
        ledger.on_event(finished("retried", attempts=retried, fallbacks=1))
        stats = (await ledger.stats()).as_stats()
    assert stats.vendor_stats["openai"].ttft_p50_s == 0.3
    assert (stats.total_requests, stats.retries, stats.fallbacks) == (6, 1, 1)


async def test_empty_ledger_stats(url: str) -> None:
    async with ledger_at(url) as ledger:
        stats = await ledger.stats()
    assert (stats.totals.requests, stats.totals.success_rate, stats.by_vendor) == (0, None, {})


# --- through the dispatcher, and across loops ------------------------------------------------
def _dispatcher(fake: FakeOpenAI, ledger: Ledger, retries: int = 0) -> Dispatcher:
    vendor = OpenAIVendor(api_key=FAKE_OPENAI_KEY, base_url=fake.url + "/v1", name="openai")
    policy = RetryPolicy(max_retries=retries, base_delay=0, jitter=False)
    dispatcher = Dispatcher(Config(retry_policy=policy), vendors=[vendor], rng=random.Random(1))
    dispatcher.subscribe(ledger.on_event)
    return dispatcher


HELLO = Request(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], user="u1")


async def test_the_dispatcher_feeds_the_ledger(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.enqueue(Reply(text="Hello", prompt_tokens=7, completion_tokens=3), Fail("auth"))
    async with ledger_at(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        async with _dispatcher(fake_openai, ledger) as dispatcher:
            await dispatcher.send(HELLO)
            with pytest.raises(AuthenticationError):
                await dispatcher.send(HELLO)
        ok, bad = await rows(ledger)
    assert pick(ok, "status", "vendor", "prompt_tokens", "user_id") == ("ok", "openai", 7, "u1")
    assert ok["cost_nano_usd"] > 0  # priced from the price table, which names its version
    assert ok["price_version"] is not None
    assert pick(bad, "status", "error_type", "attempts") == ("error", "AuthenticationError", 1)


async def test_a_row_keeps_its_tries_and_routing_decision(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    """``detail``: every try with its error, and why the request went where it went."""
    fake_openai.enqueue(Fail("server"), Reply(text="Hello"))
    async with ledger_at(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        async with _dispatcher(fake_openai, ledger, retries=1) as dispatcher:
            await dispatcher.send(HELLO)
        (row,) = await rows(ledger)
    detail = json.loads(row["detail"])
    assert [(a["vendor"], a["status"]) for a in detail["attempts"]] == [
        ("openai", "VendorServerError"),
        ("openai", "ok"),
    ]
    routing = detail["routing"]
    assert [c["vendor"] for c in routing["candidates"]] == ["openai"]
    assert routing["strategy"]
    assert routing["reason"]


def test_sync_callers_flush_from_another_loop(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.enqueue(Reply(), Reply())
    ledger = ledger_at(f"sqlite:///{tmp_path / 'l.db'}")
    with _dispatcher(fake_openai, ledger) as dispatcher:
        dispatcher.send_sync(HELLO)  # the writer starts on the dispatcher's private loop
        dispatcher.send_sync(HELLO)
        assert asyncio.run(ledger.stats()).totals.requests == 2  # carried over to that loop
        asyncio.run(ledger.aclose())


# --- the request path never fails, and the edges ---------------------------------------------
async def test_other_events_are_ignored_and_a_full_buffer_drops(tmp_path: Path) -> None:
    ledger = ledger_at(f"sqlite:///{tmp_path / 'l.db'}", max_buffer=2, batch_size=100)
    ledger.on_event(AttemptFinished("r", Attempt("openai", "m", "ok", None, 0.1)))
    for i in range(3):
        ledger.on_event(finished(f"r{i}"))
    assert (ledger.pending, ledger.dropped) == (2, 1)
    await ledger.aclose()


def test_unknown_url_schemes_are_refused_without_echoing_the_url() -> None:
    with pytest.raises(ConfigError, match=r"sqlite:///path\.db") as caught:
        open_store("mysql://user:hunter2@db/ledger")
    assert "hunter2" not in str(caught.value)


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return done.stdout.strip()


def test_importing_the_package_loads_no_database_driver() -> None:
    code = (
        "import sys, llmdispatcher, llmdispatcher.observability.ledger as l; "
        "print(sorted(m for m in ('sqlite3', '_sqlite3', 'psycopg') if m in sys.modules))"
    )
    assert _python(code) == "[]"


def test_a_missing_psycopg_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from llmdispatcher.observability.ledger import open_ledger\n"
        "try:\n    open_ledger('postgresql://localhost/x')\n"
        "except Exception as e:\n    print(type(e).__name__, e)"
    )
    out = _python(code)
    assert out.startswith("ConfigError")
    assert "llmdispatcher[postgres]" in out


async def test_a_streamed_tool_call_is_in_the_ledger_row(tmp_path: Path) -> None:
    """The stream's fold reaches the row: its finish reason as the last chunk said it, and its
    tool calls, though the vendor sent the finish reason nowhere."""
    from tests.test_lifecycle import ToolStreamer

    async with ledger_at(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        async with Dispatcher(vendors=[ToolStreamer("t")]) as d:
            d.subscribe(ledger.on_event)
            chunks = [c async for c in d.stream(HELLO)]
        (row,) = await rows(ledger)
    assert chunks[-1].finish_reason == "tool_calls"
    assert pick(row, "status", "stream", "finish_reason", "tool_calls") == (
        "ok",
        1,
        "tool_calls",
        1,
    )


def test_a_spilled_row_from_before_the_later_columns_is_completed() -> None:
    from llmdispatcher.observability.ledger_sql import COLUMNS, LATER_COLUMNS, full_row

    old = tuple(range(len(COLUMNS) - len(LATER_COLUMNS)))
    assert full_row(old) == (*old, None, None, None, 0, None)
    assert full_row((*old, "key", "team", "stop", 2)) == (*old, "key", "team", "stop", 2, None)
    detail = '{"attempts": []}'
    assert full_row((*old, "k", "t", "stop", 2, detail)) == (*old, "k", "t", "stop", 2, detail)


async def test_ledger_url_none_turns_recording_off_in_the_library_too() -> None:
    async with Dispatcher(Config(ledger_url="none"), vendors=[EchoVendor("e")]) as d:
        await d.send(HELLO)
        with pytest.raises(ConfigError, match="no ledger"):
            await d.ledger_stats()
