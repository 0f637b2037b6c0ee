"""The Responses encoder: neutral stream events and completions in, OpenAI Responses bytes out.

``ResponsesEncoder`` is the ``StreamEncoder`` of ``/v1/responses``. It writes the events the
Responses API writes (``event: <type>\\ndata: <json>\\n\\n``, ``sequence_number`` 0, 1, 2...),
so Codex, the Agents SDK and openai-python's ``responses.stream`` read any provider's answer:

- ``response.created`` and ``response.in_progress`` first (before the first item, or before
  the end or the error of a stream without any);
- one output item per run of one kind, each ``output_item.added`` ... ``output_item.done``
  (Codex records an item only from its ``done``): text and refusals -> a ``message`` item with
  ``output_text`` / ``refusal`` content parts (``content_part.added``, ``output_text.delta``...,
  ``output_text.done``, ``content_part.done``); reasoning -> a ``reasoning`` item with one
  summary part (``reasoning_summary_part.added``, ``reasoning_summary_text.delta``...,
  ``.done``s); each tool call -> a ``function_call`` item with
  ``function_call_arguments.delta``/``.done``, or, for a tool the request declared ``custom``,
  a ``custom_tool_call`` item whose ``input`` is unwrapped from the arguments
  ``{"input": ...}`` once they are whole (one ``custom_tool_call_input.delta`` and ``.done``);
- a text or reasoning item is closed when another item starts. Consecutive tool calls stay
  open together until another kind of item starts or the stream ends (upstreams may send a
  call's arguments after the next call began, and chat upstreams close argument-less calls
  with ``{}`` at their finish); a fragment for a call already closed is dropped. A call
  closed without arguments gets ``{}``;
- provider signatures go into ``encrypted_content`` of the reasoning item (prefixes from
  ``request.py``), which clients echo back: Anthropic's ``thinking_block`` closes its reasoning
  item with ``anthropic:<signature>``, a redacted block is an empty reasoning item with
  ``anthropic-redacted:<data>``; a Gemini signature on reasoning closes that item with
  ``gemini:<signature>``, one on text (or alone) is an empty reasoning item after the text, one
  on a tool call an empty reasoning item just before the call (``to_chat`` puts it back on
  that call);
- ``finish`` and ``usage`` only remember; ``end`` closes every open item and writes
  ``response.completed``, or ``response.incomplete`` with ``incomplete_details.reason``
  (``max_output_tokens`` for ``length``, ``content_filter``), carrying the whole response:
  every item of ``output`` and the ``usage``. Nothing follows it (no ``[DONE]``).

``error_frame`` (a method: it continues the sequence numbers) ends a failed stream with
``response.failed``, never a fake completion. ``encode_response`` writes a whole ``response``
object through the same encoder. Text and argument deltas are framed from per-item prebuilt
bytes with one ``orjson.dumps`` of the fragment: no per-chunk dict building.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.errors import ProxyError
from proxy.protocols.openai_chat.encode import error_body
from proxy.protocols.stream import Completion, FinishReason, StreamContext, Usage

from .request import (
    ANTHROPIC_REDACTED_PREFIX,
    ANTHROPIC_SIGNATURE_PREFIX,
    CUSTOM_INPUT,
    GEMINI_SIGNATURE_PREFIX,
)

__all__ = [
    "KEEPALIVE",
    "ResponsesEncoder",
    "encode_response",
    "error_body",
    "error_event",
    "response_id",
    "usage_dict",
]

JSONBody = dict[str, Any]

KEEPALIVE = b": keep-alive\n\n"
_INCOMPLETE: Mapping[str, str] = {"length": "max_output_tokens", "content_filter": "content_filter"}


def response_id(ctx: StreamContext) -> str:
    """The answer's ``resp_`` id (``ctx.id`` as it is when it already is one)."""
    return ctx.id if ctx.id.startswith("resp_") else f"resp_{ctx.id}"


def usage_dict(usage: Usage) -> JSONBody:
    """Responses usage: ``input_tokens`` includes cached, ``output_tokens`` includes reasoning."""
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens or 0,
            "cache_write_tokens": usage.cache_creation_tokens or 0,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
        "total_tokens": usage.total_tokens,
    }


