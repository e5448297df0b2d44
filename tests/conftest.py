"""Shared test fixtures: the fake vendor servers (tests/fakes)."""

pytest_plugins = ["tests.fakes.fixtures", "tests.fakes.fixtures_ollama"]
