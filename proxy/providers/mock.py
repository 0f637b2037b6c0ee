"""The ``mock`` kind: the built-in mock model, served in-process by ``proxy.transport.mock``.

Its wire format is OpenAI's, so the stream and the body pass through the OpenAI translator; the
request goes to ``mock://<model>`` and is opened by a ``MockTransport`` instead of a socket.
"""

from __future__ import annotations

import orjson

from proxy.config import ProviderConfig
from proxy.protocols.openai_chat import passthrough as openai
from proxy.providers.base import Adapter, JSONBody, StreamContext, UpstreamRequest
from proxy.transport.mock import MockTransport

__all__ = ["ADAPTER", "build_request"]

_TRANSPORT = MockTransport()


def build_request(body: JSONBody, model: str, provider: ProviderConfig, ctx: StreamContext) -> UpstreamRequest:
    return UpstreamRequest(url=f"mock://{model}", headers={}, body=orjson.dumps({**body, "model": model}))


ADAPTER = Adapter(
    kind="mock",
    build_request=build_request,
    stream_translator=openai.PassthroughTranslator,
    translate_response=openai.translate_response,
    translate_error=openai.translate_error,
    passthrough=True,
    open_local=_TRANSPORT.open,
)
