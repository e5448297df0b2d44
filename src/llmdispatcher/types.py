"""The dispatcher's vocabulary: requests, messages, responses, stream chunks.

The canonical form is OpenAI's Chat Completions shape (roles, tool calls with JSON-string
arguments, finish reasons ``stop | length | tool_calls | content_filter``); every vendor adapter
translates to and from it. Everything here is a plain frozen dataclass so values can be shared
between tasks without copying.

Messages, content parts and tools may be given as OpenAI-shaped dicts; they are converted to the
typed form on construction, and a malformed one raises ``ValueError`` naming the field.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeAlias

Role = Literal["system", "user", "assistant", "tool"]
ToolKind = Literal["function", "custom"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]
RequestKind = Literal["chat", "embedding"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")


@dataclass(frozen=True, slots=True)
class TextPart:
    """A text piece of a multi-part message."""

    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image given by an https URL or a ``data:<mime>;base64,<data>`` URI."""

    url: str
    detail: str | None = None

    @property
    def is_data_uri(self) -> bool:
        return self.url.startswith("data:")

    def data_uri_parts(self) -> tuple[str, str]:
        """Split a data URI into (media type, bare base64 data)."""
        header, _, data = self.url.partition(",")
        if not self.is_data_uri or ";base64" not in header or not data:
            raise ValueError("image url is not a base64 data URI (data:<mime>;base64,<data>)")
        return header[5:].split(";", 1)[0], data


ContentPart: TypeAlias = TextPart | ImagePart
Content: TypeAlias = str | tuple[ContentPart, ...] | None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call made by the model; ``arguments`` is a JSON string, as OpenAI sends it (for
    a ``custom`` tool: the free-form ``input`` the model wrote)."""

    id: str
    name: str
    arguments: str
    kind: ToolKind = "function"


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """One streamed piece of a tool call, keyed by ``index`` as OpenAI streams them.

    ``id`` and ``name`` arrive on the first piece of a call and are ``None`` afterwards;
    ``arguments`` is a fragment of the JSON string. Unpacks as ``index, id, name, arguments``.
    """

    index: int
    id: str | None
    name: str | None
    arguments: str

    def __iter__(self) -> Iterator[Any]:
        return iter((self.index, self.id, self.name, self.arguments))


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call; ``parameters`` is a JSON Schema object. ``strict``: the
    arguments must follow the schema exactly (None: not said). ``kind="custom"`` is OpenAI's
    free-form tool: no parameters, the model writes plain text (``format``: text or a grammar)."""

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    strict: bool | None = None
    kind: ToolKind = "function"
    format: Mapping[str, Any] | None = None

    @classmethod
    def coerce(cls, value: Tool | Mapping[str, Any], where: str) -> Tool:
        """Accept a Tool or an OpenAI tool dict (``{"type": "function", "function": {...}}``
        or ``{"type": "custom", "custom": {...}}``)."""
        if isinstance(value, Tool):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected a Tool or an OpenAI tool dict")
        kind = value.get("type", "function")
        if kind == "custom":
            return cls._custom(value.get("custom"), where)
        fn = value.get("function", value)
        if kind != "function" or not isinstance(fn, Mapping):
            raise ValueError(
                f'{where}: expected {{"type": "function", "function": {{...}}}} or '
                f'{{"type": "custom", "custom": {{...}}}}'
            )
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}.function.name: a non-empty string is required")
        strict = fn.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise ValueError(f"{where}.function.strict: expected true or false")
        params = fn.get("parameters") or {"type": "object"}
        return cls(name=name, description=fn.get("description"), parameters=params, strict=strict)

    @classmethod
    def _custom(cls, spec: Any, where: str) -> Tool:
        if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
            raise ValueError(f"{where}.custom: expected an object with a name")
        fmt = spec.get("format")
        if fmt is not None and not isinstance(fmt, Mapping):
            raise ValueError(f"{where}.custom.format: expected an object")
        return cls(
            name=spec["name"], description=spec.get("description"), kind="custom", format=fmt
        )

    def to_openai(self) -> dict[str, Any]:
        if self.kind == "custom":
            custom: dict[str, Any] = {"name": self.name}
            if self.description is not None:
                custom["description"] = self.description
            if self.format is not None:
                custom["format"] = dict(self.format)
            return {"type": "custom", "custom": custom}
        fn: dict[str, Any] = {"name": self.name, "parameters": dict(self.parameters)}
        if self.description is not None:
            fn["description"] = self.description
        if self.strict is not None:
            fn["strict"] = self.strict
        return {"type": "function", "function": fn}


