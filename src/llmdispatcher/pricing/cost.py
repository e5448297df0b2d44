"""What a response cost, in exact decimal dollars, from the usage the vendor reported.

``Usage`` counts tokens OpenAI's way: ``prompt_tokens`` includes the cached tokens and the cache
writes, ``completion_tokens`` includes the reasoning tokens. Each token is billed once, in the
bucket it belongs to (prices ``P`` are USD per million tokens, taken from the long-context card
when ``prompt_tokens`` is above its bound)::

    uncached  = prompt_tokens - cached_tokens - cache_write_tokens
    visible   = completion_tokens - reasoning_tokens
    cost = ( uncached           * P.input
           + cached_tokens      * P.cached_input     (P.input when the model has no discount)
           + cache_write_tokens * P.cache_write      (P.input when writes cost nothing extra)
           + visible            * P.output
           + reasoning_tokens   * P.reasoning        (P.output where reasoning bills as output)
           ) / 1_000_000

A vendor whose buckets overrun their totals (cached + writes > prompt, reasoning > completion)
is not trusted past its totals: the overrun is clamped so no bucket goes negative and no token
is billed twice.

The two common mistakes this avoids (LiteLLM's among them): cached tokens are *part of* the
prompt, so billing the whole prompt at the input rate plus the cached tokens at the cache rate
charges them twice, while ignoring the split charges them at full price; reasoning tokens are
*part of* the completion, so adding them to it charges them twice. Vendor shapes, as the
adapters map them into ``Usage``:

- OpenAI/Azure: ``prompt_tokens_details.cached_tokens``, ``completion_tokens_details.
  reasoning_tokens``;
- Anthropic: prompt = ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``,
  cached = ``cache_read_input_tokens``, writes = ``cache_creation_input_tokens``;
- Gemini: completion = ``candidatesTokenCount + thoughtsTokenCount``, reasoning =
  ``thoughtsTokenCount``, cached = ``cachedContentTokenCount``;
- Ollama/llama.cpp: plain prompt/completion counts (and a free price).
"""

from __future__ import annotations

from decimal import Context, Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..types import Usage
    from .table import ModelPrice

PER_MILLION = Decimal(1_000_000)
# Enough digits that no realistic token count times price is ever rounded, whatever the
# caller's own decimal context says. Its methods are used directly rather than switching the
# thread's context (localcontext), which costs a context-variable set and reset per answer.
_EXACT = Context(prec=50)


def cost_of(usage: Usage, price: ModelPrice) -> Decimal:
    """The exact USD cost of ``usage`` at ``price`` (formula in the module docstring)."""
    rates = price.for_prompt(usage.prompt_tokens)
    prompt = max(usage.prompt_tokens, 0)
    cached = min(max(usage.cached_tokens, 0), prompt)
    writes = min(max(usage.cache_write_tokens, 0), prompt - cached)
    completion = max(usage.completion_tokens, 0)
    reasoning = min(max(usage.reasoning_tokens, 0), completion)
    exact = _EXACT  # each step a*b + c, exact at this precision
    micro_dollars = exact.multiply(prompt - cached - writes, rates.input)
    micro_dollars = exact.fma(cached, rates.cached_input, micro_dollars)
    micro_dollars = exact.fma(writes, rates.cache_write, micro_dollars)
    micro_dollars = exact.fma(completion - reasoning, rates.output, micro_dollars)
    micro_dollars = exact.fma(reasoning, rates.reasoning, micro_dollars)
    return exact.divide(micro_dollars, PER_MILLION)
