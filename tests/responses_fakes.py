"""One fake upstream for the Responses front door's end-to-end tests (issue 12).

A single aiohttp app speaks four wire formats on 127.0.0.1, chosen by the path the proxy calls:
Anthropic ``/v1/messages``, Gemini ``/v1beta/models/{model}:(stream)generateContent``, OpenAI
chat ``/v1/chat/completions`` and OpenAI Responses ``/v1/responses``. A test queues *neutral*
answers (``Answer`` of ``Think``/``Say``/``Call``) and the fake renders each in the wire format
of the request that takes it, streamed (in 7-byte writes, so events split across reads) or as
one JSON body. So one scenario runs against every translated upstream with one expectation.
Every request is recorded as it arrived.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

JSON = dict[str, Any]


@dataclass(frozen=True)
class Think:
    """Reasoning: Anthropic thinking block (signed), Gemini thought part, chat ``reasoning_content``."""

    text: str
    signature: str = ""


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class Call:
    """A tool call; ``signature`` is a Gemini thought signature on the functionCall part."""

    name: str
    arguments: JSON
    call_id: str = ""
    signature: str = ""


Output = Think | Say | Call


@dataclass(frozen=True)
class Answer:
    """One upstream answer: ``stop`` is stop, tool or length; ``usage`` is (input incl. cached,
    cached, output incl. reasoning, reasoning); ``cut`` ends a stream early: ``error`` (the
    provider's mid-stream error) or ``truncate`` (the connection just ends)."""

    outputs: tuple[Output, ...]
    stop: str = "stop"
    usage: tuple[int, int, int, int] = (100, 40, 30, 10)
    cut: str | None = None


@dataclass(frozen=True)
class Raw:
    """An answer given as it is: status, headers and body bytes."""

    body: bytes
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "text/event-stream"})


@dataclass
class Seen:
    kind: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: JSON
    stream: bool


class Upstream:
    """The fake (see the module docstring); ``replies`` are taken in order, one per request."""

    def __init__(self) -> None:
        self.replies: deque[Answer | Raw] = deque()
        self.seen: list[Seen] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        return app

    def queue(self, *replies: Answer | Raw) -> None:
        self.replies.extend(replies)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        path = request.path
        if path.startswith("/v1beta/models/"):
            kind, stream = "gemini", path.endswith(":streamGenerateContent")
            if stream:
                assert request.query.get("alt") == "sse"
        elif path == "/v1/messages":
            kind, stream = "anthropic", body.get("stream") is True
        elif path == "/v1/chat/completions":
            kind, stream = "chat", body.get("stream") is True
        elif path == "/v1/responses":
            kind, stream = "responses", body.get("stream") is True
        else:
            return web.json_response({"error": {"message": f"no route {path}"}}, status=404)
        self.seen.append(Seen(kind, path, dict(request.query), dict(request.headers), body, stream))
        reply = self.replies.popleft()
        if isinstance(reply, Raw):
            if reply.headers.get("Content-Type") != "text/event-stream":
                return web.Response(status=reply.status, body=reply.body, headers=reply.headers)
            return await _write(request, reply.body, reply.status)
        if not stream:
            return web.json_response(WHOLE[kind](reply))
        return await _write(request, STREAM[kind](reply))


