"""Structured logging of dispatcher events, off by default.

One JSON object per line on the ``llmdispatcher`` logger. API keys never reach a record (events
carry none, and every line is scrubbed of the registered vendors' secrets as a second guard);
message contents are logged only when ``Config.log_content`` is set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import orjson

from ..redaction import redact
from .events import (
    AttemptFinished,
    CacheLookup,
    CacheStored,
    Event,
    FallbackTaken,
    RequestFinished,
    RetryScheduled,
)

logger = logging.getLogger("llmdispatcher")


class EventLogger:
    def __init__(
        self,
        secrets: Callable[[], tuple[str, ...]],
        *,
        log_content: bool = False,
        target: logging.Logger = logger,
    ) -> None:
        self._secrets = secrets
        self._log_content = log_content
        self._logger = target

    def on_event(self, event: Event) -> None:
        record = self._record(event)
        level = logging.WARNING if record.get("error") else logging.INFO
        if not self._logger.isEnabledFor(level):
            return
        line = orjson.dumps(record, default=str).decode()
        self._logger.log(level, redact(line, self._secrets()))

    def _record(self, event: Event) -> dict[str, Any]:
        if isinstance(event, AttemptFinished):
            return {
                "event": "attempt",
                "request_id": event.request_id,
                **asdict(event.attempt),
                "ttft_s": event.ttft_s,
            }
        if isinstance(event, RetryScheduled | FallbackTaken | CacheLookup | CacheStored):
            return {"event": type(event).__name__, **asdict(event)}
        assert isinstance(event, RequestFinished)
        record: dict[str, Any] = {
            "event": "request",
            "request_id": event.request_id,
            "model": event.request.model,
            "vendor": event.vendor,
            "stream": event.stream,
            "latency_s": event.latency_s,
            "ttft_s": event.ttft_s,
            "usage": asdict(event.usage) if event.usage else None,
            "error": event.error,
            "attempts": len(event.attempts),
            "cache": event.cache,
        }
        if self._log_content:
            record["messages"] = [
                {"role": m.role, "content": m.text} for m in event.request.message_list
            ]
        return record


def enable_stderr_logging(level: int = logging.INFO) -> None:
    """Attach a plain stderr handler to the ``llmdispatcher`` logger once."""
    if not any(getattr(h, "_llmdispatcher", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._llmdispatcher = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level)
