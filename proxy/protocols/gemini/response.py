"""A whole Gemini ``GenerateContentResponse`` -> a neutral ``Completion`` (see the package docstring)."""

from __future__ import annotations

from typing import Any

import orjson

from proxy.errors import UpstreamError
from proxy.protocols.gemini.wire import (
    _block_message,
    _block_reason,
    _call_fields,
    _error_from,
    _error_object,
    _finish_reason,
    _first_candidate,
    _part_signature,
    _parts_of,
    _usage,
)
from proxy.protocols.stream import Completion, StreamContext, ToolCall

__all__ = ["decode_response"]


def decode_response(body: bytes, ctx: StreamContext) -> Completion:
    """A Gemini ``GenerateContentResponse`` body as a ``Completion``."""
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
        return Completion(refusal=_block_message(block), finish="content_filter", usage=usage)
    result = _completion(candidate, ctx)
    result.finish = _finish_reason(candidate, UpstreamError) or "stop"
    result.usage = usage
    return result


def _completion(candidate: dict[str, Any], ctx: StreamContext) -> Completion:
    """The answer of a candidate: texts, thoughts, whole calls and their signatures."""
    texts: list[str] = []
    reasoning: list[str] = []
    result = Completion()
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
            call_id = call_id or f"call_{ctx.call_id_prefix}_{len(result.tool_calls)}"
            result.tool_calls.append(ToolCall(call_id, name, arguments, signature))
            continue
        text = part.get("text")
        if isinstance(text, str):
            (reasoning if part.get("thought") is True else texts).append(text)
            result.text_signature = signature or result.text_signature
    result.text = "".join(texts) if texts else None
    result.reasoning = "".join(reasoning) if reasoning else None
    return result
