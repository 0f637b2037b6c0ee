"""The Anthropic Messages front door's request reader: a ``/v1/messages`` body -> the OpenAI chat pivot.

``to_chat`` turns the body the ``anthropic`` SDK (or Claude Code) sends into the OpenAI chat body
the pipeline routes, so that any configured model can answer it. Sans-IO and pure: the body is
not changed. Malformed input is a ``BadRequest`` whose ``param`` is the field's path
(``messages[2].content[0].source.data``). Decisions the Anthropic shape leaves open:

- ``system`` (a string, or text blocks) -> one leading ``system`` message; blocks become text
  parts, ``cache_control`` kept on them (the Anthropic provider replays it).
- Content blocks: ``text`` -> text parts (``cache_control`` kept; ``citations`` dropped);
  ``image`` base64 -> an ``image_url`` data URL, url -> ``image_url``; ``document`` base64 PDF ->
  a ``file`` part with a ``file_data`` data URL, ``text`` source -> a text part, ``content``
  source -> its text parts. Other sources (Files API ``file``, url documents) are a 400: the
  pivot has no way to carry them.
- A user turn's ``tool_result`` blocks become ``tool`` messages placed before the turn's other
  content (the order Anthropic requires them in, and the order OpenAI expects). ``is_error``
  prefixes the result with :data:`TOOL_ERROR_PREFIX` (``"Error: "``): the pivot has no error
  flag, and the prefix tells any model the call failed.
- An assistant turn's ``tool_use`` blocks -> ``tool_calls`` (arguments = the JSON of ``input``);
  ``thinking`` (with its signature) and ``redacted_thinking`` -> ``thinking_blocks`` (the LiteLLM
  convention the Anthropic provider replays), the thinking text -> ``reasoning_content``.
  A thinking block whose signature starts with :data:`THOUGHT_SIGNATURE_PREFIX` was written by our
  own encoder around a Gemini thought signature (see ``encode.py``): it is not replayed as a
  thinking block (Anthropic would reject the signature) but as Google's
  ``extra_content.google.thought_signature`` on the tool call that directly follows it, or else on
  the message.
- Server-side blocks (``server_tool_use``, ``*_tool_result`` other than ``tool_result``,
  ``mcp_tool_use``, ``container_upload``) in the history are dropped: the server ran them, and
  no other model can read them.
- ``tools``: custom tools (``type`` absent or ``custom``) -> function tools; hosted/server tools
  (``web_search_*``, ``bash_*``, ``text_editor_*``, ``computer_*``... any other ``type``) are
  dropped, never an error. ``tool_choice`` ``auto|any|none|tool`` -> ``auto|required|none|
  {function}``; ``disable_parallel_tool_use`` -> ``parallel_tool_calls: false``. No tools left:
  no ``tool_choice`` either.
- ``thinking: {type: enabled, budget_tokens}`` -> ``thinking_budget`` and ``reasoning_effort``
  (budget <= 1024 ``low``, <= 8192 ``medium``, else ``high``), so that mappers reading either
  get the client's wish; ``disabled`` and ``adaptive`` -> nothing (the model's default).
- ``stop_sequences`` -> ``stop``; ``max_tokens``, ``temperature``, ``top_p``, ``top_k`` as they
  are; ``metadata.user_id`` -> ``user``; ``stream`` -> ``stream`` with
  ``stream_options.include_usage`` (the Anthropic stream always carries usage).
- Dropped, never an error: top-level ``cache_control``, ``context_management``, ``container``,
  ``mcp_servers``, ``service_tier``, ``output_config``, ``inference_geo`` and any other field.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.errors import BadRequest

__all__ = ["THOUGHT_SIGNATURE_PREFIX", "TOOL_ERROR_PREFIX", "effort_for_budget", "to_chat"]

JSONBody = dict[str, Any]

TOOL_ERROR_PREFIX = "Error: "
# Marks a provider (Gemini) thought signature carried in an Anthropic thinking block's signature.
THOUGHT_SIGNATURE_PREFIX = "thought_signature:"

_SERVER_BLOCKS = frozenset({"server_tool_use", "mcp_tool_use", "mcp_tool_result", "container_upload"})
_CUSTOM_TOOL_TYPES = (None, "custom")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def effort_for_budget(budget: int) -> str:
    """The ``reasoning_effort`` nearest a thinking budget: <= 1024 low, <= 8192 medium, else high."""
    if budget <= 1024:
        return "low"
    return "medium" if budget <= 8192 else "high"


def to_chat(body: JSONBody) -> JSONBody:
    """An Anthropic Messages request as the OpenAI chat pivot (``BadRequest`` on malformed input)."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required and must be a non-empty string", param="model")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise BadRequest("'max_tokens' is required and must be a positive integer", param="max_tokens")
    out: JSONBody = {"model": model, "messages": _system(body.get("system")) + _messages(body.get("messages"))}
    out["max_tokens"] = max_tokens
    _tools(body, out)
    _thinking(body.get("thinking"), out)
    _sampling(body, out)
    return out


