"""Checks on a chat request body before any provider sees it: wrong types and shapes are a 400
here, with the offending field in ``param``, rather than a confusing answer from upstream.

The shape checks are the readers of ``proxy.protocols.openai_chat.reading``, the same the request
mappers use: a malformed body gets the same 400 whichever provider would serve it, the OpenAI
pass-through and the mock included. What is well formed but beyond a provider (``n > 1`` on
Anthropic, a ``custom`` tool on Gemini) passes here; the mapper refuses it."""

from __future__ import annotations

from typing import Any

from proxy.errors import BadRequest
from proxy.protocols.openai_chat import reading

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
    "logit_bias": ((dict,), "an object"),
    "modalities": ((list,), "an array"),
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
        if not isinstance(role, str) or role not in _ROLES:
            shown = repr(role) if isinstance(role, str) and len(role) <= 40 else type(role).__name__
            raise BadRequest(
                f"'messages[{i}].role' must be one of {', '.join(sorted(_ROLES))}, got {shown}",
                param=f"messages[{i}].role",
            )
        _check_message(message, role, f"messages[{i}]")
    _check_parameters(body)


def _check_message(message: dict[str, Any], role: str, where: str) -> None:
    reading.read_content(message.get("content"), where)
    name = message.get("name")
    if name is not None and not isinstance(name, str):
        raise BadRequest(f"'{where}.name' must be a string", param=f"{where}.name")
    if role == "assistant":
        reading.read_tool_calls(message, where)
        reading.read_function_call(message, where)
    elif role == "tool":
        reading.read_tool_call_id(message, where)
    elif role == "function" and not name:
        raise BadRequest(f"'{where}.name' must name the function whose result this is", param=f"{where}.name")


def _check_parameters(body: dict[str, Any]) -> None:
    reading.read_tool_choice(body, reading.read_tools(body))
    reading.read_max_tokens(body)
    reading.read_stop(body)
    reading.read_temperature(body)
    reading.read_top_p(body)
    reading.read_n(body)
    reading.read_reasoning_effort(body)
    reading.read_response_format(body)
