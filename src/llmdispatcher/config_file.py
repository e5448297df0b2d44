"""Config files: YAML or TOML, ``${ENV}`` secrets, strict validation.

The schema is the ``Config`` dataclass tree itself: every key must be a field of the dataclass
at that place (unknown keys are errors, with the allowed ones listed), and every value must
have the field's type. Vendor options are checked against the vendor class's constructor.
Every error names the file, the key path (``vendors.openai.timeout``) and what was expected.

A vendor constructor takes some settings grouped in one value (``limits: Limits``,
``connection: Connection``, an OpenAI-family ``preset``); a file may write that value as a mapping
(``limits: {rpm: 60}``) or its fields flat on the vendor (``rpm: 60``, ``timeout: 30``,
``stream_usage: false``), which fold into it (over the named ``preset``, when one is given).

Example (YAML)::

    default_vendor: openai
    fallback_vendors: [backup]
    timeout: 30
    retry_policy: {max_retries: 3, backoff: exponential, base_delay: 0.5, max_delay: 30}
    routing_rules:
      - {vendor: openai, priority: 1, condition: {model_pattern: "gpt-4*", max_tokens: 2000}}
    vendors:
      openai: {api_key: "${OPENAI_API_KEY}"}
      backup: {type: openai, base_url: "http://127.0.0.1:8081/v1", api_key: "${BACKUP_KEY:-none}"}
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .config import Config, VendorSpec
from .errors import ConfigError

_UNIONS = (typing.Union, types.UnionType)
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    return config_from_mapping(_parse(path, text), str(path))


def _parse(path: Path, text: str) -> Any:
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    elif suffix == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    else:
        raise ConfigError(
            f"{path}: unknown config format {suffix or '(none)'!r}; use a .yaml, .yml or .toml file"
        )
    return {} if data is None else data


def config_from_mapping(data: Any, source: str) -> Config:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping of settings")
    data = _substitute_env(data, source, "")
    raw_vendors = data.get("vendors", {})
    rest = {k: v for k, v in data.items() if k != "vendors"}
    vendors = _vendor_specs(raw_vendors, source)
    config: Config = _build(Config, {**rest, "vendors": ()}, source, "")
    return dataclasses.replace(config, vendors=vendors)


def _substitute_env(value: Any, source: str, path: str) -> Any:
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = os.environ.get(name)
            if found is not None:
                return found
            if default is not None:
                return default
            raise ConfigError(
                f"{source}: {path}: environment variable {name} is not set: "
                f"export it, or write ${{{name}:-default}} for a default"
            )

        return _ENV.sub(repl, value)
    if isinstance(value, Mapping):
        return {k: _substitute_env(v, source, _join(path, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_env(v, source, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _vendor_specs(raw: Any, source: str) -> tuple[VendorSpec, ...]:
    from .vendors import REGISTRY, vendor_class

    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: vendors: expected a mapping of vendor name to its settings")
    specs = []
    for name, given in raw.items():
        where = f"vendors.{name}"
        options = {} if given is None else given
        if not isinstance(options, Mapping):
            raise ConfigError(f"{source}: {where}: expected a mapping of settings")
        vendor_type = options.get("type", name)
        if vendor_type not in REGISTRY:
            raise ConfigError(
                f"{source}: {where}.type: unknown vendor type {vendor_type!r}; "
                f"expected one of {', '.join(sorted(REGISTRY))}"
            )
        opts = {k: v for k, v in options.items() if k != "type"}
        checked = _constructor_options(vendor_class(vendor_type), opts, source, where)
        specs.append(
            VendorSpec(name=str(name), type=vendor_type, options={"name": name, **checked})
        )
    return tuple(specs)


def _constructor_options(
    factory: Callable[..., Any], options: Mapping[str, Any], source: str, where: str
) -> dict[str, Any]:
    """``options`` checked against ``factory``'s parameters, flat group fields folded."""
    params = inspect.signature(factory).parameters
    hints = _hints(factory)
    groups = {name: _group_type(hints.get(name)) for name in params}
    flat = {
        field.name: name
        for name, group in groups.items()
        if group is not None
        for field in dataclasses.fields(group)
        if field.name not in params
    }
    checked: dict[str, Any] = {}
    for key, value in options.items():
        if key == "name" or (key not in params and key not in flat):
            allowed = ", ".join(sorted((set(params) | set(flat)) - {"name"} | {"type"}))
            raise ConfigError(
                f"{source}: {where}.{key}: unknown setting; expected one of {allowed}"
            )
        if key in params:
            checked[key] = _coerce(hints.get(key, Any), value, source, f"{where}.{key}")
    for name, group in groups.items():
        folded = {k: v for k, v in options.items() if flat.get(k) == name}
        if group is not None and folded:
            written, default = options.get(name), params[name].default
            checked[name] = _fold(group, written, default, folded, source, f"{where}.{name}")
    return checked


