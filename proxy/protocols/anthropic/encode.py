"""The Anthropic Messages encoder: neutral stream events and completions in, Anthropic bytes out.

``MessagesEncoder`` is the ``StreamEncoder`` of ``/v1/messages``: it writes the events
Anthropic's API writes (``event: <type>\\ndata: <json>\\n\\n``, keys in the API's order), so the
``anthropic`` SDK and Claude Code read any provider's answer as if Claude wrote it:

- one ``message_start`` (``usage`` zeros: the real counts come in ``message_delta``), written
  lazily before the first block, or at the end of a stream without any;
- one block per run of one kind: text (and refusal text) -> ``text`` with ``text_delta``;
  reasoning -> ``thinking`` with ``thinking_delta``, closed by a ``signature_delta`` when its
  signature comes (``thinking_block``); redacted thinking -> a ``redacted_thinking`` block;
  each tool call -> a ``tool_use`` block whose input comes only as ``input_json_delta``
  fragments (``{}`` when the call had none: Claude Code reads tool input only from them).
  A change of kind closes the open block; indexes count 0, 1, 2...; every block is stopped;
- provider thought signatures (Gemini's ``signature`` argument) must come back on the next
  turn, and Anthropic's format has one place a client replays an opaque token from: a thinking
  block's ``signature``. So a signed reasoning delta ends its thinking block with a
  ``signature_delta`` of :data:`THOUGHT_SIGNATURE_PREFIX` + the signature; a signature on a
  tool call comes as an empty signed thinking block just before that call's ``tool_use``; one
  on text (or alone) as an empty signed thinking block after the text. ``messages.to_chat``
  reads these back into Google's ``extra_content`` (the call directly after, else the message);
- ``finish`` is remembered and closes the open block; ``usage`` writes ``message_delta`` with
  the stop reason (``end_turn``, ``max_tokens``, ``tool_use``, ``refusal``, ``stop_sequence``)
  and the cumulative usage, Anthropic-style (``input_tokens`` without the cached and
  cache-writing tokens, which have their own counts); ``end`` writes ``message_stop`` (and the
  ``message_delta`` first when usage never came).

``encode_message`` writes a whole ``message`` body with the same mappings; ``error_body`` and
``error_frame`` render a ``ProxyError`` with Anthropic's error types. Sans-IO: the id and model
come from the ``StreamContext``. Text and argument deltas are framed from prebuilt bytes with
one ``orjson.dumps`` of the fragment: no per-chunk dict building.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from proxy.errors import ProxyError
from proxy.protocols.anthropic.messages import THOUGHT_SIGNATURE_PREFIX
from proxy.protocols.stream import Completion, FinishReason, StreamContext, Usage

__all__ = [
    "PING",
    "MessagesEncoder",
    "encode_message",
    "error_body",
    "error_frame",
    "error_type",
    "message_id",
    "stop_reason",
    "usage_dict",
]

JSONBody = dict[str, Any]

PING = b'event: ping\ndata: {"type": "ping"}\n\n'

_ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_ANTHROPIC_TYPES = frozenset(_ERROR_TYPES.values())
_STOP: Mapping[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


def error_type(err: ProxyError) -> str:
    """Anthropic's error type: the provider's own when it was Anthropic's, else from the status."""
    if isinstance(err.code, str) and err.code in _ANTHROPIC_TYPES:
        return err.code
    known = _ERROR_TYPES.get(err.status)
    if known is not None:
        return known
    return "api_error" if err.status >= 500 else "invalid_request_error"


def _error_dict(err: ProxyError) -> JSONBody:
    return {"type": "error", "error": {"type": error_type(err), "message": err.message}}


def error_body(err: ProxyError) -> bytes:
    """The HTTP body of an error answered before the stream."""
    return orjson.dumps(_error_dict(err))


def error_frame(err: ProxyError) -> bytes:
    """The ``event: error`` that ends a stream that failed after it started."""
    return b"event: error\ndata: " + orjson.dumps(_error_dict(err)) + b"\n\n"


def message_id(ctx: StreamContext) -> str:
    """The answer's ``msg_`` id (``ctx.id`` as it is when it already is one)."""
    return ctx.id if ctx.id.startswith("msg_") else f"msg_{ctx.id}"


