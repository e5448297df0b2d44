"""Observability: the dispatcher emits events; stats and logs subscribe to them."""
