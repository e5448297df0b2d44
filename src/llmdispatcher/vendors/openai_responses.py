"""OpenAI's Responses API (platform.openai.com/docs/api-reference/responses) as an upstream:
``OpenAIVendor(api="responses")`` sends ``POST /v1/responses`` instead of Chat Completions,
for models served only there. Translation only; ``OpenAIVendor`` owns the HTTP side.

The conversation always goes whole (``input`` items; no ``previous_response_id``), with
``store: false``: the dispatcher may have answered earlier turns with another vendor, and the
gateway keeps its own conversations. ``Request.extra`` fields are added to the body;
``extra["tools"]`` (hosted tools such as ``web_search``, which only this API runs) are appended
to the function tools. The API has no stop sequences: a request with ``stop`` is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import UnsupportedRequest
from ..types import (
    FinishReason,
    ImagePart,
    Message,
    Request,
    Response,
    StreamChunk,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from .error_mapping import ErrorInfo, error_for
from .http_vendor import count, decode_json
from .sse import SSEChunkDecoder

OWNED_FIELDS = frozenset({"model", "input", "stream", "tools"})
INCOMPLETE: dict[str, FinishReason] = {
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}
FAILED_STATUS = {"rate_limit_exceeded": 429, "server_error": 500, "invalid_prompt": 400}


def responses_body(request: Request, *, stream: bool, vendor: str) -> dict[str, Any]:
    if request.stop_list:
        raise UnsupportedRequest(
            f"vendor {vendor!r} uses OpenAI's Responses API, which has no stop sequences: "
            "remove stop, or route to a vendor on Chat Completions",
            vendor=vendor,
        )
    tools = [_tool(t) for t in request.tool_list]
    tools += list((request.extra or {}).get("tools") or ())
    body: dict[str, Any] = {
        "model": request.model,
        "input": [item for m in request.message_list for item in input_items(m)],
        "store": False,
    }
    optional = {
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_output_tokens": request.max_tokens,
        "tools": tools or None,
        "tool_choice": _tool_choice(request.tool_choice),
        "text": _text_format(request.response_format),
        "user": request.user,
        "stream": True if stream else None,
    }
    body.update((k, v) for k, v in optional.items() if v is not None)
    for key, value in (request.extra or {}).items():
        if key not in OWNED_FIELDS:
            body[key] = value
    return body


def input_items(message: Message) -> list[dict[str, Any]]:
    """One chat message as Responses input items."""
    if message.role == "tool":
        output = message.text
        return [{"type": "function_call_output", "call_id": message.tool_call_id, "output": output}]
    items: list[dict[str, Any]] = []
    if message.role != "assistant":
        items.append({"role": message.role, "content": _parts(message)})
    elif message.text:
        items.append({"role": "assistant", "content": message.text})
    for call in message.tool_calls or ():
        fields = {"call_id": call.id, "name": call.name, "arguments": call.arguments}
        items.append({"type": "function_call", **fields})
    return items


def _parts(message: Message) -> str | list[dict[str, Any]]:
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    return [
        {"type": "input_image", "image_url": p.url, "detail": p.detail or "auto"}
        if isinstance(p, ImagePart)
        else {"type": "input_text", "text": p.text}
        for p in message.content
    ]


def _tool(given: Tool) -> dict[str, Any]:
    """A function (``strict`` as asked; the Responses API's default, true, only when asked) or
    a custom tool, in the Responses API's flat shape."""
    tool: dict[str, Any] = {"type": given.kind, "name": given.name}
    if given.kind == "custom":
        if given.format is not None:
            tool["format"] = dict(given.format)
    else:
        tool |= {"parameters": dict(given.parameters), "strict": bool(given.strict)}
    if given.description is not None:
        tool["description"] = given.description
    return tool


def _tool_choice(choice: str | Mapping[str, Any] | None) -> Any:
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        fn = choice.get("function") or {}
        return {"type": "function", "name": fn.get("name")}
    return choice


def _text_format(response_format: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not response_format:
        return None
    if response_format.get("type") == "json_schema":
        return {"format": {"type": "json_schema", **(response_format.get("json_schema") or {})}}
    return {"format": dict(response_format)}


# --- answers ----------------------------------------------------------------------------------
def response_from_body(data: Mapping[str, Any], vendor: str, model: str) -> Response:
    if data.get("status") == "failed":
        raise _failed(data.get("error") or {}, vendor, ())
    text: list[str] = []
    calls: list[ToolCall] = []
    for item in data.get("output") or ():
        if item.get("type") == "message":
            parts = item.get("content") or ()
            text += [p.get("text", "") for p in parts if p.get("type") == "output_text"]
        elif item.get("type") == "function_call":
            calls.append(ToolCall(item["call_id"], item["name"], item.get("arguments") or "{}"))
    return Response(
        content="".join(text),
        vendor=vendor,
        model=data.get("model") or model,
        finish_reason=finish_reason(data, bool(calls)),
        usage=usage_from_body(data.get("usage")),
        tool_calls=tuple(calls),
        raw=data,
        id=data.get("id"),
    )


def finish_reason(data: Mapping[str, Any], has_calls: bool) -> FinishReason:
    if data.get("status") == "incomplete":
        reason = (data.get("incomplete_details") or {}).get("reason")
        return INCOMPLETE.get(reason or "", "length")
    return "tool_calls" if has_calls else "stop"


def usage_from_body(data: Mapping[str, Any] | None) -> Usage:
    if not data:
        return Usage()
    prompt, completion = count(data.get("input_tokens")), count(data.get("output_tokens"))
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=count(data.get("total_tokens")) or prompt + completion,
        cached_tokens=count((data.get("input_tokens_details") or {}).get("cached_tokens")),
        reasoning_tokens=count((data.get("output_tokens_details") or {}).get("reasoning_tokens")),
    )


def _failed(error: Mapping[str, Any], vendor: str, secrets: tuple[str, ...]) -> Exception:
    code = str(error.get("code") or "server_error")
    info = ErrorInfo(message=str(error.get("message") or "the response failed"), code=code)
    return error_for(FAILED_STATUS.get(code, 500), info, vendor=vendor, secrets=secrets)


class ResponsesStreamDecoder(SSEChunkDecoder):
    """Typed events until ``response.completed`` (or ``response.incomplete``); function
    calls are numbered in the order their items open, as Chat Completions indexes them."""

    terminal = "response.completed"

    def __init__(self, vendor: str, model: str, secrets: tuple[str, ...], max_line: int) -> None:
        super().__init__(vendor, max_line)
        self._vendor = vendor
        self._model = model
        self._secrets = secrets
        self._calls: dict[int, int] = {}  # output_index -> tool-call index

    def _event(self, data: str) -> StreamChunk | None:
        if self._done or not data:
            return None
        obj = decode_json(data.encode(), self._vendor)
        kind = obj.get("type")
        if kind == "response.output_text.delta":
            return self._chunk(delta=obj.get("delta") or "")
        if kind == "response.output_item.added" and obj["item"].get("type") == "function_call":
            index = self._calls[obj["output_index"]] = len(self._calls)
            item = obj["item"]
            delta = ToolCallDelta(index, item["call_id"], item["name"], item.get("arguments") or "")
            return self._chunk(tool_call_deltas=(delta,))
        if kind == "response.function_call_arguments.delta":
            index = self._calls[obj["output_index"]]
            delta = ToolCallDelta(index, None, None, obj.get("delta") or "")
            return self._chunk(tool_call_deltas=(delta,))
        if kind in ("response.completed", "response.incomplete"):
            self._done = True
            response = obj["response"]
            self._model = response.get("model") or self._model
            return self._chunk(
                finish_reason=finish_reason(response, bool(self._calls)),
                usage=usage_from_body(response.get("usage")),
            )
        if kind == "response.failed":
            raise _failed(obj["response"].get("error") or {}, self._vendor, self._secrets)
        if kind == "error":
            raise _failed(obj, self._vendor, self._secrets)
        return None

    def _chunk(self, **fields: Any) -> StreamChunk:
        return StreamChunk(vendor=self._vendor, model=self._model, **fields)
