"""``POST /v1/messages/count_tokens``: the input tokens of an Anthropic Messages prompt.

The body is a Messages body without the generation fields (as Anthropic's endpoint: a
``max_tokens`` is a 400). The request is routed like a message would be; when the first
candidate is an Anthropic vendor, Anthropic counts (``AnthropicVendor.count_tokens``), else
the gateway estimates (``tokens.estimate_prompt_tokens``: tiktoken where it has the encoding,
else an approximation). The ``x-llmdispatcher-token-count`` header says which: ``vendor`` or
``estimate``.
"""

from __future__ import annotations

from aiohttp import web

from ..tokens import estimate_prompt_tokens
from ..types import Request
from ..vendors.anthropic import AnthropicVendor
from .anthropic_api import parse_messages
from .auth import check_model
from .errors import bad_request
from .relay import json_response, read_json
from .state import GATEWAY, TRACE, Gateway

# Messages fields count_tokens refuses (anthropic SDK ``MessageCountTokensParams`` lacks them).
GENERATION_FIELDS = frozenset(
    {"max_tokens", "stop_sequences", "stream", "temperature", "top_p", "top_k", "metadata"}
)
HEADER = "x-llmdispatcher-token-count"


async def count_tokens(request: web.Request) -> web.StreamResponse:
    gateway, trace = request.app[GATEWAY], request[TRACE]
    body = await read_json(request, gateway)
    for key in body:
        if key in GENERATION_FIELDS:
            raise bad_request(key, "Extra inputs are not permitted (count_tokens counts a prompt)")
    parsed, _ = parse_messages({**body, "max_tokens": 1}, trace)
    check_model(trace.key, parsed.model, gateway.group_models)
    tokens, source = await _count(gateway, parsed)
    response = json_response({"input_tokens": tokens})
    response.headers[HEADER] = source
    return response


async def _count(gateway: Gateway, request: Request) -> tuple[int, str]:
    decision = await gateway.dispatcher.explain(request)
    if decision.candidates:
        deployment = decision.candidates[0].deployment
        vendor = gateway.dispatcher.vendors.get(deployment.vendor)
        if isinstance(vendor, AnthropicVendor):
            return await vendor.count_tokens(request.with_model(deployment.model)), "vendor"
    return estimate_prompt_tokens(request), "estimate"
