"""The ``mock`` kind: the built-in mock model, served in-process by ``proxy.transport.mock``.

It answers in OpenAI's own chat format, so it is the ``openai`` kind in every respect but the
request: ``mock://<model>``, which the transport serves in-process, with no key.
"""

from __future__ import annotations

import dataclasses

import orjson

from proxy.config import ProviderConfig
from proxy.protocols.openai_embeddings import EmbeddingsRequest
from proxy.providers import openai
from proxy.providers.base import JSONBody, StreamContext, UpstreamRequest

__all__ = ["PROVIDER", "build_embeddings", "build_request"]


def build_request(body: JSONBody, model: str, provider: ProviderConfig, ctx: StreamContext) -> UpstreamRequest:
    """``mock://<model>`` with the body as sent: the mock names its answers itself, like a server."""
    return UpstreamRequest(url=f"mock://{model}", headers={}, body=orjson.dumps({**body, "model": model}))


def build_embeddings(request: EmbeddingsRequest, model: str, provider: ProviderConfig) -> UpstreamRequest:
    """``mock://<model>/embeddings``: hashed vectors in OpenAI's shape (``transport.mock_embeddings``)."""
    return UpstreamRequest(url=f"mock://{model}/embeddings", headers={}, body=orjson.dumps(request.body))


PROVIDER = dataclasses.replace(
    openai.PROVIDER, kind="mock", build_request=build_request, build_embeddings=build_embeddings
)
