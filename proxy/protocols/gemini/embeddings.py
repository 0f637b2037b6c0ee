"""OpenAI embeddings <-> Gemini ``batchEmbedContents`` (sans-IO).

One ``POST {base}/v1beta/models/{model}:batchEmbedContents`` embeds every input: a request per
text, ``dimensions`` as each request's ``outputDimensionality``. Gemini embeds text only, so
token-id input is ``UnsupportedByProvider`` (a fallback moves on). Its answer,
``{"embeddings": [{"values": [...]}, ...]}``, becomes OpenAI's list shape.

Gemini reports no token count for embeddings, so usage is an estimate: the characters of the
inputs divided by ``CHARS_PER_TOKEN``, rounded up (the same rule as ``count_tokens`` on the
Anthropic front door for providers that cannot count).
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from proxy.errors import UnsupportedByProvider, UpstreamError
from proxy.protocols.gemini.request import url
from proxy.protocols.openai_embeddings import EmbeddingsRequest, list_body
from proxy.protocols.stream import Usage

__all__ = ["CHARS_PER_TOKEN", "batch_body", "batch_url", "decode_batch", "estimate_usage"]

CHARS_PER_TOKEN = 4
_GENERATE = ":generateContent"


def batch_url(base_url: str, model: str) -> str:
    """``{base}/v1beta/models/{model}:batchEmbedContents`` (the base and model read as for chat)."""
    return url(base_url, model, False).removesuffix(_GENERATE) + ":batchEmbedContents"


def batch_body(request: EmbeddingsRequest, model: str) -> bytes:
    """The ``batchEmbedContents`` body: one request per input text."""
    if request.tokens:
        raise UnsupportedByProvider("Gemini embeds text only, not token ids", param="input")
    name = model if "/" in model else f"models/{model}"
    extra: dict[str, Any] = {}
    if request.dimensions is not None:
        extra["outputDimensionality"] = request.dimensions
    requests = [{"model": name, "content": {"parts": [{"text": text}]}, **extra} for text in request.texts]
    return orjson.dumps({"requests": requests})


def estimate_usage(request: EmbeddingsRequest) -> Usage:
    """Input tokens estimated as characters / ``CHARS_PER_TOKEN`` (Gemini does not count them)."""
    return Usage(input_tokens=math.ceil(sum(len(text) for text in request.texts) / CHARS_PER_TOKEN))


def _vectors(data: Any, expected: int) -> list[list[float]]:
    embeddings = data.get("embeddings") if isinstance(data, dict) else None
    if not isinstance(embeddings, list) or len(embeddings) != expected:
        raise ValueError(f"expected 'embeddings' with {expected} items")
    vectors = []
    for embedding in embeddings:
        values = embedding.get("values") if isinstance(embedding, dict) else None
        if not isinstance(values, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values
        ):
            raise ValueError("an embedding without a list of numeric 'values'")
        vectors.append([float(v) for v in values])
    return vectors


def decode_batch(body: bytes, request: EmbeddingsRequest, model: str) -> tuple[bytes, Usage]:
    """A 2xx ``batchEmbedContents`` body as OpenAI's embeddings response, and its usage."""
    try:
        vectors = _vectors(orjson.loads(body), len(request.texts))
    except (orjson.JSONDecodeError, ValueError) as exc:
        raise UpstreamError(f"Gemini sent an unreadable batchEmbedContents answer: {exc}", status=502) from None
    usage = estimate_usage(request)
    return list_body(vectors, request, model, usage), usage
