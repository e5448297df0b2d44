"""``detail_json``: the shape of a ledger row's ``detail`` column, exactly."""

from __future__ import annotations

import json

from llmdispatcher.observability.ledger_detail import detail_json
from llmdispatcher.types import Attempt


def test_each_attempt_is_written_with_its_five_fields_in_order() -> None:
    attempts = (
        Attempt("openai", "gpt-4o-mini", "VendorServerError", "HTTP 503: overloaded", 0.25),
        Attempt("backup", "gpt-4o-mini", "ok", None, 0.0012),
    )
    found = detail_json(attempts, None)
    assert found is not None
    assert json.loads(found) == {
        "attempts": [
            {"vendor": "openai", "model": "gpt-4o-mini", "status": "VendorServerError",
             "error": "HTTP 503: overloaded", "duration_s": 0.25},
            {"vendor": "backup", "model": "gpt-4o-mini", "status": "ok", "error": None,
             "duration_s": 0.0012},
        ]
    }  # fmt: skip
    assert list(json.loads(found)["attempts"][0]) == [
        "vendor", "model", "status", "error", "duration_s"
    ]  # fmt: skip


def test_nothing_to_say_is_none() -> None:
    assert detail_json((), None) is None