def stop_reason(reason: FinishReason, tool_calls: bool, stop_sequence: str | None = None) -> str:
    """Anthropic's stop reason: ``stop`` after a tool call is ``tool_use``; ``tool_calls`` without one ``end_turn``."""
    if reason == "stop" and tool_calls:
        return "tool_use"
    if reason == "stop" and stop_sequence is not None:
        return "stop_sequence"
    if reason == "tool_calls" and not tool_calls:
        return "end_turn"
    return _STOP[reason]


def usage_dict(usage: Usage | None) -> JSONBody:
    """Anthropic usage: ``input_tokens`` counts neither cache reads nor cache writes (each counted once)."""
    u = usage or Usage()
    cached = u.cached_tokens or 0
    created = u.cache_creation_tokens or 0
    out: JSONBody = {
        "input_tokens": max(u.input_tokens - cached - created, 0),
        "cache_creation_input_tokens": created,
        "cache_read_input_tokens": cached,
        "output_tokens": u.output_tokens,
    }
    if u.reasoning_tokens is not None:
        out["output_tokens_details"] = {"thinking_tokens": u.reasoning_tokens}
    return out


def _event(name: bytes, data: JSONBody) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class MessagesEncoder:
    """Writes one stream's Anthropic events; remembers the open block and what was said.

    ``stop_sequence`` may name the stop sequence that ended the answer (the constructor's, or
    ``stop_sequence()`` during the stream): a ``stop`` finish is then ``stop_reason:
    stop_sequence`` with it. A fragment for a tool call whose block was already closed is written
    with that call's block index (the SDK accumulates by index).
    """

    __slots__ = (
        "_ctx",
        "_delta_done",
        "_finish",
        "_index",
        "_open",
        "_open_args",
        "_started",
        "_stop_sequence",
        "_tool_blocks",
        "tool_calls",
    )

    def __init__(self, ctx: StreamContext, stop_sequence: str | None = None) -> None:
        self._ctx = ctx
        self._started = False
        self._index = 0  # the next block's index
        self._open: str | None = None  # "text" | "thinking" | "tool" while a block is open
        self._open_args = False  # the open tool block has had an input_json_delta
        self._tool_blocks: list[int] = []  # block index of each tool call, by call index
        self._finish: FinishReason = "stop"
        self._stop_sequence = stop_sequence
        self._delta_done = False
        self.tool_calls = 0

    # Framing ---------------------------------------------------------------------------------

    def _message_start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        message: JSONBody = {
            "id": message_id(self._ctx),
            "type": "message",
            "role": "assistant",
            "model": self._ctx.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 0,
            },
        }
        return _event(b"message_start", {"type": "message_start", "message": message})

    def _close(self) -> bytes:
        """Stops the open block, if any (a tool block without input gets ``{}`` first)."""
        if self._open is None:
            return b""
        out = b""
        if self._open == "tool" and not self._open_args:
            out = self._input_json(self._index - 1, "{}")
        self._open = None
        head = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":'
        return out + head + str(self._index - 1).encode() + b"}\n\n"

    def _start(self, kind: str, block: JSONBody) -> bytes:
        """Closes the open block and opens a new one of ``kind``."""
        out = self._message_start() + self._close()
        self._open = kind
        self._open_args = False
        index = self._index
        self._index += 1
        return out + _event(
            b"content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
        )

    def _delta(self, index: int, kind: bytes, key: bytes, value: str) -> bytes:
        return (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
            + str(index).encode()
            + b',"delta":{"type":"'
            + kind
            + b'","'
            + key
            + b'":'
            + orjson.dumps(value)
            + b"}}\n\n"
        )

    def _input_json(self, index: int, fragment: str) -> bytes:
        return self._delta(index, b"input_json_delta", b"partial_json", fragment)

    def _signature_delta(self, signature: str) -> bytes:
        """Ends the open thinking block with its signature."""
        return self._delta(self._index - 1, b"signature_delta", b"signature", signature) + self._close()

    def _signature_block(self, signature: str) -> bytes:
        """An empty thinking block carrying a provider signature (see the module docstring)."""
        out = self._start("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        return out + self._signature_delta(THOUGHT_SIGNATURE_PREFIX + signature)

    # The StreamEncoder protocol ----------------------------------------------------------------

    def text(self, text: str, signature: str | None = None) -> bytes:
        out = b""
        if text:
            if self._open != "text":
                out = self._start("text", {"type": "text", "text": ""})
            out += self._delta(self._index - 1, b"text_delta", b"text", text)
        if signature:
            out += self._signature_block(signature)
        return out

    def reasoning(self, text: str, signature: str | None = None) -> bytes:
        out = b""
        if self._open != "thinking":
            out = self._start("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        if text:
            out += self._delta(self._index - 1, b"thinking_delta", b"thinking", text)
        if signature:
            out += self._signature_delta(THOUGHT_SIGNATURE_PREFIX + signature)
        return out

    def signature(self, signature: str) -> bytes:
        if self._open == "thinking":
            return self._signature_delta(THOUGHT_SIGNATURE_PREFIX + signature)
        return self._signature_block(signature)

    def thinking_block(self, thinking: str, signature: str) -> bytes:
        """Ends the open thinking block with ``signature``; the text comes first when it came only here."""
        out = b""
        if self._open != "thinking":
            out = self._start("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            if thinking:
                out += self._delta(self._index - 1, b"thinking_delta", b"thinking", thinking)
        return out + self._signature_delta(signature)

    def redacted_thinking(self, data: str) -> bytes:
        return self._start("redacted", {"type": "redacted_thinking", "data": data}) + self._close()

    def refusal(self, text: str) -> bytes:
        return self.text(text)

    def tool_call_start(self, call_id: str, name: str, arguments: str = "", signature: str | None = None) -> bytes:
        out = self._signature_block(signature) if signature else b""
        out += self._start("tool", {"type": "tool_use", "id": call_id, "name": name, "input": {}})
        self._tool_blocks.append(self._index - 1)
        self.tool_calls += 1
        if arguments:
            self._open_args = True
            out += self._input_json(self._index - 1, arguments)
        return out

    def tool_call_arguments(self, index: int, fragment: str) -> bytes:
        if not fragment or not 0 <= index < len(self._tool_blocks):
            return b""
        block = self._tool_blocks[index]
        if self._open == "tool" and block == self._index - 1:
            self._open_args = True
        return self._input_json(block, fragment)

    def stop_sequence(self, sequence: str) -> bytes:
        """The stop sequence that ended the answer (an upstream that reports it calls this before ``finish``)."""
        self._stop_sequence = sequence
        return b""

    def finish(self, reason: FinishReason) -> bytes:
        self._finish = reason
        return self._message_start() + self._close()

    def usage(self, usage: Usage) -> bytes:
        """``message_delta``: the stop reason and the cumulative usage (written once)."""
        if self._delta_done:
            return b""
        self._delta_done = True
        reason = stop_reason(self._finish, self.tool_calls > 0, self._stop_sequence)
        sequence = self._stop_sequence if reason == "stop_sequence" else None
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": sequence},
            "usage": usage_dict(usage),
        }
        return self._message_start() + self._close() + _event(b"message_delta", delta)

    def end(self) -> bytes:
        return self.usage(Usage()) + b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def _arguments(arguments: str) -> Any:
    """A call's JSON arguments as the ``input`` object (``{}`` when empty; kept as a string when not JSON)."""
    if not arguments.strip():
        return {}
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments


def encode_message(completion: Completion, ctx: StreamContext, stop_sequence: str | None = None) -> bytes:
    """A whole Anthropic ``message`` body: thinking blocks, text, tool calls; stop reason; usage."""
    c = completion
    content: list[JSONBody] = []
    for block in c.thinking_blocks:
        content.append({k: v for k, v in block.items() if k != "index"})
    if c.reasoning and not c.thinking_blocks:
        content.append({"type": "thinking", "thinking": c.reasoning, "signature": ""})
    for text in (c.text, c.refusal):
        if text:
            content.append({"type": "text", "text": text})
    if c.text_signature:
        content.append(_signed_block(c.text_signature))
    for call in c.tool_calls:
        if call.signature:
            content.append(_signed_block(call.signature))
        content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": _arguments(call.arguments)})
    reason = stop_reason(c.finish, bool(c.tool_calls), stop_sequence)
    body = {
        "id": message_id(ctx),
        "type": "message",
        "role": "assistant",
        "model": ctx.model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": stop_sequence if reason == "stop_sequence" else None,
        "usage": usage_dict(c.usage),
    }
    return orjson.dumps(body)


def _signed_block(signature: str) -> JSONBody:
    return {"type": "thinking", "thinking": "", "signature": THOUGHT_SIGNATURE_PREFIX + signature}
