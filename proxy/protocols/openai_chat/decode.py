"""OpenAI chat chunks -> stream encoder calls; a whole ``chat.completion`` -> a ``Completion``.

The OpenAI chat front door takes OpenAI-compatible upstreams byte for byte (``passthrough.py``).
Every other front door (Anthropic Messages, Responses) needs their answer in the neutral
vocabulary: ``ChatChunkDecoder`` reads the SSE stream and calls the door's ``StreamEncoder``;
``decode_response`` reads a whole body. Both accept the dialects of OpenAI-compatible vendors:

- ``delta.reasoning_content`` (DeepSeek, vLLM) or ``delta.reasoning`` (Groq, OpenRouter);
- ``delta.content`` as a list of ``thinking``/``text`` parts (Magistral);
- tool calls without ``index``, each sent whole in one delta (Mistral);
- ``extra_content.google.thought_signature`` on a call or a delta (Gemini's OpenAI endpoint);
- legacy ``delta.function_call``, read as one tool call;
- ``finish_reason: "model_length"`` (Mistral), and any unknown reason read as ``stop``;
- usage on the final ``choices: []`` chunk, riding on a content chunk, or under ``x_groq``;
- an error object mid-stream (``{"error": {...}}``, vLLM's ``{"object": "error", ...}``).

Only the first choice (``index`` 0) is read: front doors ask upstreams for one.
Sans-IO: no aiohttp, no asyncio, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from proxy.errors import StreamError, UpstreamError
from proxy.protocols.stream import (
    Completion,
    FinishReason,
    StreamContext,
    StreamEncoder,
    ToolCall,
    Usage,
    translate_events,
)
from proxy.wire.sse import Event, SSEDecoder, SSEError

__all__ = ["ChatChunkDecoder", "decode_response", "finish_reason", "read_usage"]

JSONBody = dict[str, Any]
MAX_EVENT_BYTES = 16 * 1024 * 1024

_FINISH: dict[Any, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "model_length": "length",  # Mistral
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",  # legacy functions
    "content_filter": "content_filter",
}
# The upstream key of a legacy ``function_call``: never equal to an int tool-call index.
_FUNCTION_CALL = "function_call"


def finish_reason(reason: Any) -> FinishReason:
    """An OpenAI-compatible finish reason in the neutral vocabulary (unknown ones: ``stop``)."""
    return _FINISH.get(reason, "stop")


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _detail(details: Any, key: str) -> int | None:
    value = details.get(key) if isinstance(details, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_usage(data: Any) -> Usage | None:
    """An OpenAI ``usage`` object as ``Usage`` (``None`` when it is absent or null).

    ``prompt_tokens`` already counts cached tokens and ``completion_tokens`` reasoning ones,
    as ``Usage`` wants. DeepSeek names its cache hits ``prompt_cache_hit_tokens``.
    """
    if not isinstance(data, dict):
        return None
    cached = _detail(data.get("prompt_tokens_details"), "cached_tokens")
    if cached is None:
        cached = _detail(data, "prompt_cache_hit_tokens")
    return Usage(
        input_tokens=_int(data.get("prompt_tokens")),
        output_tokens=_int(data.get("completion_tokens")),
        cached_tokens=cached,
        reasoning_tokens=_detail(data.get("completion_tokens_details"), "reasoning_tokens"),
    )


def _chunk_usage(chunk: JSONBody) -> Usage | None:
    """Usage at the top level, else Groq's ``x_groq.usage``."""
    usage = read_usage(chunk.get("usage"))
    if usage is None:
        groq = chunk.get("x_groq")
        usage = read_usage(groq.get("usage")) if isinstance(groq, dict) else None
    return usage


def _signature(obj: JSONBody) -> str | None:
    """Gemini's ``extra_content.google.thought_signature`` on a call, delta or message."""
    extra = obj.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _content_parts(content: Any) -> list[tuple[bool, str]]:
    """A delta's or message's content as ``(is_reasoning, text)`` pieces, in order.

    A string is one text piece; Magistral's list holds ``{"type": "thinking", "thinking":
    [{"type": "text", "text": ...}]}`` (or a plain string) and ``{"type": "text", "text": ...}``.
    """
    if isinstance(content, str):
        return [(False, content)] if content else []
    if not isinstance(content, list):
        return []
    pieces: list[tuple[bool, str]] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "thinking":
            inner = part.get("thinking")
            if isinstance(inner, str):
                pieces.append((True, inner))
            elif isinstance(inner, list):
                pieces += [(True, _str(p.get("text"))) for p in inner if isinstance(p, dict)]
        elif part.get("type") == "text":
            pieces.append((False, _str(part.get("text"))))
    return [(thinking, text) for thinking, text in pieces if text]


