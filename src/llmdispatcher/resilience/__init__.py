"""Resilience policies: retry/backoff, deadlines (later: circuit breaking, rate limits)."""
