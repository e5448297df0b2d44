"""botocore and google-auth installed but unused cost nothing: ``import llmdispatcher``, the
dispatcher ``from_env()`` builds and the gateway app leave them unimported, even when the
environment registers the Bedrock (with an API key) and Vertex vendors. They load on the
first request that needs them (SigV4 signing, a Google token), in the vendor modules only."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CLOUD_MODULES = ("botocore", "boto3", "google.auth", "google.oauth2", "requests")
PROBE = """
import sys
import llmdispatcher
after_import = [m for m in {mods!r} if m in sys.modules]
from llmdispatcher import Dispatcher
from llmdispatcher.gateway.app import create_app
dispatcher = Dispatcher.from_env()
create_app(dispatcher)
after_start = [m for m in {mods!r} if m in sys.modules]
print(",".join(sorted(dispatcher.vendors)), after_import, after_start, sep="|")
"""
CLOUD_ENV = ("AWS_", "GOOGLE_", "ANTHROPIC_VERTEX", "CLOUD_ML", "GEMINI_")


def probe(**env: str) -> tuple[str, str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(CLOUD_ENV)}
    code = PROBE.format(mods=CLOUD_MODULES)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**clean, "OPENAI_API_KEY": "sk-test-unused", **env},
    )
    vendors, after_import, after_start = out.stdout.strip().split("|")
    return vendors, after_import, after_start


def test_the_extras_are_installed_here() -> None:
    import botocore
    import google.auth

    assert botocore.__version__
    assert google.auth.__version__


def test_nothing_cloud_is_imported_by_default() -> None:
    vendors, after_import, after_start = probe()
    assert "bedrock" not in vendors
    assert "vertex" not in vendors
    assert after_import == after_start == "[]"


@pytest.mark.parametrize(
    "env",
    [
        {"AWS_BEARER_TOKEN_BEDROCK": "ABSK-test", "AWS_DEFAULT_REGION": "us-west-2"},
        {"AWS_ACCESS_KEY_ID": "AKIATEST", "AWS_SECRET_ACCESS_KEY": "x", "AWS_REGION": "eu-west-1"},
        {"GOOGLE_GENAI_USE_VERTEXAI": "true", "GOOGLE_CLOUD_PROJECT": "proj"},
        {"ANTHROPIC_VERTEX_PROJECT_ID": "proj", "CLOUD_ML_REGION": "us-east5"},
    ],
)
def test_registered_cloud_vendors_import_their_sdk_only_when_used(env: dict[str, str]) -> None:
    vendors, after_import, after_start = probe(**env)
    assert "bedrock" in vendors or "vertex" in vendors
    assert after_import == after_start == "[]"
