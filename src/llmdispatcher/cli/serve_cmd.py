"""``serve``: run the OpenAI- and Anthropic-compatible HTTP gateway.

Settings come from, in order of precedence: the options here, their environment variables
(``LLMDISPATCHER_HOST``, ``_PORT``, ``_WORKERS``, ``_ALLOW_UNAUTHENTICATED``,
``_LOG_FORMAT``), the config file's ``gateway:`` section, the defaults.
``LLMDISPATCHER_API_KEYS`` (comma-separated) adds keys to the file's ``gateway.api_keys``.
The gateway itself is imported only when the command runs.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

import click

from .main import config_option, state

if TYPE_CHECKING:
    from ..config import GatewayConfig


def gateway_settings(
    base: GatewayConfig,
    host: str | None,
    port: int | None,
    workers: int | None,
    allow_unauthenticated: bool,
    env_keys: str | None,
    admin_key: str | None = None,
    log_format: Literal["text", "json"] | None = None,
) -> GatewayConfig:
    """The file's settings with the command line and environment applied on top; keys as
    their digests only (the plain keys are not kept in memory)."""
    from ..gateway.auth import digests_only, keys_from_env

    settings = replace(
        base,
        host=base.host if host is None else host,
        port=base.port if port is None else port,
        workers=base.workers if workers is None else workers,
        allow_unauthenticated=base.allow_unauthenticated or allow_unauthenticated,
        log_format=base.log_format if log_format is None else log_format,
    )
    if env_keys:
        settings = replace(settings, api_keys=settings.api_keys + keys_from_env(env_keys))
    if admin_key:
        settings = replace(settings, admin_key=admin_key, admin_key_sha256=None)
    return digests_only(settings)


@click.command("serve")
@click.option(
    "--host", envvar="LLMDISPATCHER_HOST", help="Address to listen on. [default: 127.0.0.1]"
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    envvar="LLMDISPATCHER_PORT",
    help="Port (0 picks a free one; the log says which). [default: 8080]",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    envvar="LLMDISPATCHER_WORKERS",
    help="Worker processes sharing the port (SO_REUSEPORT). [default: 1]",
)
@click.option(
    "--allow-unauthenticated",
    is_flag=True,
    envvar="LLMDISPATCHER_ALLOW_UNAUTHENTICATED",
    help="Listen on a non-loopback address without API keys.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    envvar="LLMDISPATCHER_LOG_FORMAT",
    help="json: one JSON object per log line, and an access line per request. [default: text]",
)
@config_option
def serve(
    host: str | None,
    port: int | None,
    workers: int | None,
    allow_unauthenticated: bool,
    log_format: Literal["text", "json"] | None,
) -> None:
    """Run the OpenAI- and Anthropic-compatible HTTP gateway.

    \b
    Endpoints: /v1/chat/completions, /v1/models, /v1/messages, /api/v1/*, /metrics,
    /openapi.json. Without --config it serves the vendors in the environment, else the
    built-in local model. SIGTERM or Ctrl-C stops it gracefully.

    \b
    Examples:
      llmdispatcher serve --config llmdispatcher.yaml --port 8080
      LLMDISPATCHER_API_KEYS=sk-gw-... llmdispatcher serve --host 0.0.0.0 --workers 2
    """
    from ..config import Config
    from ..errors import ConfigError

    try:
        from ..gateway.server import serve as run
    except ImportError as exc:  # prometheus-client (and uvloop) come with the gateway extra
        raise ConfigError(
            f"the gateway needs {exc.name}: pip install 'llmdispatcher[gateway]'"
        ) from None

    config_path = state().config_path
    settings = gateway_settings(
        (Config.from_file(config_path) if config_path else Config()).gateway,
        host,
        port,
        workers,
        allow_unauthenticated,
        os.environ.get("LLMDISPATCHER_API_KEYS"),
        os.environ.get("LLMDISPATCHER_ADMIN_KEY"),
        log_format,
    )
    code = run(config_path, settings)
    if code:
        raise click.exceptions.Exit(code)