def _error_code(err: ProxyError) -> str:
    """A ``response.error.code`` the SDK knows: the stream failed upstream, or was rate limited."""
    return "rate_limit_exceeded" if err.status == 429 else "server_error"


def error_event(err: ProxyError, sequence_number: int = 0) -> bytes:
    """An ``event: error`` for a failure where no encoder holds the stream's state (pass-through)."""
    data = {
        "type": "error",
        "sequence_number": sequence_number,
        "code": _error_code(err),
        "message": err.message,
        "param": err.param,
    }
    return b"event: error\ndata: " + orjson.dumps(data) + b"\n\n"


@dataclass(slots=True)
class _Item:
    """One output item while it is written."""

    kind: str  # message | reasoning | function_call | custom_tool_call
    index: int  # output_index
    id: str
    where: bytes  # ',"item_id":"...","output_index":N' for the hot-path deltas
    call_id: str = ""
    name: str = ""
    chunks: list[str] = field(default_factory=list)  # the open part's text, a summary or arguments
    part: str | None = None  # message: the open part's type; reasoning: "summary_text" when open
    parts: list[JSONBody] = field(default_factory=list)  # message: the closed content parts
    encrypted: str | None = None
    done: JSONBody | None = None  # the item as written in its output_item.done


class ResponsesEncoder:
    """Writes one stream's Responses events; remembers the items and what was said.

    ``custom_tools`` names the request's ``custom`` tools (from ``to_chat``); ``echo`` holds
    request fields the door wants in every ``response`` object (``tools``, ``tool_choice``,
    ``instructions``, ``metadata``, ``previous_response_id``...).
    """

    __slots__ = (
        "_base",
        "_calls",
        "_ctx",
        "_current",
        "_custom",
        "_echo",
        "_ended",
        "_finish",
        "_items",
        "_open_calls",
        "_seq",
        "_started",
        "_usage",
        "tool_calls",
    )

    def __init__(
        self,
        ctx: StreamContext,
        custom_tools: frozenset[str] = frozenset(),
        *,
        echo: Mapping[str, Any] | None = None,
    ) -> None:
        self._ctx = ctx
        self._custom = custom_tools
        self._echo = dict(echo or {})
        self._base = response_id(ctx).removeprefix("resp_")
        self._seq = 0
        self._items: list[_Item] = []
        self._current: _Item | None = None  # the open message or reasoning item
        self._open_calls: list[_Item] = []
        self._calls: list[_Item] = []  # by call index
        self._finish: FinishReason = "stop"
        self._usage: Usage | None = None
        self._started = False
        self._ended = False
        self.tool_calls = 0

    # Framing ---------------------------------------------------------------------------------

    def _event(self, etype: str, fields: JSONBody) -> bytes:
        data = {"type": etype, "sequence_number": self._seq, **fields}
        self._seq += 1
        return b"event: " + etype.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def _delta(self, etype: bytes, item: _Item, tail: bytes) -> bytes:
        """A hot-path event: prebuilt head and item bytes around the caller's tail."""
        seq = self._seq
        self._seq += 1
        return (
            b"event: "
            + etype
            + b'\ndata: {"type":"'
            + etype
            + b'","sequence_number":'
            + str(seq).encode()
            + item.where
            + tail
            + b"}\n\n"
        )

    def response(self, status: str) -> JSONBody:
        """The ``response`` object as it stands: every closed item in ``output``."""
        body: JSONBody = {
            "id": response_id(self._ctx),
            "object": "response",
            "created_at": self._ctx.created,
            "status": status,
            "error": None,
            "incomplete_details": None,
            "instructions": None,
            "model": self._ctx.model,
            "output": [item.done for item in self._items if item.done is not None],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": None,
        }
        body.update(self._echo)
        return body

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        response = self.response("in_progress")
        return self._event("response.created", {"response": response}) + self._event(
            "response.in_progress", {"response": response}
        )

    def _add(self, kind: str, prefix: str, fields: JSONBody) -> tuple[_Item, bytes]:
        """Opens a new item (after the stream's start) and writes its ``output_item.added``."""
        out = self._start()
        index = len(self._items)
        item_id = f"{prefix}_{self._base}_{index}"
        where = b',"item_id":' + orjson.dumps(item_id) + b',"output_index":' + str(index).encode()
        item = _Item(kind, index, item_id, where, call_id=fields.get("call_id", ""), name=fields.get("name", ""))
        self._items.append(item)
        added = {"id": item_id, "type": kind, **fields}
        return item, out + self._event("response.output_item.added", {"output_index": index, "item": added})

    def _item_done(self, item: _Item, done: JSONBody) -> bytes:
        item.done = done
        return self._event("response.output_item.done", {"output_index": item.index, "item": done})

    def _status(self) -> str:
        """The status of an item closed now: ``incomplete`` once the answer was cut short."""
        return "incomplete" if self._finish in _INCOMPLETE else "completed"

    def _ids(self, item: _Item) -> JSONBody:
        return {"item_id": item.id, "output_index": item.index}

    # Closing ---------------------------------------------------------------------------------

    def _close_current(self) -> bytes:
        item, self._current = self._current, None
        if item is None:
            return b""
        return self._close_message(item) if item.kind == "message" else self._close_reasoning(item)

    def _close_calls(self) -> bytes:
        calls, self._open_calls = self._open_calls, []
        return b"".join(self._close_call(call) for call in calls)

    def _close_all(self) -> bytes:
        return self._close_current() + self._close_calls()

    def _close_part(self, item: _Item) -> bytes:
        if item.part is None:
            return b""
        text = "".join(item.chunks)
        where = {**self._ids(item), "content_index": len(item.parts)}
        if item.part == "output_text":
            part: JSONBody = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
            out = self._event("response.output_text.done", {**where, "text": text, "logprobs": []})
        else:
            part = {"type": "refusal", "refusal": text}
            out = self._event("response.refusal.done", {**where, "refusal": text})
        item.parts.append(part)
        item.part, item.chunks = None, []
        return out + self._event("response.content_part.done", {**where, "part": part})

    def _close_message(self, item: _Item) -> bytes:
        out = self._close_part(item)
        done = {"id": item.id, "type": "message", "status": self._status(), "content": item.parts, "role": "assistant"}
        return out + self._item_done(item, done)

    def _close_reasoning(self, item: _Item) -> bytes:
        out = b""
        summary: list[JSONBody] = []
        if item.part is not None:
            text = "".join(item.chunks)
            where = {**self._ids(item), "summary_index": 0}
            part = {"type": "summary_text", "text": text}
            out = self._event("response.reasoning_summary_text.done", {**where, "text": text})
            out += self._event("response.reasoning_summary_part.done", {**where, "part": part})
            summary.append(part)
        done = {"id": item.id, "type": "reasoning", "summary": summary, "encrypted_content": item.encrypted}
        return out + self._item_done(item, done)

    def _close_call(self, item: _Item) -> bytes:
        arguments = "".join(item.chunks)
        out = b""
        if item.kind == "custom_tool_call":
            text = _custom_input(arguments)
            if text:
                out = self._event("response.custom_tool_call_input.delta", {**self._ids(item), "delta": text})
            out += self._event("response.custom_tool_call_input.done", {**self._ids(item), "input": text})
            done = {"id": item.id, "type": item.kind, "call_id": item.call_id, "name": item.name, "input": text}
            return out + self._item_done(item, done)
        if not arguments.strip():
            arguments = "{}"
            out = self._arguments_delta(item, arguments)
        out += self._event("response.function_call_arguments.done", {**self._ids(item), "arguments": arguments})
        done = {
            "id": item.id,
            "type": "function_call",
            "status": self._status(),
            "arguments": arguments,
            "call_id": item.call_id,
            "name": item.name,
        }
        return out + self._item_done(item, done)

    # Opening ---------------------------------------------------------------------------------

    def _message_part(self, kind: str) -> tuple[_Item, bytes]:
        """The open message item with an open part of ``kind`` (``output_text`` or ``refusal``)."""
        out = b""
        item = self._current
        if item is None or item.kind != "message":
            out = self._close_all()
            item, added = self._add("message", "msg", {"status": "in_progress", "content": [], "role": "assistant"})
            out += added
            self._current = item
        if item.part != kind:
            out += self._close_part(item)
            item.part = kind
            part: JSONBody = (
                {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
                if kind == "output_text"
                else {"type": "refusal", "refusal": ""}
            )
            where = {**self._ids(item), "content_index": len(item.parts)}
            out += self._event("response.content_part.added", {**where, "part": part})
        return item, out

    def _reasoning_item(self) -> tuple[_Item, bytes]:
        """The open reasoning item, or a new one."""
        item = self._current
        if item is not None and item.kind == "reasoning":
            return item, b""
        out = self._close_all()
        item, added = self._add("reasoning", "rs", {"summary": []})
        self._current = item
        return item, out + added

    def _summary(self, item: _Item, text: str) -> bytes:
        out = b""
        if item.part is None:
            item.part = "summary_text"
            where = {**self._ids(item), "summary_index": 0}
            part = {"type": "summary_text", "text": ""}
            out = self._event("response.reasoning_summary_part.added", {**where, "part": part})
        item.chunks.append(text)
        tail = b',"summary_index":0,"delta":' + orjson.dumps(text)
        return out + self._delta(b"response.reasoning_summary_text.delta", item, tail)

    def _sealed(self, item: _Item, encrypted: str) -> bytes:
        """Closes the reasoning item ``item`` with its ``encrypted_content``."""
        item.encrypted = encrypted
        return self._close_current()

    def _marker(self, encrypted: str) -> bytes:
        """An empty reasoning item carrying a provider signature (see the module docstring)."""
        out = self._close_all()
        item, added = self._reasoning_item()
        return out + added + self._sealed(item, encrypted)

    def _arguments_delta(self, item: _Item, fragment: str) -> bytes:
        return self._delta(b"response.function_call_arguments.delta", item, b',"delta":' + orjson.dumps(fragment))

    # The StreamEncoder protocol ----------------------------------------------------------------

    def text(self, text: str, signature: str | None = None) -> bytes:
        if self._ended:
            return b""
        out = b""
        if text:
            item, out = self._message_part("output_text")
            item.chunks.append(text)
            tail = b',"content_index":' + str(len(item.parts)).encode() + b',"delta":' + orjson.dumps(text)
            out += self._delta(b"response.output_text.delta", item, tail + b',"logprobs":[]')
        if signature:
            out += self._marker(GEMINI_SIGNATURE_PREFIX + signature)
        return out

    def refusal(self, text: str) -> bytes:
        if self._ended or not text:
            return b""
        item, out = self._message_part("refusal")
        item.chunks.append(text)
        tail = b',"content_index":' + str(len(item.parts)).encode() + b',"delta":' + orjson.dumps(text)
        return out + self._delta(b"response.refusal.delta", item, tail)

    def reasoning(self, text: str, signature: str | None = None) -> bytes:
        if self._ended:
            return b""
        item, out = self._reasoning_item()
        if text:
            out += self._summary(item, text)
        if signature:
            out += self._sealed(item, GEMINI_SIGNATURE_PREFIX + signature)
        return out

    def signature(self, signature: str) -> bytes:
        if self._ended:
            return b""
        item = self._current
        if item is not None and item.kind == "reasoning":
            return self._sealed(item, GEMINI_SIGNATURE_PREFIX + signature)
        return self._marker(GEMINI_SIGNATURE_PREFIX + signature)

    def thinking_block(self, thinking: str, signature: str) -> bytes:
        """Closes the open reasoning item with ``signature``; the text comes first when it came only here."""
        if self._ended:
            return b""
        item, out = self._reasoning_item()
        if thinking and item.part is None:
            out += self._summary(item, thinking)
        return out + self._sealed(item, ANTHROPIC_SIGNATURE_PREFIX + signature)

    def redacted_thinking(self, data: str) -> bytes:
        if self._ended:
            return b""
        return self._marker(ANTHROPIC_REDACTED_PREFIX + data)

    def tool_call_start(self, call_id: str, name: str, arguments: str = "", signature: str | None = None) -> bytes:
        if self._ended:
            return b""
        out = self._marker(GEMINI_SIGNATURE_PREFIX + signature) if signature else b""
        out += self._close_current()
        self.tool_calls += 1
        if name in self._custom:
            item, added = self._add("custom_tool_call", "ctc", {"call_id": call_id, "name": name, "input": ""})
        else:
            fields = {"status": "in_progress", "arguments": "", "call_id": call_id, "name": name}
            item, added = self._add("function_call", "fc", fields)
        self._calls.append(item)
        self._open_calls.append(item)
        return out + added + self.tool_call_arguments(len(self._calls) - 1, arguments)

    def tool_call_arguments(self, index: int, fragment: str) -> bytes:
        if self._ended or not fragment or not 0 <= index < len(self._calls):
            return b""
        item = self._calls[index]
        if item.done is not None:
            return b""  # the call was closed (see the module docstring)
        item.chunks.append(fragment)
        return b"" if item.kind == "custom_tool_call" else self._arguments_delta(item, fragment)

    def finish(self, reason: FinishReason) -> bytes:
        self._finish = reason
        return b""

    def usage(self, usage: Usage) -> bytes:
        self._usage = usage
        return b""

    def end(self) -> bytes:
        """Closes every open item and writes the final ``response.completed`` or ``response.incomplete``."""
        if self._ended:
            return b""
        out = self._start() + self._close_all()
        self._ended = True
        response = self.final_response()
        etype = "response.completed" if response["status"] == "completed" else "response.incomplete"
        return out + self._event(etype, {"response": response})

    def final_response(self) -> JSONBody:
        """The ``response`` object of the end: status (and why incomplete), every item, usage."""
        reason = _INCOMPLETE.get(self._finish)
        response = self.response("completed" if reason is None else "incomplete")
        if reason is not None:
            response["incomplete_details"] = {"reason": reason}
        if self._usage is not None:
            response["usage"] = usage_dict(self._usage)
        return response

    def error_frame(self, err: ProxyError) -> bytes:
        """``response.failed`` ending a stream that failed after it started (nothing after it)."""
        if self._ended:
            return b""
        out = self._start()
        self._ended = True
        response = self.response("failed")
        response["error"] = {"code": _error_code(err), "message": err.message}
        return out + self._event("response.failed", {"response": response})


def _custom_input(arguments: str) -> str:
    """A custom tool's input from the arguments of the function standing for it.

    ``{"input": "..."}`` as asked; a model that wrote another single string field, or no JSON
    at all, still gets its text through rather than an empty input.
    """
    try:
        value = orjson.loads(arguments) if arguments.strip() else {}
    except orjson.JSONDecodeError:
        return arguments
    if isinstance(value, dict):
        text = value.get(CUSTOM_INPUT)
        if isinstance(text, str):
            return text
        strings = [v for v in value.values() if isinstance(v, str)]
        if len(value) == 1 and strings:
            return strings[0]
        return "" if not value else arguments
    return value if isinstance(value, str) else arguments


def encode_response(
    completion: Completion,
    ctx: StreamContext,
    custom_tools: frozenset[str] = frozenset(),
    *,
    echo: Mapping[str, Any] | None = None,
) -> bytes:
    """A whole ``response`` object: reasoning, message, tool calls; status; usage.

    Written by replaying the completion through ``ResponsesEncoder``, so a whole answer has
    exactly the items and ids the same answer streamed would have.
    """
    c = completion
    enc = ResponsesEncoder(ctx, custom_tools, echo=echo)
    for block in c.thinking_blocks:
        if block.get("type") == "redacted_thinking":
            enc.redacted_thinking(str(block.get("data", "")))
        else:
            enc.thinking_block(str(block.get("thinking", "")), str(block.get("signature", "")))
    if c.reasoning and not c.thinking_blocks:
        enc.reasoning(c.reasoning)
    if c.text:
        enc.text(c.text)
    if c.text_signature:
        enc.signature(c.text_signature)
    if c.refusal:
        enc.refusal(c.refusal)
    for call in c.tool_calls:
        enc.tool_call_start(call.id, call.name, call.arguments, call.signature)
    enc.finish(c.finish)
    if c.usage is not None:
        enc.usage(c.usage)
    enc.end()
    return orjson.dumps(enc.final_response())