# Top-level fields ---------------------------------------------------------------------------


def _system(raw: Any) -> list[JSONBody]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [{"role": "system", "content": raw}] if raw else []
    if not isinstance(raw, list):
        raise BadRequest("'system' must be a string or a list of text blocks", param="system")
    parts = []
    for k, block in enumerate(raw):
        where = f"system[{k}]"
        if not isinstance(block, dict) or block.get("type") != "text":
            raise BadRequest(f"'{where}' must be a text block", param=where)
        parts.append(_text_part(block, where))
    return [{"role": "system", "content": parts}] if parts else []


def _sampling(body: JSONBody, out: JSONBody) -> None:
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is not None:
            if not _is_number(value):
                raise BadRequest(f"'{key}' must be a number", param=key)
            out[key] = value
    top_k = body.get("top_k")
    if top_k is not None:
        if not _is_int(top_k):
            raise BadRequest("'top_k' must be an integer", param="top_k")
        out["top_k"] = top_k
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise BadRequest("'stop_sequences' must be a list of strings", param="stop_sequences")
        if stop:
            out["stop"] = list(stop)
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise BadRequest("'metadata' must be an object", param="metadata")
        user = metadata.get("user_id")
        if user is not None:
            if not isinstance(user, str):
                raise BadRequest("'metadata.user_id' must be a string", param="metadata.user_id")
            out["user"] = user
    stream = body.get("stream")
    if stream is not None:
        if not isinstance(stream, bool):
            raise BadRequest("'stream' must be a boolean", param="stream")
        if stream:
            out["stream"] = True
            out["stream_options"] = {"include_usage": True}


def _thinking(raw: Any, out: JSONBody) -> None:
    if raw is None:
        return
    ttype = raw.get("type") if isinstance(raw, dict) else None
    if ttype in ("disabled", "adaptive"):
        return
    if ttype != "enabled":
        raise BadRequest("'thinking.type' must be enabled, disabled or adaptive", param="thinking.type")
    budget = raw.get("budget_tokens")
    if not _is_int(budget) or budget < 1:
        raise BadRequest("'thinking.budget_tokens' must be a positive integer", param="thinking.budget_tokens")
    out["thinking_budget"] = budget
    out["reasoning_effort"] = effort_for_budget(budget)


def _tools(body: JSONBody, out: JSONBody) -> None:
    raw = body.get("tools")
    if raw is None:
        return
    if not isinstance(raw, list):
        raise BadRequest("'tools' must be a list", param="tools")
    tools = [tool for k, item in enumerate(raw) if (tool := _tool(item, f"tools[{k}]")) is not None]
    if not tools:
        return  # only hosted tools: the pivot has none, and no choice among them
    out["tools"] = tools
    _tool_choice(body.get("tool_choice"), out)


def _tool(item: Any, where: str) -> JSONBody | None:
    if not isinstance(item, dict):
        raise BadRequest(f"'{where}' must be an object", param=where)
    if item.get("type") not in _CUSTOM_TOOL_TYPES:
        return None  # a hosted/server tool (web search, bash, text editor...): only Anthropic runs it
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"'{where}.name' must be a non-empty string", param=f"{where}.name")
    fn: JSONBody = {"name": name}
    description = item.get("description")
    if description is not None:
        if not isinstance(description, str):
            raise BadRequest(f"'{where}.description' must be a string", param=f"{where}.description")
        fn["description"] = description
    schema = item.get("input_schema")
    if not isinstance(schema, dict):
        raise BadRequest(f"'{where}.input_schema' must be a JSON Schema object", param=f"{where}.input_schema")
    fn["parameters"] = schema
    tool: JSONBody = {"type": "function", "function": fn}
    if "cache_control" in item:
        tool["cache_control"] = item["cache_control"]
    return tool


_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def _tool_choice(raw: Any, out: JSONBody) -> None:
    if raw is None:
        return
    ctype = raw.get("type") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or (ctype not in _CHOICES and ctype != "tool"):
        raise BadRequest("'tool_choice.type' must be auto, any, none or tool", param="tool_choice.type")
    if ctype == "tool":
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequest("'tool_choice.name' must be a non-empty string", param="tool_choice.name")
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        out["tool_choice"] = _CHOICES[ctype]
    disable = raw.get("disable_parallel_tool_use")
    if disable is not None and not isinstance(disable, bool):
        raise BadRequest(
            "'tool_choice.disable_parallel_tool_use' must be a boolean", param="tool_choice.disable_parallel_tool_use"
        )
    if disable:
        out["parallel_tool_calls"] = False


# Messages -----------------------------------------------------------------------------------


