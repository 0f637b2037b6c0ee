"""The OpenAI chat encoder: neutral stream events and completions in, OpenAI Chat Completions bytes out.

``ChatEncoder`` is the ``StreamEncoder`` of ``/v1/chat/completions``: it writes
``chat.completion.chunk`` frames, so that role-on-first-chunk, tool-call indexes, legacy
``function_call`` deltas, the ``tool_calls`` finish override and the usage chunk are written one
way for every translated provider. ``encode_completion`` writes a whole ``chat.completion``
body; ``error_body`` and ``error_frame`` render a ``ProxyError`` before and after the stream.
Sans-IO: ``id``/``created``/``model`` come from the ``StreamContext``.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.errors import ProxyError
from proxy.protocols.stream import Completion, FinishReason, StreamContext, Usage

__all__ = ["DONE", "ChatEncoder", "encode_completion", "error_body", "error_frame", "usage_dict"]

DONE = b"data: [DONE]\n\n"
JSONBody = dict[str, Any]


def usage_dict(usage: Usage) -> JSONBody:
    """OpenAI usage: ``prompt_tokens`` includes cached, ``completion_tokens`` includes reasoning."""
    out: JSONBody = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }
    if usage.cached_tokens is not None:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


def _signed(signature: str | None) -> JSONBody:
    """A provider signature as Google's own OpenAI-compatibility field, which clients send back."""
    return {"extra_content": {"google": {"thought_signature": signature}}} if signature else {}


def _error_dict(err: ProxyError) -> JSONBody:
    return {"error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code}}


def error_body(err: ProxyError) -> bytes:
    """The HTTP body of an error answered before the stream."""
    return orjson.dumps(_error_dict(err))


def error_frame(err: ProxyError) -> bytes:
    """The one ``data: {"error": ...}`` frame that ends a stream that failed after it started."""
    return b"data: " + orjson.dumps(_error_dict(err)) + b"\n\n"


class ChatEncoder:
    """Writes one stream's OpenAI frames; remembers what the stream has said so far.

    - the first choice chunk carries ``delta.role = "assistant"``;
    - tool calls get indexes 0, 1, 2... from a counter of this stream's calls, never from the
      provider's block numbering; ``id``/``type``/``name`` only on a call's first delta;
    - with ``ctx.legacy_functions`` the first call comes out as ``delta.function_call``, and
      later calls are left out: legacy function calling has one call per turn;
    - ``finish("stop")`` after any tool call becomes ``tool_calls`` (``function_call`` in legacy mode);
    - the usage chunk (``choices: []``) only when ``ctx.include_usage``.
    """

    __slots__ = ("_ctx", "_head", "_role_sent", "_thinking_blocks", "tool_calls")

    def __init__(self, ctx: StreamContext) -> None:
        self._ctx = ctx
        self._head = (
            b'data: {"id":'
            + orjson.dumps(ctx.id)
            + b',"object":"chat.completion.chunk","created":'
            + str(int(ctx.created)).encode()
            + b',"model":'
            + orjson.dumps(ctx.model)
        )
        self._role_sent = False
        self._thinking_blocks = 0
        self.tool_calls = 0

    def delta(self, delta: JSONBody, finish_reason: str | None = None) -> bytes:
        """One chunk with one choice carrying ``delta`` (role added on the stream's first chunk)."""
        if not self._role_sent:
            delta = {"role": "assistant", **delta}
            self._role_sent = True
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._head + b',"choices":[' + orjson.dumps(choice) + b"]}\n\n"

    def text(self, text: str, signature: str | None = None) -> bytes:
        return self.delta({"content": text, **_signed(signature)})

    def reasoning(self, text: str, signature: str | None = None) -> bytes:
        return self.delta({"reasoning_content": text, **_signed(signature)})

    def signature(self, signature: str) -> bytes:
        return self.delta(_signed(signature))

    def thinking_block(self, thinking: str, signature: str) -> bytes:
        return self._thinking_block({"type": "thinking", "thinking": thinking, "signature": signature})

    def redacted_thinking(self, data: str) -> bytes:
        return self._thinking_block({"type": "redacted_thinking", "data": data})

    def _thinking_block(self, block: JSONBody) -> bytes:
        # The LiteLLM convention: an ``index`` lets openai-python's accumulator merge several blocks.
        entry = {**block, "index": self._thinking_blocks}
        self._thinking_blocks += 1
        return self.delta({"thinking_blocks": [entry]})

    def refusal(self, text: str) -> bytes:
        return self.delta({"refusal": text})

    def tool_call_start(self, call_id: str, name: str, arguments: str = "", signature: str | None = None) -> bytes:
        index = self.tool_calls
        self.tool_calls += 1
        if self._ctx.legacy_functions:
            if index:
                return b""
            return self.delta({"function_call": {"name": name, "arguments": arguments}})
        call = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        call.update(_signed(signature))
        return self.delta({"tool_calls": [call]})

    def tool_call_arguments(self, index: int, fragment: str) -> bytes:
        """A fragment of the arguments of call ``index``, forwarded as it arrived."""
        if self._ctx.legacy_functions:
            return self.delta({"function_call": {"arguments": fragment}}) if index == 0 else b""
        return self.delta({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})

    def finish(self, reason: FinishReason) -> bytes:
        """The chunk closing the choice, with the mapped finish reason and an empty delta."""
        return self.delta({}, finish_reason(reason, self.tool_calls > 0, self._ctx.legacy_functions))

    def usage(self, usage: Usage) -> bytes:
        """The final usage chunk (``choices: []``) when the client asked for it, else nothing."""
        if not self._ctx.include_usage:
            return b""
        return self._head + b',"choices":[],"usage":' + orjson.dumps(usage_dict(usage)) + b"}\n\n"

    def end(self) -> bytes:
        return DONE


def finish_reason(reason: FinishReason, tool_calls: bool, legacy: bool) -> str:
    """OpenAI's finish reason: ``stop`` after a tool call is ``tool_calls``; ``function_call`` in legacy mode."""
    if tool_calls and reason == "stop":
        reason = "tool_calls"
    if legacy and reason == "tool_calls":
        return "function_call"
    return reason


def encode_completion(completion: Completion, ctx: StreamContext) -> bytes:
    """A whole ``chat.completion`` body with one choice (legacy functions: the first call only)."""
    c = completion
    message: JSONBody = {"role": "assistant", "content": c.text, "refusal": c.refusal}
    calls = [
        {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
        | _signed(call.signature)
        for call in c.tool_calls
    ]
    if calls and ctx.legacy_functions:
        message["function_call"] = calls[0]["function"]
    elif calls:
        message["tool_calls"] = calls
    if c.reasoning is not None:
        message["reasoning_content"] = c.reasoning
    if c.thinking_blocks:
        message["thinking_blocks"] = c.thinking_blocks
    message.update(_signed(c.text_signature))
    body: JSONBody = {
        "id": ctx.id,
        "object": "chat.completion",
        "created": int(ctx.created),
        "model": ctx.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(c.finish, bool(calls), ctx.legacy_functions),
            }
        ],
    }
    if c.usage is not None:
        body["usage"] = usage_dict(c.usage)
    return orjson.dumps(body)