def _reasoning(obj: JSONBody) -> str:
    """``reasoning_content`` (DeepSeek, vLLM), else ``reasoning`` (Groq, OpenRouter)."""
    return _str(obj.get("reasoning_content")) or _str(obj.get("reasoning"))


def _error(err: Any) -> StreamError:
    """An upstream error object (``{"error": {...}}`` or vLLM's ``{"object": "error"}``) as a ``StreamError``."""
    if not isinstance(err, dict):
        return StreamError(f"the upstream reported an error mid-stream: {err}")
    message = err.get("message")
    if not isinstance(message, str) or not message:
        message = "the upstream reported an error mid-stream"
    etype = err.get("type")
    code = err.get("code")
    return StreamError(
        message,
        type=etype if isinstance(etype, str) and etype else None,
        code=code if isinstance(code, (str, int)) and not isinstance(code, bool) else None,
    )


def _error_object(data: JSONBody) -> Any:
    """The error a chunk or body carries, or ``None``."""
    if data.get("object") == "error":
        return data
    return data.get("error") or None


@dataclass(slots=True)
class _Call:
    """One upstream tool call as the encoder knows it."""

    index: int  # the encoder's tool-call index
    args: bool = False  # some arguments text has been sent


class ChatChunkDecoder:
    """OpenAI chat SSE in, calls on a ``StreamEncoder`` out (sans-IO; see the module docstring).

    ``finish`` is called on the encoder when the upstream's ``finish_reason`` arrives (once),
    after closing any call whose arguments never came with ``{}``; later choice deltas are
    dropped, since every encoder closes the message there. At ``[DONE]`` the encoder gets the
    finish if it had none yet (``stop``), the usage (zeros if none came), and its end.
    """

    __slots__ = ("_calls", "_ctx", "_decoder", "_enc", "_finished", "_next_upstream", "done", "usage")

    def __init__(self, encoder: StreamEncoder, ctx: StreamContext) -> None:
        self._enc = encoder
        self._ctx = ctx
        self._decoder = SSEDecoder(MAX_EVENT_BYTES)
        self._calls: dict[int | str, _Call] = {}  # by the upstream's index
        self._next_upstream = 0  # the index given to a call that comes without one (Mistral)
        self._finished = False
        self.done = False
        self.usage: Usage | None = None

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        try:
            events = self._decoder.feed(data)
        except SSEError as exc:
            raise StreamError(f"malformed upstream stream: {exc}") from None
        return self._events(events)

    def finish(self) -> bytes:
        try:
            events = self._decoder.close()
        except SSEError:
            if self.done:
                return b""  # bytes after [DONE] do not matter
            raise StreamError("the upstream stream was truncated: it ended mid-event") from None
        out = self._events(events)
        if not self.done:
            raise StreamError("the upstream stream was truncated: it ended before [DONE]", output=out)
        return out

    def _events(self, events: list[Event]) -> bytes:
        return translate_events(events, lambda event: self._event(event.data), lambda: self.done)

    def _event(self, data: bytes) -> bytes:
        if data == b"[DONE]":
            return self._done()
        if not data.strip():
            return b""  # an empty data line carries nothing
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise StreamError("the upstream stream sent malformed JSON") from None
        if not isinstance(chunk, dict):
            raise StreamError("the upstream stream sent a frame that is not a JSON object")
        err = _error_object(chunk)
        if err is not None:
            raise _error(err)
        usage = _chunk_usage(chunk)
        if usage is not None:
            self.usage = usage
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return b""
        out = b""
        for choice in choices:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                out += self._choice(choice)
        return out

    def _choice(self, choice: JSONBody) -> bytes:
        if self._finished:
            return b""
        delta = choice.get("delta")
        out = self._delta(delta) if isinstance(delta, dict) else b""
        reason = choice.get("finish_reason")
        if reason is not None:
            out += self._finish(finish_reason(reason))
        return out

    def _delta(self, delta: JSONBody) -> bytes:
        enc = self._enc
        out: list[bytes] = []
        signature = _signature(delta)
        reasoning = _reasoning(delta)
        pieces = _content_parts(delta.get("content"))
        if reasoning:
            pieces.insert(0, (True, reasoning))
        for i, (thinking, text) in enumerate(pieces):
            # A delta's signature rides on its last piece of reasoning or text.
            sig = signature if i == len(pieces) - 1 else None
            out.append(enc.reasoning(text, sig) if thinking else enc.text(text, sig))
        if signature and not pieces:
            out.append(enc.signature(signature))
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            out.append(enc.refusal(refusal))
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            out += [self._tool_call(call) for call in calls if isinstance(call, dict)]
        function_call = delta.get("function_call")
        if isinstance(function_call, dict):
            out.append(self._call(_FUNCTION_CALL, None, function_call, None))
        return b"".join(out)

    def _tool_call(self, call: JSONBody) -> bytes:
        index = call.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            index = self._next_upstream  # Mistral: no index, each call whole
        self._next_upstream = max(self._next_upstream, index + 1)
        function = call.get("function")
        return self._call(index, call.get("id"), function if isinstance(function, dict) else {}, _signature(call))

    def _call(self, key: int | str, call_id: Any, function: JSONBody, signature: str | None) -> bytes:
        """The first delta of call ``key`` starts it; later ones carry argument fragments."""
        arguments = _str(function.get("arguments"))
        state = self._calls.get(key)
        if state is None:
            index = self._enc.tool_calls
            self._calls[key] = _Call(index, bool(arguments))
            if not isinstance(call_id, str) or not call_id:
                call_id = f"call_{self._ctx.call_id_prefix}_{index}"
            return self._enc.tool_call_start(call_id, _str(function.get("name")), arguments, signature)
        if not arguments:
            return self._enc.signature(signature) if signature else b""
        state.args = True
        return self._enc.tool_call_arguments(state.index, arguments)

    def _finish(self, reason: FinishReason) -> bytes:
        """Close argument-less calls with ``{}`` (so they parse as JSON), then the choice."""
        self._finished = True
        out = [self._enc.tool_call_arguments(call.index, "{}") for call in self._calls.values() if not call.args]
        for call in self._calls.values():
            call.args = True
        out.append(self._enc.finish(reason))
        return b"".join(out)

    def _done(self) -> bytes:
        self.done = True
        out = b"" if self._finished else self._finish("stop")
        usage = self.usage if self.usage is not None else Usage()
        self.usage = usage
        return out + self._enc.usage(usage) + self._enc.end()


