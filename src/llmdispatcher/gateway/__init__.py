"""The HTTP gateway: an OpenAI- and Anthropic-compatible service in front of a Dispatcher.

``create_app(dispatcher, settings)`` builds the aiohttp application (``app.py``);
``server.serve(...)`` runs it with workers, signals and graceful shutdown (``server.py``);
``llmdispatcher serve`` is the command line. Only ``cli`` imports this package.
"""
