"""The price table and cost: every vendor's usage shape, exact decimals, matching, overrides."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from datetime import date
from decimal import Decimal, localcontext
from importlib.resources import files
from typing import Any

import pytest
import yaml

from llmdispatcher.errors import ConfigError
from llmdispatcher.pricing import (
    ModelPrice,
    PriceTable,
    cost_for,
    cost_of,
    default_table,
    load_table,
)
from llmdispatcher.types import Usage


@pytest.fixture
def table() -> PriceTable:
    """A fresh table per test, so the once-per-model warnings start empty."""
    return PriceTable.load()


def price(table: PriceTable, vendor: str, model: str) -> ModelPrice:
    found = table.lookup(vendor, model)
    assert found is not None, f"{vendor}/{model} has no price"
    return found


# -- the shipped data ---------------------------------------------------------------------


def test_the_table_has_a_version_and_every_row_an_as_of_date(table: PriceTable) -> None:
    assert table.version == "2026-11-26"
    assert table.as_of == date(2026, 11, 26)
    rows = list(table)
    assert len(rows) > 50
    for row in rows:
        assert date(2025, 1, 1) <= row.as_of <= table.as_of, row.model
        assert row.input >= 0, row.model
        assert row.output >= 0, row.model


def test_the_data_file_is_package_data() -> None:
    assert files("llmdispatcher.pricing").joinpath("prices.toml").is_file()


REQUIRED_MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4.1"),
    ("openai", "gpt-4.1-mini"),
    ("openai", "gpt-4.1-nano"),
    ("openai", "o3"),
    ("openai", "o4-mini"),
    ("openai", "gpt-5"),
    ("openai", "gpt-5-mini"),
    ("openai", "gpt-5-nano"),
    ("openai", "gpt-5.5"),
    ("openai", "gpt-6.2-sol"),
    ("anthropic", "claude-opus-5-5"),
    ("anthropic", "claude-opus-4-6"),
    ("anthropic", "claude-sonnet-5-5"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-5-5"),
    ("anthropic", "claude-haiku-4-5"),
    ("google", "gemini-2.5-pro"),
    ("google", "gemini-2.5-flash"),
    ("google", "gemini-2.5-flash-lite"),
    ("google", "gemini-2.0-flash"),
    ("google", "gemini-3.8-flash"),
    ("deepseek", "deepseek-v4-pro"),
    ("groq", "llama-3.3-70b-versatile"),
]


@pytest.mark.parametrize(("vendor", "model"), REQUIRED_MODELS)
def test_the_data_covers_current_models(table: PriceTable, vendor: str, model: str) -> None:
    row = price(table, vendor, model)
    assert row.model == model
    assert row.input > 0
    assert row.output > 0


def test_anthropic_rows_price_cache_reads_and_writes(table: PriceTable) -> None:
    for model in table.models("anthropic"):
        row = price(table, "anthropic", model)
        assert row.cached_input < row.input < row.cache_write, model


# -- cost for every vendor's usage shape -----------------------------------------------------


def test_openai_cached_tokens_are_part_of_the_prompt(table: PriceTable) -> None:
    # 6,000 uncached x 2.50 + 4,000 cached x 1.25 + 2,000 output x 10.00, per million
    usage = Usage(prompt_tokens=10_000, completion_tokens=2_000, cached_tokens=4_000)
    assert cost_of(usage, price(table, "openai", "gpt-4o")) == Decimal("0.04")


def test_openai_reasoning_tokens_are_part_of_the_completion(table: PriceTable) -> None:
    # o3: 800 x 2.00 + 200 x 0.50 + (500 visible + 2,500 reasoning) x 8.00 = 25,700 micro-$
    usage = Usage(
        prompt_tokens=1_000, completion_tokens=3_000, cached_tokens=200, reasoning_tokens=2_500
    )
    assert cost_of(usage, price(table, "openai", "o3")) == Decimal("0.0257")


def test_anthropic_cache_reads_and_writes(table: PriceTable) -> None:
    # input_tokens=100, cache_read=5,000, cache_creation=2,000, output=300 on Sonnet 4.5:
    # 100 x 3 + 5,000 x 0.30 + 2,000 x 3.75 + 300 x 15 = 13,800 micro-$
    usage = Usage(
        prompt_tokens=7_100, completion_tokens=300, cached_tokens=5_000, cache_write_tokens=2_000
    )
    assert cost_of(usage, price(table, "anthropic", "claude-sonnet-4-5")) == Decimal("0.0138")


def test_gemini_thoughts_are_billed_as_output(table: PriceTable) -> None:
    # candidates=100 + thoughts=900: 1,200 x 0.30 + 1,000 x 2.50 = 2,860 micro-$
    flash = price(table, "google", "gemini-2.5-flash")
    with_thoughts = Usage(prompt_tokens=1_200, completion_tokens=1_000, reasoning_tokens=900)
    assert cost_of(with_thoughts, flash) == Decimal("0.00286")
    assert cost_of(Usage(prompt_tokens=1_200, completion_tokens=1_000), flash) == Decimal("0.00286")


def test_long_prompts_use_the_long_context_rates(table: PriceTable) -> None:
    pro = price(table, "google", "gemini-2.5-pro")
    at_bound = Usage(prompt_tokens=200_000, completion_tokens=1_000)
    past_bound = Usage(prompt_tokens=300_000, completion_tokens=1_000, cached_tokens=100_000)
    assert cost_of(at_bound, pro) == Decimal("0.26")  # 200k x 1.25 + 1k x 10
    # 200k x 2.50 + 100k x 0.25 + 1k x 15
    assert cost_of(past_bound, pro) == Decimal("0.54")


def test_local_models_cost_nothing(table: PriceTable) -> None:
    usage = Usage(prompt_tokens=5_000, completion_tokens=5_000)
    for vendor, model in [("ollama", "llama3.2:3b"), ("llamacpp", "smollm2"), ("vllm", "any")]:
        row = price(table, vendor, model)
        assert row.is_free
        assert cost_of(usage, row) == 0


def test_a_separate_reasoning_price_is_applied_to_reasoning_tokens(table: PriceTable) -> None:
    custom = table.with_overrides(
        {"acme": {"thinker": {"input": 1, "output": 2, "reasoning": 5, "as_of": "2026-11-01"}}}
    )
    usage = Usage(prompt_tokens=1_000, completion_tokens=1_000, reasoning_tokens=600)
    # 1,000 x 1 + 400 x 2 + 600 x 5 = 4,800 micro-$
    assert cost_of(usage, price(custom, "acme", "thinker")) == Decimal("0.0048")


def test_no_cache_rate_means_the_full_input_rate(table: PriceTable) -> None:
    custom = table.with_overrides({"acme": {"m": {"input": 2, "output": 4, "as_of": "2026-11-01"}}})
    row = price(custom, "acme", "m")
    assert row.cached_input == row.cache_write == Decimal(2)
    assert row.reasoning == Decimal(4)
    usage = Usage(prompt_tokens=1_000, completion_tokens=0, cached_tokens=500)
    assert cost_of(usage, row) == Decimal("0.002")


def test_cost_is_exact_whatever_the_callers_decimal_context(table: PriceTable) -> None:
    mini = price(table, "openai", "gpt-4o-mini")
    one_token = cost_of(Usage(prompt_tokens=1), mini)
    assert one_token == Decimal("0.00000015")
    assert sum([one_token] * 3) == Decimal("0.00000045")
    with localcontext(prec=3):
        big = cost_of(Usage(prompt_tokens=123_456_789, completion_tokens=987_654), mini)
    # 123,456,789 x 0.15 + 987,654 x 0.60 = 19,111,110.75 micro-$, not rounded to 3 digits
    assert big == Decimal("19.11111075")


def test_overrunning_buckets_are_clamped_not_billed_twice(table: PriceTable) -> None:
    row = price(table, "openai", "gpt-4o")
    inconsistent = Usage(
        prompt_tokens=100, completion_tokens=10, cached_tokens=150, reasoning_tokens=50
    )
    # all 100 prompt tokens cached (x 1.25), all 10 completion tokens reasoning (x 10)
    assert cost_of(inconsistent, row) == Decimal("0.000225")


# -- matching -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vendor", "asked", "row"),
    [
        ("openai", "gpt-4o-2024-08-06", "gpt-4o"),
        ("openai", "GPT-4o", "gpt-4o"),
        ("openai", "gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # its own row wins
        ("openai", "o3-mini-2025-01-31", "o3-mini"),
        ("openai", "gpt-4.1-2025-04-14", "gpt-4.1"),
        ("openai", "chatgpt-4o-latest", "gpt-4o"),  # an alias
        ("openai", "gpt-5.6", "gpt-5.6-sol"),
        ("azure", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("anthropic", "claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("anthropic", "claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("anthropic", "claude-opus-4-0", "claude-opus-4"),
        ("anthropic", "claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("google", "models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("google", "gemini-2.5-flash-preview-09-2025", "gemini-2.5-flash"),
        ("google", "gemini-2.5-pro-preview-05-06", "gemini-2.5-pro"),
        ("google", "gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("openrouter", "anthropic/claude-sonnet-4.5", "claude-sonnet-4-5"),
        ("openrouter", "openai/gpt-4o-2024-11-20", "gpt-4o"),
        ("deepseek", "deepseek-chat", "deepseek-chat"),
    ],
)
def test_snapshot_names_match_their_family(
    table: PriceTable, vendor: str, asked: str, row: str
) -> None:
    assert price(table, vendor, asked).model == row


@pytest.mark.parametrize(
    ("vendor", "asked"),
    [
        ("openai", "gpt-4-1106-preview"),  # not silently priced as some other gpt-4
        ("openai", "gpt-4o-realtime-preview-2024-12-17"),  # not priced as gpt-4o
        ("anthropic", "claude-sonnet-9"),
        ("openai_compatible", "whatever-my-server-runs"),
        ("openrouter", "meta-llama/llama-3.3-70b-instruct"),
        ("nosuchvendor", "gpt-4o"),
    ],
)
def test_unknown_models_have_no_price(table: PriceTable, vendor: str, asked: str) -> None:
    assert table.lookup(vendor, asked) is None


def test_openrouter_free_variants_cost_nothing(table: PriceTable) -> None:
    assert price(table, "openrouter", "meta-llama/llama-3.3-70b-instruct:free").is_free


def test_unknown_model_costs_none_with_one_warning(
    table: PriceTable, caplog: pytest.LogCaptureFixture
) -> None:
    usage = Usage(prompt_tokens=10, completion_tokens=10)
    with caplog.at_level(logging.WARNING, logger="llmdispatcher"):
        assert cost_for("openai", "gpt-99", usage, table) is None
        assert cost_for("openai", "gpt-99", usage, table) is None
        assert cost_for("openai", "gpt-4o", usage, table) == Decimal("0.000125")
    warnings = [r for r in caplog.records if r.name == "llmdispatcher"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    message = warnings[0].getMessage()
    assert "gpt-99" in message
    assert "prices:" in message


# -- overrides ------------------------------------------------------------------------------


def test_overrides_change_and_add_rows_in_a_new_table(table: PriceTable) -> None:
    custom = table.with_overrides(
        {
            "openai": {"gpt-4o": {"input": 2.0, "as_of": "2027-01-15"}},
            "vllm": {"my-finetune": {"input": "0.05", "output": 0.05, "as_of": date(2026, 12, 1)}},
            "azure": {"gpt-4o": {"input": 2.75, "output": 11, "as_of": "2026-11-01"}},
        }
    )
    changed = price(custom, "openai", "gpt-4o-2024-08-06")
    assert changed.input == Decimal("2.0")
    assert changed.output == Decimal("10.00")  # untouched fields keep the shipped value
    assert changed.as_of == date(2027, 1, 15)
    assert price(custom, "vllm", "my-finetune").input == Decimal("0.05")
    assert price(custom, "vllm", "other-model").is_free
    assert price(custom, "azure", "gpt-4o").input == Decimal("2.75")  # its own row wins
    assert price(custom, "azure", "gpt-4.1").vendor == "openai"
    assert price(table, "openai", "gpt-4o").input == Decimal("2.50")  # the original is unchanged
    assert custom.version.startswith("2026-11-26+overrides.")
    assert custom.version != table.version
    same = table.with_overrides({"openai": {"gpt-4o": {"input": 2.0, "as_of": "2027-01-15"}}})
    again = table.with_overrides({"openai": {"gpt-4o": {"input": 2.0, "as_of": "2027-01-15"}}})
    assert same.version == again.version != custom.version


def test_overrides_read_from_a_yaml_config_section(table: PriceTable) -> None:
    config = yaml.safe_load(
        """
        prices:
          anthropic:
            claude-sonnet-4-5:
              cached_input: 0.25
              as_of: 2026-12-01
          groq:
            openai/gpt-oss-120b: {input: 0.15, output: 0.75, context_window: 131072,
                                  as_of: 2026-12-01}
        """
    )
    custom = load_table(config["prices"])
    assert price(custom, "anthropic", "claude-sonnet-4-5-20250929").cached_input == Decimal("0.25")
    assert price(custom, "groq", "openai/gpt-oss-120b").context_window == 131_072


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"openai": {"gpt-4o": {"input": "abc", "as_of": "2026-11-01"}}},
            "prices.openai.gpt-4o.input: expected a number",
        ),
        (
            {"openai": {"gpt-4o": {"input": -1, "as_of": "2026-11-01"}}},
            "prices.openai.gpt-4o.input: must be a finite number >= 0",
        ),
        (
            {"openai": {"gpt-4o": {"input": True, "as_of": "2026-11-01"}}},
            "prices.openai.gpt-4o.input: expected a number",
        ),
        ({"openai": {"gpt-4o": {"input": 2}}}, "prices.openai.gpt-4o.as_of: required"),
        (
            {"acme": {"m1": {"input": 1, "as_of": "2026-11-01"}}},
            "prices.acme.m1.output: required",
        ),
        (
            {"openai": {"gpt-4o": {"inptu": 2, "as_of": "2026-11-01"}}},
            "prices.openai.gpt-4o.inptu: unknown field",
        ),
        ({"openai": 3}, "prices.openai: expected a mapping"),
        ({"openai": {"gpt-4o": 2.5}}, "prices.openai.gpt-4o: expected a mapping"),
        (
            {"openai": {"gpt-4o": {"as_of": "last tuesday"}}},
            "prices.openai.gpt-4o.as_of: expected a date",
        ),
        (
            {"openai": {"gpt-4o": {"context_window": -5, "as_of": "2026-11-01"}}},
            "prices.openai.gpt-4o.context_window: expected a positive whole number",
        ),
        (
            {
                "openai": {
                    "gpt-4o": {"long_context": {"input": 5, "output": 20}, "as_of": "2026-11-01"}
                }
            },
            "prices.openai.gpt-4o.long_context.above: required",
        ),
        (
            {"openai": {"gpt-4o": {"aliases": "gpt-4o-x", "as_of": "2026-11-01"}}},
            "prices.openai.gpt-4o.aliases: expected a list",
        ),
    ],
)
def test_bad_overrides_name_the_key_path(
    table: PriceTable, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        table.with_overrides(overrides)


def test_a_bad_data_file_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"prices\.toml\.version: a version string"):
        PriceTable.from_mapping({"openai": {}})
    with pytest.raises(ConfigError, match=r"prices\.toml\.openai\.m\.as_of: required"):
        PriceTable.from_mapping(
            {"version": "2026-01-01", "openai": {"m": {"input": 1, "output": 1}}}
        )


# -- laziness -------------------------------------------------------------------------------


def test_the_default_table_is_loaded_once() -> None:
    assert default_table() is default_table()
    assert load_table() is default_table()


def test_importing_the_package_loads_neither_pricing_nor_tiktoken() -> None:
    code = (
        "import sys, llmdispatcher; "
        "print(sorted(m for m in sys.modules "
        "if m.startswith(('llmdispatcher.pricing', 'llmdispatcher.tokens', 'tiktoken'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
