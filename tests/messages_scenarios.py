"""One model answer ("what the model said"), rendered in three wire formats, and a fake upstream.

A ``Said`` is the neutral script of a scenario: thinking, text and tool-use blocks, how the turn
ended and the token counts. ``anthropic_sse``, ``openai_sse`` and ``gemini_sse`` write it the way
each vendor streams it (Anthropic events, OpenAI chat chunks, Gemini ``alt=sse`` chunks), so the
same scenario can be served by each fake upstream and the client's final messages compared.
``expected`` is what a direct Anthropic call gives for it, as ``summary`` reads a message.

``Upstream`` is one fake vendor server on 127.0.0.1: it records every request (path, query,
headers, raw body) and answers from a queue of ``Answer``s, written in small pieces so events
arrive split across network reads.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

Stop = Literal["end_turn", "max_tokens", "tool_use", "refusal"]


@dataclass(frozen=True)
class Thinking:
    text: str


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Tool:
    id: str
    name: str
    input: dict[str, Any]


Block = Thinking | Text | Tool


@dataclass(frozen=True)
class Said:
    """What the model said: its blocks, why it stopped, and tokens (``input`` excludes ``cached``)."""

    blocks: tuple[Block, ...]
    stop: Stop = "end_turn"
    input: int = 25
    cached: int = 0
    output: int = 17


def halves(text: str) -> list[str]:
    """``text`` cut in two (as vendors cut deltas), or itself when too short."""
    mid = len(text) // 2
    return [text[:mid], text[mid:]] if mid else [text]


# -- Anthropic ------------------------------------------------------------------------------


def sse_event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _anthropic_block(index: int, block: Block) -> bytes:
    def delta(d: dict[str, Any]) -> bytes:
        return sse_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})

    if isinstance(block, Thinking):
        start: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [delta({"type": "thinking_delta", "thinking": t}) for t in halves(block.text)]
        deltas.append(delta({"type": "signature_delta", "signature": "EqQBCkYIBxgCKkDsig=="}))
    elif isinstance(block, Text):
        start = {"type": "text", "text": ""}
        deltas = [delta({"type": "text_delta", "text": t}) for t in halves(block.text)]
    else:
        start = {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}
        raw = json.dumps(block.input) if block.input else ""
        deltas = [delta({"type": "input_json_delta", "partial_json": p}) for p in ["", *(halves(raw) if raw else [])]]
    head = sse_event("content_block_start", {"type": "content_block_start", "index": index, "content_block": start})
    return head + b"".join(deltas) + sse_event("content_block_stop", {"type": "content_block_stop", "index": index})


def anthropic_head(said: Said, model: str = "claude-sonnet-4-5-20250929") -> bytes:
    usage = {
        "input_tokens": said.input,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": said.cached,
        "output_tokens": 1,
    }
    message: dict[str, Any] = {
        "id": "msg_01FakeUpstream",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    return sse_event("message_start", {"type": "message_start", "message": message})


def anthropic_blocks(said: Said) -> bytes:
    return b"".join(_anthropic_block(i, b) for i, b in enumerate(said.blocks))


def anthropic_tail(said: Said) -> bytes:
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": said.stop, "stop_sequence": None},
        "usage": {"output_tokens": said.output},
    }
    return sse_event("message_delta", delta) + sse_event("message_stop", {"type": "message_stop"})


def anthropic_sse(said: Said) -> bytes:
    return anthropic_head(said) + anthropic_blocks(said) + anthropic_tail(said)


def anthropic_message(said: Said) -> dict[str, Any]:
    """The whole (non-stream) Anthropic ``message`` for ``said``."""
    content: list[dict[str, Any]] = []
    for block in said.blocks:
        if isinstance(block, Thinking):
            content.append({"type": "thinking", "thinking": block.text, "signature": "EqQBCkYIBxgCKkDsig=="})
        elif isinstance(block, Text):
            content.append({"type": "text", "text": block.text})
        else:
            content.append({"type": "tool_use", "id": block.id, "name": block.name, "input": block.input})
    return {
        "id": "msg_01FakeUpstream",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": content,
        "stop_reason": said.stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": said.input,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": said.cached,
            "output_tokens": said.output,
        },
    }


# -- OpenAI chat ----------------------------------------------------------------------------

_OPENAI_FINISH = {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls", "refusal": "content_filter"}


def _chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-x"}
    return {**base, "choices": choices, **extra}


def data_frame(obj: dict[str, Any] | str) -> bytes:
    return b"data: " + (obj if isinstance(obj, str) else json.dumps(obj)).encode() + b"\n\n"


def openai_chunks(said: Said) -> list[dict[str, Any]]:
    """The chunks (without usage, finish and ``[DONE]``) of ``said``'s blocks."""
    chunks = [_chunk({"role": "assistant", "content": ""})]
    calls = 0
    for block in said.blocks:
        if isinstance(block, Thinking):
            chunks += [_chunk({"reasoning_content": t}) for t in halves(block.text)]
        elif isinstance(block, Text):
            chunks += [_chunk({"content": t}) for t in halves(block.text)]
        else:
            head = {"index": calls, "id": block.id, "type": "function"}
            chunks.append(_chunk({"tool_calls": [{**head, "function": {"name": block.name, "arguments": ""}}]}))
            raw = json.dumps(block.input) if block.input else ""
            for part in halves(raw) if raw else []:
                chunks.append(_chunk({"tool_calls": [{"index": calls, "function": {"arguments": part}}]}))
            calls += 1
    return chunks


def openai_tail(said: Said) -> list[dict[str, Any] | str]:
    usage = {
        "prompt_tokens": said.input + said.cached,
        "completion_tokens": said.output,
        "total_tokens": said.input + said.cached + said.output,
        "prompt_tokens_details": {"cached_tokens": said.cached},
    }
    return [_chunk({}, _OPENAI_FINISH[said.stop]), _chunk(None, usage=usage), "[DONE]"]


