"""What every front door is: a request mapper plus a stream encoder, and its error shapes.

A front door (an HTTP endpoint such as ``/v1/chat/completions``) reads the client's request into
the pipeline's pivot (an OpenAI chat body plus a ``StreamContext``), and writes the answer back
in its own wire format: an encoder for translated streams, a completion encoder for whole
answers, an error body before the stream and an error event after it. ``protocol`` names its
wire format: a provider that answers in the same one passes through untouched.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson
from aiohttp import web

from proxy.errors import BadRequest, PayloadTooLarge, ProxyError
from proxy.protocols.stream import Completion, StreamContext, StreamEncoder

__all__ = ["FrontDoor", "read_json"]


class FrontDoor(Protocol):
    name: str  # in the request record and logs: "chat_completions"
    protocol: str  # its wire format, compared with ``Provider.protocol``
    keepalive: bytes  # sent while the upstream is silent (an SSE comment or a ping event)

    def encoder(self, ctx: StreamContext) -> StreamEncoder: ...

    def encode_completion(self, completion: Completion, ctx: StreamContext) -> bytes: ...

    def error_body(self, err: ProxyError) -> bytes: ...

    def error_frame(self, err: ProxyError) -> bytes: ...


async def read_json(request: web.Request, limit: int) -> dict[str, Any]:
    """The request body as a JSON object: 413 over ``limit`` bytes, 400 when it is not one."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body of {request.content_length} bytes exceeds the limit of {limit} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes") from None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body
