"""A whole Anthropic message -> the completion (see the package docstring)."""

from __future__ import annotations

import orjson

from proxy.errors import UpstreamError
from proxy.protocols.anthropic.wire import (
    JSON_TOOL,
    _error_from,
    _finish_reason,
    _refusal_text,
    _Usage,
)
from proxy.protocols.openai_chat.encode import completion_body
from proxy.providers.base import JSONBody, StreamContext

# --------------------------------------------------------------------------------------------
# Non-stream response and errors


def translate_response(body: bytes, ctx: StreamContext) -> bytes:
    """An Anthropic ``message`` body as an OpenAI ``chat.completion`` body."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError("Anthropic returned a response that is not valid JSON", status=502) from None
    if not isinstance(data, dict):
        raise UpstreamError("Anthropic returned a response that is not a JSON object", status=502)
    if data.get("type") == "error":
        raise _error_from(data.get("error"), UpstreamError, default_status=502)
    texts: list[str] = []
    reasoning: list[str] = []
    thinking_blocks: list[JSONBody] = []
    calls: list[JSONBody] = []
    for block in data.get("content") or ():
        if not isinstance(block, dict):
            continue
        btype = block.get("type")
        if btype == "text":
            texts.append(str(block.get("text") or ""))
        elif btype == "thinking":
            thinking = str(block.get("thinking") or "")
            reasoning.append(thinking)
            thinking_blocks.append(
                {"type": "thinking", "thinking": thinking, "signature": str(block.get("signature") or "")}
            )
        elif btype == "redacted_thinking":
            thinking_blocks.append({"type": "redacted_thinking", "data": str(block.get("data") or "")})
        elif btype == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            if block.get("name") == JSON_TOOL:
                texts.append(arguments)
            else:
                calls.append(
                    {
                        "id": str(block.get("id") or ""),
                        "type": "function",
                        "function": {"name": str(block.get("name") or ""), "arguments": arguments},
                    }
                )
    stop = data.get("stop_reason")
    message: JSONBody = {
        "role": "assistant",
        "content": "".join(texts) if texts else None,
        "refusal": _refusal_text(data.get("stop_details")) if stop == "refusal" else None,
    }
    finish = _finish_reason(stop, len(calls))
    if calls and finish == "stop":
        finish = "tool_calls"
    if calls and ctx.legacy_functions:
        message["function_call"] = calls[0]["function"]
        finish = "function_call" if finish == "tool_calls" else finish
    elif calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if thinking_blocks:
        message["thinking_blocks"] = thinking_blocks
    usage = _Usage()
    usage.update(data.get("usage"))
    return completion_body(ctx, message, finish, usage.openai())
