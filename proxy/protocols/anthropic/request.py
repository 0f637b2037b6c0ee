"""OpenAI chat body -> Anthropic Messages request body (see the package docstring)."""

from __future__ import annotations

import re
from typing import Any

import orjson

from proxy.config import ProviderConfig
from proxy.errors import BadRequest
from proxy.protocols.anthropic.wire import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_VERSION,
    EFFORT_BUDGETS,
    JSON_TOOL,
    MIN_THINKING_BUDGET,
    _is_int,
)
from proxy.providers.base import JSONBody, StreamContext, UpstreamRequest

JSON_OBJECT_INSTRUCTION = (
    "Respond with a single valid JSON object and nothing else: no Markdown code fences, no text before or after it."
)
JSON_TOOL_INSTRUCTION = (
    f"When you give your final answer, give it by calling the {JSON_TOOL} tool with the answer "
    "as its input; do not write the answer as text."
)

_NO_TURNS = "'messages' must contain at least one user or assistant message"
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]")


# --------------------------------------------------------------------------------------------
# Request


def build_request(body: JSONBody, model: str, provider: ProviderConfig, ctx: StreamContext) -> UpstreamRequest:
    """The client's OpenAI chat body as an Anthropic Messages request (``body`` is not changed)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise BadRequest("'messages' must be a list", param="messages")
    _check_n(body.get("n"))
    system, turns = _convert_messages(messages)
    out: JSONBody = {"model": model, "max_tokens": _max_tokens(body, provider), "messages": turns}

    thinking = _thinking(body)
    if thinking is not None:
        out["thinking"] = thinking
        budget = thinking.get("budget_tokens")
        if thinking.get("type") == "enabled" and _is_int(budget) and out["max_tokens"] <= budget:
            out["max_tokens"] = budget + out["max_tokens"]
    thinking_on = thinking is not None and thinking.get("type") != "disabled"

    tools, legacy = _tools(body)
    choice = _tool_choice(body, legacy) if tools else None
    system += _response_format(body, tools)
    if tools:
        out["tools"] = tools
        choice = _json_tool_choice(tools, choice, thinking_on, system)
    if choice is not None:
        out["tool_choice"] = choice
    if system:
        out["system"] = _system_value(system)

    _sampling(body, out)
    if body.get("stream"):
        out["stream"] = True

    headers = {
        "x-api-key": provider.api_key or "",
        "anthropic-version": str(provider.options.get("anthropic_version", DEFAULT_VERSION)),
        "content-type": "application/json",
    }
    if not provider.api_key:
        del headers["x-api-key"]
    if provider.headers:  # a read-only mapping: updating from it is slow even when empty
        headers.update(provider.headers)
    base = provider.base_url.rstrip("/")
    url = f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"
    return UpstreamRequest(url=url, headers=headers, body=orjson.dumps(out))


def _check_n(n: Any) -> None:
    if n is None:
        return
    if not _is_int(n) or n < 1:
        raise BadRequest("'n' must be a positive integer", param="n")
    if n > 1:
        raise BadRequest("Anthropic models return one choice: 'n' greater than 1 is not supported", param="n")


def _max_tokens(body: JSONBody, provider: ProviderConfig) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is not None:
            if not _is_int(value) or value < 1:
                raise BadRequest(f"'{key}' must be a positive integer", param=key)
            result: int = value
            return result
    return int(provider.options.get("default_max_tokens", DEFAULT_MAX_TOKENS))


def _thinking(body: JSONBody) -> JSONBody | None:
    native = body.get("thinking")
    if native is not None:
        if not isinstance(native, dict) or not isinstance(native.get("type"), str):
            raise BadRequest("'thinking' must be an Anthropic thinking object with a 'type'", param="thinking")
        return dict(native)
    budget = body.get("thinking_budget")
    if budget is not None:
        if not _is_int(budget) or budget < MIN_THINKING_BUDGET:
            raise BadRequest(
                f"'thinking_budget' must be an integer of at least {MIN_THINKING_BUDGET}",
                param="thinking_budget",
            )
        return {"type": "enabled", "budget_tokens": budget}
    effort = body.get("reasoning_effort")
    if effort is None or effort == "none":
        return None
    if effort not in EFFORT_BUDGETS:
        raise BadRequest("'reasoning_effort' must be one of none, minimal, low, medium, high", param="reasoning_effort")
    return {"type": "enabled", "budget_tokens": EFFORT_BUDGETS[effort]}


def _sampling(body: JSONBody, out: JSONBody) -> None:
    temperature = body.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, int | float) or isinstance(temperature, bool):
            raise BadRequest("'temperature' must be a number", param="temperature")
        out["temperature"] = min(temperature, 1)
    for key in ("top_p", "top_k"):
        if body.get(key) is not None:
            out[key] = body[key]
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        if any(stop):
            out["stop_sequences"] = [s for s in stop if s]  # Anthropic rejects empty sequences
    elif stop is not None:
        raise BadRequest("'stop' must be a string or a list of strings", param="stop")
    user = body.get("user")
    if user is not None:
        if not isinstance(user, str):
            raise BadRequest("'user' must be a string", param="user")
        out["metadata"] = {"user_id": user}


def _system_value(blocks: list[JSONBody]) -> str | list[JSONBody]:
    if any("cache_control" in b for b in blocks):
        return blocks
    return "\n\n".join(b["text"] for b in blocks)


# Messages ------------------------------------------------------------------------------------

_SYSTEM_PARTS = frozenset({"text"})
_USER_PARTS = frozenset({"text", "image_url", "file"})
_ASSISTANT_PARTS = frozenset({"text", "refusal"})
_TOOL_PARTS = frozenset({"text", "image_url"})


def _convert_messages(raw: list[Any]) -> tuple[list[JSONBody], list[JSONBody]]:
    """OpenAI messages → (system text blocks, strictly alternating Anthropic turns)."""
    system: list[JSONBody] = []
    turns: list[JSONBody] = []
    legacy_open: list[tuple[str, str]] = []  # (name, id) of legacy function calls awaiting a result
    for i, msg in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise BadRequest(f"'{where}' must be an object", param=where)
        role = msg.get("role")
        if role in ("system", "developer"):
            system += _parts(msg.get("content"), where, _SYSTEM_PARTS)
            continue
        if role == "user":
            turn_role, blocks = "user", _parts(msg.get("content"), where, _USER_PARTS)
        elif role == "assistant":
            turn_role, blocks = "assistant", _assistant_blocks(msg, i, legacy_open)
        elif role == "tool":
            turn_role, blocks = "user", [_tool_result(msg, where)]
        elif role == "function":
            turn_role, blocks = "user", [_function_result(msg, where, legacy_open)]
        else:
            raise BadRequest(f"'{where}.role' {role!r} is not a supported role", param=f"{where}.role")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == turn_role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": turn_role, "content": blocks})
    if not turns:
        raise BadRequest(_NO_TURNS, param="messages")
    for turn in turns:
        if turn["role"] == "user":
            # Anthropic wants the results of the previous turn's tool calls first.
            turn["content"].sort(key=lambda b: b["type"] != "tool_result")
    _strip_prefill(turns)
    return system, turns


def _strip_prefill(turns: list[JSONBody]) -> None:
    last = turns[-1]
    if last["role"] != "assistant":
        return
    blocks = last["content"]
    if blocks and blocks[-1]["type"] == "text":
        text = blocks[-1]["text"].rstrip()
        if text:
            blocks[-1] = {**blocks[-1], "text": text}
        else:
            blocks.pop()
    if not blocks:
        turns.pop()
        if not turns:
            raise BadRequest(_NO_TURNS, param="messages")


def _parts(content: Any, where: str, allowed: frozenset[str]) -> list[JSONBody]:
    """A message's ``content`` (string or parts) as Anthropic blocks; empty text is left out."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise BadRequest(f"'{where}.content' must be a string or a list of parts", param=f"{where}.content")
    blocks: list[JSONBody] = []
    for j, part in enumerate(content):
        pwhere = f"{where}.content[{j}]"
        ptype = part.get("type") if isinstance(part, dict) else None
        if ptype not in allowed:
            raise BadRequest(f"'{pwhere}': content part type {ptype!r} is not supported here", param=pwhere)
        assert isinstance(part, dict)
        block = _part(part, ptype, pwhere)
        if block is None:
            continue
        if "cache_control" in part:
            block["cache_control"] = part["cache_control"]
        blocks.append(block)
    return blocks


