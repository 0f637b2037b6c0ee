"""An OpenAI Responses upstream behind the Responses front door: the events pass byte for byte.

Every read is handed on untouched, in the same write. Beside it, a line scanner (the SSE decoder,
no JSON) watches the event names; only the terminal events are parsed: ``response.completed``
and ``response.incomplete`` carry the usage (for the request record) and end the stream,
``response.failed`` ends it too (the client has it, in the upstream's own words), and a bare
``error`` event is a failure (before the first byte a policy can still fall back).
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.errors import ProxyError, StreamError, UpstreamError
from proxy.protocols.openai_responses.encode import error_event
from proxy.protocols.stream import Usage
from proxy.wire.sse import SSEDecoder, SSEError

__all__ = ["ResponsesPassthrough", "passthrough_body", "usage_of"]

_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def usage_of(usage: Any) -> Usage | None:
    """A Responses ``usage`` object in the neutral vocabulary."""
    if not isinstance(usage, dict):
        return None
    cached = usage.get("input_tokens_details")
    reasoning = usage.get("output_tokens_details")
    return Usage(
        input_tokens=_count(usage.get("input_tokens")) or 0,
        output_tokens=_count(usage.get("output_tokens")) or 0,
        cached_tokens=_count(cached.get("cached_tokens")) if isinstance(cached, dict) else None,
        reasoning_tokens=_count(reasoning.get("reasoning_tokens")) if isinstance(reasoning, dict) else None,
    )


class ResponsesPassthrough:
    """Responses SSE in, the same bytes out; ``usage`` and ``done`` read on the side."""

    __slots__ = ("_decoder", "_events", "done", "usage")

    def __init__(self) -> None:
        self._decoder = SSEDecoder()
        self._events = 0  # events handed on: the next sequence number
        self.done = False
        self.usage: Usage | None = None

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        try:
            events = self._decoder.feed(data)
        except SSEError as exc:
            raise StreamError(f"Responses stream: {exc}") from None
        self._events += len(events)
        for event in events:
            name = event.event
            if name in _TERMINAL:
                self.done = True
                self.usage = usage_of(_response_of(event.data).get("usage"))
            elif name == "error":
                raise _error(event.data, data)
        return data

    def finish(self) -> bytes:
        if not self.done:
            raise StreamError("the Responses stream was truncated: it ended before response.completed")
        return b""

    def error_frame(self, err: ProxyError) -> bytes:
        """The error event that ends this stream, its ``sequence_number`` following the upstream's."""
        return error_event(err, self._events)


def _response_of(raw: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise StreamError("the Responses stream sent malformed JSON") from None
    response = data.get("response") if isinstance(data, dict) else None
    return response if isinstance(response, dict) else {}


def _error(raw: bytes, read: bytes) -> StreamError:
    try:
        data: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = {}
    data = data if isinstance(data, dict) else {}
    message = data.get("message") or "the upstream reported an error mid-stream"
    code = data.get("code")
    at = read.find(b"event: error")
    return StreamError(str(message), code=code if isinstance(code, str) else None, output=read[:at] if at > 0 else b"")


def passthrough_body(body: bytes) -> tuple[bytes, Usage | None]:
    """A whole ``response`` object for a Responses client: untouched, and its usage."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError("the upstream returned a response that is not valid JSON", status=502) from None
    usage = data.get("usage") if isinstance(data, dict) else None
    return body, usage_of(usage)
