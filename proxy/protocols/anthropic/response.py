"""A whole Anthropic ``message`` -> a neutral ``Completion`` (see the package docstring)."""

from __future__ import annotations

from typing import Any

import orjson

from proxy.errors import UpstreamError
from proxy.protocols.anthropic.wire import JSON_TOOL, _error_from, _finish_reason, _refusal_text, _Usage
from proxy.protocols.stream import Completion, StreamContext, ToolCall

__all__ = ["decode_response"]


def decode_response(body: bytes, ctx: StreamContext) -> Completion:
    """An Anthropic ``message`` body as a ``Completion`` (the json_schema answer tool's input as text)."""
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
    result = Completion()
    for block in data.get("content") or ():
        if isinstance(block, dict):
            _block(block, texts, reasoning, result)
    stop = data.get("stop_reason")
    result.text = "".join(texts) if texts else None
    result.reasoning = "".join(reasoning) if reasoning else None
    result.refusal = _refusal_text(data.get("stop_details")) if stop == "refusal" else None
    result.finish = _finish_reason(stop, len(result.tool_calls))
    usage = _Usage()
    usage.update(data.get("usage"))
    result.usage = usage.neutral()
    return result


def _block(block: dict[str, Any], texts: list[str], reasoning: list[str], result: Completion) -> None:
    btype = block.get("type")
    if btype == "text":
        texts.append(str(block.get("text") or ""))
    elif btype == "thinking":
        thinking = str(block.get("thinking") or "")
        reasoning.append(thinking)
        result.thinking_blocks.append(
            {"type": "thinking", "thinking": thinking, "signature": str(block.get("signature") or "")}
        )
    elif btype == "redacted_thinking":
        result.thinking_blocks.append({"type": "redacted_thinking", "data": str(block.get("data") or "")})
    elif btype == "tool_use":
        arguments = orjson.dumps(block.get("input") or {}).decode()
        if block.get("name") == JSON_TOOL:
            texts.append(arguments)
        else:
            result.tool_calls.append(ToolCall(str(block.get("id") or ""), str(block.get("name") or ""), arguments))
