"""The ``gemini`` kind: Google's Gemini API (wire format in ``proxy.protocols.gemini``)."""

from __future__ import annotations

import orjson

from proxy.config import ProviderConfig
from proxy.protocols.gemini.embeddings import batch_body, batch_url, decode_batch
from proxy.protocols.gemini.request import build_body, url
from proxy.protocols.gemini.response import decode_response
from proxy.protocols.gemini.stream import GeminiStream
from proxy.protocols.gemini.wire import translate_error
from proxy.protocols.openai_embeddings import EmbeddingsRequest
from proxy.protocols.stream import StreamContext, StreamEncoder
from proxy.providers.base import JSONBody, Provider, UpstreamRequest

__all__ = ["PROVIDER", "build_embeddings", "build_request"]


def build_request(body: JSONBody, model: str, provider: ProviderConfig, ctx: StreamContext) -> UpstreamRequest:
    """``generateContent`` (or ``streamGenerateContent?alt=sse``) with the key in ``x-goog-api-key``."""
    payload = orjson.dumps(build_body(body, model, provider.options))
    headers = {"content-type": "application/json"}
    if provider.api_key:
        headers["x-goog-api-key"] = provider.api_key
    if provider.headers:  # a read-only mapping: updating from it is slow even when empty
        headers.update(provider.headers)
    return UpstreamRequest(url=url(provider.base_url, model, bool(body.get("stream"))), headers=headers, body=payload)


def build_embeddings(request: EmbeddingsRequest, model: str, provider: ProviderConfig) -> UpstreamRequest:
    """``batchEmbedContents``: every input in one call (text only: token ids are unsupported)."""
    headers = {"content-type": "application/json"}
    if provider.api_key:
        headers["x-goog-api-key"] = provider.api_key
    if provider.headers:
        headers.update(provider.headers)
    return UpstreamRequest(url=batch_url(provider.base_url, model), headers=headers, body=batch_body(request, model))


def _stream_decoder(encoder: StreamEncoder, ctx: StreamContext, provider: ProviderConfig) -> GeminiStream:
    return GeminiStream(encoder, ctx)


PROVIDER = Provider(
    kind="gemini",
    build_request=build_request,
    stream_decoder=_stream_decoder,
    decode_response=decode_response,
    translate_error=translate_error,
    build_embeddings=build_embeddings,
    decode_embeddings=decode_batch,
)
