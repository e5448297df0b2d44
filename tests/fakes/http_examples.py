"""The custom-HTTP vendors of examples/http/*.yaml, built from those files as a user would
(``Config.from_file``), pointed at the fakes through the variables the files read."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llmdispatcher.config_file import load_config
from llmdispatcher.vendors import vendor_class
from llmdispatcher.vendors.http_template import HttpTemplateVendor

from .ollama_generate_fake import FakeOllamaGenerate
from .tgi_fake import FakeTGI

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "http"


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def vendor_from_example(file: str, env: Mapping[str, str], **overrides: Any) -> HttpTemplateVendor:
    """The one vendor ``examples/http/<file>`` describes."""
    with environment(env):
        (spec,) = load_config(EXAMPLES / file).vendors
    vendor = vendor_class(spec.type)(**{**spec.options, **overrides})
    assert isinstance(vendor, HttpTemplateVendor)
    return vendor


def tgi_adapter(fake: FakeTGI) -> HttpTemplateVendor:
    return vendor_from_example("tgi.yaml", {"TGI_URL": fake.url, "HF_TOKEN": fake.api_key or ""})


def ollama_generate_adapter(fake: FakeOllamaGenerate) -> HttpTemplateVendor:
    env = {"OLLAMA_URL": fake.url, "OLLAMA_API_KEY": fake.api_key or ""}
    return vendor_from_example("ollama_generate.yaml", env)
