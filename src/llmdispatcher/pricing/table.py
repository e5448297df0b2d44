"""The price table: shipped rows (``prices.toml``), config overrides, and model-name matching.

``PriceTable.lookup(vendor_type, model)`` finds a model's ``ModelPrice``:

1. the vendor's own section, by exact name (case-insensitive) or a row's ``aliases``;
2. the same name with a snapshot suffix taken off, one at a time, until a row matches:
   ``gpt-4o-2024-08-06`` → ``gpt-4o``, ``claude-sonnet-4-5-20250929`` (or ``@20250929``) →
   ``claude-sonnet-4-5``, ``gemini-2.5-flash-preview-09-2025`` → ``gemini-2.5-flash``, also
   ``-latest``, ``-001`` and ``-0613``; Gemini's ``models/`` prefix is dropped first, and a name
   with dots is retried with hyphens (OpenRouter's ``claude-sonnet-4.5``);
3. Azure has no section of its own by default: it is billed like OpenAI for the underlying
   model, so pass the model the response names, not the deployment name; Vertex AI falls back
   to the ``google`` and ``anthropic`` sections;
3a. a regional section (``bedrock/eu-central-1``, ``vertex/global``: what the cloud vendors
   ask for) is read first, then its vendor's section; Bedrock ids lose their version
   (``-v1:0``) like a snapshot suffix and, failing that, a cross-region prefix (``us.``);
4. OpenRouter names carry the model's maker (``anthropic/claude-sonnet-4.5``): the maker's own
   section prices it (OpenRouter charges the maker's list price); ``…:free`` variants cost 0;
5. local servers (``ollama``, ``llamacpp``, and the ``vllm``/``lmstudio`` presets) and the
   in-process ``local`` models cost 0 unless a row says otherwise.

Anything else is unknown: ``lookup`` returns ``None`` and the caller reports cost ``None`` (not a
guess), logging it once per model with ``warn_unknown``. A section is a vendor type or an
``openai_compatible`` preset name, so ``lookup("groq", …)`` reads the ``[groq]`` rows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ..errors import ConfigError

logger = logging.getLogger("llmdispatcher")

DATA_FILE = "prices.toml"

# Vendor types billed from other sections when they have no row of their own (Vertex AI
# serves Gemini at the Gemini API's list prices and Claude, on its global endpoint, at
# Anthropic's).
SAME_AS: Mapping[str, tuple[str, ...]] = {"azure": ("openai",), "vertex": ("google", "anthropic")}
# Cross-region inference profiles on Bedrock (``us.anthropic.…``) cost what the model costs in
# its source region; ``global.`` profiles have rows of their own.
_GEO_PREFIX = re.compile(r"^(us|us-gov|eu|apac|jp|au|ca)\.")
# Routers whose model names start with the maker: maker prefix -> section.
ROUTED_BY_PREFIX: Mapping[str, Mapping[str, str]] = {
    "openrouter": {"openai": "openai", "anthropic": "anthropic", "google": "google"},
}
# Models that run on the caller's own hardware: free unless a row prices them.
LOCAL: frozenset[str] = frozenset({"ollama", "llamacpp", "vllm", "lmstudio", "local"})

_RATES = ("input", "output", "cached_input", "cache_write", "reasoning")
_ROW_KEYS = (*_RATES, "context_window", "max_output", "long_context", "aliases", "as_of", "note")
_TIER_KEYS = ("above", *_RATES)
_SNAPSHOT_SUFFIXES = tuple(
    re.compile(pattern)
    for pattern in (
        r"-\d{4}-\d{2}-\d{2}$",  # gpt-4o-2024-08-06
        r"[-@]\d{8}$",  # claude-sonnet-4-5-20250929, Vertex's @20250929
        r"-\d{2}-\d{4}$",  # gemini-2.5-flash-preview-09-2025
        r"-\d{2}-\d{2}$",  # gemini-2.5-pro-preview-05-06
        r"-\d{4}$",  # gpt-4-0613
        r"-\d{3}$",  # gemini-2.0-flash-001
        r"[-@]latest$",
        r"-(preview|exp)$",
        r"-v\d+:\d+$",  # Bedrock's amazon.nova-pro-v1:0
    )
)
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class LongContextPrice:
    """The rates that apply instead when the prompt is longer than ``above`` tokens."""

    above: int
    input: Decimal
    output: Decimal
    cached_input: Decimal
    cache_write: Decimal
    reasoning: Decimal


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One model's prices in USD per million tokens, every fallback already applied.

    ``cached_input`` and ``cache_write`` equal ``input`` where the vendor gives (or we could
    confirm) no separate rate; ``reasoning`` equals ``output`` where reasoning is billed as
    output, which is every vendor in the shipped table.
    """

    vendor: str
    model: str
    input: Decimal
    output: Decimal
    cached_input: Decimal
    cache_write: Decimal
    reasoning: Decimal
    as_of: date
    context_window: int | None = None
    max_output: int | None = None
    long_context: LongContextPrice | None = None
    aliases: tuple[str, ...] = ()
    note: str | None = None

    @classmethod
    def free(cls, vendor: str, model: str, as_of: date) -> ModelPrice:
        """A model that costs nothing to call (it runs on the caller's own hardware)."""
        return cls(vendor, model, _ZERO, _ZERO, _ZERO, _ZERO, _ZERO, as_of)

    @property
    def is_free(self) -> bool:
        return not any(getattr(self, rate) for rate in _RATES) and self.long_context is None

    def for_prompt(self, prompt_tokens: int) -> ModelPrice:
        """The rates for a prompt of this many tokens (the long-context card past its bound)."""
        tier = self.long_context
        if tier is None or prompt_tokens <= tier.above:
            return self
        rates = {rate: getattr(tier, rate) for rate in _RATES}
        return dataclasses.replace(self, long_context=None, **rates)


