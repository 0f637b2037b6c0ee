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

from proxy.errors import BadRequest, ProxyError
from proxy.protocols.depth import MAX_DEPTH, too_deep
from proxy.protocols.stream import Completion, StreamContext, StreamEncoder

from .body import BODY_LIMITS, read_parsed

__all__ = ["FrontDoor", "read_json"]


class FrontDoor(Protocol):
    name: str  # in the request record and logs: "chat_completions"
    protocol: str  # its wire format, compared with ``Provider.protocol``
    keepalive: bytes  # sent while the upstream is silent (an SSE comment or a ping event)

    def encoder(self, ctx: StreamContext) -> StreamEncoder: ...

    def encode_completion(self, completion: Completion, ctx: StreamContext) -> bytes: ...

    def error_body(self, err: ProxyError) -> bytes: ...

    def error_frame(self, err: ProxyError) -> bytes: ...


async def read_json(request: web.Request, limit: int | None = None) -> dict[str, Any]:
    """The request body as a JSON object, within the app's ``BodyLimits`` (``limit`` overrides
    its per-body cap): 413 over it, 503 when the process is reading too many bodies, 408 when
    the body is too slow, 400 when it is not a JSON object or nests too deeply."""
    limits = request.app[BODY_LIMITS]
    return await read_parsed(request, limits, limits.max_body_bytes if limit is None else limit, _json_object)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    if too_deep(body):
        raise BadRequest(f"the request body is nested too deeply (more than {MAX_DEPTH} levels of objects and arrays)")
    return body
