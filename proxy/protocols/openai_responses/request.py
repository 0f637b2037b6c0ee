"""The Responses front door's request reader: a ``/v1/responses`` body -> the OpenAI chat pivot.

``to_chat`` turns what Codex, the Agents SDK or ``client.responses.create`` send into the chat
body the pipeline routes. Sans-IO and pure. Malformed input is a ``BadRequest`` whose ``param``
is the field's path (``input[3].content[0].image_url``). Decisions the shapes leave open:

- ``instructions`` -> a leading ``system`` message; ``input`` as a string -> one user message.
- ``message`` items (``type`` may be absent): ``user`` parts ``input_text`` -> text,
  ``input_image`` with ``image_url`` -> ``image_url`` (``detail`` kept), ``input_file`` with
  ``file_data`` -> a ``file`` part; ``file_id`` anywhere is a 400 (the pivot cannot fetch
  OpenAI files). ``system`` and ``developer`` -> ``system`` (chat-only upstreams do not all know
  ``developer``; every translator treats both alike), their text joined. ``assistant`` parts
  ``output_text`` and ``refusal`` -> the message's text.
- ``function_call`` items -> ``tool_calls`` on the assistant message just before them (a new
  one when there is none), so that text and calls of one turn stay one message and consecutive
  calls merge. ``function_call_output`` -> a ``tool`` message (a string, or parts when an image
  is among them). ``custom_tool_call`` / ``custom_tool_call_output`` -> the same, the call's
  ``input`` wrapped as the arguments ``{"input": ...}`` of the function standing for the tool.
- ``reasoning`` items: their ``encrypted_content`` comes back only when our encoder wrote it
  (see the prefixes below): an Anthropic signature -> a ``thinking`` block (its text: the
  summary) and a redacted block -> a ``redacted_thinking`` block, both in ``thinking_blocks`` of
  the next assistant message; a Gemini thought signature -> ``extra_content.google
  .thought_signature`` on the ``function_call`` directly after, else on the assistant message
  before it. Anything else (OpenAI's own encrypted reasoning, a plain summary) is dropped.
- Items a hosted tool produced (``web_search_call``, ``*_call``/``*_call_output`` of other
  kinds, ``compaction``, ``mcp_*``) are dropped: no other model can read them.
  ``item_reference`` is a 400: the referenced item lives in OpenAI's store.
- ``tools``: ``function`` -> chat function tools (``strict`` kept); ``custom`` -> a function
  with one required string parameter ``input`` (its ``format`` grammar written into that
  parameter's description), named in ``custom_tools`` so the encoder returns its calls as
  ``custom_tool_call`` items; hosted tools (``web_search``, ``file_search``, ``mcp``,
  ``namespace``, any other type) are dropped, named in ``dropped_tools``, never an error.
- ``tool_choice`` ``auto|none|required`` as they are, ``{type: function|custom, name}`` ->
  ``{type: function, function: {name}}``; a choice of a hosted tool (or ``allowed_tools``) ->
  ``auto``. No tools left: neither ``tool_choice`` nor ``parallel_tool_calls``.
- ``max_output_tokens`` -> ``max_tokens``; ``temperature``, ``top_p``, ``user``,
  ``parallel_tool_calls`` as they are; ``reasoning.effort`` ``minimal|low|medium|high`` ->
  ``reasoning_effort`` (``xhigh`` -> ``high``; ``none`` -> nothing); ``text.format``
  ``json_schema`` -> ``response_format`` ``json_schema`` (``name``, ``schema``, ``strict``,
  ``description``), ``json_object`` likewise, ``text`` -> nothing; ``stream`` -> ``stream`` with
  ``stream_options.include_usage`` (the Responses stream always ends with usage).
- Dropped, never an error: ``metadata`` (chat upstreams accept it only with ``store``),
  ``store``, ``include``, ``prompt_cache_key``, ``client_metadata``, ``text.verbosity``,
  ``reasoning.summary``, ``service_tier``, ``truncation``, ``previous_response_id`` (the door's
  business), ``safety_identifier`` and any other field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.errors import BadRequest

__all__ = [
    "ANTHROPIC_REDACTED_PREFIX",
    "ANTHROPIC_SIGNATURE_PREFIX",
    "CUSTOM_INPUT",
    "GEMINI_SIGNATURE_PREFIX",
    "ResponsesRequest",
    "to_chat",
]

JSONBody = dict[str, Any]

# ``encrypted_content`` of the reasoning items our encoder writes: origin prefix + the value.
ANTHROPIC_SIGNATURE_PREFIX = "anthropic:"  # a signed thinking block's signature
ANTHROPIC_REDACTED_PREFIX = "anthropic-redacted:"  # a redacted thinking block's data
GEMINI_SIGNATURE_PREFIX = "gemini:"  # a Gemini thought signature
CUSTOM_INPUT = "input"  # the one string parameter of the function standing for a custom tool

_EFFORTS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high", "xhigh": "high"}
_HOSTED_ITEMS = frozenset({"compaction", "mcp_list_tools", "mcp_approval_request", "mcp_approval_response"})


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    """A Responses request read: the chat pivot, and what the door must know beside it."""

    chat: JSONBody
    custom_tools: frozenset[str] = frozenset()  # names of ``custom`` tools (for the encoder)
    dropped_tools: tuple[str, ...] = field(default=())  # types of hosted tools left out (to log)


def _fail(message: str, param: str) -> BadRequest:
    return BadRequest(message, param=param)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _string(obj: JSONBody, key: str, where: str, *, empty: bool = False) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or (not value and not empty):
        kind = "a string" if empty else "a non-empty string"
        raise _fail(f"'{where}.{key}' must be {kind}", f"{where}.{key}")
    return value


def to_chat(body: JSONBody) -> ResponsesRequest:
    """A Responses request as the OpenAI chat pivot (``BadRequest`` on malformed input)."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _fail("'model' is required and must be a non-empty string", "model")
    messages = _instructions(body.get("instructions"))
    raw_input = body.get("input")
    if raw_input is None and body.get("previous_response_id") is None and not messages:
        raise _fail("'input' is required", "input")
    messages += _input(raw_input)
    chat: JSONBody = {"model": model, "messages": messages}
    custom, dropped = _tools(body, chat)
    _parameters(body, chat)
    _reasoning(body.get("reasoning"), chat)
    _text(body.get("text"), chat)
    return ResponsesRequest(chat, custom, dropped)


