"""Checks on a chat request body before any provider sees it: wrong types are a 400 here,
with the offending field in ``param``, rather than a confusing answer from upstream."""

from __future__ import annotations

from typing import Any

from proxy.errors import BadRequest

__all__ = ["validate_chat_request"]

_NUMBER = (int, float)
_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "model": ((str,), "a string"),
    "messages": ((list,), "an array"),
    "stream": ((bool,), "a boolean"),
    "stream_options": ((dict,), "an object"),
    "tools": ((list,), "an array"),
    "tool_choice": ((str, dict), "a string or an object"),
    "parallel_tool_calls": ((bool,), "a boolean"),
    "functions": ((list,), "an array"),
    "function_call": ((str, dict), "a string or an object"),
    "n": ((int,), "an integer"),
    "max_tokens": ((int,), "an integer"),
    "max_completion_tokens": ((int,), "an integer"),
    "temperature": (_NUMBER, "a number"),
    "top_p": (_NUMBER, "a number"),
    "presence_penalty": (_NUMBER, "a number"),
    "frequency_penalty": (_NUMBER, "a number"),
    "stop": ((str, list), "a string or an array"),
    "seed": ((int,), "an integer"),
    "user": ((str,), "a string"),
    "response_format": ((dict,), "an object"),
    "logprobs": ((bool,), "a boolean"),
    "top_logprobs": ((int,), "an integer"),
    "metadata": ((dict,), "an object"),
    "reasoning_effort": ((str,), "a string"),
}
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


# Exact types: the body comes from orjson, which makes only these (a bool is not an int here).
_TYPES = {name: frozenset(types) for name, (types, _) in _FIELDS.items()}
_NULLABLE = frozenset(_FIELDS) - {"model", "messages"}


def _check_type(name: str, value: Any) -> None:
    if type(value) in _TYPES[name] or (value is None and name in _NULLABLE):
        return
    raise BadRequest(f"'{name}' must be {_FIELDS[name][1]}, got {type(value).__name__}", param=name)


def validate_chat_request(body: dict[str, Any]) -> None:
    """Raise ``BadRequest`` naming the first field of a wrong type or value."""
    for name in ("model", "messages"):
        if name not in body:
            raise BadRequest(f"'{name}' is required", param=name)
    types = _TYPES
    for name, value in body.items():
        allowed = types.get(name)
        if allowed is not None and type(value) not in allowed:
            _check_type(name, value)
    if not body["model"]:
        raise BadRequest("'model' must not be empty", param="model")
    messages = body["messages"]
    if not messages:
        raise BadRequest("'messages' must contain at least one message", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequest(f"'messages[{i}]' must be an object", param=f"messages[{i}]")
        role = message.get("role")
        if role not in _ROLES:
            raise BadRequest(
                f"'messages[{i}].role' must be one of {', '.join(sorted(_ROLES))}, got {role!r}",
                param=f"messages[{i}].role",
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise BadRequest(f"'messages[{i}].content' must be a string or an array", param=f"messages[{i}].content")
    n = body.get("n")
    if n is not None and n < 1:
        raise BadRequest("'n' must be at least 1", param="n")
