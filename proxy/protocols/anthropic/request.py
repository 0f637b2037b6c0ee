"""OpenAI chat body -> Anthropic Messages request body (see the package docstring)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from proxy.errors import BadRequest, UnsupportedByProvider
from proxy.protocols.anthropic.wire import (
    DEFAULT_MAX_TOKENS,
    EFFORT_BUDGETS,
    JSON_TOOL,
    MIN_THINKING_BUDGET,
    _is_int,
)
from proxy.protocols.openai_chat.reading import (
    Call,
    FilePart,
    FunctionTool,
    ImagePart,
    Part,
    RefusalPart,
    TextPart,
    Tools,
    read_function_call,
    read_max_tokens,
    read_n,
    read_parts,
    read_reasoning_effort,
    read_response_format,
    read_stop,
    read_temperature,
    read_tool_call_id,
    read_tool_calls,
    read_tool_choice,
    read_tools,
    read_top_p,
)

JSON_OBJECT_INSTRUCTION = (
    "Respond with a single valid JSON object and nothing else: no Markdown code fences, no text before or after it."
)
JSON_TOOL_INSTRUCTION = (
    f"When you give your final answer, give it by calling the {JSON_TOOL} tool with the answer "
    "as its input; do not write the answer as text."
)

_NO_TURNS = "'messages' must contain at least one user or assistant message"
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]")

JSONBody = dict[str, Any]


# --------------------------------------------------------------------------------------------
# Request


def build_body(body: JSONBody, model: str, options: Mapping[str, Any]) -> JSONBody:
    """The client's OpenAI chat body as an Anthropic Messages request body (``body`` is not changed).

    ``options`` are the provider's kind options (``default_max_tokens``).
    """
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise BadRequest("'messages' must be a list", param="messages")
    if read_n(body) > 1:
        raise UnsupportedByProvider(
            "Anthropic models return one choice: 'n' greater than 1 is not supported", param="n"
        )
    system, turns = _convert_messages(messages)
    out: JSONBody = {"model": model, "max_tokens": _max_tokens(body, options), "messages": turns}

    thinking = _thinking(body)
    if thinking is not None:
        out["thinking"] = thinking
        budget = thinking.get("budget_tokens")
        if thinking.get("type") == "enabled" and _is_int(budget) and out["max_tokens"] <= budget:
            out["max_tokens"] = budget + out["max_tokens"]
    thinking_on = thinking is not None and thinking.get("type") != "disabled"

    read = read_tools(body)
    tools = _tools(read)
    choice = _tool_choice(body, read)  # read even without tools: 'required' then is a 400
    if not tools:
        choice = None
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

    return out


def _max_tokens(body: JSONBody, options: Mapping[str, Any]) -> int:
    value = read_max_tokens(body)
    return int(options.get("default_max_tokens", DEFAULT_MAX_TOKENS)) if value is None else value


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
    effort = read_reasoning_effort(body)
    if effort is None or effort == "none":
        return None
    if effort not in EFFORT_BUDGETS:
        raise UnsupportedByProvider(
            f"'reasoning_effort' {effort!r} has no Anthropic thinking budget: use none, minimal, low, medium or high",
            param="reasoning_effort",
        )
    return {"type": "enabled", "budget_tokens": EFFORT_BUDGETS[effort]}


def _sampling(body: JSONBody, out: JSONBody) -> None:
    temperature = read_temperature(body)
    if temperature is not None:
        out["temperature"] = min(temperature, 1)  # Anthropic's range ends at 1
    top_p = read_top_p(body)
    if top_p is not None:
        out["top_p"] = top_p
    if body.get("top_k") is not None:
        out["top_k"] = body["top_k"]
    stop = read_stop(body)
    if stop:
        out["stop_sequences"] = stop
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
        raise UnsupportedByProvider(_NO_TURNS, param="messages")
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
            raise UnsupportedByProvider(_NO_TURNS, param="messages")


def _parts(content: Any, where: str, allowed: frozenset[str]) -> list[JSONBody]:
    """A message's ``content`` (string or parts) as Anthropic blocks; empty text is left out."""
    blocks: list[JSONBody] = []
    for part in read_parts(content, where):
        block = _part(part, allowed)
        if block is None:
            continue
        if "cache_control" in part.raw:
            block["cache_control"] = part.raw["cache_control"]
        blocks.append(block)
    return blocks


def _part_type(part: Part) -> str:
    return str(part.raw.get("type"))


def _part(part: Part, allowed: frozenset[str]) -> JSONBody | None:
    if _part_type(part) not in allowed:
        raise UnsupportedByProvider(
            f"'{part.where}': content part type {_part_type(part)!r} is not supported here for Anthropic models",
            param=part.where,
        )
    if isinstance(part, TextPart | RefusalPart):
        text = part.text if isinstance(part, TextPart) else part.refusal
        return {"type": "text", "text": text} if text else None
    if isinstance(part, ImagePart):
        if part.data is None:
            return {"type": "image", "source": {"type": "url", "url": part.url}}
        return _media(part.data.mime, part.data.data, f"{part.where}.image_url.url")
    assert isinstance(part, FilePart)
    if part.data is None:
        raise UnsupportedByProvider(
            f"'{part.where}.file': Anthropic models need 'file_data' as a base64 data: URL", param=f"{part.where}.file"
        )
    return _media(part.data.mime, part.data.data, f"{part.where}.file.file_data")


