"""The ``anthropic`` kind: Anthropic's Messages API (wire format in ``proxy.protocols.anthropic``)."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from proxy.config import ProviderConfig
from proxy.protocols.anthropic.passthrough import AnthropicPassthrough, native_body, passthrough_body
from proxy.protocols.anthropic.request import build_body
from proxy.protocols.anthropic.response import decode_response
from proxy.protocols.anthropic.stream import AnthropicStream
from proxy.protocols.anthropic.wire import DEFAULT_VERSION, translate_error
from proxy.protocols.stream import StreamContext, StreamEncoder
from proxy.providers.base import JSONBody, Native, Provider, UpstreamRequest

__all__ = ["PROVIDER", "build_native", "build_request"]


def build_request(body: JSONBody, model: str, provider: ProviderConfig, ctx: StreamContext) -> UpstreamRequest:
    """``POST {base}/v1/messages`` with the key in ``x-api-key`` (never the client's)."""
    return _request(orjson.dumps(build_body(body, model, provider.options)), provider, {})


def build_native(body: JSONBody, model: str, provider: ProviderConfig, client: Mapping[str, str]) -> UpstreamRequest:
    """The client's own Messages body, with its ``anthropic-version`` and ``anthropic-beta``."""
    return _request(orjson.dumps(native_body(body, model)), provider, client)


def _request(payload: bytes, provider: ProviderConfig, client: Mapping[str, str]) -> UpstreamRequest:
    version = client.get("anthropic-version") or str(provider.options.get("anthropic_version", DEFAULT_VERSION))
    headers = {"anthropic-version": version}
    if provider.api_key:
        headers = {"x-api-key": provider.api_key, **headers}
    headers["content-type"] = "application/json"
    if "anthropic-beta" in client:
        headers["anthropic-beta"] = client["anthropic-beta"]
    if provider.headers:  # a read-only mapping: updating from it is slow even when empty
        headers.update(provider.headers)
    base = provider.base_url.rstrip("/")
    url = f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"
    return UpstreamRequest(url=url, headers=headers, body=payload)


def _passthrough(ctx: StreamContext, provider: ProviderConfig) -> AnthropicPassthrough:
    return AnthropicPassthrough()


def _stream_decoder(encoder: StreamEncoder, ctx: StreamContext, provider: ProviderConfig) -> AnthropicStream:
    return AnthropicStream(encoder)


PROVIDER = Provider(
    kind="anthropic",
    build_request=build_request,
    stream_decoder=_stream_decoder,
    decode_response=decode_response,
    translate_error=translate_error,
    natives={"anthropic": Native(stream=_passthrough, response=passthrough_body, build=build_native)},
)
