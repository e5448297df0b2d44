"""The description of a custom HTTP model server, as plain data (``HttpTemplateVendor``).

Two small languages, both data, neither able to run code:

* **Placeholders** ``{{ name }}`` in the body, the URL and header values. A string that is one
  placeholder alone becomes the value with its JSON type (a number, a list, a boolean); a
  placeholder inside longer text is written as text. A value the request does not have (no
  ``temperature``) removes its key from the body, so the server's default applies. Names:
  ``model prompt system messages max_tokens temperature top_p stop stream user api_key`` and
  ``extra.NAME`` (``Request.extra``). There are no expressions, filters or loops: the body is
  built as a tree and serialized once, so no prompt text can break out of its string.
* **Paths** into a JSON answer: ``details.finish_reason``, ``choices[0].text``, ``[0]`` for the
  first item of a top-level list; ``header:x-prompt-tokens`` reads a response header.

Why not Jinja2's sandbox: it renders *text*, so every placeholder in a JSON body needs
``|tojson`` (one forgotten filter and a prompt with a quote breaks or rewrites the body), its
sandbox has had escapes (CVE-2024-56326, CVE-2025-27516), and it would be a dependency. What a
model server's JSON API needs is substitution into a tree, which this is.

Every rule is checked when the value is built; a bad one raises ``ValueError`` naming the field
(a config file adds the file and the vendor: ``llmdispatcher.yaml: vendors.tgi.response: text:
...``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..types import FinishReason

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")
FIELDS = (
    *("model", "prompt", "system", "messages", "max_tokens", "temperature", "top_p", "stop"),
    *("stream", "user", "api_key"),
)
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
FINISH_DEFAULTS: Mapping[str, FinishReason] = {
    "stop": "stop",
    "eos_token": "stop",
    "stop_sequence": "stop",
    "end_turn": "stop",
    "length": "length",
    "max_tokens": "length",
    "content_filter": "content_filter",
}
FINISH_VALUES = ("stop", "length", "tool_calls", "content_filter")


@dataclass(frozen=True, slots=True)
class JsonPath:
    """``a.b[0].c`` compiled; ``header:NAME`` reads a response header instead."""

    text: str
    steps: tuple[str | int, ...] = ()
    header: str | None = None

    @classmethod
    def parse(cls, text: str, where: str) -> JsonPath:
        if text.startswith("header:"):
            name = text[len("header:") :].strip().lower()
            if not name:
                raise ValueError(f"{where}: 'header:' needs a header name (header:x-prompt-tokens)")
            return cls(text, header=name)
        steps: list[str | int] = []
        rest = text[1:] if text.startswith("$.") else text
        position = 0
        while position < len(rest):
            if steps and rest[position] == ".":
                position += 1
            match = _STEP.match(rest, position)
            if match is None:
                raise ValueError(
                    f"{where}: {text!r} is not a path: write keys joined by dots and list "
                    "items as [n], e.g. details.finish_reason or choices[0].text"
                )
            key, index = match.groups()
            steps.append(int(index) if index is not None else key)
            position = match.end()
        if not steps:
            raise ValueError(f"{where}: the path is empty")
        return cls(text, tuple(steps))

    def read(self, data: Any, headers: Mapping[str, str] | None = None) -> Any:
        """The value at this path, or None where any step is missing."""
        if self.header is not None:
            return (headers or {}).get(self.header)
        for step in self.steps:
            if isinstance(step, int):
                if not isinstance(data, list) or step >= len(data):
                    return None
            elif not isinstance(data, Mapping) or step not in data:
                return None
            data = data[step]
        return data


def _path(value: str | None, where: str) -> JsonPath | None:
    return None if value is None else JsonPath.parse(value, where)


@dataclass(frozen=True, slots=True)
class AnswerPaths:
    """Where the answer's parts are in a JSON body (or, for a stream, in each event)."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: str | None = None
    completion_tokens: str | None = None
    total_tokens: str | None = None
    # the vendor's finish values -> ours (stop, length, tool_calls, content_filter), over
    # FINISH_DEFAULTS; a value neither names is "stop"
    finish_reasons: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("text", "finish_reason", "prompt_tokens", "completion_tokens", "total_tokens"):
            _path(getattr(self, name), name)
        for raw, ours in self.finish_reasons.items():
            if ours not in FINISH_VALUES:
                raise ValueError(
                    f"finish_reasons.{raw}: {ours!r} is not one of {', '.join(FINISH_VALUES)}"
                )

    def path(self, name: str) -> JsonPath | None:
        return _path(getattr(self, name), name)


