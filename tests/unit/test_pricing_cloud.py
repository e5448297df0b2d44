"""Prices of the cloud vendors: Bedrock model ids (versions, cross-region prefixes, global
profiles), Vertex AI by location, and regional sections read before the vendor's own."""

from __future__ import annotations

from decimal import Decimal

import pytest

from llmdispatcher.pricing import PriceTable, cost_of
from llmdispatcher.types import Usage


@pytest.fixture
def table() -> PriceTable:
    return PriceTable.load()


@pytest.mark.parametrize(
    ("section", "model", "row", "input_rate"),
    [
        (
            "bedrock/us-east-1",
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic.claude-sonnet-4-5",
            "3.30",
        ),
        (
            "bedrock/eu-west-1",
            "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic.claude-sonnet-4-5",
            "3.30",
        ),
        (
            "bedrock/us-east-1",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "global.anthropic.claude-sonnet-4-5",
            "3.00",
        ),
        ("bedrock/us-west-2", "us.amazon.nova-pro-v1:0", "amazon.nova-pro", "0.80"),
        (
            "bedrock/us-east-1",
            "meta.llama3-3-70b-instruct-v1:0",
            "meta.llama3-3-70b-instruct",
            "0.72",
        ),
        ("vertex/us-east5", "claude-sonnet-4-5@20250929", "claude-sonnet-4-5", "3.30"),
        ("vertex/global", "claude-sonnet-4-5@20250929", "claude-sonnet-4-5", "3.00"),
        ("vertex/global", "claude-opus-4-6", "claude-opus-4-6", "5.00"),  # from [anthropic]
        ("vertex/europe-west4", "gemini-2.5-flash", "gemini-2.5-flash", "0.30"),  # from [google]
    ],
)
def test_cloud_models_find_their_row(
    table: PriceTable, section: str, model: str, row: str, input_rate: str
) -> None:
    found = table.lookup(section, model)
    assert found is not None
    assert (found.model, found.input) == (row, Decimal(input_rate))


def test_a_regional_section_wins_over_the_vendors(table: PriceTable) -> None:
    overrides = {
        "bedrock/eu-central-1": {
            "amazon.nova-pro": {"input": 1.05, "output": 4.20, "as_of": "2026-11-26"}
        }
    }
    priced = table.with_overrides(overrides)
    regional = priced.lookup("bedrock/eu-central-1", "eu.amazon.nova-pro-v1:0")
    home = priced.lookup("bedrock/us-east-1", "us.amazon.nova-pro-v1:0")
    assert regional is not None
    assert home is not None
    assert (regional.input, home.input) == (Decimal("1.05"), Decimal("0.80"))


def test_bedrock_cache_reads_and_writes_are_billed(table: PriceTable) -> None:
    # Converse: inputTokens=100, cacheRead=5,000, cacheWrite=2,000, output=300 (regional):
    # 100 x 3.30 + 5,000 x 0.33 + 2,000 x 4.125 + 300 x 16.50 = 15,180 micro-$
    row = table.lookup("bedrock/us-east-1", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert row is not None
    usage = Usage(
        prompt_tokens=7_100, completion_tokens=300, cached_tokens=5_000, cache_write_tokens=2_000
    )
    assert cost_of(usage, row) == Decimal("0.01518")


def test_unknown_cloud_models_stay_unknown(table: PriceTable) -> None:
    assert table.lookup("bedrock/us-east-1", "cohere.command-r-v9:0") is None
    assert table.lookup("vertex/us-east5", "llama-4-maverick") is None