def _coerce_part(value: ContentPart | Mapping[str, Any], where: str) -> ContentPart:
    if isinstance(value, TextPart | ImagePart):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a text or image_url part")
    kind = value.get("type")
    if kind == "text" and isinstance(value.get("text"), str):
        return TextPart(value["text"])
    if kind == "image_url":
        image = value.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        if isinstance(url, str) and url:
            detail = image.get("detail") if isinstance(image, Mapping) else None
            return ImagePart(url, detail)
    raise ValueError(
        f'{where}: expected {{"type": "text", "text": ...}} or '
        f'{{"type": "image_url", "image_url": {{"url": ...}}}}'
    )


def _coerce_tool_call(value: ToolCall | Mapping[str, Any], where: str) -> ToolCall:
    if isinstance(value, ToolCall):
        return value
    if isinstance(value, Mapping) and value.get("type") == "custom":
        custom = value.get("custom")
        if not isinstance(custom, Mapping) or not isinstance(custom.get("name"), str):
            raise ValueError(f"{where}.custom: expected an object with a name and an input")
        text = custom.get("input", "")
        if not isinstance(text, str):
            raise ValueError(f"{where}.custom.input: expected a string")
        return ToolCall(str(value.get("id", "")), custom["name"], text, kind="custom")
    fn = value.get("function") if isinstance(value, Mapping) else None
    if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
        raise ValueError(f"{where}: expected a ToolCall or an OpenAI tool_calls item")
    args = fn.get("arguments", "{}")
    if not isinstance(args, str):
        raise ValueError(f"{where}.function.arguments: must be a JSON string, as OpenAI sends it")
    return ToolCall(id=str(value.get("id", "")), name=fn["name"], arguments=args)


