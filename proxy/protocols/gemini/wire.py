"""Gemini wire tables shared by the stream and response decoders: finish reasons, usage, errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from proxy.errors import ProxyError, UpstreamError, error_type
from proxy.protocols.stream import FinishReason, Usage

JSONBody = dict[str, Any]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


API_VERSION = "v1beta"
EFFORT_BUDGETS: Mapping[str, int] = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
SKIP_SIGNATURE = "skip_thought_signature_validator"
_FINISH: Mapping[str, FinishReason] = {
    "STOP": "stop",
    "FINISH_REASON_UNSPECIFIED": "stop",
    "MAX_TOKENS": "length",
}
# finishReason values that leave nothing usable: (HTTP status, OpenAI type) of the error.
_FAILED_FINISH: Mapping[str, tuple[int, str]] = {
    "MALFORMED_FUNCTION_CALL": (502, "upstream_error"),
    "UNEXPECTED_TOOL_CALL": (502, "upstream_error"),
    "TOO_MANY_TOOL_CALLS": (502, "upstream_error"),
    "MALFORMED_RESPONSE": (502, "upstream_error"),
    "MISSING_THOUGHT_SIGNATURE": (400, "invalid_request_error"),
}
_NO_BLOCK = frozenset({"", "BLOCK_REASON_UNSPECIFIED", "BLOCKED_REASON_UNSPECIFIED"})

# google.rpc status → OpenAI error type.
_ERROR_TYPES: Mapping[str, str] = {
    "INVALID_ARGUMENT": "invalid_request_error",
    "OUT_OF_RANGE": "invalid_request_error",
    "ALREADY_EXISTS": "invalid_request_error",
    "UNIMPLEMENTED": "invalid_request_error",
    "FAILED_PRECONDITION": "permission_error",
    "UNAUTHENTICATED": "authentication_error",
    "PERMISSION_DENIED": "permission_error",
    "NOT_FOUND": "not_found_error",
    "RESOURCE_EXHAUSTED": "rate_limit_error",
    "DEADLINE_EXCEEDED": "timeout_error",
    "CANCELLED": "api_error",
    "ABORTED": "api_error",
    "INTERNAL": "api_error",
    "UNKNOWN": "api_error",
    "DATA_LOSS": "api_error",
    "UNAVAILABLE": "api_error",
}


# --------------------------------------------------------------------------------------------
# Responses: shared pieces


def _int(value: Any) -> int:
    return value if _is_int(value) else 0


def _usage(meta: Any) -> Usage:
    """Usage from Gemini's ``usageMetadata`` (running totals: pass the last one)."""
    m = meta if isinstance(meta, dict) else {}
    thoughts = _int(m.get("thoughtsTokenCount"))
    prompt = _int(m.get("promptTokenCount")) + _int(m.get("toolUsePromptTokenCount"))
    completion = _int(m.get("candidatesTokenCount")) + thoughts
    return Usage(prompt, completion, cached_tokens=_int(m.get("cachedContentTokenCount")), reasoning_tokens=thoughts)


def _first_candidate(data: JSONBody) -> JSONBody | None:
    candidates = data.get("candidates")
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
        candidate: JSONBody = candidates[0]
        return candidate
    return None


def _block_reason(data: JSONBody) -> str | None:
    feedback = data.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    return reason if isinstance(reason, str) and reason not in _NO_BLOCK else None


def _block_message(reason: str) -> str:
    return f"Gemini blocked the prompt (blockReason: {reason})"


def _parts_of(candidate: JSONBody) -> list[Any]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return parts if isinstance(parts, list) else []


def _part_signature(part: JSONBody) -> str | None:
    signature = part.get("thoughtSignature")
    return signature if isinstance(signature, str) and signature else None


def _call_fields(call: JSONBody) -> tuple[str, str, str | None]:
    """(name, serialised arguments, Gemini's own call id) of a whole ``functionCall``."""
    name = call.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("a functionCall without a name")
    args = call.get("args")
    arguments = args if isinstance(args, str) else orjson.dumps(args if args is not None else {}).decode()
    call_id = call.get("id")
    return name, arguments, call_id if isinstance(call_id, str) and call_id else None


def _finish_reason(candidate: JSONBody, cls: type[ProxyError]) -> FinishReason | None:
    """The finish reason of a candidate (``None`` while it is not finished).

    Raises ``cls`` for the finish reasons that leave nothing usable.
    """
    reason = candidate.get("finishReason")
    if not isinstance(reason, str) or not reason:
        return None
    failed = _FAILED_FINISH.get(reason)
    if failed is not None:
        detail = candidate.get("finishMessage")
        message = f"Gemini could not complete the answer ({reason})"
        if isinstance(detail, str) and detail:
            message += f": {detail}"
        raise cls(message, status=failed[0], type=failed[1], code=reason)
    return _FINISH.get(reason, "content_filter")


def _error_object(data: Any) -> Any:
    """The ``error`` member of a Google error body (a dict, or a list holding one), else None."""
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    return data.get("error") if isinstance(data, dict) else None


def _retry_delay(details: Any) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail (``"retryDelay": "37s"``)."""
    for detail in details if isinstance(details, list) else ():
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return float(delay[:-1])
            except ValueError:
                return None
    return None


def _key_invalid(details: Any) -> bool:
    return any(isinstance(d, dict) and d.get("reason") == "API_KEY_INVALID" for d in details or ())


def _error_from(err: JSONBody, cls: type[ProxyError], default_status: int, status: int | None = None) -> ProxyError:
    """A Google ``error`` object as ``cls``: OpenAI type from its ``status`` (kept as ``code``)."""
    google_status = err.get("status") if isinstance(err.get("status"), str) else None
    code = err.get("code")
    http = default_status if status is None else status
    if status is None and isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599:
        http = code
    details = err.get("details") if isinstance(err.get("details"), list) else None
    etype = _ERROR_TYPES.get(google_status or "") or error_type(http)
    if _key_invalid(details):
        http, etype = 401, "authentication_error"  # the proxy's key, not the client's request
    elif google_status == "FAILED_PRECONDITION":
        http = 403  # billing or region of the provider account: another provider may serve it
    message = err.get("message")
    if not isinstance(message, str) or not message:
        message = f"Gemini returned an error ({google_status or http})"
    result = cls(message, status=http, type=etype, code=google_status)
    result.retry_after = _retry_delay(details)
    return result


def translate_error(status: int, body: bytes) -> ProxyError:
    """A Gemini error status as an OpenAI-shaped ``UpstreamError`` with the same HTTP status."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    err = _error_object(data)
    if isinstance(err, dict):
        return _error_from(err, UpstreamError, default_status=status, status=status)
    etype = error_type(status)
    return UpstreamError(f"Gemini returned HTTP {status}", status=status, type=etype)