async def _write(request: web.Request, data: bytes, status: int = 200) -> web.StreamResponse:
    response = web.StreamResponse(status=status, headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for i in range(0, len(data), 7):
        await response.write(data[i : i + 7])
    await response.write_eof()
    return response


def _halves(text: str) -> list[str]:
    half = len(text) // 2
    return [text[:half], text[half:]]


def _event(name: str, data: JSON) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def _data(data: JSON | str) -> bytes:
    return b"data: " + (data if isinstance(data, str) else json.dumps(data)).encode() + b"\n\n"


def _call_id(kind: str, index: int, call: Call) -> str:
    return call.call_id or f"{kind}_call_{index}"


# Anthropic ----------------------------------------------------------------------------------

_ANTHROPIC_STOP = {"stop": "end_turn", "tool": "tool_use", "length": "max_tokens"}


def _anthropic_usage(answer: Answer) -> JSON:
    inp, cached, out, reasoning = answer.usage
    return {
        "input_tokens": inp - cached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": out,
        "output_tokens_details": {"thinking_tokens": reasoning},
    }


def anthropic_stream(answer: Answer) -> bytes:
    start = {**anthropic_whole(Answer(())), "stop_reason": None}
    start["usage"] = {**_anthropic_usage(answer), "output_tokens": 1}
    del start["usage"]["output_tokens_details"]
    out = [_event("message_start", {"type": "message_start", "message": start})]
    for index, item in enumerate(answer.outputs):
        deltas: list[JSON]
        if isinstance(item, Think):
            block: JSON = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": t} for t in _halves(item.text)]
            deltas.append({"type": "signature_delta", "signature": item.signature})
        elif isinstance(item, Say):
            block = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": t} for t in _halves(item.text)]
        else:
            block = {"type": "tool_use", "id": _call_id("toolu", index, item), "name": item.name, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": t} for t in _halves(json.dumps(item.arguments))]
        out.append(
            _event("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})
        )
        out += [
            _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas
        ]
        out.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    if answer.cut == "error":
        out.append(_event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
    elif answer.cut is None:
        delta = {"stop_reason": _ANTHROPIC_STOP[answer.stop], "stop_sequence": None}
        usage = {"output_tokens": answer.usage[2], "output_tokens_details": {"thinking_tokens": answer.usage[3]}}
        out.append(_event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        out.append(_event("message_stop", {"type": "message_stop"}))
    return b"".join(out)


def anthropic_whole(answer: Answer) -> JSON:
    content: list[JSON] = []
    for index, item in enumerate(answer.outputs):
        if isinstance(item, Think):
            content.append({"type": "thinking", "thinking": item.text, "signature": item.signature})
        elif isinstance(item, Say):
            content.append({"type": "text", "text": item.text})
        else:
            tool = {
                "type": "tool_use",
                "id": _call_id("toolu", index, item),
                "name": item.name,
                "input": item.arguments,
            }
            content.append(tool)
    return {
        "id": "msg_fake1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": content,
        "stop_reason": _ANTHROPIC_STOP[answer.stop],
        "stop_sequence": None,
        "usage": _anthropic_usage(answer),
    }


# Gemini -------------------------------------------------------------------------------------


def _gemini_part(item: Output) -> JSON:
    if isinstance(item, Think):
        part: JSON = {"text": item.text, "thought": True}
    elif isinstance(item, Say):
        part = {"text": item.text}
    else:
        part = {"functionCall": {"name": item.name, "args": item.arguments}}
    if not isinstance(item, Say) and item.signature:
        part["thoughtSignature"] = item.signature
    return part


def _gemini_usage(answer: Answer) -> JSON:
    inp, cached, out, reasoning = answer.usage
    return {
        "promptTokenCount": inp,
        "cachedContentTokenCount": cached,
        "candidatesTokenCount": out - reasoning,
        "thoughtsTokenCount": reasoning,
        "totalTokenCount": inp + out,
    }


def _gemini_chunk(parts: list[JSON], answer: Answer, finish: bool) -> JSON:
    candidate: JSON = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = "MAX_TOKENS" if answer.stop == "length" else "STOP"
    return {"candidates": [candidate], "usageMetadata": _gemini_usage(answer), "modelVersion": "gemini-2.5-flash"}


def gemini_stream(answer: Answer) -> bytes:
    out = [_data(_gemini_chunk([_gemini_part(item)], answer, False)) for item in answer.outputs]
    if answer.cut == "error":
        out.append(_data({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}))
    elif answer.cut is None:
        out.append(_data(_gemini_chunk([{"text": ""}], answer, True)))
    return b"".join(out)


def gemini_whole(answer: Answer) -> JSON:
    return _gemini_chunk([_gemini_part(item) for item in answer.outputs], answer, True)


# OpenAI chat --------------------------------------------------------------------------------

_CHAT_STOP = {"stop": "stop", "tool": "tool_calls", "length": "length"}


def _chat_usage(answer: Answer) -> JSON:
    inp, cached, out, reasoning = answer.usage
    return {
        "prompt_tokens": inp,
        "completion_tokens": out,
        "total_tokens": inp + out,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def _chunk(delta: JSON | None, finish: str | None = None, usage: JSON | None = None) -> JSON:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    chunk: JSON = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-x", "choices": choices}
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def chat_stream(answer: Answer) -> bytes:
    chunks: list[JSON] = [_chunk({"role": "assistant", "content": ""})]
    calls = 0
    for index, item in enumerate(answer.outputs):
        if isinstance(item, Think):
            chunks += [_chunk({"reasoning_content": t}) for t in _halves(item.text)]
        elif isinstance(item, Say):
            chunks += [_chunk({"content": t}) for t in _halves(item.text)]
        else:
            fn = {"name": item.name, "arguments": ""}
            head = {"index": calls, "id": _call_id("call", index, item), "type": "function", "function": fn}
            chunks.append(_chunk({"tool_calls": [head]}))
            raw = json.dumps(item.arguments)
            for i in range(0, len(raw), 7):
                chunks.append(_chunk({"tool_calls": [{"index": calls, "function": {"arguments": raw[i : i + 7]}}]}))
            calls += 1
    out = [_data(c) for c in chunks]
    if answer.cut == "error":
        out.append(_data({"error": {"message": "The model is overloaded.", "type": "server_error", "code": None}}))
    elif answer.cut is None:
        out += [
            _data(_chunk({}, _CHAT_STOP[answer.stop])),
            _data(_chunk(None, usage=_chat_usage(answer))),
            _data("[DONE]"),
        ]
    return b"".join(out)


def chat_whole(answer: Answer) -> JSON:
    message: JSON = {"role": "assistant", "content": "".join(i.text for i in answer.outputs if isinstance(i, Say))}
    thoughts = "".join(i.text for i in answer.outputs if isinstance(i, Think))
    if thoughts:
        message["reasoning_content"] = thoughts
    calls = [
        {
            "id": _call_id("call", k, i),
            "type": "function",
            "function": {"name": i.name, "arguments": json.dumps(i.arguments)},
        }
        for k, i in enumerate(answer.outputs)
        if isinstance(i, Call)
    ]
    if calls:
        message["tool_calls"] = calls
    choice = {"index": 0, "message": message, "finish_reason": _CHAT_STOP[answer.stop]}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-x",
        "choices": [choice],
        "usage": _chat_usage(answer),
    }


STREAM = {"anthropic": anthropic_stream, "gemini": gemini_stream, "chat": chat_stream}
WHOLE = {"anthropic": anthropic_whole, "gemini": gemini_whole, "chat": chat_whole}


# What a translated upstream received, read back into one neutral shape ----------------------


def history(kind: str, body: JSON) -> list[tuple[Any, ...]]:
    """The conversation a translated upstream got, as ``(role, what...)`` tuples:
    ``("system", text)``, ``("user", text)``, ``("assistant", text)``, ``("think", text, signature)``,
    ``("call", name, arguments, id_or_signature)``, ``("result", id_or_name, text)``."""
    if kind == "anthropic":
        return _anthropic_history(body)
    if kind == "gemini":
        return _gemini_history(body)
    return _chat_history(body)


def _anthropic_history(body: JSON) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    system = body.get("system")
    if system:
        text = system if isinstance(system, str) else "".join(b["text"] for b in system)
        out.append(("system", text))
    for message in body["messages"]:
        content = message["content"]
        if isinstance(content, str):
            out.append((message["role"], content))
            continue
        for block in content:
            kind = block["type"]
            if kind == "text":
                out.append((message["role"], block["text"]))
            elif kind == "thinking":
                out.append(("think", block["thinking"], block["signature"]))
            elif kind == "redacted_thinking":
                out.append(("think", "", block["data"]))
            elif kind == "tool_use":
                out.append(("call", block["name"], block["input"], block["id"]))
            elif kind == "tool_result":
                inner = block["content"]
                text = inner if isinstance(inner, str) else "".join(p.get("text", "") for p in inner)
                out.append(("result", block["tool_use_id"], text))
    return out


def _gemini_history(body: JSON) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    system = body.get("systemInstruction") or body.get("system_instruction")
    if system:
        out.append(("system", "".join(p.get("text", "") for p in system["parts"])))
    for content in body["contents"]:
        role = "assistant" if content["role"] == "model" else "user"
        for part in content["parts"]:
            if "functionCall" in part:
                call = part["functionCall"]
                out.append(("call", call["name"], call.get("args", {}), part.get("thoughtSignature", "")))
            elif "functionResponse" in part:
                response = part["functionResponse"]
                out.append(("result", response["name"], json.dumps(response["response"])))
            elif part.get("thought"):
                out.append(("think", part.get("text", ""), part.get("thoughtSignature", "")))
            elif "text" in part:
                out.append((role, part["text"]))
    return out


def _chat_history(body: JSON) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for message in body["messages"]:
        content = message.get("content")
        text = content if isinstance(content, str) or content is None else "".join(p.get("text", "") for p in content)
        if message["role"] == "tool":
            out.append(("result", message["tool_call_id"], text))
            continue
        if text:
            out.append((message["role"], text))
        for call in message.get("tool_calls") or ():
            fn = call["function"]
            out.append(("call", fn["name"], json.loads(fn["arguments"]), call["id"]))
    return out


def tool_names(kind: str, body: JSON) -> list[str]:
    """The names of the tools a translated upstream was offered."""
    tools = body.get("tools") or []
    if kind == "anthropic":
        return [t["name"] for t in tools]
    if kind == "gemini":
        return [f["name"] for t in tools for f in t.get("functionDeclarations") or t.get("function_declarations") or ()]
    return [t["function"]["name"] for t in tools]


def tool_schema(kind: str, body: JSON, name: str) -> JSON:
    """The parameters schema of tool ``name`` as a translated upstream got it."""
    tools = body.get("tools") or []
    if kind == "anthropic":
        return next(t["input_schema"] for t in tools if t["name"] == name)
    if kind == "gemini":
        decls = [f for t in tools for f in t.get("functionDeclarations") or t.get("function_declarations") or ()]
        found = next(f for f in decls if f["name"] == name)
        return found.get("parametersJsonSchema") or found.get("parameters") or {}
    return next(t["function"]["parameters"] for t in tools if t["function"]["name"] == name)
