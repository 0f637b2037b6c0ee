"""The contract between the pipeline and one provider kind: a request builder plus decoders.

A provider module exports one ``Provider``. Everything in it is sans-IO: plain functions and
plain synchronous objects, no aiohttp, no asyncio, no clock and no random source of their own
(``StreamContext`` carries ``id``, ``created`` and ``model``).

- ``build_request(body, model, provider, ctx)``: the client's request (an OpenAI chat body, the
  pipeline's pivot) as an ``UpstreamRequest``. It raises ``BadRequest`` for a malformed body and
  ``UnsupportedByProvider`` for what this provider cannot do (a fallback moves on).
- ``stream_decoder(encoder, ctx, provider)``: a ``StreamDecoder`` that turns the upstream's
  stream into calls on the front door's ``encoder``.
- ``decode_response(body, ctx)``: a 2xx non-stream body as a neutral ``Completion``.
- ``natives``: for each front door whose wire format is the provider's own (by the door's
  ``protocol``), a ``Native``: the request sent as the client wrote it and the answer passed on
  byte for byte, with no decode at all.
- ``translate_error(status, body)``: the ``ProxyError`` for an upstream error status.
- ``build_embeddings(request, model, provider)`` and ``decode_embeddings(body, request, model)``:
  ``/v1/embeddings``: the upstream request, and a 2xx body as OpenAI's embeddings response with
  its usage; ``None`` for a provider without embeddings (``UnsupportedByProvider``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from proxy.config import ProviderConfig
from proxy.errors import ProxyError
from proxy.protocols.openai_embeddings import EmbeddingsRequest
from proxy.protocols.stream import Completion, StreamContext, StreamDecoder, StreamEncoder, Usage
from proxy.transport.base import UpstreamRequest

__all__ = ["JSONBody", "Native", "Provider", "StreamContext", "UpstreamRequest"]

JSONBody = dict[str, Any]


def _always(config: ProviderConfig) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Native:
    """How a provider serves a front door of its own wire format, with no translation at all.

    ``stream`` is the byte pass-through of the upstream's stream (usage and the end read on
    the side); ``response`` hands a whole body on (fixed where needed) with its usage. ``build``
    sends the door's own request body (only the model and the key change, the client's protocol
    headers kept); ``None`` when that body is the pivot itself (OpenAI chat). ``enabled`` says
    whether a configured provider has this API (OpenAI's ``/v1/responses``, say, is an option).
    """

    stream: Callable[[StreamContext, ProviderConfig], StreamDecoder]
    response: Callable[[bytes], tuple[bytes, Usage | None]]
    build: Callable[[JSONBody, str, ProviderConfig, Mapping[str, str]], UpstreamRequest] | None = None
    enabled: Callable[[ProviderConfig], bool] = _always


@dataclass(frozen=True, slots=True)
class Provider:
    """One provider kind (``kind`` in the config): a request builder, decoders, and the front
    doors it serves natively (``natives``, by the door's ``protocol``)."""

    kind: str
    build_request: Callable[[JSONBody, str, ProviderConfig, StreamContext], UpstreamRequest]
    stream_decoder: Callable[[StreamEncoder, StreamContext, ProviderConfig], StreamDecoder]
    decode_response: Callable[[bytes, StreamContext], Completion]
    translate_error: Callable[[int, bytes], ProxyError]
    natives: Mapping[str, Native] = field(default_factory=dict)

    def native(self, protocol: str, config: ProviderConfig) -> Native | None:
        """How this provider serves a door of ``protocol`` untouched, or None (translate)."""
        native = self.natives.get(protocol)
        return native if native is not None and native.enabled(config) else None

    build_embeddings: Callable[[EmbeddingsRequest, str, ProviderConfig], UpstreamRequest] | None = None
    decode_embeddings: Callable[[bytes, EmbeddingsRequest, str], tuple[bytes, Usage | None]] | None = None
