"""The disk under the SQLite ledger fills up mid-load: one clear log line, every request still
served, the database intact, and every record written once space is freed.

A real full disk: an 8 MiB tmpfs mounted for the test (needs root and ``mount``; skipped
otherwise). The spill file sits on another filesystem, as ``spill_dir`` allows. 8 MiB leaves
room, once space is freed, for SQLite's write-ahead log to reach its checkpoint size (1,000
pages): on 2 MiB the log, which also carries the rollups since migration 008, filled the disk
by itself and no write could succeed again.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmdispatcher import Config, Dispatcher, Request, RetryPolicy
from llmdispatcher.observability.ledger import Ledger, Writing
from llmdispatcher.observability.ledger_spill import SpillFile
from llmdispatcher.observability.ledger_sqlite import SQLiteStore
from llmdispatcher.vendors import OpenAIVendor
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk``."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError:
            pass
    return filler


async def serve(d: Dispatcher, count: int) -> int:
    served = 0
    for _ in range(count):
        await d.send(Request(model="gpt-4o-mini", messages=HI))
        served += 1
    return served


async def until(condition: object, timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110 - the writer's progress
            await asyncio.sleep(0.02)


async def test_a_full_disk_is_logged_once_and_loses_nothing(
    fake_openai: FakeOpenAI, small_disk: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="llmdispatcher.ledger")
    db = small_disk / "ledger.db"
    book = Ledger(
        SQLiteStore(str(db)),
        writing=Writing(100, 0.02, 600, 0.05, 0.5),
        spill=SpillFile(tmp_path / "spill", 2**30),
    )
    vendor = OpenAIVendor(name="a", api_key=FAKE_OPENAI_KEY, base_url=fake_openai.url + "/v1")
    config = Config(retry_policy=RetryPolicy(max_retries=0))
    async with asyncio.timeout(120), Dispatcher(config, vendors=[vendor]) as d:
        d.subscribe(book.on_event)
        await book.open()
        before = await serve(d, 100)
        await book.flush()
        filler = fill(small_disk)
        during = await serve(d, 1500)  # 2.5x the memory buffer
        await until(lambda: book.spilled > 0)
        filler.unlink()
        await until(lambda: book.pending == 0 and book.replayed == book.spilled)
        await book.aclose()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        counted = conn.execute("SELECT COUNT(*), COUNT(DISTINCT request_id) FROM ledger_requests")
        assert counted.fetchone() == (1600, 1600)
    assert (before, during) == (100, 1500)
    assert book.dropped == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("the disk is full" in w and str(db) in w for w in warnings) == 1
    assert sum("accepts writes again" in w for w in warnings) == 1
    assert not [r for r in caplog.records if r.exc_info]  # a line, not a traceback per retry


def test_a_spill_file_on_a_full_disk_keeps_only_whole_rows(small_disk: Path) -> None:
    spill = SpillFile(small_disk / "spill", 2**30)
    row = (1.5, "r", None, 7, "x" * 200)
    assert spill.append([row] * 10) == 10
    fill(small_disk)
    with pytest.raises(OSError, match="No space"):
        spill.append([row] * 100_000)
    assert spill.read(1000) == [row] * 10  # the failed append was cut back, not half-kept