def _part(part: JSONBody, ptype: str, where: str) -> JSONBody | None:
    if ptype in ("text", "refusal"):
        text = part.get(ptype)
        if not isinstance(text, str):
            raise BadRequest(f"'{where}.{ptype}' must be a string", param=f"{where}.{ptype}")
        return {"type": "text", "text": text} if text else None
    if ptype == "image_url":
        spec = part.get("image_url")
        url = spec.get("url") if isinstance(spec, dict) else spec
        if not isinstance(url, str):
            raise BadRequest(f"'{where}.image_url.url' must be a string", param=f"{where}.image_url")
        return _image(url, where)
    spec = part.get("file")
    data = spec.get("file_data") if isinstance(spec, dict) else None
    if not isinstance(data, str) or not data.startswith("data:"):
        raise BadRequest(f"'{where}.file' needs 'file_data' as a base64 data: URL", param=f"{where}.file")
    return _image(data, where)


def _image(url: str, where: str) -> JSONBody:
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    if not url.startswith("data:"):
        raise BadRequest(f"'{where}': an image URL must be http(s) or a data: URL", param=where)
    header, comma, data = url[5:].partition(",")
    params = header.split(";")
    media_type = params[0].strip().lower()
    if not comma or "base64" not in params[1:] or not media_type:
        raise BadRequest(f"'{where}': a data: URL must be 'data:<media type>;base64,<data>'", param=where)
    source = {"type": "base64", "media_type": media_type, "data": data}
    if media_type == "application/pdf":
        return {"type": "document", "source": source}
    if not media_type.startswith("image/"):
        raise BadRequest(f"'{where}': media type {media_type!r} is not an image or a PDF", param=where)
    return {"type": "image", "source": source}


