"""Anthropic Messages SSE -> stream encoder calls (see the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.errors import StreamError
from proxy.protocols.anthropic.wire import (
    JSON_TOOL,
    _error_from,
    _finish_reason,
    _refusal_text,
    _Usage,
)
from proxy.protocols.stream import StreamEncoder, Usage, translate_events
from proxy.wire.sse import Event, SSEDecoder, SSEError

JSONBody = dict[str, Any]


@dataclass(slots=True)
class _Block:
    """What the stream knows of one open Anthropic content block."""

    kind: str  # "text" | "thinking" | "tool" | "json" (the json_schema answer) | "other"
    index: int = -1  # the stream's tool-call index of a "tool" block
    args: bool = False  # an arguments fragment has been sent
    thinking: list[str] = field(default_factory=list)


class AnthropicStream:
    """Anthropic Messages SSE in, calls on a ``StreamEncoder`` out (sans-IO)."""

    __slots__ = ("_blocks", "_decoder", "_enc", "_stop", "_usage", "done", "usage")

    def __init__(self, encoder: StreamEncoder) -> None:
        self._enc = encoder
        self._decoder = SSEDecoder()
        self._blocks: dict[Any, _Block] = {}
        self._usage = _Usage()
        self._stop: Any = None
        self.done = False
        self.usage: Usage | None = None

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        try:
            events = self._decoder.feed(data)
        except SSEError as exc:
            raise StreamError(f"Anthropic stream: {exc}") from None
        return self._events(events)

    def finish(self) -> bytes:
        try:
            events = self._decoder.close()
        except SSEError:
            if self.done:
                return b""  # bytes after message_stop do not matter
            raise StreamError("the Anthropic stream was truncated: it ended mid-event") from None
        out = self._events(events)
        if not self.done:
            raise StreamError("the Anthropic stream was truncated: it ended before message_stop", output=out)
        return out

    def _events(self, events: list[Event]) -> bytes:
        return translate_events(events, self._event, lambda: self.done)

    def _event(self, event: Event) -> bytes:
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise StreamError(f"the Anthropic stream sent malformed JSON ({event.event!r} event)") from None
        if not isinstance(data, dict):
            raise StreamError(f"the Anthropic stream sent a {event.event!r} event that is not a JSON object")
        handler = _HANDLERS.get(data.get("type") or event.event)
        return handler(self, data) if handler is not None else b""  # ping and unknown events: nothing

    def _message_start(self, data: JSONBody) -> bytes:
        message = data.get("message")
        if isinstance(message, dict):
            self._usage.update(message.get("usage"))
        return b""  # the role rides on the first content chunk; see the module docstring

    def _block_start(self, data: JSONBody) -> bytes:
        block = data.get("content_block")
        if not isinstance(block, dict):
            return b""
        btype = block.get("type")
        index = data.get("index")
        if btype == "text":
            self._blocks[index] = _Block("text")
            text = block.get("text")
            return self._enc.text(text) if isinstance(text, str) and text else b""
        if btype == "thinking":
            state = self._blocks[index] = _Block("thinking")
            text = block.get("thinking")
            if isinstance(text, str) and text:
                state.thinking.append(text)
                return self._enc.reasoning(text)
            return b""
        if btype == "redacted_thinking":
            self._blocks[index] = _Block("other")
            redacted = block.get("data")
            return self._enc.redacted_thinking(redacted if isinstance(redacted, str) else "")
        if btype == "tool_use":
            return self._tool_start(index, block)
        self._blocks[index] = _Block("other")  # server tools, their results, future types
        return b""

    def _tool_start(self, index: Any, block: JSONBody) -> bytes:
        name = str(block.get("name") or "")
        frame = b""
        if name == JSON_TOOL:
            state = self._blocks[index] = _Block("json")
        else:
            call = self._enc.tool_calls
            frame = self._enc.tool_call_start(str(block.get("id") or ""), name)
            state = self._blocks[index] = _Block("tool", call)
        initial = block.get("input")
        if isinstance(initial, dict) and initial:  # streams send {}; anything else is sent whole
            frame += self._arguments(state, orjson.dumps(initial).decode())
        return frame

    def _arguments(self, state: _Block, fragment: str) -> bytes:
        state.args = True
        if state.kind == "json":
            return self._enc.text(fragment)
        return self._enc.tool_call_arguments(state.index, fragment)

    def _block_delta(self, data: JSONBody) -> bytes:
        delta = data.get("delta")
        if not isinstance(delta, dict):
            return b""
        dtype = delta.get("type")
        state = self._blocks.get(data.get("index"))
        if dtype == "text_delta":
            text = delta.get("text")
            return self._enc.text(text) if isinstance(text, str) and text else b""
        if dtype == "input_json_delta":
            fragment = delta.get("partial_json")
            if state is None or state.kind not in ("tool", "json") or not isinstance(fragment, str):
                return b""
            return self._arguments(state, fragment) if fragment else b""
        if dtype == "thinking_delta":
            text = delta.get("thinking")
            if not isinstance(text, str) or not text:
                return b""
            if state is not None:
                state.thinking.append(text)
            return self._enc.reasoning(text)
        if dtype == "signature_delta":
            signature = delta.get("signature")
            if not isinstance(signature, str):
                return b""
            thinking = "".join(state.thinking) if state is not None else ""
            return self._enc.thinking_block(thinking, signature)
        return b""  # citations and future delta types

    def _block_stop(self, data: JSONBody) -> bytes:
        state = self._blocks.pop(data.get("index"), None)
        if state is not None and state.kind in ("tool", "json") and not state.args:
            return self._arguments(state, "{}")  # a call without arguments still accumulates to JSON
        return b""

    def _message_delta(self, data: JSONBody) -> bytes:
        self._usage.update(data.get("usage"))
        delta = data.get("delta")
        if not isinstance(delta, dict) or delta.get("stop_reason") is None:
            return b""
        self._stop = delta["stop_reason"]
        refusal = _refusal_text(delta.get("stop_details")) if self._stop == "refusal" else None
        return self._enc.refusal(refusal) if refusal else b""

    def _message_stop(self, data: JSONBody) -> bytes:
        self.done = True
        reason = _finish_reason(self._stop, self._enc.tool_calls)
        self.usage = self._usage.neutral()
        return self._enc.finish(reason) + self._enc.usage(self.usage) + self._enc.end()

    def _error(self, data: JSONBody) -> bytes:
        raise _error_from(data.get("error"), StreamError, default_status=502)


_HANDLERS: dict[Any, Callable[[AnthropicStream, JSONBody], bytes]] = {
    "message_start": AnthropicStream._message_start,
    "content_block_start": AnthropicStream._block_start,
    "content_block_delta": AnthropicStream._block_delta,
    "content_block_stop": AnthropicStream._block_stop,
    "message_delta": AnthropicStream._message_delta,
    "message_stop": AnthropicStream._message_stop,
    "error": AnthropicStream._error,
}
