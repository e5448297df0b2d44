"""Token log probabilities in OpenAI's shape (``choices[].logprobs.content`` entries:
``token, logprob, bytes, top_logprobs``) from the wire formats that give them another way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def entries_from_ollama(items: Any) -> tuple[dict[str, Any], ...]:
    """Ollama's ``logprobs`` (``[{token, logprob, top_logprobs: [{token, logprob}]}]``)."""
    if not isinstance(items, list):
        return ()
    return tuple(
        {**_token(item), "top_logprobs": [_token(t) for t in item.get("top_logprobs") or ()]}
        for item in items
        if isinstance(item, Mapping)
    )


def entries_from_gemini(result: Any) -> tuple[dict[str, Any], ...]:
    """A candidate's ``logprobsResult``: ``chosenCandidates[i]`` with ``topCandidates[i]``."""
    if not isinstance(result, Mapping):
        return ()
    chosen = result.get("chosenCandidates") or []
    tops = result.get("topCandidates") or []
    return tuple(
        {
            **_gemini_token(item),
            "top_logprobs": [
                _gemini_token(t) for t in (tops[i].get("candidates") if i < len(tops) else ()) or ()
            ],
        }
        for i, item in enumerate(chosen)
    )


def as_choice_logprobs(entries: tuple[dict[str, Any], ...]) -> dict[str, Any] | None:
    """The ``choices[].logprobs`` object for ``entries`` (None when there are none)."""
    return {"content": list(entries), "refusal": None} if entries else None


def _gemini_token(item: Mapping[str, Any]) -> dict[str, Any]:
    return _token({"token": item.get("token"), "logprob": item.get("logProbability")})


def _token(item: Mapping[str, Any]) -> dict[str, Any]:
    token = str(item.get("token") or "")
    return {
        "token": token,
        "logprob": float(item.get("logprob") or 0.0),
        "bytes": list(token.encode()),
    }