def _hints(factory: Callable[..., Any]) -> dict[str, Any]:
    """The parameters' types (not the return type: a factory may name it for type checkers
    only, as ``LlamaCppVendor`` does)."""
    target = factory
    if isinstance(factory, type):
        target = next(vars(c)["__init__"] for c in factory.__mro__ if "__init__" in vars(c))
    given = {k: v for k, v in target.__annotations__.items() if k != "return"}
    params = types.SimpleNamespace(__annotations__=given)
    return typing.get_type_hints(params, globalns=target.__globals__)


def _group_type(hint: Any) -> type | None:
    """The dataclass a parameter takes (``Limits`` in ``Limits | None``), if any."""
    options = typing.get_args(hint) if typing.get_origin(hint) in _UNIONS else (hint,)
    return next((o for o in options if isinstance(o, type) and dataclasses.is_dataclass(o)), None)


def _fold(
    group: type, written: Any, default: Any, flat: Mapping[str, Any], source: str, where: str
) -> Any:
    """A ``group`` value from ``flat`` fields over a base: the parameter as the file wrote it
    (a mapping; a name, for a group with ``named()`` such as ``Preset``), else its default."""
    if isinstance(written, Mapping):
        twice = sorted(set(written) & set(flat))
        if twice:
            raise ConfigError(
                f"{source}: {where}.{twice[0]}: given both here and flat beside it; keep one"
            )
        base = dict(written)
    else:
        value = default if written is None else written
        if isinstance(value, str) and hasattr(group, "named"):
            try:
                value = group.named(value)
            except ConfigError as exc:
                raise ConfigError(f"{source}: {where}: {exc}") from None
        is_value = dataclasses.is_dataclass(value) and not isinstance(value, type)
        base = (
            {f.name: getattr(value, f.name) for f in dataclasses.fields(value)} if is_value else {}
        )
    return _build(group, {**base, **flat}, source, where.rpartition(".")[0])


def _build(cls: type, data: Any, source: str, path: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: {path or 'top level'}: expected a mapping, got {type(data).__name__}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # derived ones are not set
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        where = _join(path, str(key))
        if key not in fields:
            raise ConfigError(
                f"{source}: {where}: unknown setting; expected one of {', '.join(sorted(fields))}"
            )
        kwargs[key] = _coerce(hints[key], value, source, where)
    for name, spec in fields.items():
        missing = (
            spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING
        )
        if missing and name not in kwargs:
            raise ConfigError(f"{source}: {_join(path, name)}: required setting is missing")
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ConfigError(f"{source}: {path + ': ' if path else ''}{exc}") from None


def _coerce(hint: Any, value: Any, source: str, where: str) -> Any:
    """Check ``value`` against ``hint``, converting lists to tuples and mappings to dataclasses."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(typing.get_args(hint), value, source, where)
    if origin is typing.Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(
                f"{source}: {where}: {value!r} is not one of {', '.join(map(str, allowed))}"
            )
        return value
    if origin is tuple or origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{source}: {where}: expected a list, got {type(value).__name__}")
        item = typing.get_args(hint)[0]
        return tuple(_coerce(item, v, source, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: {where}: expected a mapping")
        return dict(value)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _build(hint, value, source, where)
    return _coerce_scalar(hint, value, source, where)


def _coerce_union(options: tuple[Any, ...], value: Any, source: str, where: str) -> Any:
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(f"{source}: {where}: a value is required")
    errors = []
    for option in options:
        if option is type(None):
            continue
        try:
            return _coerce(option, value, source, where)
        except ConfigError as exc:
            errors.append(exc)
    raise errors[0]


def _coerce_scalar(hint: Any, value: Any, source: str, where: str) -> Any:
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint in (str, bool) and type(value) is hint:
        return value
    if hint not in (str, bool, int, float):
        return value  # a type files cannot spell (e.g. Secret): the constructor checks it
    expected = {str: "a string", bool: "true or false", int: "an integer", float: "a number"}
    raise ConfigError(f"{source}: {where}: expected {expected[hint]}, got {value!r}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