def _messages(raw: Any) -> list[JSONBody]:
    if not isinstance(raw, list):
        raise BadRequest("'messages' is required and must be a list", param="messages")
    out: list[JSONBody] = []
    for i, msg in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise BadRequest(f"'{where}' must be an object", param=where)
        role, content = msg.get("role"), msg.get("content")
        if role not in ("user", "assistant", "system"):
            raise BadRequest(f"'{where}.role' must be user or assistant", param=f"{where}.role")
        if role == "system":  # Claude Code sends these for models it does not know: a system message
            out.append({"role": "system", "content": content if isinstance(content, str) else _texts(content, where)})
            continue
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        blocks = _blocks(content, where)
        if role == "user":
            out += _user(blocks)
        else:
            out.append(_assistant(blocks))
    return out


def _texts(content: Any, where: str) -> str:
    """The text blocks of a system entry in ``messages``, joined (other blocks are left out)."""
    blocks = _blocks(content, where)
    return "\n\n".join(str(b.get("text", "")) for btype, b, _ in blocks if btype == "text")


def _blocks(content: Any, where: str) -> list[tuple[str, JSONBody, str]]:
    """``content`` (a list of blocks) as (type, block, path) triples."""
    if not isinstance(content, list):
        raise BadRequest(f"'{where}.content' must be a string or a list of blocks", param=f"{where}.content")
    out = []
    for j, block in enumerate(content):
        bwhere = f"{where}.content[{j}]"
        btype = block.get("type") if isinstance(block, dict) else None
        if not isinstance(btype, str):
            raise BadRequest(f"'{bwhere}' must be an object with a string 'type'", param=f"{bwhere}.type")
        assert isinstance(block, dict)
        out.append((btype, block, bwhere))
    return out


def _is_server_block(btype: str) -> bool:
    return btype in _SERVER_BLOCKS or (btype.endswith("_tool_result") and btype != "tool_result")


def _user(blocks: list[tuple[str, JSONBody, str]]) -> list[JSONBody]:
    """A user turn: its tool results first (as ``tool`` messages), then one user message."""
    tools: list[JSONBody] = []
    parts: list[JSONBody] = []
    for btype, block, bwhere in blocks:
        if btype == "tool_result":
            tools.append(_tool_result(block, bwhere))
        elif _is_server_block(btype):
            continue
        else:
            parts += _content_part(btype, block, bwhere)
    if parts or not tools:
        return [*tools, {"role": "user", "content": parts}]
    return tools


def _content_part(btype: str, block: JSONBody, where: str) -> list[JSONBody]:
    if btype == "text":
        return [_text_part(block, where)]
    if btype == "image":
        return [_keep_cache({"type": "image_url", "image_url": {"url": _image_url(block, where)}}, block)]
    if btype == "document":
        return [_keep_cache(part, block) for part in _document(block, where)]
    raise BadRequest(f"'{where}': content block type {btype!r} is not supported here", param=f"{where}.type")


def _keep_cache(part: JSONBody, block: JSONBody) -> JSONBody:
    if "cache_control" in block:
        part["cache_control"] = block["cache_control"]
    return part


def _text_part(block: JSONBody, where: str) -> JSONBody:
    text = block.get("text")
    if not isinstance(text, str):
        raise BadRequest(f"'{where}.text' must be a string", param=f"{where}.text")
    return _keep_cache({"type": "text", "text": text}, block)


def _source(block: JSONBody, where: str) -> tuple[str, JSONBody]:
    source = block.get("source")
    stype = source.get("type") if isinstance(source, dict) else None
    if not isinstance(stype, str):
        raise BadRequest(f"'{where}.source' must be an object with a 'type'", param=f"{where}.source")
    assert isinstance(source, dict)
    return stype, source


def _field(source: JSONBody, key: str, where: str) -> str:
    value = source.get(key)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"'{where}.source.{key}' must be a non-empty string", param=f"{where}.source.{key}")
    return value


def _image_url(block: JSONBody, where: str) -> str:
    stype, source = _source(block, where)
    if stype == "base64":
        return f"data:{_field(source, 'media_type', where)};base64,{_field(source, 'data', where)}"
    if stype == "url":
        return _field(source, "url", where)
    raise BadRequest(f"'{where}.source.type' {stype!r} is not supported (base64 or url)", param=f"{where}.source.type")


def _document(block: JSONBody, where: str) -> list[JSONBody]:
    stype, source = _source(block, where)
    if stype == "base64":
        media_type = _field(source, "media_type", where)
        data = f"data:{media_type};base64,{_field(source, 'data', where)}"
        spec: JSONBody = {"file_data": data}
        if isinstance(block.get("title"), str):
            spec["filename"] = block["title"]
        return [{"type": "file", "file": spec}]
    if stype == "text":
        return [{"type": "text", "text": _field(source, "data", where)}]
    if stype == "content":
        inner = source.get("content")
        if isinstance(inner, str):
            return [{"type": "text", "text": inner}]
        return [part for btype, b, w in _blocks(inner, f"{where}.source") for part in _content_part(btype, b, w)]
    raise BadRequest(
        f"'{where}.source.type' {stype!r} is not supported (base64, text or content)", param=f"{where}.source.type"
    )


