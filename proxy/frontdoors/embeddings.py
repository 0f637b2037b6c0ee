"""``POST /v1/embeddings``: OpenAI's Embeddings API, for any model that has one.

The body is checked as OpenAI checks it (``protocols.openai_embeddings.read_request``), then
the router's attempts are tried as for chat, so policies and aliases work the same way: a 5xx,
429 or unreachable provider moves a fallback on, and a provider kind without embeddings
(Anthropic) is ``UnsupportedByProvider``, which moves it on without blame. Each provider kind
brings its own ``build_embeddings``/``decode_embeddings``: OpenAI-compatible upstreams (and the
mock) are relayed byte for byte, Gemini is translated. Whole answers only: there is no stream.
"""

from __future__ import annotations

import logging

from aiohttp import web

from proxy.errors import ProxyError, UnsupportedByProvider
from proxy.pipeline import STATE, Call, State, endpoint
from proxy.protocols.openai_embeddings import EmbeddingsRequest, read_request
from proxy.protocols.stream import Usage
from proxy.providers import provider_kind
from proxy.routing import Target
from proxy.transport.http import parse_retry_after, read_body

from .base import read_json
from .chat_completions import ChatCompletions

__all__ = ["DOOR", "Embeddings", "handle"]

log = logging.getLogger("proxy")


class Embeddings(ChatCompletions):
    """The door's error shape is OpenAI's, as for chat; it never streams, so the encoders it
    inherits are never asked for."""

    name = "embeddings"
    protocol = "openai_embeddings"


DOOR = Embeddings()


async def _handle(request: web.Request, call: Call) -> web.StreamResponse:
    state = request.app[STATE]
    body = await read_json(request, state.config.server.max_body_bytes)
    embeddings = read_request(body)
    record = call.record
    record.model, record.stream = embeddings.model, False
    attempts = state.router.attempts(body)
    while True:
        target = await attempts.next()  # raises the last error when no attempt is left
        record.target, record.provider, record.attempts = target.label, target.provider.name, attempts.count
        try:
            out, record.usage = await _attempt(state, target, embeddings)
        except ProxyError as err:
            log.info("%s %s attempt %d failed: %s", record.id, target.label, attempts.count, err.message)
            attempts.failed(target, err)  # raises at once for a client mistake
            continue
        attempts.succeeded(target)
        record.first_byte_at = state.transport.watchdog.loop().time()
        record.bytes_out = len(out)
        headers = {"X-Request-Id": record.id, "X-Proxy-Model": target.label, "X-Proxy-Attempts": str(attempts.count)}
        return web.Response(body=out, content_type="application/json", headers=headers)


async def _attempt(state: State, target: Target, request: EmbeddingsRequest) -> tuple[bytes, Usage | None]:
    """One try at one provider model: its OpenAI-shaped answer and usage, or a ``ProxyError``."""
    config = target.provider
    kind = provider_kind(config.kind)
    if kind.build_embeddings is None or kind.decode_embeddings is None:
        raise UnsupportedByProvider(f"provider kind '{kind.kind}' has no embeddings API", param="model")
    upstream = await state.transport.open(kind.build_embeddings(request, target.model, config), config)
    try:
        data = await read_body(upstream, config)
        if upstream.status >= 400:
            err = kind.translate_error(upstream.status, data)
            retry_after = parse_retry_after(upstream.headers.get("Retry-After"))
            if retry_after is not None:
                err.retry_after = retry_after
            raise err
        return kind.decode_embeddings(data, request, target.model)
    finally:
        upstream.close()


handle = endpoint(DOOR, _handle)