# Top-level fields ---------------------------------------------------------------------------


def _instructions(raw: Any) -> list[JSONBody]:
    if raw is None or raw == "":
        return []
    if not isinstance(raw, str):
        raise _fail("'instructions' must be a string", "instructions")
    return [{"role": "system", "content": raw}]


def _parameters(body: JSONBody, chat: JSONBody) -> None:
    limit = body.get("max_output_tokens")
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise _fail("'max_output_tokens' must be a positive integer", "max_output_tokens")
        chat["max_tokens"] = limit
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is not None:
            if not _is_number(value):
                raise _fail(f"'{key}' must be a number", key)
            chat[key] = value
    user = body.get("user")
    if user is not None:
        if not isinstance(user, str):
            raise _fail("'user' must be a string", "user")
        chat["user"] = user
    stream = body.get("stream")
    if stream is not None:
        if not isinstance(stream, bool):
            raise _fail("'stream' must be a boolean", "stream")
        if stream:
            chat["stream"] = True
            chat["stream_options"] = {"include_usage": True}


def _reasoning(raw: Any, chat: JSONBody) -> None:
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise _fail("'reasoning' must be an object", "reasoning")
    effort = raw.get("effort")
    if effort is None or effort == "none":
        return
    if effort not in _EFFORTS:
        raise _fail("'reasoning.effort' must be none, minimal, low, medium, high or xhigh", "reasoning.effort")
    chat["reasoning_effort"] = _EFFORTS[effort]


def _text(raw: Any, chat: JSONBody) -> None:
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise _fail("'text' must be an object", "text")
    fmt = raw.get("format")
    if fmt is None:
        return
    ftype = fmt.get("type") if isinstance(fmt, dict) else None
    if ftype == "text":
        return
    if ftype == "json_object":
        chat["response_format"] = {"type": "json_object"}
        return
    if ftype != "json_schema":
        raise _fail("'text.format.type' must be text, json_object or json_schema", "text.format.type")
    assert isinstance(fmt, dict)
    spec: JSONBody = {"name": _string(fmt, "name", "text.format")}
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise _fail("'text.format.schema' must be a JSON Schema object", "text.format.schema")
    spec["schema"] = schema
    for key, kind in (("strict", bool), ("description", str)):
        value = fmt.get(key)
        if value is not None:
            if not isinstance(value, kind):
                raise _fail(f"'text.format.{key}' must be a {kind.__name__}", f"text.format.{key}")
            spec[key] = value
    chat["response_format"] = {"type": "json_schema", "json_schema": spec}


