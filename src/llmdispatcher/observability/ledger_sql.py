"""The SQL both ledger backends share: the schema and its named migrations, the insert, and
the statistics queries with what they read back.

Schema (the same on SQLite and PostgreSQL; ``{id}`` is the dialect's identity column)::

    ledger_migrations (name PRIMARY KEY, applied_at)   which named migrations ran
    ledger_requests   (id, ts, request_id, user_id, api_key_id, model_group, vendor,
                       deployment, model, status, error_type, stream, attempts, fallbacks,
                       prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens,
                       cost_nano_usd, latency_s, ttft_s, price_version, messages, output,
                       api_key_name, team, finish_reason, tool_calls, detail, cache,
                       saved_tokens, saved_cost_nano_usd)
    ledger_rollups    (span_s, dimension, period_start, group_key, the sums, latency, ttft)

``detail`` is JSON: the request's tries (vendor, model, status, error, seconds) and its routing
decision (rule, strategy, group, reason, scored candidates, exclusions and why), what the
dashboard's request page shows. Only ``ts`` and ``request_id`` are indexed: an index per
grouped column (vendor, model, key; migration 005, dropped by 006) was measured to make
SQLite's planner skip-scan it for the statistics below, three times as slow over 1 h of a
1M-row ledger (``bench/RESULTS-ui.md``), and to cost every write.

Migrations are named and applied in list order, each in the transaction that records it,
under a lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL an advisory lock), so replicas starting
together migrate once and opening an up-to-date database changes nothing. Migrations only add,
so an older replica keeps writing to a database a newer one has migrated. A new migration is
appended to ``MIGRATIONS``, never edited in place.

Cost is stored as integer nano-dollars (exact sums in SQL on both backends) and read back as
``Decimal`` USD. The exact statistics below (``stats_statements``) take nearest-rank
percentiles in SQL with window functions (``ROW_NUMBER`` and ``COUNT`` over the group; SQLite
>= 3.25, any PostgreSQL): only one row per group comes back, at the cost of one sort of the
window's values per grouping inside the database, seconds for a day of a busy ledger. So
``ledger_rollups`` (migration 008, ``ledger_rollup``) keeps the same sums and log-bucket
sketches per minute, hour and day; ``Ledger.stats`` reads those, and these statements only for
a window of few rows. ``since`` bounds the window, and ``ts`` is indexed.

SQL is written with ``?`` placeholders; the PostgreSQL store turns them into ``%s``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeAlias

from .stats import Stats, VendorStats

Row: TypeAlias = tuple[Any, ...]
Statement: TypeAlias = tuple[str, Sequence[Any]]

NANO = Decimal(10) ** 9
REQUESTS = "ledger_requests"
COLUMNS: tuple[str, ...] = (
    "ts", "request_id", "user_id", "api_key_id", "model_group", "vendor", "deployment", "model",
    "status", "error_type", "stream", "attempts", "fallbacks", "prompt_tokens",
    "completion_tokens", "cached_tokens", "reasoning_tokens", "cost_nano_usd", "latency_s",
    "ttft_s", "price_version", "messages", "output", "api_key_name", "team",
    "finish_reason", "tool_calls", "detail", "cache", "saved_tokens", "saved_cost_nano_usd",
)  # fmt: skip
# Columns added after the first schema, with their defaults, for rows written before them
# (a spill file left by an older version).
LATER_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("api_key_name", None),
    ("team", None),
    ("finish_reason", None),
    ("tool_calls", 0),
    ("detail", None),
    ("cache", None),
    ("saved_tokens", 0),
    ("saved_cost_nano_usd", None),
)


def full_row(row: Row) -> Row:
    """``row`` with the defaults of any later column it predates."""
    missing = len(COLUMNS) - len(row)
    if not 0 < missing <= len(LATER_COLUMNS):
        return row
    return (*row, *(default for _, default in LATER_COLUMNS[-missing:]))


# Indexed with ``ts`` by migration 005, dropped by 006 (migrations are never edited).
FILTER_INDEXED = ("api_key_name", "model", "vendor", "status")

INSERT_SQL = (
    f"INSERT INTO {REQUESTS} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
)


@dataclass(frozen=True, slots=True)
class Migration:
    """A named schema step; ``{id}`` in a statement becomes the dialect's id column and
    ``{keyed}`` its option for a table stored in primary-key order. ``rolls_up``: the store
    then fills ``ledger_rollups`` from the rows already there (``ledger_rollup``)."""

    name: str
    statements: tuple[str, ...]
    rolls_up: bool = False

    def sql(self, dialect: str) -> list[str]:
        return [
            s.replace("{id}", ID_COLUMN[dialect]).replace("{keyed}", KEYED_TABLE[dialect])
            for s in self.statements
        ]


ID_COLUMN = {
    "sqlite": "INTEGER PRIMARY KEY",
    "postgresql": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
}
KEYED_TABLE = {"sqlite": " WITHOUT ROWID", "postgresql": ""}
ROLLUPS = "ledger_rollups"
# Per group and period, what the statistics sum (in ``SUMS`` order, after the count).
ROLLUP_SUMS: tuple[str, ...] = (
    "requests", "successes", "attempts", "retries", "fallbacks", "prompt_tokens",
    "completion_tokens", "cached_tokens", "reasoning_tokens", "cost_nano_usd", "cache_hits",
    "saved_tokens", "saved_cost_nano_usd",
)  # fmt: skip
MIGRATIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS ledger_migrations "
    "(name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
)
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "001_create_requests",
        (
            f"""CREATE TABLE {REQUESTS} (
                id {{id}},
                ts DOUBLE PRECISION NOT NULL,
                request_id TEXT NOT NULL,
                user_id TEXT,
                api_key_id TEXT,
                model_group TEXT,
                vendor TEXT,
                deployment TEXT,
                model TEXT,
                status TEXT NOT NULL,
                error_type TEXT,
                stream SMALLINT NOT NULL DEFAULT 0,
                attempts INTEGER NOT NULL DEFAULT 0,
                fallbacks INTEGER NOT NULL DEFAULT 0,
                prompt_tokens BIGINT NOT NULL DEFAULT 0,
                completion_tokens BIGINT NOT NULL DEFAULT 0,
                cached_tokens BIGINT NOT NULL DEFAULT 0,
                reasoning_tokens BIGINT NOT NULL DEFAULT 0,
                cost_nano_usd BIGINT,
                latency_s DOUBLE PRECISION NOT NULL,
                ttft_s DOUBLE PRECISION,
                price_version TEXT,
                messages TEXT,
                output TEXT
            )""",
        ),
    ),
    Migration(
        "002_index_requests_by_time",
        (
            f"CREATE INDEX IF NOT EXISTS {REQUESTS}_ts ON {REQUESTS} (ts)",
            f"CREATE INDEX IF NOT EXISTS {REQUESTS}_request_id ON {REQUESTS} (request_id)",
        ),
    ),
    Migration(
        "003_key_name_and_team",  # the gateway key's name and team (stored keys: api_key_id)
        (
            f"ALTER TABLE {REQUESTS} ADD COLUMN api_key_name TEXT",
            f"ALTER TABLE {REQUESTS} ADD COLUMN team TEXT",
        ),
    ),
    Migration(
        "004_finish_reason_and_tool_calls",
        (
            f"ALTER TABLE {REQUESTS} ADD COLUMN finish_reason TEXT",
            f"ALTER TABLE {REQUESTS} ADD COLUMN tool_calls INTEGER NOT NULL DEFAULT 0",
        ),
    ),
    Migration(
        "005_detail_and_filter_indexes",  # the dashboard: a request's tries and routing
        (
            f"ALTER TABLE {REQUESTS} ADD COLUMN detail TEXT",
            *(
                f"CREATE INDEX IF NOT EXISTS {REQUESTS}_{column}_ts ON {REQUESTS} ({column}, ts)"
                for column in FILTER_INDEXED
            ),
        ),
    ),
    Migration(
        "006_response_cache",  # hit | miss | bypass, and what a hit saved
        (
            f"ALTER TABLE {REQUESTS} ADD COLUMN cache TEXT",
            f"ALTER TABLE {REQUESTS} ADD COLUMN saved_tokens BIGINT NOT NULL DEFAULT 0",
            f"ALTER TABLE {REQUESTS} ADD COLUMN saved_cost_nano_usd BIGINT",
        ),
    ),
    Migration(
        "007_drop_filter_indexes",  # 005's: they slowed the statistics (see the module doc)
        tuple(f"DROP INDEX IF EXISTS {REQUESTS}_{column}_ts" for column in FILTER_INDEXED),
    ),
    Migration(
        "008_rollups",  # per-minute/hour/day sums and latency sketches (``ledger_rollup``)
        (
            f"""CREATE TABLE {ROLLUPS} (
                span_s INTEGER NOT NULL,
                dimension TEXT NOT NULL,
                period_start BIGINT NOT NULL,
                group_key TEXT NOT NULL,
                {", ".join(f"{name} BIGINT NOT NULL" for name in ROLLUP_SUMS)},
                latency TEXT,
                ttft TEXT,
                PRIMARY KEY (span_s, dimension, period_start, group_key)
            ){{keyed}}""",
        ),
        rolls_up=True,
    ),
)


@dataclass(frozen=True, slots=True)
class GroupStats:
    """Requests of one group. Latency percentiles cover successful requests; TTFT covers
    every request that measured one (streams that opened)."""

    requests: int = 0
    successes: int = 0
    failures: int = 0
    success_rate: float | None = None
    attempts: int = 0
    retries: int = 0
    fallbacks: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    latency_p99_s: float | None = None
    ttft_p50_s: float | None = None
    cache_hits: int = 0
    tokens_saved: int = 0
    cost_saved_usd: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class LedgerStats:
    """Totals and groups since ``since`` (epoch seconds; None: everything). A missing vendor,
    model or user is grouped under the key None."""

    since: float | None = None
    totals: GroupStats = field(default_factory=GroupStats)
    by_vendor: dict[str | None, GroupStats] = field(default_factory=dict)
    by_model: dict[str | None, GroupStats] = field(default_factory=dict)
    by_user: dict[str | None, GroupStats] = field(default_factory=dict)
    by_key: dict[str | None, GroupStats] = field(default_factory=dict)  # gateway key names
    by_team: dict[str | None, GroupStats] = field(default_factory=dict)

    def as_stats(self) -> Stats:
        """The in-memory ``Stats`` shape. Unlike live stats, per-vendor ``requests`` count
        requests (by the vendor that finished them), not attempts."""
        t = self.totals
        return Stats(
            total_requests=t.requests,
            successful_requests=t.successes,
            failed_requests=t.failures,
            retries=t.retries,
            fallbacks=t.fallbacks,
            vendor_stats={k: _vendor_stats(g) for k, g in self.by_vendor.items() if k},
            cache_hits=t.cache_hits,
            tokens_saved=t.tokens_saved,
            cost_saved_usd=float(t.cost_saved_usd),
        )


def _vendor_stats(g: GroupStats) -> VendorStats:
    return VendorStats(
        requests=g.requests,
        successes=g.successes,
        failures=g.failures,
        prompt_tokens=g.prompt_tokens,
        completion_tokens=g.completion_tokens,
        latency_p50_s=g.latency_p50_s,
        latency_p95_s=g.latency_p95_s,
        latency_p99_s=g.latency_p99_s,
        ttft_p50_s=g.ttft_p50_s,
    )


GROUPINGS: tuple[tuple[str, str | None], ...] = (
    ("totals", None),
    ("by_vendor", "vendor"),
    ("by_model", "model"),
    ("by_user", "user_id"),
    ("by_key", "api_key_name"),
    ("by_team", "team"),
)
SUMS = (
    "SUM(CASE WHEN status = 'ok' THEN 1 ELSE 0 END), SUM(attempts), "
    "SUM(CASE WHEN attempts > fallbacks + 1 THEN attempts - fallbacks - 1 ELSE 0 END), "
    "SUM(fallbacks), SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens), "
    "SUM(reasoning_tokens), SUM(cost_nano_usd), SUM(CASE WHEN cache = 'hit' THEN 1 ELSE 0 END), "
    "SUM(saved_tokens), SUM(saved_cost_nano_usd)"
)


def _where(since: float | None, condition: str | None = None) -> tuple[str, list[Any]]:
    clauses = [condition] if condition else []
    if since is not None:
        clauses.append("ts >= ?")
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), (
        [] if since is None else [since]
    )


def aggregate_sql(column: str | None, since: float | None) -> Statement:
    where, params = _where(since)
    group = f" GROUP BY {column}" if column else ""
    key = column or "''"
    return f"SELECT {key}, COUNT(*), {SUMS} FROM {REQUESTS}{where}{group}", params


def percentile_sql(
    column: str | None, value: str, since: float | None, condition: str | None = None
) -> Statement:
    """Nearest-rank p50/p95/p99 of ``value`` per ``column``: rank ceil(n * p / 100)."""
    where, params = _where(
        since, f"{value} IS NOT NULL" + (f" AND {condition}" if condition else "")
    )
    part = f"PARTITION BY {column}" if column else ""
    key = column or "''"
    ranked = (
        f"SELECT {key} AS g, {value} AS v, "
        f"ROW_NUMBER() OVER ({part} ORDER BY {value}) AS rn, COUNT(*) OVER ({part}) AS n "
        f"FROM {REQUESTS}{where}"
    )
    picks = ", ".join(f"MAX(CASE WHEN rn = (n * {p} + 99) / 100 THEN v END)" for p in (50, 95, 99))
    return f"SELECT g, {picks} FROM ({ranked}) AS w GROUP BY g", params


def stats_statements(since: float | None) -> list[Statement]:
    """Three statements per grouping: sums, latency percentiles, TTFT percentiles."""
    statements: list[Statement] = []
    for _, column in GROUPINGS:
        statements.append(aggregate_sql(column, since))
        statements.append(percentile_sql(column, "latency_s", since, "status = 'ok'"))
        statements.append(percentile_sql(column, "ttft_s", since))
    return statements


def fold_stats(since: float | None, results: Sequence[Sequence[Row]]) -> LedgerStats:
    groups: dict[str, dict[str | None, GroupStats]] = {}
    for i, (name, _) in enumerate(GROUPINGS):
        sums, latency, ttft = results[3 * i : 3 * i + 3]
        lat = {row[0]: row[1:] for row in latency}
        first = {row[0]: row[1] for row in ttft}
        groups[name] = {
            row[0]: group_stats(row[1:], lat.get(row[0]), first.get(row[0]))
            for row in sums
            if row[1]
        }
    return stats_of(since, groups)


def stats_of(since: float | None, groups: dict[str, dict[str | None, GroupStats]]) -> LedgerStats:
    """``groups`` by ``GROUPINGS`` name (the totals under the key "")."""
    return LedgerStats(
        since=since,
        totals=groups["totals"].get("", GroupStats()),
        by_vendor=groups["by_vendor"],
        by_model=groups["by_model"],
        by_user=groups["by_user"],
        by_key=groups["by_key"],
        by_team=groups["by_team"],
    )


def group_stats(sums: Row, latency: Row | None, ttft: Any) -> GroupStats:
    n, ok, attempts, retries, fallbacks, prompt, completion, cached, reasoning, nano, hits = (
        int(v or 0) for v in sums[:11]
    )
    saved_tokens, saved_nano = (int(v or 0) for v in sums[11:])
    p50, p95, p99 = latency or (None, None, None)
    return GroupStats(
        requests=n,
        successes=ok,
        failures=n - ok,
        success_rate=ok / n if n else None,
        attempts=attempts,
        retries=retries,
        fallbacks=fallbacks,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        reasoning_tokens=reasoning,
        cost_usd=Decimal(nano).scaleb(-9) if nano else Decimal(0),
        latency_p50_s=_float(p50),
        latency_p95_s=_float(p95),
        latency_p99_s=_float(p99),
        ttft_p50_s=_float(ttft),
        cache_hits=hits,
        tokens_saved=saved_tokens,
        cost_saved_usd=Decimal(saved_nano).scaleb(-9) if saved_nano else Decimal(0),
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