@dataclass(frozen=True, slots=True)
class ErrorPaths:
    """Where an error body (or an error event in a stream) says what went wrong."""

    message: str
    type: str | None = None
    code: str | None = None

    def __post_init__(self) -> None:
        for name in ("message", "type", "code"):
            _path(getattr(self, name), name)


@dataclass(frozen=True, slots=True)
class StreamFormat:
    """How the server streams: ``format`` ``sse`` (``data:`` events) or ``ndjson`` (a JSON
    document a line), or ``none`` (it cannot). ``url`` replaces the vendor's URL for streams;
    ``answer`` says where each event's piece of text is (and, on the last event, the finish
    reason and usage). The last event is the one where ``done_when`` has a value that is not
    null or false, or an SSE ``data`` equal to ``done_data``; a stream that ends before it is an
    error. ``skip_when``: an event whose value there is true adds no text (a special token)."""

    format: Literal["none", "sse", "ndjson"] = "none"
    url: str | None = None
    answer: AnswerPaths | None = None
    done_when: str | None = None
    done_data: str | None = None
    skip_when: str | None = None

    def __post_init__(self) -> None:
        for name in ("done_when", "skip_when"):
            _path(getattr(self, name), name)
        if self.format == "none":
            return
        if self.answer is None:
            raise ValueError("answer: say where each event's text is (answer: {text: PATH})")
        if self.done_when is None and self.done_data is None:
            raise ValueError(
                "done_when: say how the last event is known (done_when: PATH, or done_data: "
                "'[DONE]' for an SSE sentinel), so that a cut stream is an error"
            )
        if self.done_data is not None and self.format != "sse":
            raise ValueError("done_data: only an SSE stream has data sentinels; use done_when")


@dataclass(frozen=True, slots=True)
class PromptFormat:
    """How chat messages become one ``prompt`` string: each message through its role's
    template (``{{ content }}`` is its text), joined by ``separator``, then ``suffix`` (the
    opening of the assistant's turn, for a chat template). System messages go to ``system``
    instead when the body uses ``{{ system }}``."""

    system: str = "{{ content }}"
    user: str = "{{ content }}"
    assistant: str = "{{ content }}"
    separator: str = "\n\n"
    suffix: str = ""

    def __post_init__(self) -> None:
        for role in ("system", "user", "assistant"):
            for name in PLACEHOLDER.findall(getattr(self, role)):
                if name != "content":
                    raise ValueError(f"{role}: only {{{{ content }}}} may be used, not {name!r}")


@dataclass(frozen=True, slots=True)
class HttpTemplate:
    """One custom HTTP model server: where to send (``url``, ``method``), what (``body``), and
    where the answer (``response``), errors (``error``) and stream events (``stream``) keep
    their parts. ``defaults`` fill request fields the caller left out (``max_tokens: 256``);
    ``models`` are the names it serves (``list_models``, and routing by name);
    ``health_url`` answers 2xx when the server is up."""

    url: str
    body: Mapping[str, Any]
    response: AnswerPaths
    error: ErrorPaths | None = None
    stream: StreamFormat = field(default_factory=StreamFormat)
    method: Literal["POST", "PUT"] = "POST"
    prompt_format: PromptFormat = field(default_factory=PromptFormat)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    models: tuple[str, ...] = ()
    health_url: str | None = None

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url: {self.url!r} must start with http:// or https://")
        for where, value in (("url", self.url), ("stream.url", self.stream.url)):
            for name in placeholders(value):
                check_name(name, where)
        for where, value in walk(self.body, "body"):
            for name in placeholders(value):
                check_name(name, where)
        for name in self.defaults:
            check_name(name, f"defaults.{name}")

    def uses(self, name: str) -> bool:
        """Whether the body names the field ``name``."""
        return any(name in placeholders(value) for _, value in walk(self.body, "body"))


def placeholders(value: Any) -> list[str]:
    return PLACEHOLDER.findall(value) if isinstance(value, str) else []


def check_name(name: str, where: str) -> None:
    if name in FIELDS or (name.startswith("extra.") and len(name) > len("extra.")):
        return
    raise ValueError(
        f"{where}: unknown field {name!r} in {{{{ {name} }}}}; expected one of "
        f"{', '.join(FIELDS)} or extra.NAME"
    )


def walk(value: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Every leaf of a body template with its location (``body.parameters.stop``)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from walk(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from walk(item, f"{where}[{i}]")
    else:
        yield where, value
