"""Structured logs for the gateway (``serve --log-format json``): every log record as one JSON
object per line, and one access line per HTTP request.

An access line (logger ``llmdispatcher.access``) has the request id, trace id (with tracing
on), the gateway key's *name*, the model and vendor that answered, the HTTP status, tokens in
and out, cost in USD, latency and time to first token in seconds, and what the response
cache did. It never holds a key, a header, a prompt or an answer.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

from .state import Trace

access_logger = logging.getLogger("llmdispatcher.access")


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", ...}``; an access record's fields are merged in."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "access", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure_json_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def log_access(trace: Trace, status: int) -> None:
    """The request's one access line."""
    fields = {
        "request_id": trace.request_id,
        "trace_id": trace.trace_id,
        "key": trace.key.name if trace.key is not None else None,
        "model": trace.model or None,
        "vendor": trace.vendor or None,
        "status": status,
        "input_tokens": trace.input_tokens,
        "output_tokens": trace.output_tokens,
        "cost_usd": trace.cost,
        "latency_s": round(time.perf_counter() - trace.started, 6),
        "ttft_s": None if trace.ttft_s is None else round(trace.ttft_s, 6),
        "cache": trace.cache or None,
    }
    access_logger.info("access", extra={"access": fields})
