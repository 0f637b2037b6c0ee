"""Anthropic wire tables shared by the stream and response decoders: finish reasons, usage, errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from proxy.errors import ProxyError, UpstreamError, error_type
from proxy.protocols.stream import FinishReason, Usage

JSONBody = dict[str, Any]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
MIN_THINKING_BUDGET = 1024
EFFORT_BUDGETS: Mapping[str, int] = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}
JSON_TOOL = "_proxy_json_response"
_FINISH: Mapping[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Anthropic error type → (HTTP status, OpenAI error type).
_ERRORS: Mapping[str, tuple[int, str]] = {
    "invalid_request_error": (400, "invalid_request_error"),
    "authentication_error": (401, "authentication_error"),
    "billing_error": (402, "insufficient_quota"),
    "permission_error": (403, "permission_error"),
    "not_found_error": (404, "not_found_error"),
    "request_too_large": (413, "invalid_request_error"),
    "rate_limit_error": (429, "rate_limit_error"),
    "api_error": (500, "api_error"),
    "timeout_error": (504, "timeout_error"),
    "overloaded_error": (503, "api_error"),
}
_USAGE_KEYS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens")


@dataclass(slots=True)
class _Usage:
    """Anthropic usage counts; every report carries running totals, so the latest wins."""

    input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int | None = None

    def update(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        for key in _USAGE_KEYS:
            value = usage.get(key)
            if _is_int(value):
                setattr(self, key, value)
        details = usage.get("output_tokens_details")
        if isinstance(details, dict) and _is_int(details.get("thinking_tokens")):
            self.thinking_tokens = details["thinking_tokens"]

    def neutral(self) -> Usage:
        """Cached and cache-writing tokens are part of the prompt in the neutral count."""
        prompt = self.input_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens
        return Usage(
            input_tokens=prompt,
            output_tokens=self.output_tokens,
            cached_tokens=self.cache_read_input_tokens,
            cache_creation_tokens=self.cache_creation_input_tokens,
            reasoning_tokens=self.thinking_tokens,
        )


def _finish_reason(stop_reason: Any, tool_calls: int) -> FinishReason:
    reason: FinishReason = _FINISH.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"
    if reason == "tool_calls" and not tool_calls:
        return "stop"  # only the json_schema answer tool (or a server tool) was used
    return reason


def _refusal_text(details: Any) -> str | None:
    if isinstance(details, dict) and isinstance(details.get("explanation"), str):
        text: str = details["explanation"]
        return text or None
    return None


def _error_from(err: Any, cls: type[ProxyError], default_status: int) -> ProxyError:
    """An Anthropic ``error`` object as ``cls`` with the OpenAI type (Anthropic's type as ``code``)."""
    if not isinstance(err, dict):
        return cls("Anthropic reported an error", status=default_status)
    atype = err.get("type")
    if not isinstance(atype, str):
        atype = None
    status, otype = _ERRORS.get(atype or "", (default_status, "api_error"))
    message = err.get("message")
    if not isinstance(message, str) or not message:
        message = f"Anthropic reported an error ({atype or 'unknown'})"
    return cls(message, status=status, type=otype, code=atype)


def translate_error(status: int, body: bytes) -> ProxyError:
    """An Anthropic error status as an OpenAI-shaped ``UpstreamError`` (529 overloaded → 503)."""
    reported = 503 if status == 529 else status
    default_type = error_type(reported)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        return UpstreamError(f"Anthropic returned HTTP {status}", status=reported, type=default_type)
    atype = err.get("type")
    otype = _ERRORS[atype][1] if isinstance(atype, str) and atype in _ERRORS else default_type
    message = err.get("message")
    if not isinstance(message, str) or not message:
        message = f"Anthropic returned HTTP {status}"
    return UpstreamError(message, status=reported, type=otype, code=atype if isinstance(atype, str) else None)