def _safe_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest(f"'{where}' must be a non-empty string", param=where)
    return _UNSAFE_ID.sub("_", value)


def _assistant_blocks(msg: JSONBody, i: int, legacy_open: list[tuple[str, str]]) -> list[JSONBody]:
    where = f"messages[{i}]"
    blocks = _thinking_blocks(msg.get("thinking_blocks"), where)
    blocks += _parts(msg.get("content"), where, _ASSISTANT_PARTS)
    calls = msg.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise BadRequest(f"'{where}.tool_calls' must be a list", param=f"{where}.tool_calls")
    for k, call in enumerate(calls or ()):
        cwhere = f"{where}.tool_calls[{k}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            raise BadRequest(f"'{cwhere}.function' must be an object", param=f"{cwhere}.function")
        assert isinstance(call, dict)
        blocks.append(
            {
                "type": "tool_use",
                "id": _safe_id(call.get("id"), f"{cwhere}.id"),
                "name": _name(fn.get("name"), f"{cwhere}.function.name"),
                "input": _arguments(fn.get("arguments"), f"{cwhere}.function.arguments"),
            }
        )
    fc = msg.get("function_call")
    if fc is not None:
        if not isinstance(fc, dict):
            raise BadRequest(f"'{where}.function_call' must be an object", param=f"{where}.function_call")
        name = _name(fc.get("name"), f"{where}.function_call.name")
        call_id = f"toolu_legacy_{i}"
        legacy_open.append((name, call_id))
        blocks.append(
            {
                "type": "tool_use",
                "id": call_id,
                "name": name,
                "input": _arguments(fc.get("arguments"), f"{where}.function_call.arguments"),
            }
        )
    return blocks


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest(f"'{where}' must be a non-empty string", param=where)
    return value


