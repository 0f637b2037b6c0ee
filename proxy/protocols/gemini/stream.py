"""Gemini streamGenerateContent SSE -> stream encoder calls (see the package docstring)."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson

from proxy.errors import StreamError
from proxy.protocols.gemini.wire import (
    _block_message,
    _block_reason,
    _call_fields,
    _error_from,
    _error_object,
    _finish_reason,
    _first_candidate,
    _part_signature,
    _parts_of,
    _usage,
)
from proxy.protocols.stream import StreamContext, StreamEncoder, Usage, translate_events
from proxy.wire.sse import Event, SSEDecoder, SSEError

# --------------------------------------------------------------------------------------------
# Stream

_RAW_LIMIT = 64 * 1024


class _Decoder(SSEDecoder):
    """The SSE decoder, plus Gemini's habit of appending a raw (pretty-printed) JSON error body,
    without SSE framing, when a stream fails midway: a WHATWG decoder would ignore those lines as
    unknown fields and the failure would pass unseen. The first line that is no SSE field leaves
    SSE (``stop_events``: the event it cut short is dropped) and starts ``raw``: it and every
    later non-blank line are collected there, and ``raw_value`` is set as soon as the collected
    lines parse as JSON (checked at line ends, so the result cannot depend on how reads split)."""

    __slots__ = ("raw", "raw_size", "raw_value")

    def __init__(self) -> None:
        super().__init__()
        self.raw: list[bytes] = []
        self.raw_size = 0
        self.raw_value: Any = None

    def other_line(self, line: bytes) -> None:
        if not self.raw:
            self.stop_events()
        if not line or self.raw_value is not None or self.raw_size > _RAW_LIMIT:
            return
        self.raw.append(line)
        self.raw_size += len(line) + 1
        if line.rstrip().endswith((b"}", b"]")):
            with contextlib.suppress(orjson.JSONDecodeError):
                self.raw_value = orjson.loads(b"\n".join(self.raw))


class GeminiStream:
    """Gemini ``streamGenerateContent?alt=sse`` in, calls on a ``StreamEncoder`` out (sans-IO)."""

    __slots__ = ("_call_prefix", "_complete", "_decoder", "_enc", "_finished", "_meta", "done", "usage")

    def __init__(self, encoder: StreamEncoder, ctx: StreamContext) -> None:
        self._enc = encoder
        self._call_prefix = ctx.call_id_prefix
        self._decoder = _Decoder()
        self._meta: Any = None  # the last usageMetadata seen
        self._finished = False  # a finishReason (or a prompt block) has been translated
        # The answer is whole: its finish came with usage, or another event followed the finish.
        # Gemini may keep the connection open after its last event; the stream ends here, not
        # at EOF, so a finished answer never waits for the idle timeout.
        self._complete = False
        self.done = False
        self.usage: Usage | None = None

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        try:
            events = self._decoder.feed(data)
        except SSEError as exc:
            raise StreamError(f"the Gemini stream could not be decoded: {exc}") from None
        out = self._events(events)
        if self._complete:  # whole: what follows (even a raw error body) cannot change it
            return out + self._end()
        if self._decoder.raw_value is not None or self._decoder.raw_size > _RAW_LIMIT:
            raise self._raw_error(output=out)
        return out

    def finish(self) -> bytes:
        if self.done:
            return b""
        try:
            events = self._decoder.close()
        except SSEError:
            if not self._finished:
                raise StreamError("the Gemini stream was truncated: it ended in the middle of an event") from None
            events = []  # the answer was complete; only a trailing usage update was cut
        out = self._events(events)
        if self._decoder.raw:
            raise self._raw_error(output=out)
        if not self._finished:
            raise StreamError("the Gemini stream was truncated: it ended before a finishReason", output=out)
        return out + self._end()

    def _end(self) -> bytes:
        """The usage (the last reported) and the client's end of stream."""
        self.done = True
        self.usage = _usage(self._meta)
        return self._enc.usage(self.usage) + self._enc.end()

    def _raw_error(self, output: bytes) -> StreamError:
        err = _error_object(self._decoder.raw_value)
        if isinstance(err, dict):
            result = _error_from(err, StreamError, default_status=502)
            assert isinstance(result, StreamError)
            result.output = output
            return result
        head = b"\n".join(self._decoder.raw)[:200].decode("utf-8", "replace")
        return StreamError(f"the Gemini stream sent data outside SSE framing: {head!r}", output=output)

    def _events(self, events: list[Event]) -> bytes:
        return translate_events(events, self._event, lambda: self._complete)  # nothing after a whole answer

    def _event(self, event: Event) -> bytes:
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise StreamError("the Gemini stream sent malformed JSON") from None
        err = _error_object(data)
        if isinstance(err, dict):
            raise _error_from(err, StreamError, default_status=502)
        if not isinstance(data, dict):
            raise StreamError("the Gemini stream sent an event that is not a JSON object")
        meta = data.get("usageMetadata")
        if meta is not None:
            self._meta = meta
        if self._finished:
            self._complete = True  # the event after the finish (a usage update) ends the stream
            return b""
        candidate = _first_candidate(data)
        if candidate is None:
            block = _block_reason(data)
            if block is None:
                return b""
            self._finished = True
            self._complete = meta is not None  # a blocked prompt generates nothing: its usage is final
            return self._enc.refusal(_block_message(block)) + self._enc.finish("content_filter")
        frames: list[bytes] = []
        try:
            for part in _parts_of(candidate):
                if isinstance(part, dict):
                    frames.append(self._part(part))
            reason = _finish_reason(candidate, StreamError)
        except StreamError as exc:
            exc.output = b"".join(frames)
            raise
        if reason is not None:
            self._finished = True
            # Gemini's last chunk carries the final count of generated tokens; a finish without
            # it waits for the event that brings it (or for the end of the stream).
            self._complete = isinstance(meta, dict) and "candidatesTokenCount" in meta
            frames.append(self._enc.finish(reason))
        return b"".join(frames)

    def _part(self, part: dict[str, Any]) -> bytes:
        signature = _part_signature(part)
        call = part.get("functionCall")
        if isinstance(call, dict):
            try:
                name, arguments, call_id = _call_fields(call)
            except ValueError as exc:
                raise StreamError(f"the Gemini stream sent {exc}") from None
            call_id = call_id or f"call_{self._call_prefix}_{self._enc.tool_calls}"
            return self._enc.tool_call_start(call_id, name, arguments, signature)
        text = part.get("text")
        if not isinstance(text, str):
            return b""  # inline images, code execution and future part kinds have no OpenAI form
        if text:
            if part.get("thought") is True:
                return self._enc.reasoning(text, signature)
            return self._enc.text(text, signature)
        return self._enc.signature(signature) if signature else b""
