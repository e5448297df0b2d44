"""Shared state: the backend contract, rate limits, budgets, replicas."""