def decode_response(body: bytes, ctx: StreamContext) -> Completion:
    """A whole ``chat.completion`` body (first choice) as a ``Completion``."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError("the upstream returned a response that is not valid JSON", status=502) from None
    if not isinstance(data, dict):
        raise UpstreamError("the upstream returned a response that is not a JSON object", status=502)
    err = _error_object(data)
    if err is not None:
        streamed = _error(err)
        raise UpstreamError(streamed.message, status=502, type=streamed.type, code=streamed.code)
    choices = data.get("choices")
    choice = next((c for c in choices if isinstance(c, dict)), None) if isinstance(choices, list) else None
    message = choice.get("message") if choice is not None else None
    if choice is None or not isinstance(message, dict):
        raise UpstreamError("the upstream returned a response with no choices", status=502)
    groq = data.get("x_groq")
    usage = read_usage(data.get("usage")) or (read_usage(groq.get("usage")) if isinstance(groq, dict) else None)
    result = _message(message, ctx)
    result.finish = finish_reason(choice.get("finish_reason"))
    result.usage = usage
    return result


def _message(message: JSONBody, ctx: StreamContext) -> Completion:
    """An assistant message: text, reasoning, refusal, tool calls (or the legacy function call)."""
    texts: list[str] = []
    reasoning: list[str] = [_reasoning(message)]
    for thinking, text in _content_parts(message.get("content")):
        (reasoning if thinking else texts).append(text)
    refusal = message.get("refusal")
    result = Completion(
        text="".join(texts) if texts else None,
        reasoning="".join(reasoning) or None,
        refusal=refusal if isinstance(refusal, str) and refusal else None,
        text_signature=_signature(message),
    )
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        if isinstance(call, dict):
            result.tool_calls.append(_whole_call(call, call.get("function"), len(result.tool_calls), ctx))
    function_call = message.get("function_call")
    if not result.tool_calls and isinstance(function_call, dict):
        result.tool_calls.append(_whole_call({}, function_call, 0, ctx))
    return result


def _whole_call(call: JSONBody, function: Any, index: int, ctx: StreamContext) -> ToolCall:
    """One whole call; missing arguments are ``{}`` so the client can parse them."""
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        call_id = f"call_{ctx.call_id_prefix}_{index}"
    if not isinstance(function, dict):
        function = {}
    return ToolCall(call_id, _str(function.get("name")), _str(function.get("arguments")) or "{}", _signature(call))
