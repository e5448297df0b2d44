"""Our answers as Responses API objects: the ``response`` body, and its typed SSE stream.

A finished ``Response`` becomes output items: a ``message`` with one ``output_text`` part
(when there is text, or nothing else), then one ``function_call`` per tool call. A finish
reason of ``length`` or ``content_filter`` makes the response ``incomplete`` with that reason,
as OpenAI reports it. ``usage`` carries cached and reasoning tokens, and the cost we computed
(``cost_usd``, an extra field SDKs keep).

The stream is OpenAI's sequence of typed events, each with its ``sequence_number``:
``response.created``, ``response.in_progress``, then per output item ``output_item.added``
(``content_part.added``, ``output_text.delta``... ``output_text.done``, ``content_part.done``
for a message; ``function_call_arguments.delta``... ``.done`` for a call) and
``output_item.done``, then ``response.completed`` (``response.incomplete``). A failure after
the first event is ``response.failed`` (the response so far, with its ``error``) and an
``error`` event.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..types import Response, StreamChunk, Usage
from .errors import ApiError
from .responses_input import Item, new_id

INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


@dataclass(slots=True)
class ResponseHead:
    """What every form of one response shares: id, time, model and the echoed settings."""

    id: str
    model: str
    echo: Item
    created_at: int = field(default_factory=lambda: int(time.time()))

    def body(
        self,
        status: str,
        output: list[Item],
        usage: Item | None = None,
        *,
        finish: str | None = None,
        error: Item | None = None,
    ) -> Item:
        reason = INCOMPLETE.get(finish or "")
        if reason is not None and status == "completed":
            status = "incomplete"
        ended = status in ("completed", "incomplete")
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "completed_at": int(time.time()) if ended else None,
            "status": status,
            "error": error,
            "incomplete_details": {"reason": reason} if reason else None,
            "model": self.model,
            "output": output,
            "usage": usage,
            **self.echo,
        }


def usage_body(usage: Usage | None, cost_usd: float | None) -> Item:
    usage = usage or Usage()
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
        "cost_usd": cost_usd,
    }


def message_item(text: str, status: str = "completed", item_id: str | None = None) -> Item:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {
        "type": "message",
        "id": item_id or new_id("msg_"),
        "status": status,
        "role": "assistant",
        "content": [part] if status == "completed" else [],
    }


def call_item(call_id: str, name: str, arguments: str, status: str = "completed") -> Item:
    return {
        "type": "function_call",
        "id": new_id("fc_"),
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def output_items(response: Response) -> list[Item]:
    items = [message_item(response.content)] if response.content or not response.tool_calls else []
    items += [call_item(c.id, c.name, c.arguments) for c in response.tool_calls]
    return items


def response_body(head: ResponseHead, response: Response) -> Item:
    usage = usage_body(response.usage, response.cost_usd)
    return head.body("completed", output_items(response), usage, finish=response.finish_reason)


@dataclass(slots=True)
class _Open:
    """The output item being streamed: its index in ``output`` and, for a call, its index in
    the vendor's tool-call numbering."""

    index: int
    call: int | None


class ResponsesStreamEncoder:
    """Dispatcher chunks as Responses stream events (a ``relay.StreamEncoder``). ``final``
    is the finished response object, once the last chunk has been seen."""

    def __init__(self, head: ResponseHead) -> None:
        self.head_info = head
        self.output: list[Item] = []
        self._open: _Open | None = None
        self._seq = 0
        self._finish: str | None = None
        self._usage: Item | None = None

    # --- relay.StreamEncoder -------------------------------------------------------------------
    def head(self, chunk: StreamChunk) -> bytes:
        snapshot = self.head_info.body("in_progress", [])
        out = self._event("response.created", response=snapshot)
        out += self._event("response.in_progress", response=snapshot)
        return out + self.chunk(chunk)

    def chunk(self, chunk: StreamChunk) -> bytes:
        out = self._text(chunk.delta) if chunk.delta else b""
        for delta in chunk.tool_call_deltas:
            out += self._call(delta.index, delta.id, delta.name, delta.arguments)
        if chunk.finish_reason is not None:
            self._finish = chunk.finish_reason
            self._usage = usage_body(chunk.usage, chunk.cost_usd)
        return out

    def tail(self) -> bytes:
        out = self._close()
        final = self.final()
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        return out + self._event(kind, response=final)

    def error(self, error: ApiError) -> bytes:
        detail = {"code": error.code or "server_error", "message": error.message}
        failed = self.head_info.body("failed", self.output, self._usage, error=detail)
        out = self._event("response.failed", response=failed)
        return out + self._event("error", code=error.code, message=error.message, param=error.param)

    def final(self) -> Item:
        """The response object as it stands when the stream has ended (the last item may
        not be closed yet: ``tail`` closes it after this is stored)."""
        output = [{**item, "status": "completed"} for item in self.output]
        return self.head_info.body("completed", output, self._usage, finish=self._finish)

    # --- items -------------------------------------------------------------------------------
    def _text(self, delta: str) -> bytes:
        out = b""
        if self._open is None or self._open.call is not None:
            out += self._close()
            out += self._add(message_item("", "in_progress"), None)
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out += self._event("response.content_part.added", **self._where(), part=part)
            self.output[-1]["content"].append(part)
        part = self.output[-1]["content"][0]
        part["text"] += delta
        return out + self._event(
            "response.output_text.delta", **self._where(), delta=delta, logprobs=[]
        )

    def _call(self, call: int, call_id: str | None, name: str | None, arguments: str) -> bytes:
        out = b""
        if self._open is None or self._open.call != call:
            out += self._close()
            item = call_item(call_id or new_id("call_"), name or "", "", "in_progress")
            out += self._add(item, call)
        where = self._where()
        del where["content_index"]
        if not arguments:
            return out
        self.output[where["output_index"]]["arguments"] += arguments
        return out + self._event("response.function_call_arguments.delta", **where, delta=arguments)

    def _add(self, item: Item, call: int | None) -> bytes:
        self._open = _Open(len(self.output), call)
        self.output.append(item)
        return self._event("response.output_item.added", output_index=self._open.index, item=item)

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        where = self._where()
        item = self.output[self._open.index]
        item["status"] = "completed"
        self._open = None
        if item["type"] == "message":
            part = item["content"][0]
            out = self._event("response.output_text.done", **where, text=part["text"], logprobs=[])
            out += self._event("response.content_part.done", **where, part=part)
        else:
            del where["content_index"]
            out = self._event(
                "response.function_call_arguments.done",
                **where,
                name=item["name"],
                arguments=item["arguments"],
            )
        return out + self._event(
            "response.output_item.done", output_index=where["output_index"], item=item
        )

    def _where(self) -> Item:
        assert self._open is not None
        index = self._open.index
        return {"item_id": self.output[index]["id"], "output_index": index, "content_index": 0}

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