class PriceTable:
    """Prices by section and model, with the matching rules in the module docstring.

    Build one with ``PriceTable.load()`` (the shipped file) or ``from_mapping``; add or change
    rows with ``with_overrides``. Lookups and the unknown-model warnings are remembered per
    table, so a table is cheap to query on every response.
    """

    def __init__(
        self,
        rows: Mapping[str, Mapping[str, Mapping[str, Any]]],
        *,
        version: str,
        as_of: date,
        source: str = DATA_FILE,
    ) -> None:
        self.version = version
        self.as_of = as_of
        self._raw = {section: dict(models) for section, models in rows.items()}
        self._prices = {
            section: {
                model: _parse_row(section, model, row, f"{source}.{section}.{model}")
                for model, row in models.items()
            }
            for section, models in self._raw.items()
        }
        self._names = {section: _name_index(models) for section, models in self._prices.items()}
        self._found: dict[tuple[str, str], ModelPrice | None] = {}
        self._warned: set[tuple[str, str]] = set()

    # -- building --------------------------------------------------------------------------

    @classmethod
    def load(cls) -> PriceTable:
        """The table shipped with the package (read from package data, never the network)."""
        import tomllib
        from importlib.resources import files

        text = files(__package__ or "llmdispatcher.pricing").joinpath(DATA_FILE).read_text("utf-8")
        return cls.from_mapping(tomllib.loads(text, parse_float=Decimal), DATA_FILE)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = DATA_FILE) -> PriceTable:
        """A table from the data file's structure: ``version`` plus one mapping per section."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a mapping of vendor sections")
        version = data.get("version")
        if not isinstance(version, str) or not version:
            raise ConfigError(f'{source}.version: a version string is required ("YYYY-MM-DD")')
        as_of = _as_date(version[:10], f"{source}.version")
        sections = {k: v for k, v in data.items() if k != "version"}
        return cls(_sections(sections, source), version=version, as_of=as_of, source=source)

    def with_overrides(self, overrides: Mapping[str, Any], source: str = "prices") -> PriceTable:
        """A new table with ``overrides`` (a config file's ``prices:`` section) applied.

        The structure is the data file's: ``{section: {model: {field: value}}}``. A row for a
        model already in the section changes only the fields given (``as_of`` is required, so
        every row says when its figures were true); any other row is added and needs ``input``,
        ``output`` and ``as_of``. Errors raise ``ConfigError`` naming the key path. The new
        table's ``version`` is this one's plus a digest of the overrides.
        """
        if not overrides:
            return self
        given = _sections(overrides, source)
        merged = {section: dict(models) for section, models in self._raw.items()}
        for section, models in given.items():
            target = merged.setdefault(section, {})
            for model, row in models.items():
                _require(row, "as_of", f"{source}.{section}.{model}")
                target[model] = {**target.get(model, {}), **row}
        canonical = json.dumps(given, sort_keys=True, default=str)
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:10]
        return PriceTable(
            merged, version=f"{self.version}+overrides.{digest}", as_of=self.as_of, source=source
        )

    # -- reading ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[ModelPrice]:
        for models in self._prices.values():
            yield from models.values()

    def sections(self) -> tuple[str, ...]:
        return tuple(self._prices)

    def models(self, section: str) -> tuple[str, ...]:
        return tuple(self._prices.get(section.lower(), {}))

    def lookup(self, vendor_type: str, model: str) -> ModelPrice | None:
        """The price of ``model`` on ``vendor_type`` (a vendor type or preset), or ``None``."""
        key = (vendor_type.lower(), model)
        if key not in self._found:
            self._found[key] = self._resolve(*key)
        return self._found[key]

    def warn_unknown(self, vendor: str, model: str) -> None:
        """Log, once per table for each (vendor, model), that a model has no price."""
        key = (vendor, model)
        if key in self._warned:
            return
        self._warned.add(key)
        logger.warning(
            "no price for model %r on vendor %r in price table %s: its cost is reported as "
            "unknown (None). Add it under `prices:` in the config file.",
            model,
            vendor,
            self.version,
        )

    def _resolve(self, section: str, model: str) -> ModelPrice | None:
        name = model.strip().lower().removeprefix("models/")
        names = dict.fromkeys((name, _GEO_PREFIX.sub("", name)))
        # "bedrock/eu-central-1": the region's own rows first, then the vendor's
        base = section.partition("/")[0]
        for candidate in dict.fromkeys((section, base, *SAME_AS.get(base, ()))):
            for spelling in names:
                found = self._match(candidate, spelling)
                if found is not None:
                    return found
        routes = ROUTED_BY_PREFIX.get(section)
        if routes is not None:
            return self._route(section, model, name, routes)
        if section in LOCAL:
            return ModelPrice.free(section, model, self.as_of)
        return None

    def _route(
        self, section: str, model: str, name: str, routes: Mapping[str, str]
    ) -> ModelPrice | None:
        base, _, variant = name.partition(":")
        if variant == "free":
            return ModelPrice.free(section, model, self.as_of)
        maker, _, rest = base.partition("/")
        target = routes.get(maker)
        return self._match(target, rest) if target and rest else None

    def _match(self, section: str, name: str) -> ModelPrice | None:
        names = self._names.get(section)
        if not names:
            return None
        for spelling in dict.fromkeys((name, name.replace(".", "-"))):
            for candidate in _snapshot_candidates(spelling):
                found = names.get(candidate)
                if found is not None:
                    return found
        return None


def _snapshot_candidates(name: str) -> Iterator[str]:
    """The name, then the name with one more snapshot suffix removed each time."""
    yield name
    while True:
        for suffix in _SNAPSHOT_SUFFIXES:
            shorter = suffix.sub("", name)
            if shorter != name and shorter:
                name = shorter
                yield name
                break
        else:
            return


def _name_index(models: Mapping[str, ModelPrice]) -> dict[str, ModelPrice]:
    index: dict[str, ModelPrice] = {}
    for price in models.values():
        for alias in price.aliases:
            index.setdefault(alias, price)
    for name, price in models.items():
        index[name] = price
    return index


# -- validation ---------------------------------------------------------------------------


def _sections(data: Mapping[str, Any], source: str) -> dict[str, dict[str, Mapping[str, Any]]]:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of vendor sections to models")
    sections: dict[str, dict[str, Mapping[str, Any]]] = {}
    for section, models in data.items():
        path = f"{source}.{section}"
        if not isinstance(section, str) or not section:
            raise ConfigError(f"{source}: section names must be vendor types or presets")
        if not isinstance(models, Mapping):
            raise ConfigError(f"{path}: expected a mapping of model names to price rows")
        rows = sections.setdefault(section.lower(), {})
        for model, row in models.items():
            if not isinstance(model, str) or not model:
                raise ConfigError(f"{path}: model names must be non-empty strings")
            if not isinstance(row, Mapping):
                raise ConfigError(f"{path}.{model}: expected a mapping like {{input: 2.5, ...}}")
            unknown = sorted(set(row) - set(_ROW_KEYS))
            if unknown:
                raise ConfigError(
                    f"{path}.{model}.{unknown[0]}: unknown field; expected {', '.join(_ROW_KEYS)}"
                )
            rows[model.lower()] = dict(row)
    return sections


def _parse_row(section: str, model: str, row: Mapping[str, Any], path: str) -> ModelPrice:
    for required in ("input", "output", "as_of"):
        _require(row, required, path)
    base = _rates(row, path)
    return ModelPrice(
        vendor=section,
        model=model,
        **base,
        as_of=_as_date(row["as_of"], f"{path}.as_of"),
        context_window=_count(row.get("context_window"), f"{path}.context_window"),
        max_output=_count(row.get("max_output"), f"{path}.max_output"),
        long_context=_tier(row.get("long_context"), f"{path}.long_context"),
        aliases=_aliases(row.get("aliases", ()), f"{path}.aliases"),
        note=_note(row.get("note"), f"{path}.note"),
    )


def _rates(row: Mapping[str, Any], path: str) -> dict[str, Decimal]:
    """The five rates with their fallbacks: cache rates default to input, reasoning to output."""
    given = {r: _usd(row[r], f"{path}.{r}") for r in _RATES if row.get(r) is not None}
    return {
        "input": given["input"],
        "output": given["output"],
        "cached_input": given.get("cached_input", given["input"]),
        "cache_write": given.get("cache_write", given["input"]),
        "reasoning": given.get("reasoning", given["output"]),
    }


def _tier(value: Any, path: str) -> LongContextPrice | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: expected {{above: 200000, input: ..., output: ...}}")
    unknown = sorted(set(value) - set(_TIER_KEYS))
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]}: unknown field; expected {', '.join(_TIER_KEYS)}")
    for required in ("above", "input", "output"):
        _require(value, required, path)
    above = _count(value["above"], f"{path}.above")
    assert above is not None
    return LongContextPrice(above=above, **_rates(value, path))


def _require(row: Mapping[str, Any], key: str, path: str) -> None:
    if row.get(key) is None:
        hint = " (the date these prices were checked, YYYY-MM-DD)" if key == "as_of" else ""
        raise ConfigError(f"{path}.{key}: required{hint}")


def _usd(value: Any, path: str) -> Decimal:
    """A price per million tokens: a non-negative number, or a string holding one."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise ConfigError(f"{path}: expected a number of USD per million tokens, got {value!r}")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ConfigError(
            f"{path}: expected a number of USD per million tokens, got {value!r}"
        ) from None
    if not amount.is_finite() or amount < 0:
        raise ConfigError(f"{path}: must be a finite number >= 0, got {value!r}")
    return amount


def _count(value: Any, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{path}: expected a positive whole number of tokens, got {value!r}")
    return value


def _as_date(value: Any, path: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"{path}: expected a date (YYYY-MM-DD), got {value!r}")


def _aliases(value: Any, path: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ConfigError(f"{path}: expected a list of model names")
    if not all(isinstance(alias, str) and alias for alias in value):
        raise ConfigError(f"{path}: every alias must be a non-empty string")
    return tuple(alias.lower() for alias in value)


def _note(value: Any, path: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{path}: expected a string")
    return value
