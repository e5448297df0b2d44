"""``llmdispatcher embed``: vectors for texts, one JSON array per line on stdout.

The texts are the arguments, else the lines of stdin (``-`` or none, piped). The footer
(vendor, model, tokens, cost, latency, retries) goes to stderr, as for ``chat``.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from typing import Any

import click

from .main import EXIT_USAGE, CliError, config_option, load_dispatcher, require_vendor, run_closing
from .output import FooterRecorder, echo

DEFAULT_MODEL = "local-embed"


def read_texts(texts: tuple[str, ...]) -> list[str]:
    """The arguments; the non-empty lines of stdin when they are ``-`` or absent and piped."""
    if texts in ((), ("-",)) and (texts or not sys.stdin.isatty()):
        texts = tuple(line for line in sys.stdin.read().splitlines() if line.strip())
    if not texts:
        raise CliError("nothing to embed: pass TEXT, or pipe lines on stdin", EXIT_USAGE)
    if any(not text.strip() for text in texts):
        raise CliError("a TEXT is empty: pass some text", EXIT_USAGE)
    return list(texts)


@click.command()
@click.argument("texts", nargs=-1, metavar="[TEXT]...")
@click.option(
    "-m",
    "--model",
    help="Embedding model. Default: $LLMDISPATCHER_EMBED_MODEL, else 'local-embed'.",
)
@click.option(
    "--vendor", metavar="NAME", help="Send to this vendor only (no routing, no fallback)."
)
@click.option("--dimensions", type=click.IntRange(min=1), help="Shorter vectors, if the model can.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole answer as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No footer line on stderr.")
@config_option
def embed(texts: tuple[str, ...], **options: Any) -> None:
    """Embed TEXT: print its vector as a JSON array (one line per TEXT).

    With no TEXT, or TEXT -, each non-empty line of stdin is a text. With no key and no config
    the built-in all-MiniLM-L6-v2 answers (model local-embed, 384 dimensions).

    \b
    Examples:
      llmdispatcher embed "a cat on a mat"
      llmdispatcher embed "one" "two" --model text-embedding-3-small --dimensions 256
      cat sentences.txt | llmdispatcher embed --json
    """
    from ..embeddings import EmbeddingRequest

    inputs = read_texts(texts)
    dispatcher = load_dispatcher()
    if options["vendor"]:
        require_vendor(dispatcher, options["vendor"])
    request = EmbeddingRequest(
        model=options["model"] or os.environ.get("LLMDISPATCHER_EMBED_MODEL") or DEFAULT_MODEL,
        input=inputs,
        dimensions=options["dimensions"],
        vendor=options["vendor"],
    )
    recorder = FooterRecorder()
    dispatcher.subscribe(recorder.on_event)
    done = run_closing(dispatcher, dispatcher.embed(request))
    if options["as_json"]:
        echo(json.dumps(asdict(done), indent=2, default=str))
    else:
        for vector in done.vectors:
            echo(json.dumps(vector))
    if not options["quiet"]:
        recorder.show(done.cost_usd)
