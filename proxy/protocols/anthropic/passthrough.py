"""Anthropic upstream behind the Anthropic front door: the events pass byte for byte.

Every read is handed on untouched, up to its last complete event: the tail of an event cut
between reads waits for the read that completes it (it is of no use to the client alone). So the
client's stream is always whole events, and when the upstream fails (an error event, a truncated
or malformed stream) the front door's error event follows whole events, never half of one.
Beside it, a line scanner (the SSE decoder, no JSON) watches the event names; only the few events
that matter to the proxy are parsed: ``message_start`` and ``message_delta`` (the usage, for the
request record), ``message_stop`` (the end: ``done``), and ``error`` (a failure: before the first
byte it lets a policy fall back, after it the front door's error event is written, which is
Anthropic's own shape).

A native request is the client's body with only the model changed; thinking blocks that carry a
Gemini signature (an earlier turn answered by Gemini through this door) are left out, because
Anthropic rejects a signature it did not make.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from proxy.errors import StreamError, UpstreamError
from proxy.protocols.anthropic.messages import THOUGHT_SIGNATURE_PREFIX
from proxy.protocols.anthropic.wire import _error_from, _Usage
from proxy.protocols.stream import Usage
from proxy.wire.sse import SSEDecoder, SSEError

__all__ = ["AnthropicPassthrough", "native_body", "passthrough_body"]

JSONBody = dict[str, Any]
_PARSED = frozenset({"message_start", "message_delta", "error"})


class AnthropicPassthrough:
    """Anthropic SSE in, the same bytes out (whole events); ``usage`` and ``done`` read on the side."""

    __slots__ = ("_decoder", "_held", "_usage", "done", "usage")

    def __init__(self) -> None:
        self._decoder = SSEDecoder()
        self._usage = _Usage()
        self._held = b""  # the start of an event not complete yet
        self.done = False
        self.usage: Usage | None = None

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        pending = self._held + data if self._held else data
        try:
            events = self._decoder.feed(data)
        except SSEError as exc:
            raise StreamError(f"Anthropic stream: {exc}") from None
        for i, event in enumerate(events):
            if event.event == "message_stop":
                self.done = True
                self.usage = self._usage.neutral()
            elif event.event in _PARSED:
                try:
                    self._parse(event.event, event.data)
                except StreamError as exc:
                    exc.output = _before(pending, i)  # the whole events before the failing one
                    raise
        if self.done:
            self._held = b""
            return pending
        cut = _complete(pending)
        self._held = pending[cut:]
        return pending[:cut]

    def _parse(self, name: str, raw: bytes) -> None:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise StreamError(f"the Anthropic stream sent malformed JSON ({name!r} event)") from None
        if not isinstance(data, dict):
            return
        if name == "error":
            err = _error_from(data.get("error"), StreamError, default_status=502)
            assert isinstance(err, StreamError)
            raise err
        usage = data.get("usage") if name == "message_delta" else (data.get("message") or {}).get("usage")
        self._usage.update(usage)

    def finish(self) -> bytes:
        if not self.done:
            raise StreamError("the Anthropic stream was truncated: it ended before message_stop")
        return b""


# The blank line that ends an event, in each line-ending style (LF, CRLF, CR, and LF then CRLF).
_ENDS = (b"\n\n", b"\r\n\r\n", b"\n\r\n", b"\r\r")
_END = re.compile(rb"\r\n\r\n|\n\r\n|\n\n|\r\r")


def _complete(data: bytes) -> int:
    """Where the last complete event of ``data`` ends (0 when none does)."""
    cut = 0
    for end in _ENDS:
        at = data.rfind(end)
        if at >= 0:
            cut = max(cut, at + len(end))
    return cut


def _before(pending: bytes, count: int) -> bytes:
    """The first ``count`` events of ``pending`` (which starts at an event's start), as bytes.

    Only on a failure: re-reads ``pending`` one blank-line-ended piece at a time until ``count``
    events were dispatched, so the bytes handed on end with a whole event.
    """
    if count == 0:
        return b""
    decoder = SSEDecoder()
    seen = start = 0
    for match in _END.finditer(pending):
        try:
            seen += len(decoder.feed(pending[start : match.end()]))
        except SSEError:
            break
        if seen > count:
            break
        start = match.end()
        if seen == count:
            return pending[:start]
    return pending[:start]


def native_body(body: JSONBody, model: str) -> JSONBody:
    """The client's Messages body for the upstream: the model replaced, foreign signatures left out."""
    out = {**body, "model": model}
    messages = body.get("messages")
    if isinstance(messages, list) and any(_foreign_thinking(m) for m in messages):
        out["messages"] = [_without_foreign_thinking(m) for m in messages]
    return out


def _is_foreign(block: Any) -> bool:
    return (
        isinstance(block, dict)
        and block.get("type") == "thinking"
        and str(block.get("signature", "")).startswith(THOUGHT_SIGNATURE_PREFIX)
    )


def _foreign_thinking(message: Any) -> bool:
    content = message.get("content") if isinstance(message, dict) else None
    return isinstance(content, list) and any(_is_foreign(b) for b in content)


def _without_foreign_thinking(message: Any) -> Any:
    if not _foreign_thinking(message):
        return message
    return {**message, "content": [b for b in message["content"] if not _is_foreign(b)]}


def passthrough_body(body: bytes) -> tuple[bytes, Usage | None]:
    """A whole Anthropic ``message`` for an Anthropic client: untouched, and its usage."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError("Anthropic returned a response that is not valid JSON", status=502) from None
    if not isinstance(data, dict):
        raise UpstreamError("Anthropic returned a response that is not a JSON object", status=502)
    if data.get("type") == "error":
        raise _error_from(data.get("error"), UpstreamError, default_status=502)
    usage = _Usage()
    usage.update(data.get("usage"))
    return body, usage.neutral()
