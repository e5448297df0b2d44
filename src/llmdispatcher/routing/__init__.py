"""Routing: which vendor(s) a request goes to, in which order."""
