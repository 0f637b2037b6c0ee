"""The ``gemini`` kind: Google's Gemini API (wire format in ``proxy.protocols.gemini``)."""

from __future__ import annotations

from proxy.config import ProviderConfig
from proxy.protocols.gemini.request import build_request
from proxy.protocols.gemini.response import decode_response
from proxy.protocols.gemini.stream import GeminiStream
from proxy.protocols.gemini.wire import translate_error
from proxy.protocols.stream import StreamContext, StreamEncoder
from proxy.providers.base import Provider

__all__ = ["PROVIDER"]


def _stream_decoder(encoder: StreamEncoder, ctx: StreamContext, provider: ProviderConfig) -> GeminiStream:
    return GeminiStream(encoder, ctx)


PROVIDER = Provider(
    kind="gemini",
    protocol="gemini",
    build_request=build_request,
    stream_decoder=_stream_decoder,
    decode_response=decode_response,
    translate_error=translate_error,
)
