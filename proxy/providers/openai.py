"""The ``openai`` kind: OpenAI and every server that speaks its Chat Completions API."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from proxy.config import ProviderConfig
from proxy.protocols.openai_chat.decode import ChatChunkDecoder, decode_response
from proxy.protocols.openai_chat.passthrough import PassthroughTranslator, passthrough_body, translate_error
from proxy.protocols.openai_embeddings import EmbeddingsRequest, relay_body
from proxy.protocols.openai_responses.passthrough import ResponsesPassthrough
from proxy.protocols.openai_responses.passthrough import passthrough_body as responses_body
from proxy.protocols.stream import StreamEncoder
from proxy.providers.base import JSONBody, Native, Provider, StreamContext, UpstreamRequest

__all__ = ["PROVIDER", "build_embeddings", "build_request"]


def build_request(body: JSONBody, model: str, provider: ProviderConfig, ctx: StreamContext) -> UpstreamRequest:
    """The client's body with ``model`` rewritten; the provider's key replaces the client's.

    A stream also asks for usage (``stream_options.include_usage``, other stream options kept),
    so the proxy always learns what an answer cost; the translator hands it on only to a client
    that asked itself (``ctx.include_usage``). The provider option ``stream_usage = false``
    leaves the body alone, for servers that reject ``stream_options``.
    """
    headers = _headers(provider, "text/event-stream, application/json")
    rewritten = {**body, "model": model}
    if body.get("stream") is True and provider.options.get("stream_usage", True) is not False:
        options = body.get("stream_options")
        rewritten["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    payload = orjson.dumps(rewritten)
    return UpstreamRequest(url=f"{provider.base_url}/chat/completions", headers=headers, body=payload)


def _headers(provider: ProviderConfig, accept: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": accept}
    if provider.api_key:
        headers["Authorization"] = f"Bearer {provider.api_key}"
    if provider.headers:  # a read-only mapping: updating from it is slow even when empty
        headers.update(provider.headers)
    return headers


def build_responses(body: JSONBody, model: str, provider: ProviderConfig, client: Mapping[str, str]) -> UpstreamRequest:
    """The client's own Responses body to ``{base_url}/responses`` (only the model and the key change)."""
    payload = orjson.dumps({**body, "model": model})
    headers = _headers(provider, "text/event-stream, application/json")
    return UpstreamRequest(url=f"{provider.base_url}/responses", headers=headers, body=payload)


def _has_responses(provider: ProviderConfig) -> bool:
    """Option ``responses``: the server has OpenAI's ``/v1/responses`` (the ``openai`` preset's)."""
    return provider.options.get("responses") is True


def _responses_passthrough(ctx: StreamContext, provider: ProviderConfig) -> ResponsesPassthrough:
    return ResponsesPassthrough()


def build_embeddings(request: EmbeddingsRequest, model: str, provider: ProviderConfig) -> UpstreamRequest:
    """``POST {base_url}/embeddings``: the client's body with only ``model`` rewritten."""
    payload = orjson.dumps({**request.body, "model": model})
    return UpstreamRequest(
        url=f"{provider.base_url}/embeddings", headers=_headers(provider, "application/json"), body=payload
    )


def _stream_decoder(encoder: StreamEncoder, ctx: StreamContext, provider: ProviderConfig) -> ChatChunkDecoder:
    """For a front door of another wire format: OpenAI chunks decoded into the door's encoder."""
    return ChatChunkDecoder(encoder, ctx)


PROVIDER = Provider(
    kind="openai",
    build_request=build_request,
    stream_decoder=_stream_decoder,
    decode_response=decode_response,
    translate_error=translate_error,
    natives={
        "openai_chat": Native(stream=PassthroughTranslator, response=passthrough_body),
        "openai_responses": Native(
            stream=_responses_passthrough, response=responses_body, build=build_responses, enabled=_has_responses
        ),
    },
    build_embeddings=build_embeddings,
    decode_embeddings=relay_body,
)
