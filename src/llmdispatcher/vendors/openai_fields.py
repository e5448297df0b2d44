"""What of an OpenAI-shaped request a vendor of another wire format cannot carry, refused
before sending (``UnsupportedRequest`` naming the field, so routing can try a vendor that
can), never dropped on the way.

OpenAI Chat Completions fields without a typed place in ``Request`` travel in
``Request.extra`` (the gateway puts them there); ``OPENAI_ONLY_FIELDS`` are those that mean
nothing in another vendor's body. A vendor lists what it translates in ``understood``; the rest
of these, and the typed options it lacks (``Feature``), are refused by ``refuse_foreign``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from ..errors import UnsupportedRequest
from ..types import Request

# OpenAI Chat Completions body fields (openai SDK ``CompletionCreateParamsBase``) that have no
# typed place in Request.
OPENAI_ONLY_FIELDS = frozenset(
    {
        "audio",
        "frequency_penalty",
        "function_call",  # deprecated, as ``functions``
        "functions",
        "logit_bias",
        "modalities",
        "moderation",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "reasoning_effort",
        "safety_identifier",
        "seed",
        "service_tier",
        "store",
        "verbosity",
        "web_search_options",
    }
)
# Typed options only some wire formats have: ``logprobs`` (true), ``strict`` (a strict tool),
# ``parallel_tool_calls`` (false), ``custom_tools`` (a ``custom`` tool or a call to one).
Feature = Literal["logprobs", "strict", "parallel_tool_calls", "custom_tools"]


def refuse_foreign(
    request: Request,
    vendor: str,
    wire: str,
    *,
    features: Collection[Feature] = (),
    understood: Collection[str] = (),
) -> None:
    """``UnsupportedRequest`` naming the first field ``wire`` (the vendor's API, for the
    message) cannot carry: typed options not in ``features``, OpenAI-only ``extra`` fields not
    in ``understood``."""
    for field, feature in _used_features(request):
        if feature not in features:
            _refuse(field, feature, vendor, wire)
    for key in request.extra or ():
        if key in OPENAI_ONLY_FIELDS and key not in understood:
            _refuse(key, key, vendor, wire)


def _used_features(request: Request) -> list[tuple[str, str]]:
    """(field, feature) for each typed option the request uses."""
    found: list[tuple[str, str]] = []
    if request.logprobs is True:
        found.append(("logprobs", "logprobs"))
    if request.parallel_tool_calls is False:
        found.append(("parallel_tool_calls", "parallel_tool_calls"))
    for i, tool in enumerate(request.tool_list):
        if tool.kind == "custom":
            found.append((f"tools[{i}]", "custom_tools"))
        if tool.strict is True:
            found.append((f"tools[{i}].strict", "strict"))
    for i, message in enumerate(request.message_list):
        for j, call in enumerate(message.tool_calls or ()):
            if call.kind == "custom":
                found.append((f"messages[{i}].tool_calls[{j}]", "custom_tools"))
    return found


def _refuse(field: str, feature: str, vendor: str, wire: str) -> None:
    what = {"custom_tools": "custom tools", "strict": "strict tools"}.get(feature, feature)
    raise UnsupportedRequest(
        f"request.{field}: the {wire} API has no {what}; remove it, or route the request to an "
        "OpenAI-family vendor",
        vendor=vendor,
    ).naming(field)