@dataclass(frozen=True, slots=True)
class Message:
    """One chat turn. ``content`` is text, a sequence of parts, or ``None`` (tool-call turns)."""

    role: Role
    content: Content = None
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] | None = None
    tool_call_id: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"message.role: {self.role!r} is not one of {', '.join(ROLES)}")
        if self.content is not None and not isinstance(self.content, str):
            parts = tuple(
                _coerce_part(p, f"message.content[{i}]") for i, p in enumerate(self.content)
            )
            object.__setattr__(self, "content", parts)
        if self.tool_calls is not None:
            calls = tuple(
                _coerce_tool_call(c, f"message.tool_calls[{i}]")
                for i, c in enumerate(self.tool_calls)
            )
            object.__setattr__(self, "tool_calls", calls or None)
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("message.tool_call_id: a tool message must name the call it answers")

    @classmethod
    def coerce(cls, value: Message | Mapping[str, Any], where: str) -> Message:
        """Accept a Message or an OpenAI message dict."""
        if isinstance(value, Message):
            return value
        if not isinstance(value, Mapping) or "role" not in value:
            raise ValueError(f"{where}: expected a Message or a dict with a 'role'")
        unknown = set(value) - {"role", "content", "name", "tool_calls", "tool_call_id"}
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        try:
            return cls(
                role=value["role"],
                content=value.get("content"),
                name=value.get("name"),
                tool_calls=value.get("tool_calls"),
                tool_call_id=value.get("tool_call_id"),
            )
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None

    @property
    def text(self) -> str:
        """The message's text, with the text parts of a multi-part message joined."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def images(self) -> tuple[ImagePart, ...]:
        if self.content is None or isinstance(self.content, str):
            return ()
        return tuple(p for p in self.content if isinstance(p, ImagePart))


@dataclass(frozen=True, slots=True)
class CacheControl:
    """How one request uses the response cache (``Config.cache``): ``no_cache`` skips the
    lookup (the fresh answer is still stored), ``no_store`` keeps the answer out of the
    cache, ``ttl_s`` replaces the configured lifetime of the entry it writes."""

    ttl_s: float | None = None
    no_store: bool = False
    no_cache: bool = False

    def __post_init__(self) -> None:
        if self.ttl_s is not None and not self.ttl_s > 0:
            raise ValueError("request.cache.ttl_s: must be a positive number of seconds")


@dataclass(frozen=True, slots=True)
class Request:
    """One chat request, vendor-neutral.

    ``vendor`` forces a vendor by name; ``timeout`` is the total deadline in seconds for every
    attempt, backoff and fallback together; ``extra`` carries vendor-specific body fields that are
    passed through unchanged (they are never validated by us), except OpenAI's own fields
    (``vendors/openai_fields.py``), which other vendors translate or refuse. ``kind`` is
    ``embedding`` for the request ``Dispatcher.embed`` routes (``EmbeddingRequest.routing_request``:
    the inputs are its user messages), so that rules, capabilities and limits can tell it from a
    chat.


    ``n``: how many answers (vendors without it are asked n times, the answers merged);
    ``logprobs``/``top_logprobs``: token log probabilities, where the vendor gives them;
    ``parallel_tool_calls``: False for at most one tool call per answer.
    """

    model: str
    messages: Sequence[Message | Mapping[str, Any]]
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: str | Sequence[str] | None = None
    tools: Sequence[Tool | Mapping[str, Any]] | None = None
    tool_choice: str | Mapping[str, Any] | None = None
    response_format: Mapping[str, Any] | None = None
    user: str | None = None
    metadata: Mapping[str, Any] | None = None
    vendor: str | None = None
    timeout: float | None = None
    stream_options: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] | None = None
    kind: RequestKind = "chat"
    n: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    parallel_tool_calls: bool | None = None
    cache: CacheControl | Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ValueError("request.model: a non-empty model name is required")
        if isinstance(self.messages, str | bytes) or not self.messages:
            raise ValueError("request.messages: at least one message is required")
        # Messages usually arrive typed already: skip coerce and its error label for them.
        msgs = tuple(
            m if isinstance(m, Message) else Message.coerce(m, f"request.messages[{i}]")
            for i, m in enumerate(self.messages)
        )
        object.__setattr__(self, "messages", msgs)
        if self.tools is not None:
            tools = tuple(Tool.coerce(t, f"request.tools[{i}]") for i, t in enumerate(self.tools))
            object.__setattr__(self, "tools", tools or None)
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        elif self.stop is not None:
            object.__setattr__(self, "stop", tuple(self.stop))
        _check_range("request.temperature", self.temperature, 0.0, 2.0)
        _check_range("request.top_p", self.top_p, 0.0, 1.0)
        if self.max_tokens is not None and (
            isinstance(self.max_tokens, bool)
            or not isinstance(self.max_tokens, int)
            or self.max_tokens < 1
        ):
            raise ValueError("request.max_tokens: must be a positive integer")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError("request.timeout: must be a positive number of seconds")
        if isinstance(self.cache, Mapping):
            try:
                object.__setattr__(self, "cache", CacheControl(**self.cache))
            except TypeError:
                raise ValueError(
                    "request.cache: expected ttl_s, no_store and no_cache (a CacheControl)"
                ) from None
        elif self.cache is not None and not isinstance(self.cache, CacheControl):
            raise ValueError("request.cache: expected a CacheControl")
        if self.tool_choice is not None and self.tools is None:
            raise ValueError(
                "request.tool_choice: set request.tools too (there is nothing to choose)"
            )
        self._check_options()

    def _check_options(self) -> None:
        _check_int("request.n", self.n, 1, MAX_N)
        _check_int("request.top_logprobs", self.top_logprobs, 0, MAX_TOP_LOGPROBS)
        if self.top_logprobs is not None and self.logprobs is not True:
            raise ValueError("request.top_logprobs: set request.logprobs to true too")
        if self.parallel_tool_calls is not None and self.tools is None:
            raise ValueError("request.parallel_tool_calls: set request.tools too")

    def with_model(self, model: str) -> Request:
        """This request for ``model`` (a deployment's own name for it). Only the model
        changes, and construction has checked the rest, so the fields are copied rather than
        checked again: the router asks for one per candidate of every group request."""
        if not isinstance(model, str) or not model:
            raise ValueError("request.model: a non-empty model name is required")
        copy = object.__new__(Request)
        for name in REQUEST_FIELDS:
            object.__setattr__(copy, name, getattr(self, name))
        object.__setattr__(copy, "model", model)
        return copy

    @property
    def answer_count(self) -> int:
        """How many answers were asked for (``n``, 1 when unset)."""
        return self.n or 1

    @property
    def message_list(self) -> tuple[Message, ...]:
        """The messages, typed (``messages`` holds Message values after construction)."""
        return self.messages  # type: ignore[return-value]

    @property
    def tool_list(self) -> tuple[Tool, ...]:
        return self.tools or ()  # type: ignore[return-value]

    @property
    def stop_list(self) -> tuple[str, ...]:
        return self.stop or ()  # type: ignore[return-value]

    @property
    def cache_control(self) -> CacheControl | None:
        """``cache``, typed (a mapping given is a CacheControl after construction)."""
        return self.cache  # type: ignore[return-value]


REQUEST_FIELDS = tuple(f.name for f in fields(Request))
MAX_N = 128  # OpenAI's limit for ``n``
MAX_TOP_LOGPROBS = 20  # OpenAI's limit for ``top_logprobs``


def _check_int(name: str, value: int | None, low: int, high: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name}: must be an integer from {low} to {high}")


def _check_range(name: str, value: float | None, low: float, high: float) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"{name}: must be a number between {low:g} and {high:g}")


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts in OpenAI's sense: ``prompt_tokens`` includes cached tokens and
    ``completion_tokens`` includes reasoning tokens."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try against one vendor: ``status`` is ``"ok"`` or the error class name."""

    vendor: str
    model: str
    status: str
    error: str | None
    duration_s: float


@dataclass(frozen=True, slots=True)
class Choice:
    """One answer of several (``Request.n``): what ``Response`` holds for the first one."""

    index: int
    content: str
    finish_reason: FinishReason | None
    tool_calls: tuple[ToolCall, ...] = ()
    logprobs: Any = None
    stop_sequence: str | None = None


@dataclass(frozen=True, slots=True)
class Response:
    """A finished chat completion, whichever vendor produced it.

    ``logprobs``: OpenAI's ``choices[].logprobs`` object (``{"content": [...]}``) when asked
    for; ``stop_sequence``: the stop string that ended the answer, where the vendor says which;
    ``system_fingerprint``: the vendor's, when it sends one; ``alternatives``: the answers
    after the first when ``n`` > 1 (``choices`` lists them all).
    """

    content: str
    vendor: str
    model: str
    finish_reason: FinishReason | None
    usage: Usage
    tool_calls: tuple[ToolCall, ...] = ()
    latency_s: float = 0.0
    attempts: tuple[Attempt, ...] = ()
    cost_usd: float | None = None
    raw: Any = None
    id: str | None = None
    # The routing decision (llmdispatcher.routing.model.RoutingDecision): rule, strategy,
    # scored candidates, exclusions and attempts.
    routing: Any = None
    logprobs: Any = None
    stop_sequence: str | None = None
    system_fingerprint: str | None = None
    alternatives: tuple[Choice, ...] = ()
    # With Config.cache: "hit" (served from the cache, cost 0), "miss" or "bypass".
    cache: str | None = None

    @property
    def choices(self) -> tuple[Choice, ...]:
        """Every answer, the first one (this response's own fields) included."""
        first = Choice(
            0, self.content, self.finish_reason, self.tool_calls, self.logprobs, self.stop_sequence
        )
        return (first, *self.alternatives)


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """One piece of a streamed answer. The last chunk carries ``finish_reason`` and ``usage``."""

    delta: str = ""
    tool_call_deltas: tuple[ToolCallDelta, ...] = ()
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    cost_usd: float | None = None
    vendor: str = ""
    model: str = ""
    routing: Any = None  # on the final chunk: the RoutingDecision, as on Response
    # On the final chunk of a resumed stream (on_stream_break: resume): the deployments whose
    # streams broke, in order, before the last one finished the answer.
    resumed_from: tuple[str, ...] = ()
    # OpenAI's ``logprobs.content`` entries for this piece's tokens, when asked for.
    logprobs: tuple[Any, ...] = ()
    # On the final chunk: the stop string that ended the answer (where the vendor says which),
    # and the vendor's system fingerprint (when it sends one).
    stop_sequence: str | None = None
    system_fingerprint: str | None = None
