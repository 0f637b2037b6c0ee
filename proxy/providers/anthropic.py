"""The ``anthropic`` kind: Anthropic's Messages API (see ``proxy.protocols.anthropic``)."""

from __future__ import annotations

from proxy.protocols.anthropic.request import build_request
from proxy.protocols.anthropic.response import translate_response
from proxy.protocols.anthropic.stream import AnthropicStream
from proxy.protocols.anthropic.wire import translate_error
from proxy.providers.base import Adapter

__all__ = ["ADAPTER"]

ADAPTER = Adapter(
    kind="anthropic",
    build_request=build_request,
    stream_translator=AnthropicStream,
    translate_response=translate_response,
    translate_error=translate_error,
)
