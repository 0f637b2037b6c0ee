"""The ``gemini`` kind: Google's Gemini API (see ``proxy.protocols.gemini``)."""

from __future__ import annotations

from proxy.protocols.gemini.request import build_request
from proxy.protocols.gemini.response import translate_response
from proxy.protocols.gemini.stream import GeminiStream
from proxy.protocols.gemini.wire import translate_error
from proxy.providers.base import Adapter

__all__ = ["ADAPTER"]

ADAPTER = Adapter(
    kind="gemini",
    build_request=build_request,
    stream_translator=GeminiStream,
    translate_response=translate_response,
    translate_error=translate_error,
)