def openai_sse(said: Said) -> bytes:
    return b"".join(data_frame(c) for c in [*openai_chunks(said), *openai_tail(said)])


def openai_completion(said: Said) -> dict[str, Any]:
    """The whole ``chat.completion`` for ``said``."""
    text = "".join(b.text for b in said.blocks if isinstance(b, Text)) or None
    reasoning = "".join(b.text for b in said.blocks if isinstance(b, Thinking)) or None
    calls = [
        {"id": b.id, "type": "function", "function": {"name": b.name, "arguments": json.dumps(b.input)}}
        for b in said.blocks
        if isinstance(b, Tool)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": text, "reasoning_content": reasoning}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-x",
        "choices": [{"index": 0, "message": message, "finish_reason": _OPENAI_FINISH[said.stop]}],
        "usage": {
            "prompt_tokens": said.input + said.cached,
            "completion_tokens": said.output,
            "total_tokens": said.input + said.cached + said.output,
            "prompt_tokens_details": {"cached_tokens": said.cached},
        },
    }


# -- Gemini ---------------------------------------------------------------------------------

_GEMINI_FINISH = {"end_turn": "STOP", "max_tokens": "MAX_TOKENS", "tool_use": "STOP", "refusal": "SAFETY"}


def gemini_part(block: Block) -> list[dict[str, Any]]:
    if isinstance(block, Thinking):
        return [{"text": t, "thought": True} for t in halves(block.text)]
    if isinstance(block, Text):
        return [{"text": t} for t in halves(block.text)]
    call: dict[str, Any] = {"name": block.name}
    if block.input:
        call["args"] = block.input
    return [{"functionCall": call}]


def gemini_chunk(parts: list[dict[str, Any]], finish: str | None = None, usage: Any = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    out: dict[str, Any] = {"candidates": [candidate]}
    out["usageMetadata"] = usage or {"promptTokenCount": 0, "totalTokenCount": 0}
    out["modelVersion"] = "gemini-2.5-flash"
    return out


def gemini_usage(said: Said) -> dict[str, Any]:
    usage = {
        "promptTokenCount": said.input + said.cached,
        "candidatesTokenCount": said.output,
        "totalTokenCount": said.input + said.cached + said.output,
    }
    if said.cached:
        usage["cachedContentTokenCount"] = said.cached
    return usage


def gemini_chunks(said: Said) -> list[dict[str, Any]]:
    """One chunk per part (every part but the last), without the finishing chunk."""
    return [gemini_chunk([p]) for block in said.blocks for p in gemini_part(block)]


def gemini_tail(said: Said) -> dict[str, Any]:
    return gemini_chunk([], _GEMINI_FINISH[said.stop], gemini_usage(said))


def gemini_sse(said: Said) -> bytes:
    return b"".join(data_frame(c) for c in [*gemini_chunks(said), gemini_tail(said)])


def gemini_response(said: Said) -> dict[str, Any]:
    """The whole ``generateContent`` answer for ``said``."""
    parts = [p for block in said.blocks for p in gemini_part(block)]
    return {**gemini_chunk(parts, _GEMINI_FINISH[said.stop], gemini_usage(said))}


# -- What the client should end up with -----------------------------------------------------


def expected(said: Said) -> dict[str, Any]:
    """What ``summary`` gives for a direct Anthropic call answering ``said``."""
    return summary(anthropic_message(said))


def summary(message: dict[str, Any]) -> dict[str, Any]:
    """A message as compared across upstreams: block types and contents (tool ids and thinking
    signatures differ by vendor and are left out), stop reason and the four token counts."""
    blocks: list[tuple[Any, ...]] = []
    for block in message["content"]:
        if block["type"] == "thinking":
            blocks.append(("thinking", block["thinking"]))
        elif block["type"] == "text":
            blocks.append(("text", block["text"]))
        elif block["type"] == "tool_use":
            blocks.append(("tool_use", block["name"], block["input"]))
        else:
            blocks.append((block["type"],))
    u = message["usage"]
    usage = (
        u["input_tokens"],
        u.get("cache_read_input_tokens") or 0,
        u.get("cache_creation_input_tokens") or 0,
        u["output_tokens"],
    )
    return {"content": blocks, "stop_reason": message["stop_reason"], "usage": usage}


# -- The fake upstream ----------------------------------------------------------------------


@dataclass
class Answer:
    """One scripted answer: a status, a body (streamed in ``piece``-byte writes when SSE), headers."""

    body: bytes
    status: int = 200
    sse: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    piece: int = 7


@dataclass
class Seen:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> Any:
        return json.loads(self.raw) if self.raw else None


class Upstream:
    """A fake vendor: answers each request with the next queued ``Answer`` (the last one repeats)."""

    def __init__(self) -> None:
        self.answers: deque[Answer] = deque()
        self.seen: list[Seen] = []

    def queue(self, *answers: Answer) -> None:
        self.answers.extend(answers)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        return app

    @property
    def last(self) -> Seen:
        return self.seen[-1]

    async def _any(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.seen.append(Seen(request.method, request.path, dict(request.query), dict(request.headers), raw))
        answer = self.answers.popleft() if len(self.answers) > 1 else self.answers[0]
        if not answer.sse or answer.status != 200:
            headers = {"Content-Type": "application/json", **answer.headers}
            return web.Response(status=answer.status, body=answer.body, headers=headers)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **answer.headers})
        await response.prepare(request)
        for i in range(0, len(answer.body), answer.piece):
            await response.write(answer.body[i : i + answer.piece])
        await response.write_eof()
        return response
