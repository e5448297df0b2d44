"""Shared test fixtures: the fake vendor servers (tests/fakes). The whole session, and every
process it starts, uses a temporary data directory (``LLMDISPATCHER_HOME``): no test ever writes
to the real one."""

import atexit
import os
import shutil
import tempfile

_HOME = tempfile.mkdtemp(prefix="llmdispatcher-test-home-")
os.environ["LLMDISPATCHER_HOME"] = _HOME
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)

pytest_plugins = [
    "tests.fakes.fixtures",
    "tests.fakes.fixtures_anthropic",
    "tests.fakes.fixtures_cloud",
    "tests.fakes.fixtures_gemini",
    "tests.fakes.fixtures_more_vendors",
    "tests.fakes.fixtures_ollama",
    "tests.fakes.fixtures_openai_family",
    "tests.redis_fixtures",
]
