"""Request -> Cohere v2 chat body (``POST /v2/chat``), as ``cohere.ClientV2().chat`` sends it.

Cohere's messages are close to OpenAI's (roles ``system user assistant tool``, tool calls with
JSON-string arguments, ``image_url`` parts), but its knobs are named differently and fewer:

* ``top_p`` -> ``p`` (held within Cohere's 0.01-0.99), ``stop`` -> ``stop_sequences``;
  ``user`` has no Cohere field and is not sent (it stays in our ledger).
* ``tool_choice``: ``required`` -> ``REQUIRED``, ``none`` -> ``NONE``, ``auto`` -> left out
  (Cohere's default). Naming one function has no Cohere form: it becomes ``REQUIRED`` with only
  that tool offered, which forces the same call.
* ``response_format``: ``json_object`` as is; ``json_schema`` -> ``json_object`` with the
  schema as ``json_schema``.
* A tool result is a ``tool`` message whose ``content`` is a list of text parts.
"""

from __future__ import annotations

from typing import Any

from ..errors import UnsupportedRequest
from ..types import ImagePart, Message, Request, TextPart, Tool

# Fields the adapter owns; ``Request.extra`` may not replace them.
OWNED_FIELDS = frozenset({"model", "messages", "stream"})
TOOL_CHOICES = {"required": "REQUIRED", "none": "NONE", "any": "REQUIRED"}


def cohere_body(request: Request, *, stream: bool, vendor: str) -> dict[str, Any]:
    tools, tool_choice = _tools(request, vendor)
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [_message(m) for m in request.message_list],
        "stream": stream,
    }
    optional = {
        "tools": tools or None,
        "tool_choice": tool_choice,
        "response_format": _response_format(request, vendor),
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "p": _p(request.top_p),
        "stop_sequences": list(request.stop_list) or None,
    }
    body.update((k, v) for k, v in optional.items() if v is not None)
    for key, value in (request.extra or {}).items():
        if key not in OWNED_FIELDS:
            body[key] = value
    return body


def _p(top_p: float | None) -> float | None:
    # Cohere takes p in [0.01, 0.99] (docs) and refuses 1.0, which OpenAI callers often send.
    return None if top_p is None else min(max(top_p, 0.01), 0.99)


def _message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role}
    if message.role == "tool":
        out["tool_call_id"] = message.tool_call_id
        out["content"] = [{"type": "text", "text": message.text}]
        return out
    if message.role == "assistant":
        if message.text:
            out["content"] = message.text
        if message.tool_calls:
            out["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in message.tool_calls
            ]
        elif "content" not in out:
            out["content"] = ""
        return out
    if message.role == "user" and not isinstance(message.content, str) and message.images:
        out["content"] = [_part(p) for p in message.content or ()]
        return out
    out["content"] = message.text
    return out


def _part(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    image: dict[str, Any] = {"url": part.url}
    if part.detail:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


def _tools(request: Request, vendor: str) -> tuple[list[dict[str, Any]], str | None]:
    tools: tuple[Tool, ...] = request.tool_list
    choice = request.tool_choice
    if choice is None or choice == "auto":
        return [t.to_openai() for t in tools], None
    if isinstance(choice, str):
        mapped = TOOL_CHOICES.get(choice)
        if mapped is None:
            raise _refuse(vendor, f"tool_choice {choice!r}", "use auto, required or none")
        return [t.to_openai() for t in tools], mapped
    name = (choice.get("function") or {}).get("name")
    chosen = [t for t in tools if t.name == name]
    if not chosen:
        raise _refuse(vendor, f"tool_choice {dict(choice)!r}", "name a function in tools")
    return [t.to_openai() for t in chosen], "REQUIRED"


def _response_format(request: Request, vendor: str) -> dict[str, Any] | None:
    given = request.response_format
    if given is None:
        return None
    kind = given.get("type")
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind == "json_schema":
        schema = (given.get("json_schema") or {}).get("schema")
        return {"type": "json_object", "json_schema": schema} if schema else {"type": "json_object"}
    raise _refuse(vendor, f"response_format {kind!r}", "use text, json_object or json_schema")


def _refuse(vendor: str, what: str, fix: str) -> UnsupportedRequest:
    return UnsupportedRequest(
        f"vendor {vendor!r} (Cohere) cannot take {what}: {fix}", vendor=vendor
    )
