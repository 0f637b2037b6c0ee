"""Builders of OpenAI ``chat.completion.chunk`` frames and ``chat.completion`` bodies.

Shared by every translating adapter, so that role-on-first-chunk, tool-call indexes, legacy
``function_call`` deltas, the ``tool_calls`` finish override and the usage chunk are written
one way. Sans-IO: ``id``/``created``/``model`` come from the ``StreamContext``.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.providers.base import JSONBody, StreamContext

__all__ = ["DONE", "ChunkWriter", "completion_body", "usage_dict"]

DONE = b"data: [DONE]\n\n"


def usage_dict(
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int | None = None,
    reasoning_tokens: int | None = None,
) -> JSONBody:
    """OpenAI usage: ``prompt_tokens`` includes cached, ``completion_tokens`` includes reasoning."""
    usage: JSONBody = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if cached_tokens is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
    if reasoning_tokens is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    return usage


class ChunkWriter:
    """Writes one stream's OpenAI frames; remembers what the stream has said so far.

    - the first choice chunk carries ``delta.role = "assistant"``;
    - tool calls get indexes 0, 1, 2... from a counter of this stream's calls, never from the
      provider's block numbering; ``id``/``type``/``name`` only on a call's first delta;
    - with ``ctx.legacy_functions`` the same calls come out as ``delta.function_call``;
    - ``finish("stop")`` after any tool call becomes ``tool_calls`` (``function_call`` in legacy mode).
    """

    __slots__ = ("_ctx", "_head", "role_sent", "tool_calls")

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
        self.role_sent = False
        self.tool_calls = 0

    def delta(self, delta: JSONBody, finish_reason: str | None = None) -> bytes:
        """One chunk with one choice carrying ``delta`` (role added on the stream's first chunk)."""
        if not self.role_sent:
            delta = {"role": "assistant", **delta}
            self.role_sent = True
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._head + b',"choices":[' + orjson.dumps(choice) + b"]}\n\n"

    def content(self, text: str) -> bytes:
        return self.delta({"content": text})

    def reasoning(self, text: str, **extra: Any) -> bytes:
        return self.delta({"reasoning_content": text, **extra})

    def refusal(self, text: str) -> bytes:
        return self.delta({"refusal": text})

    def tool_call_start(
        self, call_id: str, name: str, arguments: str = "", extra: JSONBody | None = None
    ) -> tuple[int, bytes]:
        """Open a new tool call; return its index and the frame announcing it.

        ``extra`` adds provider fields to the call object (e.g. Gemini's thought signature
        under ``extra_content``) so that a client can send them back on its next turn.
        """
        index = self.tool_calls
        self.tool_calls += 1
        if self._ctx.legacy_functions:
            return index, self.delta({"function_call": {"name": name, "arguments": arguments}})
        call = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        if extra:
            call.update(extra)
        return index, self.delta({"tool_calls": [call]})

    def tool_call_arguments(self, index: int, fragment: str) -> bytes:
        """A fragment of the arguments of call ``index``, forwarded as it arrived."""
        if self._ctx.legacy_functions:
            return self.delta({"function_call": {"arguments": fragment}})
        return self.delta({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})

    def finish_reason(self, reason: str) -> str:
        if self.tool_calls and reason == "stop":
            return "function_call" if self._ctx.legacy_functions else "tool_calls"
        if self._ctx.legacy_functions and reason == "tool_calls":
            return "function_call"
        return reason

    def finish(self, reason: str) -> bytes:
        """The chunk closing the choice, with the mapped finish reason and an empty delta."""
        return self.delta({}, self.finish_reason(reason))

    def usage(self, usage: JSONBody) -> bytes:
        """The final usage chunk (``choices: []``) when the client asked for it, else nothing."""
        if not self._ctx.include_usage:
            return b""
        return self._head + b',"choices":[],"usage":' + orjson.dumps(usage) + b"}\n\n"


def completion_body(
    ctx: StreamContext,
    message: JSONBody,
    finish_reason: str,
    usage: JSONBody | None,
) -> bytes:
    """A whole ``chat.completion`` body with one choice."""
    body: JSONBody = {
        "id": ctx.id,
        "object": "chat.completion",
        "created": int(ctx.created),
        "model": ctx.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = usage
    return orjson.dumps(body)