def _arguments(raw: Any, where: str) -> JSONBody:
    """A tool call's ``arguments`` JSON string as the ``input`` object Anthropic wants."""
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if not isinstance(raw, str):
        raise BadRequest(f"'{where}' must be a JSON string", param=where)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest(f"'{where}' is not valid JSON", param=where) from None
    if not isinstance(value, dict):
        raise BadRequest(f"'{where}' must encode a JSON object", param=where)
    return value


def _thinking_blocks(raw: Any, where: str) -> list[JSONBody]:
    if raw is None:
        return []
    pwhere = f"{where}.thinking_blocks"
    if not isinstance(raw, list):
        raise BadRequest(f"'{pwhere}' must be a list", param=pwhere)
    blocks: list[JSONBody] = []
    for k, block in enumerate(raw):
        btype = block.get("type") if isinstance(block, dict) else None
        if btype == "thinking":
            thinking, signature = block.get("thinking"), block.get("signature")
            if isinstance(thinking, str) and isinstance(signature, str):
                blocks.append({"type": "thinking", "thinking": thinking, "signature": signature})
                continue
        elif btype == "redacted_thinking" and isinstance(block.get("data"), str):
            blocks.append({"type": "redacted_thinking", "data": block["data"]})
            continue
        raise BadRequest(
            f"'{pwhere}[{k}]' must be {{type: thinking, thinking, signature}} or {{type: redacted_thinking, data}}",
            param=f"{pwhere}[{k}]",
        )
    return blocks


def _tool_result(msg: JSONBody, where: str) -> JSONBody:
    block: JSONBody = {
        "type": "tool_result",
        "tool_use_id": _safe_id(msg.get("tool_call_id"), f"{where}.tool_call_id"),
    }
    content = msg.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    else:
        parts = _parts(content, where, _TOOL_PARTS)
        if parts:
            block["content"] = parts
    return block


def _function_result(msg: JSONBody, where: str, legacy_open: list[tuple[str, str]]) -> JSONBody:
    name = _name(msg.get("name"), f"{where}.name")
    for k, (open_name, call_id) in enumerate(legacy_open):
        if open_name == name:
            del legacy_open[k]
            return _tool_result({"tool_call_id": call_id, "content": msg.get("content")}, where)
    raise BadRequest(f"'{where}': no earlier assistant function_call named {name!r}", param=where)


# Tools ---------------------------------------------------------------------------------------


def _tools(body: JSONBody) -> tuple[list[JSONBody], bool]:
    """Anthropic tool definitions, and whether the client used the legacy ``functions``."""
    tools, functions = body.get("tools"), body.get("functions")
    if tools and functions:
        raise BadRequest("use either 'tools' or the legacy 'functions', not both", param="functions")
    legacy = bool(functions)
    raw, key = (functions, "functions") if legacy else (tools, "tools")
    if raw is None:
        return [], False
    if not isinstance(raw, list):
        raise BadRequest(f"'{key}' must be a list", param=key)
    out: list[JSONBody] = []
    for k, item in enumerate(raw):
        where = f"{key}[{k}]"
        fn = item if legacy else (item.get("function") if isinstance(item, dict) else None)
        if not legacy and isinstance(item, dict) and item.get("type", "function") != "function":
            raise BadRequest(f"'{where}.type' {item.get('type')!r} is not supported", param=f"{where}.type")
        if not isinstance(fn, dict):
            raise BadRequest(f"'{where}' must be a function definition", param=where)
        name = _name(fn.get("name"), f"{where}.name" if legacy else f"{where}.function.name")
        if name == JSON_TOOL:
            raise BadRequest(f"the tool name {JSON_TOOL!r} is reserved by the proxy", param=where)
        tool: JSONBody = {"name": name}
        if isinstance(fn.get("description"), str):
            tool["description"] = fn["description"]
        tool["input_schema"] = _object_schema(fn.get("parameters"), where)
        if isinstance(item, dict) and "cache_control" in item:
            tool["cache_control"] = item["cache_control"]
        out.append(tool)
    return out, legacy


