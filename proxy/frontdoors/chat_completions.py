"""``POST /v1/chat/completions``: OpenAI Chat Completions, streaming or not.

The request is already the pipeline's pivot (an OpenAI chat body): it is validated, the
client's stream options are read into the ``StreamContext``, and the pipeline does the rest.
OpenAI-compatible providers pass through; the others are translated by ``ChatEncoder``.
"""

from __future__ import annotations

import time

from aiohttp import web

from proxy.errors import ProxyError
from proxy.pipeline import Call, endpoint, run
from proxy.protocols.openai_chat.encode import ChatEncoder, encode_completion, error_body, error_frame
from proxy.protocols.openai_chat.validate import validate_chat_request
from proxy.protocols.stream import Completion, StreamContext

from .base import read_json

__all__ = ["DOOR", "ChatCompletions", "handle"]


class ChatCompletions:
    name = "chat_completions"
    protocol = "openai_chat"
    keepalive = b": keep-alive\n\n"

    def encoder(self, ctx: StreamContext) -> ChatEncoder:
        return ChatEncoder(ctx)

    def encode_completion(self, completion: Completion, ctx: StreamContext) -> bytes:
        return encode_completion(completion, ctx)

    def error_body(self, err: ProxyError) -> bytes:
        return error_body(err)

    def error_frame(self, err: ProxyError) -> bytes:
        return error_frame(err)


DOOR = ChatCompletions()


async def _handle(request: web.Request, call: Call) -> web.StreamResponse:
    body = await read_json(request)
    validate_chat_request(body)
    stream = body.get("stream") is True
    options = body.get("stream_options")
    call.ctx = StreamContext(
        id=f"chatcmpl-{call.record.id}",
        created=int(time.time()),
        model="",  # set per attempt: the upstream's model id
        include_usage=stream and isinstance(options, dict) and options.get("include_usage") is True,
        legacy_functions=bool(body.get("functions")) and not body.get("tools"),
        call_id_prefix=call.record.id[:16],
    )
    return await run(request, call, body, stream)


handle = endpoint(DOOR, _handle)
