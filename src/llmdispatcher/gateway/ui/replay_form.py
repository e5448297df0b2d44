"""The Replay page's form: a proposed config (pasted or uploaded YAML), a window, a sample and a
seed, all checked before anything runs.

The config goes through the loader of ``llmdispatcher replay --config`` and of the gateway's own
file (``Config.from_dict``: ``config_file.config_from_mapping``) after YAML parsing, so an error
reads as it would on the command line. One difference, on purpose: ``${NAME}`` is not read from
the gateway's environment. A form on a web page must not be a way to read the server's secrets
(a group or rule named ``${OPENAI_API_KEY}`` would print it in the report), and a replay needs
none: its vendors are simulated. ``${NAME:-x}`` becomes ``x``, ``${NAME}`` the text
``env:NAME``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from ...config import Config
from ...errors import ConfigError

MAX_CONFIG_BYTES = 256 * 1024
MAX_VALUES = 100_000  # values in the parsed config: a YAML alias bomb stops here
WINDOWS = {"1h": 3600.0, "24h": 86_400.0, "7d": 7 * 86_400.0, "30d": 30 * 86_400.0}
CUSTOM = "custom"  # the window starts at ``since``
PASTED = "proposed config"  # the source a pasted config's errors name
T = TypeVar("T")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True, slots=True)
class Fields:
    """The form as it was filled in (shown again beside its errors)."""

    config: str = ""
    source: str = PASTED  # or the uploaded file's name
    window: str = "7d"
    since: str = ""
    sample: str = "1"
    seed: str = "0"


@dataclass(frozen=True, slots=True)
class Proposal:
    config: Config
    start: float
    label: str  # "last 7d", "since 2026-12-01 08:00 UTC"
    sample: float
    seed: int


@dataclass(frozen=True, slots=True)
class Checked:
    fields: Fields
    proposal: Proposal | None
    errors: dict[str, str] = field(default_factory=dict)  # by field name


def check(fields: Fields, now: float) -> Checked:
    """The form's values, or what is wrong with each field. Nothing runs on an error."""
    errors: dict[str, str] = {}
    config = _field(errors, "config", lambda: _config(fields.config, fields.source))
    window = _field(errors, "since", lambda: _window(fields.window, fields.since, now))
    sample = _field(errors, "sample", lambda: _sample(fields.sample))
    seed = _field(errors, "seed", lambda: _seed(fields.seed))
    if errors or config is None or window is None or sample is None or seed is None:
        return Checked(fields, None, errors)
    start, label = window
    return Checked(fields, Proposal(config, start, label, sample, seed))


def _field(errors: dict[str, str], name: str, read: Callable[[], T]) -> T | None:
    try:
        return read()
    except ConfigError as exc:
        errors[name] = str(exc)
        return None


def _config(text: str, source: str) -> Config:
    import yaml

    if not text.strip():
        raise ConfigError("paste a config or choose a file: the proposal to replay")
    if len(text.encode()) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: larger than {MAX_CONFIG_BYTES // 1024} KiB")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply") from None
    return Config.from_dict(_unresolved({} if data is None else data, source), source)


def _unresolved(data: Any, source: str) -> Any:
    """``data`` with every ``${NAME}`` replaced without reading the environment."""
    seen = 0

    def walk(value: Any) -> Any:
        nonlocal seen
        seen += 1
        if seen > MAX_VALUES:
            raise ConfigError(f"{source}: more than {MAX_VALUES:,} values (YAML aliases?)")
        if isinstance(value, str):
            return _ENV.sub(lambda m: m.group(2) if m.group(2) is not None else
                            f"env:{m.group(1)}", value)  # fmt: skip
        if isinstance(value, Mapping):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    try:
        return walk(data)
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply") from None


def _window(window: str, since: str, now: float) -> tuple[float, str]:
    if window in WINDOWS:
        return now - WINDOWS[window], f"last {window}"
    if window != CUSTOM:
        raise ConfigError(f"window: one of {', '.join([*WINDOWS, CUSTOM])}")
    try:
        moment = datetime.fromisoformat(since.strip())
    except ValueError:
        raise ConfigError("since: a date like 2026-12-01 or 2026-12-01T08:00 (UTC)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment.timestamp() >= now:
        raise ConfigError("since: a moment in the past")
    return moment.timestamp(), f"since {moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _sample(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 1.0:
        raise ConfigError("sample: a share of the requests, above 0 and at most 1 (0.1 = a tenth)")
    return value


def _seed(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ConfigError("seed: a whole number (the same seed gives the same report)") from None