# Tools --------------------------------------------------------------------------------------


def _tools(body: JSONBody, chat: JSONBody) -> tuple[frozenset[str], tuple[str, ...]]:
    raw = body.get("tools")
    if raw is None:
        return frozenset(), ()
    if not isinstance(raw, list):
        raise _fail("'tools' must be a list", "tools")
    tools: list[JSONBody] = []
    custom: set[str] = set()
    dropped: list[str] = []
    for k, item in enumerate(raw):
        where = f"tools[{k}]"
        ttype = item.get("type") if isinstance(item, dict) else None
        if not isinstance(ttype, str):
            raise _fail(f"'{where}' must be an object with a string 'type'", f"{where}.type")
        assert isinstance(item, dict)
        if ttype == "function":
            tools.append(_function_tool(item, where))
        elif ttype == "custom":
            tools.append(_custom_tool(item, where))
            custom.add(tools[-1]["function"]["name"])
        else:
            dropped.append(ttype)  # hosted: only OpenAI runs it
    if tools:
        chat["tools"] = tools
        _tool_choice(body.get("tool_choice"), chat)
        parallel = body.get("parallel_tool_calls")
        if parallel is not None:
            if not isinstance(parallel, bool):
                raise _fail("'parallel_tool_calls' must be a boolean", "parallel_tool_calls")
            chat["parallel_tool_calls"] = parallel
    return frozenset(custom), tuple(dropped)


def _function_tool(item: JSONBody, where: str) -> JSONBody:
    fn: JSONBody = {"name": _string(item, "name", where)}
    description = item.get("description")
    if description is not None:
        fn["description"] = _string(item, "description", where, empty=True)
    parameters = item.get("parameters")
    if parameters is not None:
        if not isinstance(parameters, dict):
            raise _fail(f"'{where}.parameters' must be a JSON Schema object", f"{where}.parameters")
        fn["parameters"] = parameters
    strict = item.get("strict")
    if strict is not None:
        if not isinstance(strict, bool):
            raise _fail(f"'{where}.strict' must be a boolean", f"{where}.strict")
        fn["strict"] = strict
    return {"type": "function", "function": fn}


def _custom_tool(item: JSONBody, where: str) -> JSONBody:
    """A free-form tool as a function of one string: the model writes the input there."""
    name = _string(item, "name", where)
    fn: JSONBody = {"name": name}
    description = item.get("description")
    if description is not None:
        fn["description"] = _string(item, "description", where, empty=True)
    about = "The tool's whole input, as free-form text." + _format_note(item.get("format"), where)
    fn["parameters"] = {
        "type": "object",
        "properties": {CUSTOM_INPUT: {"type": "string", "description": about}},
        "required": [CUSTOM_INPUT],
        "additionalProperties": False,
    }
    return {"type": "function", "function": fn}


def _format_note(fmt: Any, where: str) -> str:
    """A custom tool's ``format`` in words: models without grammar-constrained decoding read it."""
    if fmt is None:
        return ""
    ftype = fmt.get("type") if isinstance(fmt, dict) else None
    if ftype == "text":
        return ""
    if ftype != "grammar":
        raise _fail(f"'{where}.format.type' must be text or grammar", f"{where}.format.type")
    assert isinstance(fmt, dict)
    syntax = _string(fmt, "syntax", f"{where}.format")
    definition = _string(fmt, "definition", f"{where}.format")
    return f" It must follow this {syntax} grammar:\n{definition}"


def _tool_choice(raw: Any, chat: JSONBody) -> None:
    if raw is None:
        return
    if raw in ("auto", "none", "required"):
        chat["tool_choice"] = raw
        return
    ctype = raw.get("type") if isinstance(raw, dict) else None
    if not isinstance(ctype, str):
        raise _fail("'tool_choice' must be auto, none, required or an object with a 'type'", "tool_choice")
    assert isinstance(raw, dict)
    if ctype not in ("function", "custom"):
        chat["tool_choice"] = "auto"  # a hosted tool or allowed_tools: let the model choose
        return
    name = _string(raw, "name", "tool_choice")
    if name not in {tool["function"]["name"] for tool in chat["tools"]}:
        raise _fail(f"'tool_choice.name' names no tool in 'tools': {name!r}", "tool_choice.name")
    chat["tool_choice"] = {"type": "function", "function": {"name": name}}


# Input items --------------------------------------------------------------------------------


def _input(raw: Any) -> list[JSONBody]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    if not isinstance(raw, list):
        raise _fail("'input' must be a string or a list of items", "input")
    return _Reader().read(raw)


