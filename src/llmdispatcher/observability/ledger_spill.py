"""Ledger rows that could not reach the database yet, kept in a local file until they can.

When the ledger's database is down and its memory buffer fills, the writer appends rows here
(JSON lines, ``COLUMNS`` order) and, once the database answers again, reads them back in batches
and writes them, oldest first. Every method does file I/O: call them from a worker thread
(they take a lock: appending and replaying may run at once).

Files: ``<directory>/ledger-<pid>-<random>.jsonl``, one per ledger, held under an exclusive
``flock`` while its ledger lives, with ``<file>.done`` recording how far it has been written to
the database. A file whose lock nobody holds belongs to a process that is gone: the next ledger
to write to the database adopts it and finishes it, so a crash or restart loses nothing either.
Across a crash between a committed batch and its ``.done`` update, that one batch is written
twice; otherwise each row once.

Bounded: the file never grows past ``max_bytes``. Rows beyond (or that a full disk refuses) are
counted by the caller as dropped; a failed append is cut back to the last whole line, so the
file never holds half a row.
"""

from __future__ import annotations

import fcntl
import os
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import orjson

from .ledger_sql import Row, full_row

PATTERN = "ledger-*.jsonl"


class SpillFile:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.path = directory / f"ledger-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self._own: int | None = None  # our file's descriptor, unbuffered: a failed write
        # leaves nothing behind in a buffer to be written later
        self._reading: IO[bytes] | None = None  # the file being replayed: ours or adopted
        self._read_from = 0  # committed offset in the file being replayed
        self._read_to = 0  # offset after the rows handed out by ``read``
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """Bytes in our own file (written and not yet replayed in full)."""
        return 0 if self._own is None else os.fstat(self._own).st_size

    def append(self, rows: Sequence[Row]) -> int:
        """Append ``rows`` up to the size bound; how many were kept. Raises ``OSError`` (the
        file cut back to whole lines) when the disk refuses."""
        with self._lock:
            return self._append(rows)

    def read(self, limit: int) -> list[Row]:
        """Up to ``limit`` rows not yet written to the database, oldest first (our own file,
        or else an orphan's); ``commit`` once they are written."""
        with self._lock:
            return self._read(limit)

    def commit(self) -> None:
        """The rows of the last ``read`` are in the database: move past them."""
        with self._lock:
            self._commit()

    def close(self) -> None:
        """Release our lock; the file stays if it still holds rows (a later ledger adopts it)."""
        with self._lock:
            self._close()

    def _append(self, rows: Sequence[Row]) -> int:
        own = self._open_own() if self._own is None else self._own
        start = self.size
        data = bytearray()
        for row in rows:
            line = orjson.dumps(row) + b"\n"
            if start + len(data) + len(line) > self.max_bytes:
                break
            data += line
        try:
            written = 0
            while written < len(data):  # O_APPEND: each write lands at the end
                written += os.write(own, memoryview(data)[written:])
        except OSError:
            os.ftruncate(own, start)
            raise
        return data.count(b"\n")

    def _read(self, limit: int) -> list[Row]:
        source = self._source()
        if source is None:
            return []
        source.seek(self._read_from)
        rows: list[Row] = []
        while len(rows) < limit:
            line = source.readline()
            if not line.endswith(b"\n"):
                break
            rows.append(full_row(tuple(orjson.loads(line))))
        self._read_to = source.tell() if rows else self._read_from
        return rows

    def _commit(self) -> None:
        source = self._reading
        if source is None:
            return
        self._read_from = self._read_to
        if self._read_from >= os.fstat(source.fileno()).st_size:
            self._finish(source)
        else:
            _done_path(Path(source.name)).write_text(str(self._read_from))

    def _close(self) -> None:
        reading, self._reading = self._reading, None
        if reading is not None:
            if reading.name != str(self.path) and os.fstat(reading.fileno()).st_size == 0:
                _unlink(Path(reading.name))
            reading.close()
        own, self._own = self._own, None
        if own is not None:
            if os.fstat(own).st_size == 0:
                _unlink(self.path)
            os.close(own)  # and with it our lock

    # --- internals -----------------------------------------------------------------------------
    def _open_own(self) -> int:
        self.directory.mkdir(parents=True, exist_ok=True)
        own = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(own, fcntl.LOCK_EX)
        self._own = own
        return own

    def _source(self) -> IO[bytes] | None:
        if self._reading is not None:
            return self._reading
        if self.size > 0:
            self._reading, self._read_from = open(self.path, "rb"), 0  # noqa: SIM115
            return self._reading
        orphan = self._adopt()
        if orphan is not None:
            done = _done_path(Path(orphan.name))
            self._reading = orphan
            self._read_from = int(done.read_text() or 0) if done.exists() else 0
        return self._reading

    def _adopt(self) -> IO[bytes] | None:
        """An orphan: a spill file no living ledger holds the lock of."""
        if not self.directory.is_dir():
            return None
        for path in sorted(self.directory.glob(PATTERN)):
            if path == self.path:
                continue
            handle = open(path, "rb+")  # noqa: SIM115 - handed to the caller, locked
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()  # its ledger is alive and replays it itself
                continue
            return handle
        return None

    def _finish(self, source: IO[bytes]) -> None:
        """Every row of ``source`` is in the database: empty our own file (it stays ours),
        delete an adopted one."""
        self._reading, self._read_from, self._read_to = None, 0, 0
        path = Path(source.name)
        source.close()
        if path == self.path and self._own is not None:
            os.ftruncate(self._own, 0)
            _done_path(path).unlink(missing_ok=True)
        else:
            _unlink(path)


def _done_path(path: Path) -> Path:
    return path.with_name(path.name + ".done")


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)
    _done_path(path).unlink(missing_ok=True)
