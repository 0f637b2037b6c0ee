"""The contract between the pipeline and one provider kind: a request builder plus decoders.

A provider module exports one ``Provider``. Everything in it is sans-IO: plain functions and
plain synchronous objects, no aiohttp, no asyncio, no clock and no random source of their own
(``StreamContext`` carries ``id``, ``created`` and ``model``).

- ``build_request(body, model, provider, ctx)``: the client's request (an OpenAI chat body, the
  pipeline's pivot) as an ``UpstreamRequest``. It raises ``BadRequest`` for a malformed body and
  ``UnsupportedByProvider`` for what this provider cannot do (a fallback moves on).
- ``stream_decoder(encoder, ctx, provider)``: a ``StreamDecoder`` that turns the upstream's
  stream into calls on the front door's ``encoder``.
- ``passthrough(ctx, provider)``: for a front door whose wire format is the provider's own
  (``protocol``), a decoder that hands the upstream's bytes on with no decode at all; ``None``
  when the provider has none.
- ``decode_response(body, ctx)``: a 2xx non-stream body as a neutral ``Completion``;
  ``passthrough_response(body)`` is the same-protocol shortcut (the body, fixed where needed,
  and its usage).
- ``build_native(body, model, provider, headers)``: a request already in the provider's own wire
  format (a front door of the same protocol), passed on with only the model and the key changed.
- ``translate_error(status, body)``: the ``ProxyError`` for an upstream error status.
- ``build_embeddings(request, model, provider)`` and ``decode_embeddings(body, request, model)``:
  ``/v1/embeddings``: the upstream request, and a 2xx body as OpenAI's embeddings response with
  its usage; ``None`` for a provider without embeddings (``UnsupportedByProvider``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from proxy.config import ProviderConfig
from proxy.errors import ProxyError
from proxy.protocols.openai_embeddings import EmbeddingsRequest
from proxy.protocols.stream import Completion, StreamContext, StreamDecoder, StreamEncoder, Usage
from proxy.transport.base import UpstreamRequest

__all__ = ["JSONBody", "Provider", "StreamContext", "UpstreamRequest"]

JSONBody = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Provider:
    """One provider kind (``kind`` in the config) and the wire protocol it answers in."""

    kind: str
    protocol: str  # the wire format of its answers: "openai_chat", "anthropic", "gemini"
    build_request: Callable[[JSONBody, str, ProviderConfig, StreamContext], UpstreamRequest]
    stream_decoder: Callable[[StreamEncoder, StreamContext, ProviderConfig], StreamDecoder] | None
    decode_response: Callable[[bytes, StreamContext], Completion] | None
    translate_error: Callable[[int, bytes], ProxyError]
    passthrough: Callable[[StreamContext, ProviderConfig], StreamDecoder] | None = None
    # A request already in this provider's own wire format (from a door of the same protocol),
    # with the client's protocol headers (e.g. anthropic-beta): only the model and the key change.
    build_native: Callable[[JSONBody, str, ProviderConfig, Mapping[str, str]], UpstreamRequest] | None = None
    passthrough_response: Callable[[bytes], tuple[bytes, Usage | None]] | None = None
    build_embeddings: Callable[[EmbeddingsRequest, str, ProviderConfig], UpstreamRequest] | None = None
    decode_embeddings: Callable[[bytes, EmbeddingsRequest, str], tuple[bytes, Usage | None]] | None = None
