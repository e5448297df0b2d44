"""The dashboard's shipped files: the vendored libraries are the pinned ones, byte for byte
(``static/vendor/MANIFEST.txt``, written by ``scripts/vendor_ui_assets.sh``), each with its
licence; no page or script names another host; the Config page masks secrets."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from llmdispatcher import Config
from llmdispatcher.config import ApiKeyConfig, GatewayConfig, VendorSpec
from llmdispatcher.gateway.ui.config_view import MASK, masked_config

UI = Path(__file__).resolve().parents[2] / "src" / "llmdispatcher" / "gateway" / "ui"
VENDOR = UI / "static" / "vendor"


def test_the_vendored_files_match_their_manifest() -> None:
    listed = {}
    for line in (VENDOR / "MANIFEST.txt").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name] = digest
    present = {p.name for p in VENDOR.iterdir()} - {"MANIFEST.txt"}
    assert set(listed) == present
    for name, digest in listed.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    assert {"LICENSE-htmx.txt", "LICENSE-uplot.txt"} <= present


def test_the_templates_and_scripts_name_no_other_host() -> None:
    """No CDN, no font service: every URL in what the dashboard serves is relative."""
    for path in [*UI.glob("templates/*.html"), UI / "static" / "app.js", UI / "static" / "app.css"]:
        text = path.read_text()
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", text), path
        assert "<script>" not in text, path  # no inline script (the CSP forbids it anyway)


def test_the_config_page_masks_secrets() -> None:
    config = Config(
        vendors=(VendorSpec("openai", "openai", {"api_key": "sk-real", "base_url": "https://x"}),),
        ledger_url="postgresql://app:hunter2@db:5432/llm",
    )
    settings = GatewayConfig(
        admin_key_sha256="ab" * 32, api_keys=(ApiKeyConfig("a", key="k1" * 8),)
    )
    shown = masked_config(config, settings)
    text = repr(shown)
    for secret in ("sk-real", "hunter2", "ab" * 32, "k1" * 8):
        assert secret not in text
    assert shown["vendors"][0]["options"]["api_key"] == MASK
    assert shown["ledger_url"] == f"postgresql://app:{MASK}@db:5432/llm"
    assert shown["vendors"][0]["options"]["base_url"] == "https://x"
    assert shown["gateway"]["auth_failures_per_minute"] == 10  # a name with "auth" is no secret
    assert shown["retry_policy"]["max_retries"] == Config().retry_policy.max_retries
