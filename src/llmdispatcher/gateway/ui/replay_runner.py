"""At most one replay at a time per gateway process, run in a child process, cancellable.

Why a child process and not a worker thread: a replay is CPU-bound Python for seconds to
minutes. In a thread it would hold the GIL against the gateway's event loop for that long (every
live request waiting its turn in 5 ms slices); it could not be stopped (Python cannot kill a
thread, and ``replay()`` has no cancel hook); and it runs event loops of its own (a
``VirtualTimeLoop``, and ``asyncio.run`` for the ledger reads) whose state had better not live
in the gateway's process at all. A child runs on the other core, ends with ``kill`` at once
when cancelled, and gives its memory back when done. Its cost: starting Python and importing
the replay (about 0.2 s of CPU here), and the configs sent pickled over a pipe.
``bench/ui_replay.py`` measures how late the gateway's loop wakes with either.

``ReplayRunner.start`` refuses while one runs (``ReplayBusy``); ``last`` keeps the latest
outcome (report, refusal, crash or cancel) for the page; ``cancel`` kills a running child (the
Cancel button, and the gateway stopping).
"""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...config import Config
from ...replay import Window
from .replay_worker import REFUSED

logger = logging.getLogger("llmdispatcher.gateway")
WORKER = ("-m", "llmdispatcher.gateway.ui.replay_worker")
STDERR_LOGGED = 4_000  # characters of a crashed child's stderr that reach the log
_CRASHED = "the replay failed: see the gateway's log"


class ReplayBusy(Exception):
    """A replay is already running in this gateway process."""


@dataclass(frozen=True, slots=True)
class Asked:
    """What a replay was asked to do, as the page describes it."""

    window: Window
    label: str  # "last 7d", "since 2026-12-01 08:00 UTC"
    source: str  # "pasted" or the uploaded file's name
    by: str  # "admin"
    started_at: float


@dataclass(frozen=True, slots=True)
class Finished:
    asked: Asked
    ended_at: float
    report: dict[str, Any] | None = None
    error: str | None = None  # for the user; None when there is a report
    cancelled: bool = False


class ReplayRunner:
    def __init__(self, command: Sequence[str] = (sys.executable, *WORKER)) -> None:
        self._command = tuple(command)
        self.running: Asked | None = None
        self.last: Finished | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, asked: Asked, proposal: Config, baseline: Config) -> None:
        if self.running is not None:
            raise ReplayBusy(
                "a replay is running (started by "
                f"{self.running.by} {time.time() - self.running.started_at:.0f} s ago): "
                "wait for it to finish, or cancel it"
            )
        payload = pickle.dumps((proposal, baseline, asked.window))
        self.running = asked
        self._task = asyncio.create_task(self._run(asked, payload))

    async def cancel(self) -> None:
        """Stop the running replay, if any, and wait until its child is gone."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self, asked: Asked, payload: bytes) -> None:
        try:
            self.last = await self._child(asked, payload)
        except asyncio.CancelledError:
            self.last = Finished(asked, time.time(), error="cancelled", cancelled=True)
            raise
        except Exception:  # the child could not start: say so on the page, not only the log
            logger.exception("dashboard replay: could not run the replay process")
            self.last = Finished(asked, time.time(), error=_CRASHED)
        finally:
            self.running, self._task = None, None

    async def _child(self, asked: Asked, payload: bytes) -> Finished:
        process = await asyncio.create_subprocess_exec(
            *self._command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await process.communicate(payload)
        except asyncio.CancelledError:
            # It only reads the ledger: nothing is lost by stopping it without a goodbye.
            process.kill()
            await process.wait()
            raise
        ended = time.time()
        if process.returncode == 0:
            return Finished(asked, ended, report=json.loads(out))
        if process.returncode == REFUSED:
            return Finished(asked, ended, error=out.decode(errors="replace"))
        logger.error(
            "dashboard replay: the replay process failed (exit %s): %s",
            process.returncode,
            err.decode(errors="replace")[-STDERR_LOGGED:],
        )
        return Finished(asked, ended, error=_CRASHED)
