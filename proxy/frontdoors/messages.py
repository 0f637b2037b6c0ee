"""``POST /v1/messages`` and ``/v1/messages/count_tokens``: the Anthropic Messages API, for any model.

Anthropic upstreams are sent the client's own body (only the model and the key change, the
client's ``anthropic-version`` and ``anthropic-beta`` kept) and their events pass byte for byte.
Every other provider gets the body read into the OpenAI chat pivot (``to_chat``), made only when
such a target is tried, and its stream is encoded as Anthropic events (``MessagesEncoder``).
Errors leave in Anthropic's shape. Unknown query parameters (Claude Code's ``?beta=true``) are
ignored.
"""

from __future__ import annotations

import math
import time
from typing import Any

import orjson
from aiohttp import web

from proxy.config import ProviderConfig
from proxy.errors import ProxyError, UnsupportedByProvider
from proxy.pipeline import STATE, Call, endpoint, run
from proxy.protocols.anthropic.encode import PING, MessagesEncoder, encode_message, error_body, error_frame
from proxy.protocols.anthropic.messages import to_chat
from proxy.protocols.openai_chat.validate import validate_chat_request
from proxy.protocols.stream import Completion, StreamContext
from proxy.providers import provider_kind
from proxy.providers.base import Native, Provider
from proxy.transport.base import UpstreamRequest
from proxy.transport.http import read_body

from .base import read_json

__all__ = ["DOOR", "Messages", "count_tokens", "handle"]

_NATIVE_HEADERS = ("anthropic-version", "anthropic-beta")
CHARS_PER_TOKEN = 4  # the estimate for providers that cannot count (see count_tokens)


class Messages:
    name = "messages"
    protocol = "anthropic"
    keepalive = PING

    def encoder(self, ctx: StreamContext) -> MessagesEncoder:
        return MessagesEncoder(ctx)

    def encode_completion(self, completion: Completion, ctx: StreamContext) -> bytes:
        return encode_message(completion, ctx)

    def error_body(self, err: ProxyError) -> bytes:
        return error_body(err)

    def error_frame(self, err: ProxyError) -> bytes:
        return error_frame(err)


DOOR = Messages()


def _pivot(native: dict[str, Any]) -> dict[str, Any]:
    pivot = to_chat(native)
    validate_chat_request(pivot)
    return pivot


async def _handle(request: web.Request, call: Call) -> web.StreamResponse:
    native = await read_json(request)
    model = native.get("model")
    if not isinstance(model, str) or not model:
        raise ProxyError("'model' is required and must be a string", status=400, type="invalid_request_error")
    call.native = native
    call.native_headers = {h: request.headers[h] for h in _NATIVE_HEADERS if h in request.headers}
    call.to_pivot = lambda: _pivot(native)
    call.ctx = StreamContext(
        id=f"msg_{call.record.id}", created=int(time.time()), model="", call_id_prefix=call.record.id[:16]
    )
    try:
        return await run(request, call, native, native.get("stream") is True)
    except ProxyError as err:
        _overloaded(err)
        raise


handle = endpoint(DOOR, _handle)


def _overloaded(err: ProxyError) -> None:
    """Anthropic's own ``overloaded_error`` keeps its status 529 at this door (the provider's
    error mapping says 503, what OpenAI clients know): the anthropic SDK raises
    ``OverloadedError`` and Claude Code shows "overloaded" only for a 529."""
    if err.status == 503 and err.code == "overloaded_error":
        err.status = 529


async def _count(request: web.Request, call: Call) -> web.StreamResponse:
    """Relayed to an Anthropic upstream; for any other provider an estimate: the characters of the
    system prompt, messages and tools (as JSON) divided by ``CHARS_PER_TOKEN``, rounded up."""
    state = request.app[STATE]
    native = await read_json(request)
    model = native.get("model")
    if not isinstance(model, str) or not model:
        raise ProxyError("'model' is required and must be a string", status=400, type="invalid_request_error")
    call.record.model = model
    attempts = state.router.attempts(native)
    target = await attempts.next()
    call.record.target, call.record.provider, call.record.attempts = target.label, target.provider.name, 1
    kind = provider_kind(target.provider.kind)
    native_api = kind.native(DOOR.protocol, target.provider)
    if native_api is not None and native_api.build is not None:
        try:
            return await _relay_count(request, target.model, target.provider, kind, native_api, native)
        except ProxyError as err:
            _overloaded(err)
            raise
    to_chat({"max_tokens": 1, **native})  # the same 400s as /v1/messages for a malformed body
    text = orjson.dumps([native.get("system"), native.get("messages"), native.get("tools")])
    tokens = math.ceil(len(text.decode("utf-8", "replace")) / CHARS_PER_TOKEN)
    return web.json_response({"input_tokens": tokens})


async def _relay_count(
    request: web.Request, model: str, config: ProviderConfig, kind: Provider, api: Native, native: dict[str, Any]
) -> web.Response:
    state = request.app[STATE]
    headers = {h: request.headers[h] for h in _NATIVE_HEADERS if h in request.headers}
    body = {k: v for k, v in native.items() if k not in ("stream", "max_tokens")}
    assert api.build is not None
    messages = api.build(body, model, config, headers)
    counting = UpstreamRequest(url=messages.url + "/count_tokens", headers=messages.headers, body=messages.body)
    upstream = await state.transport.open(counting, config)
    try:
        data = await read_body(upstream, config)
        if upstream.status >= 400:
            raise kind.translate_error(upstream.status, data)
        if not data.startswith(b"{"):
            raise UnsupportedByProvider("the provider's count_tokens answer is not JSON")
        return web.Response(body=data, content_type="application/json")
    finally:
        upstream.close()


count_tokens = endpoint(DOOR, _count)
