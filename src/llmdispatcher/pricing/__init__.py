"""Prices as versioned data, and what each response cost.

The table ships with the package (``prices.toml``: USD per million tokens, an ``as_of`` date on
every row) and is never fetched at run time. A config file's ``prices:`` section, in the same
shape, overrides or extends it::

    prices:
      openai:
        gpt-4o: {input: 2.00, output: 8.00, as_of: 2027-01-15}   # change a row
      vllm:
        my-finetune: {input: 0.05, output: 0.05, as_of: 2026-12-01}  # price a local model

Cost is exact ``Decimal`` arithmetic over the usage the vendor reported, cached and reasoning
tokens included (``cost.cost_of`` documents the formula). A model the table does not know costs
``None``, never a guess, and is logged once on the ``llmdispatcher`` logger.

Nothing here is imported by ``import llmdispatcher``; the table is read on first use and kept
for the life of the process (``default_table``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .cost import cost_of
from .table import LongContextPrice, ModelPrice, PriceTable

if TYPE_CHECKING:
    from ..types import Usage

__all__ = [
    "LongContextPrice",
    "ModelPrice",
    "PriceTable",
    "cost_for",
    "cost_of",
    "default_table",
    "deployment_cost",
    "load_table",
]


@functools.cache
def default_table() -> PriceTable:
    """The shipped table, read on the first call and shared by the process after that."""
    return PriceTable.load()


def load_table(overrides: Mapping[str, Any] | None = None, source: str = "prices") -> PriceTable:
    """The shipped table with a config file's ``prices:`` section applied (if any)."""
    table = default_table()
    return table.with_overrides(overrides, source) if overrides else table


def cost_for(
    vendor_type: str, model: str, usage: Usage, table: PriceTable | None = None
) -> Decimal | None:
    """What ``usage`` cost on ``vendor_type`` (or preset) and ``model``; ``None`` if unknown.

    An unknown model is logged once per table (``PriceTable.warn_unknown``).
    """
    table = default_table() if table is None else table
    price = table.lookup(vendor_type, model)
    if price is None:
        table.warn_unknown(vendor_type, model)
        return None
    return cost_of(usage, price)


def deployment_cost(
    vendor_pricing: str,
    model: str,
    usage: Usage,
    table: PriceTable,
    input_price: float | None = None,
    output_price: float | None = None,
) -> Decimal | None:
    """Cost of ``usage`` for a deployment: its own ``input_price``/``output_price`` (USD per
    million tokens) when both are set, else the table's row for ``model``."""
    if input_price is not None and output_price is not None:
        per_million = Decimal(usage.prompt_tokens) * Decimal(str(input_price)) + Decimal(
            usage.completion_tokens
        ) * Decimal(str(output_price))
        return per_million / Decimal(1_000_000)
    return cost_for(vendor_pricing, model, usage, table)
