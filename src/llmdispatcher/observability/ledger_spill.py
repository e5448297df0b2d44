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

from .ledger_sql import Row

PATTERN = "ledger-*.jsonl"


class SpillFile:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.path = directory / f"ledger-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self._own: IO[bytes] | None = None
        self._reading: IO[bytes] | None = None  # the file being replayed: ours or adopted
        self._read_from = 0  # committed offset in the file being replayed
        self._read_to = 0  # offset after the rows handed out by ``read``
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """Bytes in our own file (written and not yet replayed in full)."""
        return 0 if self._own is None else os.fstat(self._own.fileno()).st_size

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
        """Append ``rows`` up to the size bound; how many were kept. Raises ``OSError`` (the
        file cut back to whole lines) when the disk refuses."""
        own = self._own or self._open_own()
        start = size = self.size
        data = bytearray()
        for row in rows:
            line = orjson.dumps(row) + b"\n"
            if size + len(data) + len(line) > self.max_bytes:
                break
            data += line
        kept = data.count(b"\n")
        try:
            own.seek(0, os.SEEK_END)
            own.write(data)
            own.flush()
        except OSError:
            os.ftruncate(own.fileno(), start)
            raise
        return kept

    def _read(self, limit: int) -> list[Row]:
        """Up to ``limit`` rows not yet written to the database, oldest first (our own file,
        or else an orphan's); ``commit`` once they are written."""
        source = self._source()
        if source is None:
            return []
        source.seek(self._read_from)
        rows: list[Row] = []
        while len(rows) < limit:
            line = source.readline()
            if not line.endswith(b"\n"):
                break
            rows.append(tuple(orjson.loads(line)))
        self._read_to = source.tell() if rows else self._read_from
        return rows

    def _commit(self) -> None:
        """The rows of the last ``read`` are in the database: move past them."""
        source = self._reading
        if source is None:
            return
        self._read_from = self._read_to
        if self._read_from >= os.fstat(source.fileno()).st_size:
            self._finish(source)
        else:
            _done_path(source).write_text(str(self._read_from))

    def _close(self) -> None:
        """Release our lock; the file stays if it still holds rows (a later ledger adopts it)."""
        for handle in {self._own, self._reading} - {None}:
            assert handle is not None
            if os.fstat(handle.fileno()).st_size == 0:
                _unlink(handle)
            handle.close()
        self._own = self._reading = None

    # --- internals -----------------------------------------------------------------------------
    def _open_own(self) -> IO[bytes]:
        self.directory.mkdir(parents=True, exist_ok=True)
        own = open(self.path, "ab+")  # noqa: SIM115 - kept open, and locked, while we live
        fcntl.flock(own.fileno(), fcntl.LOCK_EX)
        self._own = own
        return own

    def _source(self) -> IO[bytes] | None:
        if self._reading is not None:
            return self._reading
        if self._own is not None and self.size > 0:
            self._reading, self._read_from = self._own, 0
            return self._own
        orphan = self._adopt()
        if orphan is not None:
            done = _done_path(orphan)
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
        _done_path(source).unlink(missing_ok=True)
        if source is self._own:
            os.ftruncate(source.fileno(), 0)
        else:
            _unlink(source)
            source.close()


def _done_path(handle: IO[bytes]) -> Path:
    return Path(f"{handle.name}.done")


def _unlink(handle: IO[bytes]) -> None:
    Path(str(handle.name)).unlink(missing_ok=True)
    _done_path(handle).unlink(missing_ok=True)
