"""A whole Gemini GenerateContentResponse -> the completion (see the package docstring)."""

from __future__ import annotations

import orjson

from proxy.errors import UpstreamError
from proxy.protocols.gemini.wire import (
    _block_message,
    _block_reason,
    _call_fields,
    _error_from,
    _error_object,
    _extra,
    _finish_reason,
    _first_candidate,
    _part_signature,
    _parts_of,
    _usage,
)
from proxy.protocols.openai_chat.encode import completion_body
from proxy.providers.base import JSONBody, StreamContext

# --------------------------------------------------------------------------------------------
# Non-stream response and errors


def translate_response(body: bytes, ctx: StreamContext) -> bytes:
    """A Gemini ``GenerateContentResponse`` body as an OpenAI ``chat.completion`` body."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError("Gemini returned a response that is not valid JSON", status=502) from None
    err = _error_object(data)
    if isinstance(err, dict):
        raise _error_from(err, UpstreamError, default_status=502)
    if not isinstance(data, dict):
        raise UpstreamError("Gemini returned a response that is not a JSON object", status=502)
    usage = _usage(data.get("usageMetadata"))
    candidate = _first_candidate(data)
    if candidate is None:
        block = _block_reason(data)
        if block is None:
            raise UpstreamError("Gemini returned no candidates", status=502)
        message: JSONBody = {"role": "assistant", "content": None, "refusal": _block_message(block)}
        return completion_body(ctx, message, "content_filter", usage)
    message, calls = _message(candidate, ctx)
    finish = _finish_reason(candidate, UpstreamError) or "stop"
    if calls and finish == "stop":
        finish = "function_call" if ctx.legacy_functions else "tool_calls"
    return completion_body(ctx, message, finish, usage)


def _message(candidate: JSONBody, ctx: StreamContext) -> tuple[JSONBody, int]:
    """The assistant message of a candidate, and how many tool calls it holds."""
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[JSONBody] = []
    text_signature: str | None = None
    for part in _parts_of(candidate):
        if not isinstance(part, dict):
            continue
        signature = _part_signature(part)
        call = part.get("functionCall")
        if isinstance(call, dict):
            try:
                name, arguments, call_id = _call_fields(call)
            except ValueError as exc:
                raise UpstreamError(f"Gemini returned {exc}", status=502) from None
            entry: JSONBody = {
                "id": call_id or f"call_{ctx.call_id_prefix}_{len(calls)}",
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
            calls.append({**entry, **_extra(signature)} if signature else entry)
            continue
        text = part.get("text")
        if isinstance(text, str):
            (reasoning if part.get("thought") is True else texts).append(text)
            text_signature = signature or text_signature
    message: JSONBody = {"role": "assistant", "content": "".join(texts) if texts else None, "refusal": None}
    if calls and ctx.legacy_functions:
        message["function_call"] = calls[0]["function"]
    elif calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if text_signature:
        message.update(_extra(text_signature))
    return message, len(calls)