class _Reader:
    """Walks the input items in order, keeping what a later item needs from earlier ones."""

    def __init__(self) -> None:
        self.out: list[JSONBody] = []
        self.blocks: list[JSONBody] = []  # Anthropic thinking blocks waiting for their assistant message
        self.google: str | None = None  # a Gemini signature waiting for the call directly after

    def read(self, items: list[Any]) -> list[JSONBody]:
        for i, item in enumerate(items):
            where = f"input[{i}]"
            if not isinstance(item, dict):
                raise _fail(f"'{where}' must be an object", where)
            itype = item.get("type", "message" if "role" in item else None)
            if not isinstance(itype, str):
                raise _fail(f"'{where}.type' must be a string", f"{where}.type")
            if itype not in ("function_call", "custom_tool_call") and not _is_assistant(itype, item):
                self._place_signature()
            self._item(itype, item, where)
        self._place_signature()
        if self.blocks:  # thinking with nothing after it: a turn of its own
            self.out.append({"role": "assistant", "content": "", "thinking_blocks": self.blocks})
        return self.out

    def _item(self, itype: str, item: JSONBody, where: str) -> None:
        if itype == "message":
            self._message(item, where)
        elif itype == "function_call":
            self._call(_string(item, "call_id", where), _string(item, "name", where), _arguments(item, where))
        elif itype == "custom_tool_call":
            text = _string(item, "input", where, empty=True)
            arguments = orjson.dumps({CUSTOM_INPUT: text}).decode()
            self._call(_string(item, "call_id", where), _string(item, "name", where), arguments)
        elif itype in ("function_call_output", "custom_tool_call_output"):
            call_id = _string(item, "call_id", where)
            self.out.append({"role": "tool", "tool_call_id": call_id, "content": _output(item, where)})
        elif itype == "reasoning":
            self._reasoning(item, where)
        elif itype == "item_reference":
            raise _fail(f"'{where}': item_reference is not supported here (send the item itself)", f"{where}.type")
        elif not (itype in _HOSTED_ITEMS or itype.endswith(("_call", "_call_output"))):
            raise _fail(f"'{where}': input item type {itype!r} is not supported", f"{where}.type")

    def _message(self, item: JSONBody, where: str) -> None:
        role = item.get("role")
        content = item.get("content")
        if role in ("system", "developer"):
            self.out.append({"role": "system", "content": _joined(content, where, _INPUT_TEXT)})
        elif role == "user":
            self.out.append({"role": "user", "content": _user_content(content, where)})
        elif role == "assistant":
            message = self._new_assistant(_joined(content, where, _OUTPUT_TEXT))
            if self.google is not None:  # a Gemini signature just before the text is the text's
                message["extra_content"] = _google(self.google)
                self.google = None
        else:
            raise _fail(f"'{where}.role' must be user, assistant, system or developer", f"{where}.role")

    def _new_assistant(self, content: str | None) -> JSONBody:
        """A new assistant message, carrying the thinking blocks that came before it."""
        message: JSONBody = {"role": "assistant", "content": content}
        if self.blocks:
            message["thinking_blocks"] = self.blocks
            self.blocks = []
        self.out.append(message)
        return message

    def _call(self, call_id: str, name: str, arguments: str) -> None:
        """A call joins the assistant message just before it (text and calls of one turn), else opens one."""
        call: JSONBody = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        if self.google is not None:
            call["extra_content"] = _google(self.google)
            self.google = None
        last = self.out[-1] if self.out else None
        if last is None or last["role"] != "assistant":
            last = self._new_assistant(None)
        elif self.blocks:
            last.setdefault("thinking_blocks", []).extend(self.blocks)
            self.blocks = []
        last.setdefault("tool_calls", []).append(call)

    def _reasoning(self, item: JSONBody, where: str) -> None:
        encrypted = item.get("encrypted_content")
        if encrypted is not None and not isinstance(encrypted, str):
            raise _fail(f"'{where}.encrypted_content' must be a string", f"{where}.encrypted_content")
        summary = _summary(item.get("summary"), where)
        if not encrypted:
            return
        if encrypted.startswith(ANTHROPIC_SIGNATURE_PREFIX):
            signature = encrypted.removeprefix(ANTHROPIC_SIGNATURE_PREFIX)
            self.blocks.append({"type": "thinking", "thinking": summary, "signature": signature})
        elif encrypted.startswith(ANTHROPIC_REDACTED_PREFIX):
            self.blocks.append({"type": "redacted_thinking", "data": encrypted.removeprefix(ANTHROPIC_REDACTED_PREFIX)})
        elif encrypted.startswith(GEMINI_SIGNATURE_PREFIX):
            self.google = encrypted.removeprefix(GEMINI_SIGNATURE_PREFIX)

    def _place_signature(self) -> None:
        """A Gemini signature not followed by a call goes on the assistant message before it."""
        if self.google is None:
            return
        if self.out and self.out[-1]["role"] == "assistant":
            self.out[-1]["extra_content"] = _google(self.google)
        self.google = None