def _media(media_type: str, data: str, where: str) -> JSONBody:
    source = {"type": "base64", "media_type": media_type, "data": data}
    if media_type == "application/pdf":
        return {"type": "document", "source": source}
    if not media_type.startswith("image/"):
        raise UnsupportedByProvider(
            f"'{where}': media type {media_type!r} is not an image or a PDF, which Anthropic models take", param=where
        )
    return {"type": "image", "source": source}


def _assistant_blocks(msg: JSONBody, i: int, legacy_open: list[tuple[str, str]]) -> list[JSONBody]:
    where = f"messages[{i}]"
    blocks = _thinking_blocks(msg.get("thinking_blocks"), where)
    blocks += _parts(msg.get("content"), where, _ASSISTANT_PARTS)
    for call in read_tool_calls(msg, where):
        if not isinstance(call, Call):
            raise UnsupportedByProvider(
                f"'{call.where}.type' {call.type!r}: Anthropic models take only function tool calls",
                param=f"{call.where}.type",
            )
        assert call.id is not None
        call_id = _UNSAFE_ID.sub("_", call.id)
        blocks.append({"type": "tool_use", "id": call_id, "name": call.name, "input": call.arguments})
    fc = read_function_call(msg, where)
    if fc is not None:
        call_id = f"toolu_legacy_{i}"
        legacy_open.append((fc.name, call_id))
        blocks.append({"type": "tool_use", "id": call_id, "name": fc.name, "input": fc.arguments})
    return blocks


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest(f"'{where}' must be a non-empty string", param=where)
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
        "tool_use_id": _UNSAFE_ID.sub("_", read_tool_call_id(msg, where)),
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


def _tools(read: Tools) -> list[JSONBody]:
    """Anthropic tool definitions of the client's function tools."""
    out: list[JSONBody] = []
    for item in read.items:
        if not isinstance(item, FunctionTool):
            raise UnsupportedByProvider(
                f"'{item.where}.type' {item.type!r}: Anthropic models take only function tools here",
                param=f"{item.where}.type",
            )
        if item.name == JSON_TOOL:
            raise UnsupportedByProvider(
                f"the tool name {JSON_TOOL!r} is reserved by the proxy for Anthropic models", param=f"{item.where}.name"
            )
        tool: JSONBody = {"name": item.name}
        if item.description is not None:
            tool["description"] = item.description
        tool["input_schema"] = _object_schema(item.parameters, f"{item.where}.parameters")
        if "cache_control" in item.raw:
            tool["cache_control"] = item.raw["cache_control"]
        out.append(tool)
    return out


def _object_schema(schema: JSONBody | None, where: str) -> JSONBody:
    if schema is None:
        return {"type": "object", "properties": {}}
    if "type" not in schema:
        return {"type": "object", **schema}
    if schema["type"] != "object":
        raise UnsupportedByProvider(f"'{where}': Anthropic needs a schema of type 'object' at the root", param=where)
    return schema


def _tool_choice(body: JSONBody, tools: Tools) -> JSONBody | None:
    read = read_tool_choice(body, tools)
    choice: JSONBody
    if read is None or read.mode == "auto":
        choice = {"type": "auto"}
    elif read.mode == "none":
        choice = {"type": "none"}
    elif read.mode == "required":
        choice = {"type": "any"}
    elif read.mode == "function":
        choice = {"type": "tool", "name": read.name}
    else:
        raise UnsupportedByProvider(
            f"'{read.key}.type' {read.type!r} is not supported for Anthropic models", param=f"{read.key}.type"
        )
    if choice["type"] != "none" and (tools.legacy or body.get("parallel_tool_calls") is False):
        choice["disable_parallel_tool_use"] = True
    if read is None and len(choice) == 1:
        return None  # Anthropic's default is auto
    return choice


def _response_format(body: JSONBody, tools: list[JSONBody]) -> list[JSONBody]:
    """System text the format needs; for ``json_schema`` also appends the answer tool to ``tools``."""
    rf = read_response_format(body)
    if rf is None or rf.type == "text":
        return []
    if rf.type == "json_object":
        return [{"type": "text", "text": JSON_OBJECT_INSTRUCTION}]
    if rf.type != "json_schema":
        raise UnsupportedByProvider(
            f"'response_format.type' {rf.type!r} is not supported for Anthropic models", param="response_format.type"
        )
    description = "Give the final answer as this tool's input."
    if rf.name is not None:
        description += f" The answer is a {rf.name}."
    if rf.description is not None:
        description += " " + rf.description
    schema = _object_schema(rf.schema, "response_format.json_schema.schema")
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