def _tool_result(block: JSONBody, where: str) -> JSONBody:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise BadRequest(f"'{where}.tool_use_id' must be a non-empty string", param=f"{where}.tool_use_id")
    is_error = block.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise BadRequest(f"'{where}.is_error' must be a boolean", param=f"{where}.is_error")
    content = block.get("content")
    result: str | list[JSONBody]
    if content is None:
        result = ""
    elif isinstance(content, str):
        result = content
    else:
        parts = [p for btype, b, w in _blocks(content, where) for p in _content_part(btype, b, w)]
        result = parts if any(p["type"] != "text" for p in parts) else "".join(p["text"] for p in parts)
    if is_error:
        result = _error_result(result)
    return {"role": "tool", "tool_call_id": call_id, "content": result}


def _error_result(result: str | list[JSONBody]) -> str | list[JSONBody]:
    if isinstance(result, str):
        return TOOL_ERROR_PREFIX + result
    return [{"type": "text", "text": TOOL_ERROR_PREFIX.rstrip()}, *result]


def _assistant(blocks: list[tuple[str, JSONBody, str]]) -> JSONBody:
    texts: list[JSONBody] = []
    reasoning: list[str] = []
    thinking_blocks: list[JSONBody] = []
    calls: list[JSONBody] = []
    pending: str | None = None  # a provider signature waiting for the block after it
    message_signature: str | None = None
    for btype, block, bwhere in blocks:
        if btype == "tool_use":
            call = _tool_call(block, bwhere)
            if pending is not None:
                call["extra_content"] = _google(pending)
                pending = None
            calls.append(call)
            continue
        if pending is not None:
            message_signature, pending = pending, None
        if btype == "text":
            texts.append(_text_part(block, bwhere))
        elif btype == "thinking":
            text, signature = _thinking_block(block, bwhere)
            reasoning.append(text)
            if signature.startswith(THOUGHT_SIGNATURE_PREFIX):
                pending = signature.removeprefix(THOUGHT_SIGNATURE_PREFIX)
            else:
                thinking_blocks.append({"type": "thinking", "thinking": text, "signature": signature})
        elif btype == "redacted_thinking":
            data = block.get("data")
            if not isinstance(data, str):
                raise BadRequest(f"'{bwhere}.data' must be a string", param=f"{bwhere}.data")
            thinking_blocks.append({"type": "redacted_thinking", "data": data})
        elif not _is_server_block(btype):
            raise BadRequest(
                f"'{bwhere}': content block type {btype!r} is not supported in an assistant turn",
                param=f"{bwhere}.type",
            )
    if pending is not None:
        message_signature = pending
    msg: JSONBody = {"role": "assistant", "content": _assistant_content(texts, bool(calls))}
    if calls:
        msg["tool_calls"] = calls
    if reasoning:
        msg["reasoning_content"] = "".join(reasoning)
    if thinking_blocks:
        msg["thinking_blocks"] = thinking_blocks
    if message_signature is not None:
        msg["extra_content"] = _google(message_signature)
    return msg


def _assistant_content(texts: list[JSONBody], has_calls: bool) -> str | list[JSONBody] | None:
    """Text parts when one carries ``cache_control``, else one string (``None`` beside tool calls)."""
    if any("cache_control" in p for p in texts):
        return texts
    text = "".join(p["text"] for p in texts)
    return None if not text and has_calls else text


def _google(signature: str) -> JSONBody:
    return {"google": {"thought_signature": signature}}


def _thinking_block(block: JSONBody, where: str) -> tuple[str, str]:
    text, signature = block.get("thinking"), block.get("signature")
    if not isinstance(text, str):
        raise BadRequest(f"'{where}.thinking' must be a string", param=f"{where}.thinking")
    if not isinstance(signature, str):
        raise BadRequest(f"'{where}.signature' must be a string", param=f"{where}.signature")
    return text, signature


def _tool_call(block: JSONBody, where: str) -> JSONBody:
    call_id, name = block.get("id"), block.get("name")
    if not isinstance(call_id, str) or not call_id:
        raise BadRequest(f"'{where}.id' must be a non-empty string", param=f"{where}.id")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"'{where}.name' must be a non-empty string", param=f"{where}.name")
    args = block.get("input", {})
    if not isinstance(args, dict):
        raise BadRequest(f"'{where}.input' must be an object", param=f"{where}.input")
    arguments = orjson.dumps(args).decode()
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