def _is_assistant(itype: str, item: JSONBody) -> bool:
    return itype == "message" and item.get("role") == "assistant"


def _google(signature: str) -> JSONBody:
    return {"google": {"thought_signature": signature}}


def _arguments(item: JSONBody, where: str) -> str:
    arguments = _string(item, "arguments", where, empty=True)
    return arguments or "{}"


def _summary(raw: Any, where: str) -> str:
    """A reasoning item's summary texts, joined (the thinking text a signature was made over)."""
    if raw is None:
        return ""
    if not isinstance(raw, list):
        raise _fail(f"'{where}.summary' must be a list", f"{where}.summary")
    texts = []
    for k, part in enumerate(raw):
        pwhere = f"{where}.summary[{k}]"
        if not isinstance(part, dict):
            raise _fail(f"'{pwhere}' must be an object", pwhere)
        texts.append(_string(part, "text", pwhere, empty=True))
    return "".join(texts)


_INPUT_TEXT = frozenset({"input_text", "output_text"})
_OUTPUT_TEXT = frozenset({"output_text", "input_text", "refusal"})


def _parts(content: Any, where: str, key: str = "content") -> list[tuple[str, JSONBody, str]]:
    if not isinstance(content, list):
        raise _fail(f"'{where}.{key}' must be a string or a list of parts", f"{where}.{key}")
    out = []
    for j, part in enumerate(content):
        pwhere = f"{where}.{key}[{j}]"
        ptype = part.get("type") if isinstance(part, dict) else None
        if not isinstance(ptype, str):
            raise _fail(f"'{pwhere}' must be an object with a string 'type'", f"{pwhere}.type")
        assert isinstance(part, dict)
        out.append((ptype, part, pwhere))
    return out


def _joined(content: Any, where: str, kinds: frozenset[str]) -> str:
    """A message's text parts as one string (system and assistant turns)."""
    if isinstance(content, str):
        return content
    texts = []
    for ptype, part, pwhere in _parts(content, where):
        if ptype not in kinds:
            raise _fail(f"'{pwhere}': part type {ptype!r} is not supported in this message", f"{pwhere}.type")
        texts.append(_string(part, "refusal" if ptype == "refusal" else "text", pwhere, empty=True))
    return "".join(texts)


def _user_content(content: Any, where: str) -> str | list[JSONBody]:
    if isinstance(content, str):
        return content
    return [_user_part(ptype, part, pwhere) for ptype, part, pwhere in _parts(content, where)]


def _user_part(ptype: str, part: JSONBody, where: str) -> JSONBody:
    if ptype in ("input_text", "output_text"):
        return {"type": "text", "text": _string(part, "text", where, empty=True)}
    if part.get("file_id") is not None:
        raise _fail(f"'{where}.file_id' is not supported: send the data itself", f"{where}.file_id")
    if ptype == "input_image":
        image: JSONBody = {"url": _string(part, "image_url", where)}
        detail = part.get("detail")
        if detail is not None:
            if detail not in ("auto", "low", "high", "original"):
                raise _fail(f"'{where}.detail' must be auto, low or high", f"{where}.detail")
            image["detail"] = "auto" if detail == "original" else detail
        return {"type": "image_url", "image_url": image}
    if ptype == "input_file":
        spec: JSONBody = {"file_data": _string(part, "file_data", where)}
        if part.get("filename") is not None:
            spec["filename"] = _string(part, "filename", where)
        return {"type": "file", "file": spec}
    raise _fail(f"'{where}': part type {ptype!r} is not supported in a user message", f"{where}.type")


def _output(item: JSONBody, where: str) -> str | list[JSONBody]:
    """A tool's output: a string, or parts (joined into one string when they are all text)."""
    raw = item.get("output")
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, list):
        raise _fail(f"'{where}.output' must be a string or a list of parts", f"{where}.output")
    parts = [_user_part(ptype, part, pwhere) for ptype, part, pwhere in _parts(raw, where, "output")]
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts
