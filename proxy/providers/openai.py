"""The ``openai`` kind: OpenAI and every server that speaks its Chat Completions API."""

from __future__ import annotations

import orjson

from proxy.config import ProviderConfig
from proxy.protocols.openai_chat.decode import ChatChunkDecoder, decode_response
from proxy.protocols.openai_chat.passthrough import PassthroughTranslator, passthrough_body, translate_error
from proxy.protocols.openai_embeddings import EmbeddingsRequest, relay_body
from proxy.protocols.stream import StreamEncoder
from proxy.providers.base import JSONBody, Provider, StreamContext, UpstreamRequest

__all__ = ["PROVIDER", "build_embeddings", "build_request"]


def build_request(body: JSONBody, model: str, provider: ProviderConfig, ctx: StreamContext) -> UpstreamRequest:
    """The client's body with ``model`` rewritten; the provider's key replaces the client's.

    A stream also asks for usage (``stream_options.include_usage``, other stream options kept),
    so the proxy always learns what an answer cost; the translator hands it on only to a client
    that asked itself (``ctx.include_usage``). The provider option ``stream_usage = false``
    leaves the body alone, for servers that reject ``stream_options``.
    """
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream, application/json"}
    if provider.api_key:
        headers["Authorization"] = f"Bearer {provider.api_key}"
    if provider.headers:  # a read-only mapping: updating from it is slow even when empty
        headers.update(provider.headers)
    rewritten = {**body, "model": model}
    if body.get("stream") is True and provider.options.get("stream_usage", True) is not False:
        options = body.get("stream_options")
        rewritten["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    payload = orjson.dumps(rewritten)
    return UpstreamRequest(url=f"{provider.base_url}/chat/completions", headers=headers, body=payload)


def build_embeddings(request: EmbeddingsRequest, model: str, provider: ProviderConfig) -> UpstreamRequest:
    """``POST {base_url}/embeddings``: the client's body with only ``model`` rewritten."""
    headers = {"Content-Type": "application/json"}
    if provider.api_key:
        headers["Authorization"] = f"Bearer {provider.api_key}"
    if provider.headers:
        headers.update(provider.headers)
    payload = orjson.dumps({**request.body, "model": model})
    return UpstreamRequest(url=f"{provider.base_url}/embeddings", headers=headers, body=payload)


def _stream_decoder(encoder: StreamEncoder, ctx: StreamContext, provider: ProviderConfig) -> ChatChunkDecoder:
    """For a front door of another wire format: OpenAI chunks decoded into the door's encoder."""
    return ChatChunkDecoder(encoder, ctx)


PROVIDER = Provider(
    kind="openai",
    protocol="openai_chat",
    build_request=build_request,
    stream_decoder=_stream_decoder,
    decode_response=decode_response,
    translate_error=translate_error,
    passthrough=PassthroughTranslator,
    passthrough_response=passthrough_body,
    build_embeddings=build_embeddings,
    decode_embeddings=relay_body,
)
