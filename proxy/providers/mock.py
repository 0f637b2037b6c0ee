"""The ``mock`` kind: the built-in mock model, served in-process by ``proxy.transport.mock``.

It answers in OpenAI's own chat format, so it takes the OpenAI pass-through like a real
OpenAI-compatible server.
"""

from __future__ import annotations

import orjson

from proxy.config import ProviderConfig
from proxy.protocols.openai_chat.passthrough import PassthroughTranslator, passthrough_body, translate_error
from proxy.providers.base import JSONBody, Provider, StreamContext, UpstreamRequest

__all__ = ["PROVIDER", "build_request"]


def build_request(body: JSONBody, model: str, provider: ProviderConfig, ctx: StreamContext) -> UpstreamRequest:
    """``mock://<model>`` with the body as sent: the mock names its answers itself, like a server."""
    return UpstreamRequest(url=f"mock://{model}", headers={}, body=orjson.dumps({**body, "model": model}))


PROVIDER = Provider(
    kind="mock",
    protocol="openai_chat",
    build_request=build_request,
    stream_decoder=None,
    decode_response=None,
    translate_error=translate_error,
    passthrough=PassthroughTranslator,
    passthrough_response=passthrough_body,
)
