"""Shared test fixtures: the fake vendor servers (tests/fakes)."""

pytest_plugins = [
    "tests.fakes.fixtures",
    "tests.fakes.fixtures_anthropic",
    "tests.fakes.fixtures_gemini",
    "tests.fakes.fixtures_ollama",
    "tests.fakes.fixtures_openai_family",
    "tests.redis_fixtures",
]
