"""``redact``: whole credentials and the partly masked forms vendors echo back."""

from __future__ import annotations

import pytest

from llmdispatcher.redaction import redact
from tests.fakes.openai_fake import mask_key

KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789wxyz"


def test_whole_credentials_are_replaced() -> None:
    assert redact(f"bad key {KEY}!", [KEY]) == "bad key ***!"


@pytest.mark.parametrize(
    "shown",
    [
        mask_key(KEY),  # OpenAI's "sk-proj-****...wxyz"
        "sk-proj-abcd****wxyz",
        "sk-proj-abc...wxyz",
        "sk-proj…wxyz",
    ],
)
def test_vendor_masked_forms_keep_only_the_last_four(shown: str) -> None:
    text = f"Incorrect API key provided: {shown}. You can find your API key at ..."
    assert redact(text, [KEY]) == (
        "Incorrect API key provided: ***wxyz. You can find your API key at ..."
    )


@pytest.mark.parametrize(
    "text",
    [
        "key ***wxyz",  # our own display form (config check, the CLI)
        "sk-other-key****wxyz",  # another key's mask: not this credential's head
        "sk-proj-****abcd",  # not this credential's tail
        "no key here at all",
    ],
)
def test_other_text_passes_unchanged(text: str) -> None:
    assert redact(text, [KEY]) == text
