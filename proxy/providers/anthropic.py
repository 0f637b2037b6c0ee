"""The ``anthropic`` kind: Anthropic's Messages API (wire format in ``proxy.protocols.anthropic``)."""

from __future__ import annotations

from proxy.config import ProviderConfig
from proxy.protocols.anthropic.request import build_request
from proxy.protocols.anthropic.response import decode_response
from proxy.protocols.anthropic.stream import AnthropicStream
from proxy.protocols.anthropic.wire import translate_error
from proxy.protocols.stream import StreamContext, StreamEncoder
from proxy.providers.base import Provider

__all__ = ["PROVIDER"]


def _stream_decoder(encoder: StreamEncoder, ctx: StreamContext, provider: ProviderConfig) -> AnthropicStream:
    return AnthropicStream(encoder)


PROVIDER = Provider(
    kind="anthropic",
    protocol="anthropic",
    build_request=build_request,
    stream_decoder=_stream_decoder,
    decode_response=decode_response,
    translate_error=translate_error,
)