def _object_schema(schema: Any, where: str) -> JSONBody:
    if schema is None:
        return {"type": "object", "properties": {}}
    if not isinstance(schema, dict):
        raise BadRequest(f"'{where}': a schema must be an object", param=where)
    if "type" not in schema:
        return {"type": "object", **schema}
    if schema["type"] != "object":
        raise BadRequest(f"'{where}': Anthropic needs a schema of type 'object' at the root", param=where)
    return schema


def _tool_choice(body: JSONBody, legacy: bool) -> JSONBody | None:
    key = "function_call" if legacy else "tool_choice"
    raw = body.get(key)
    choice: JSONBody
    if raw is None or raw == "auto":
        choice = {"type": "auto"}
    elif raw == "none":
        choice = {"type": "none"}
    elif raw == "required" and not legacy:
        choice = {"type": "any"}
    elif isinstance(raw, dict):
        fn = raw if legacy else (raw.get("function") if raw.get("type") == "function" else None)
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(name, str) or not name:
            raise BadRequest(f"'{key}' names no function", param=key)
        choice = {"type": "tool", "name": name}
    else:
        raise BadRequest(f"'{key}' {raw!r} is not supported", param=key)
    if choice["type"] != "none" and (legacy or body.get("parallel_tool_calls") is False):
        choice["disable_parallel_tool_use"] = True
    if raw is None and len(choice) == 1:
        return None  # Anthropic's default is auto
    return choice


def _response_format(body: JSONBody, tools: list[JSONBody]) -> list[JSONBody]:
    """System text the format needs; for ``json_schema`` also appends the answer tool to ``tools``."""
    rf = body.get("response_format")
    if rf is None:
        return []
    rtype = rf.get("type") if isinstance(rf, dict) else None
    if rtype == "text":
        return []
    if rtype == "json_object":
        return [{"type": "text", "text": JSON_OBJECT_INSTRUCTION}]
    if rtype != "json_schema":
        raise BadRequest(f"'response_format' type {rtype!r} is not supported", param="response_format")
    assert isinstance(rf, dict)
    spec = rf.get("json_schema")
    if not isinstance(spec, dict):
        raise BadRequest("'response_format.json_schema' must be an object", param="response_format.json_schema")
    description = "Give the final answer as this tool's input."
    if isinstance(spec.get("name"), str):
        description += f" The answer is a {spec['name']}."
    if isinstance(spec.get("description"), str):
        description += " " + spec["description"]
    schema = _object_schema(spec.get("schema"), "response_format.json_schema.schema")
    tools.append({"name": JSON_TOOL, "description": description, "input_schema": schema})
    return []


def _json_tool_choice(
    tools: list[JSONBody], choice: JSONBody | None, thinking_on: bool, system: list[JSONBody]
) -> JSONBody | None:
    """The tool choice once the ``json_schema`` answer tool (if any) is among ``tools``."""
    if tools[-1]["name"] != JSON_TOOL:
        return choice
    extra = {"disable_parallel_tool_use": True} if choice and choice.get("disable_parallel_tool_use") else {}
    if thinking_on:
        system.append({"type": "text", "text": JSON_TOOL_INSTRUCTION})
        return {"type": "auto", **extra}
    if len(tools) == 1 or (choice is not None and choice["type"] == "none"):
        return {"type": "tool", "name": JSON_TOOL}
    if choice is not None and choice["type"] == "tool":
        return choice
    system.append({"type": "text", "text": JSON_TOOL_INSTRUCTION})
    return {"type": "any", **extra}
