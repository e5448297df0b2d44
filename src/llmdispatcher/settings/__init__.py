"""Settings: the plain values a ``Config`` is made of (deployments, model groups, routing rules,
retry and breaker settings). They import nothing but the leaf modules; the layers that act on
them (routing/, resilience/) read them."""
