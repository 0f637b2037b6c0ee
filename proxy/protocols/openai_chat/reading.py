"""Typed readers of the OpenAI chat body: the one place that decides what a field means.

Every request mapper (Anthropic, Gemini) and the front door's validation read the body through
these functions, so a field is accepted or refused the same way whichever provider serves it.
A reader raises ``BadRequest`` for malformed input, with ``param`` naming the exact field path
(``messages[2].content[0].image_url.url``); it never raises ``UnsupportedByProvider``: whether a
provider can serve a well-formed value is the mapper's call.

What counts as malformed follows OpenAI's API, leniently where OpenAI may grow: unknown content
part types, tool types, tool-choice types and response-format types read as ``Other*`` values,
and unknown fields are ignored. Deliberate decisions:

* A tool needs a string ``type`` (OpenAI requires it); an assistant tool call without ``type``
  is a function call (clients echo streamed deltas, which may omit it).
* Tool-call ``arguments`` is a string holding a JSON object. An empty or whitespace-only string,
  or no ``arguments`` at all, means no arguments (``{}``): models produce it for parameterless
  functions and OpenAI takes it back. Any other value (an object, a number) is a 400, as OpenAI
  answers it, and so is a string that is not JSON or encodes anything but an object.
* ``tool_choice`` ``required`` or naming a function needs tools that can satisfy it; ``none``
  and ``auto`` without tools are harmless and ignored.

Sans-IO and deterministic: plain values in, frozen dataclasses out; the body is never changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

from proxy.errors import BadRequest
from proxy.protocols.depth import MAX_DEPTH, too_deep

__all__ = [
    "AudioPart",
    "Call",
    "DataURL",
    "FilePart",
    "FunctionTool",
    "ImagePart",
    "OtherCall",
    "OtherPart",
    "OtherTool",
    "Part",
    "RefusalPart",
    "ResponseFormat",
    "TextPart",
    "ToolChoice",
    "Tools",
    "read_arguments",
    "read_content",
    "read_data_url",
    "read_function_call",
    "read_max_tokens",
    "read_n",
    "read_parts",
    "read_reasoning_effort",
    "read_response_format",
    "read_stop",
    "read_temperature",
    "read_tool_call_id",
    "read_tool_calls",
    "read_tool_choice",
    "read_tools",
    "read_top_p",
]

JSONObject = dict[str, Any]


def _is_int(value: Any) -> bool:
    return type(value) is int  # orjson makes exact types; a bool is not an int here


def _is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float


def _string(value: Any, where: str, *, empty: bool = True) -> str:
    if not isinstance(value, str) or (not empty and not value):
        raise BadRequest(f"'{where}' must be a {'' if empty else 'non-empty '}string", param=where)
    return value


def _optional_string(obj: JSONObject, key: str, where: str) -> str | None:
    value = obj.get(key)
    return None if value is None else _string(value, f"{where}.{key}")


def _object(value: Any, where: str) -> JSONObject:
    if not isinstance(value, dict):
        raise BadRequest(f"'{where}' must be an object", param=where)
    return value


# Content parts -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataURL:
    """A ``data:<mime>[;...];base64,<data>`` URL, split: ``mime`` lower-cased, ``data`` still base64."""

    mime: str
    data: str


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str
    where: str  # the part's path, for errors a mapper raises about it
    raw: JSONObject  # the part as sent, for provider extensions (``cache_control``)


@dataclass(frozen=True, slots=True)
class RefusalPart:
    refusal: str
    where: str
    raw: JSONObject


@dataclass(frozen=True, slots=True)
class ImagePart:
    url: str  # an http(s) URL or a data: URL
    data: DataURL | None  # the parsed data: URL, None for http(s)
    detail: str | None
    where: str
    raw: JSONObject


@dataclass(frozen=True, slots=True)
class AudioPart:
    data: str  # base64
    format: str  # OpenAI names wav and mp3; other words pass, for a mapper to refuse
    where: str
    raw: JSONObject


@dataclass(frozen=True, slots=True)
class FilePart:
    data: DataURL | None  # ``file_data`` when it is a data: URL
    file_data: str | None  # ``file_data`` as sent
    file_id: str | None
    filename: str | None
    where: str
    raw: JSONObject


@dataclass(frozen=True, slots=True)
class OtherPart:
    """A part of a type this proxy does not know (OpenAI may add some): valid, for a mapper to refuse."""

    type: str
    where: str
    raw: JSONObject


Part = TextPart | RefusalPart | ImagePart | AudioPart | FilePart | OtherPart


def read_data_url(url: str, where: str) -> DataURL:
    """Split a base64 ``data:`` URL; anything else under ``data:`` is malformed (OpenAI refuses it too)."""
    comma = url.find(",")
    header = url[5:comma] if comma >= 0 else ""
    mime, _, params = header.partition(";")
    mime = mime.strip().lower()
    if comma < 0 or not mime or "base64" not in params.split(";") or comma == len(url) - 1:
        raise BadRequest(f"'{where}' must be a base64 data: URL, 'data:<media type>;base64,<data>'", param=where)
    return DataURL(mime, url[comma + 1 :])


def _image_part(part: JSONObject, where: str) -> ImagePart:
    spec = part.get("image_url")
    if isinstance(spec, str):  # a bare URL: older clients send it so
        url, detail = spec, None
    else:
        obj = _object(spec, f"{where}.image_url")
        url = _string(obj.get("url"), f"{where}.image_url.url", empty=False)
        detail = _optional_string(obj, "detail", f"{where}.image_url")
    uwhere = f"{where}.image_url.url"
    if url.startswith("data:"):
        return ImagePart(url, read_data_url(url, uwhere), detail, where, part)
    if not url.startswith(("https://", "http://")):
        raise BadRequest(f"'{uwhere}' must be an http(s) URL or a base64 data: URL", param=uwhere)
    return ImagePart(url, None, detail, where, part)


def _audio_part(part: JSONObject, where: str) -> AudioPart:
    awhere = f"{where}.input_audio"
    spec = _object(part.get("input_audio"), awhere)
    data = _string(spec.get("data"), f"{awhere}.data", empty=False)
    return AudioPart(data, _string(spec.get("format"), f"{awhere}.format", empty=False), where, part)


def _file_part(part: JSONObject, where: str) -> FilePart:
    fwhere = f"{where}.file"
    spec = _object(part.get("file"), fwhere)
    file_data = _optional_string(spec, "file_data", fwhere)
    file_id = _optional_string(spec, "file_id", fwhere)
    if not file_data and not file_id:
        raise BadRequest(f"'{fwhere}' needs 'file_data' or 'file_id'", param=fwhere)
    data = read_data_url(file_data, f"{fwhere}.file_data") if file_data and file_data.startswith("data:") else None
    return FilePart(data, file_data, file_id, _optional_string(spec, "filename", fwhere), where, part)


def _part(part: Any, where: str) -> Part:
    obj = _object(part, where)
    ptype = obj.get("type")
    if not isinstance(ptype, str):
        raise BadRequest(f"'{where}.type' must be a string", param=f"{where}.type")
    if ptype == "text":
        return TextPart(_string(obj.get("text"), f"{where}.text"), where, obj)
    if ptype == "image_url":
        return _image_part(obj, where)
    if ptype == "refusal":
        return RefusalPart(_string(obj.get("refusal"), f"{where}.refusal"), where, obj)
    if ptype == "input_audio":
        return _audio_part(obj, where)
    if ptype == "file":
        return _file_part(obj, where)
    return OtherPart(ptype, where, obj)


def read_content(content: Any, where: str) -> str | list[Part] | None:
    """A message's ``content`` (``where`` is the message's path): a string, parts, or None."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BadRequest(f"'{where}.content' must be a string or an array of parts", param=f"{where}.content")
    return [_part(part, f"{where}.content[{j}]") for j, part in enumerate(content)]


def read_parts(content: Any, where: str) -> list[Part]:
    """A message's ``content`` as parts: a string is one text part, None is none."""
    read = read_content(content, where)
    if read is None:
        return []
    if isinstance(read, str):
        return [TextPart(read, f"{where}.content", {"type": "text", "text": read})]
    return read


# Tools ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FunctionTool:
    name: str
    description: str | None
    parameters: JSONObject | None  # a JSON schema
    strict: bool | None
    where: str  # the path of the function definition (``tools[0].function``, ``functions[0]``)
    raw: JSONObject  # the tool as sent, for provider extensions (``cache_control``)


@dataclass(frozen=True, slots=True)
class OtherTool:
    """A tool of a type other than ``function`` (``custom``, a hosted tool): valid, for a mapper to refuse."""

    type: str
    where: str  # the tool's path
    raw: JSONObject


@dataclass(frozen=True, slots=True)
class Tools:
    """The request's tools, from ``tools`` or (``legacy``) from the old ``functions``."""

    items: tuple[FunctionTool | OtherTool, ...] = ()
    legacy: bool = False

    @property
    def key(self) -> str:
        return "functions" if self.legacy else "tools"

    @property
    def choice_key(self) -> str:
        return "function_call" if self.legacy else "tool_choice"

    @property
    def names(self) -> frozenset[str]:
        return frozenset(t.name for t in self.items if isinstance(t, FunctionTool))


def _function(fn: Any, where: str, raw: JSONObject) -> FunctionTool:
    obj = _object(fn, where)
    parameters = obj.get("parameters")
    if parameters is not None:
        _object(parameters, f"{where}.parameters")
    strict = obj.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise BadRequest(f"'{where}.strict' must be a boolean", param=f"{where}.strict")
    name = _string(obj.get("name"), f"{where}.name", empty=False)
    return FunctionTool(name, _optional_string(obj, "description", where), parameters, strict, where, raw)


def _tool(tool: Any, where: str) -> FunctionTool | OtherTool:
    obj = _object(tool, where)
    ttype = _string(obj.get("type"), f"{where}.type", empty=False)
    if ttype != "function":
        return OtherTool(ttype, where, obj)
    return _function(obj.get("function"), f"{where}.function", obj)


def read_tools(body: JSONObject) -> Tools:
    """The request's tools; using both ``tools`` and legacy ``functions`` is a 400."""
    tools, functions = body.get("tools"), body.get("functions")
    if tools and functions:
        raise BadRequest("use either 'tools' or the legacy 'functions', not both", param="functions")
    if functions:
        if not isinstance(functions, list):
            raise BadRequest("'functions' must be an array", param="functions")
        return Tools(tuple(_function(fn, f"functions[{k}]", fn) for k, fn in enumerate(functions)), legacy=True)
    if not tools:
        return Tools()
    if not isinstance(tools, list):
        raise BadRequest("'tools' must be an array", param="tools")
    return Tools(tuple(_tool(tool, f"tools[{k}]") for k, tool in enumerate(tools)))


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """``tool_choice`` (or legacy ``function_call``): ``mode`` auto, none, required, function (a
    ``name``), or other (``type`` names a choice type this proxy does not know)."""

    mode: Literal["auto", "none", "required", "function", "other"]
    key: str  # "tool_choice" or "function_call", for errors about it
    name: str | None = None
    type: str | None = None


def read_tool_choice(body: JSONObject, tools: Tools) -> ToolChoice | None:
    """The tool choice that goes with ``tools`` (None when the client gave none)."""
    key = tools.choice_key
    raw = body.get(key)
    if raw is None:
        return None
    choice = _tool_choice(raw, key, tools.legacy)
    if choice.mode in ("required", "function") and not tools.items:
        raise BadRequest(f"'{key}' {raw!r} needs at least one tool in '{tools.key}'", param=key)
    if choice.mode == "function" and choice.name not in tools.names:
        where = key if tools.legacy else f"{key}.function"
        raise BadRequest(f"'{key}' names the function {choice.name!r}, which is not declared", param=f"{where}.name")
    return choice


def _tool_choice(raw: Any, key: str, legacy: bool) -> ToolChoice:
    if raw in ("auto", "none") or (raw == "required" and not legacy):
        return ToolChoice(raw, key)
    if isinstance(raw, dict):
        if legacy:
            return ToolChoice("function", key, name=_string(raw.get("name"), f"{key}.name", empty=False))
        ctype = _string(raw.get("type"), f"{key}.type", empty=False)
        if ctype != "function":
            return ToolChoice("other", key, type=ctype)
        fn = _object(raw.get("function"), f"{key}.function")
        return ToolChoice("function", key, name=_string(fn.get("name"), f"{key}.function.name", empty=False))
    allowed = "'none', 'auto' or {'name': ...}" if legacy else "'none', 'auto', 'required' or an object"
    raise BadRequest(f"'{key}' must be {allowed}, got {raw!r}", param=key)


# Assistant tool calls ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    """A function call of an earlier assistant turn (``id`` is None for a legacy ``function_call``)."""

    id: str | None
    name: str
    arguments: JSONObject
    where: str
    raw: JSONObject  # the call as sent, for provider extensions (``extra_content``)


@dataclass(frozen=True, slots=True)
class OtherCall:
    """A tool call of a type other than ``function`` (``custom``): valid, for a mapper to refuse."""

    type: str
    where: str
    raw: JSONObject


def read_arguments(raw: Any, where: str) -> JSONObject:
    """A call's ``arguments`` as the object it encodes (the rule is in the module docstring)."""
    if raw is None:
        return {}
    if not isinstance(raw, str):
        raise BadRequest(f"'{where}' must be a JSON string, got {type(raw).__name__}", param=where)
    if not raw or raw.isspace():
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest(f"'{where}' is not valid JSON", param=where) from None
    if not isinstance(value, dict):
        raise BadRequest(f"'{where}' must encode a JSON object", param=where)
    if too_deep(value):  # parsed here, written again by the provider's mapper (see proxy.protocols.depth)
        raise BadRequest(f"'{where}' is nested too deeply (more than {MAX_DEPTH} levels)", param=where)
    return value


def _call(call: Any, where: str) -> Call | OtherCall:
    obj = _object(call, where)
    ctype = obj.get("type", "function")
    if ctype != "function":
        return OtherCall(_string(ctype, f"{where}.type", empty=False), where, obj)
    call_id = _string(obj.get("id"), f"{where}.id", empty=False)
    fn = _object(obj.get("function"), f"{where}.function")
    name = _string(fn.get("name"), f"{where}.function.name", empty=False)
    return Call(call_id, name, read_arguments(fn.get("arguments"), f"{where}.function.arguments"), where, obj)


def read_tool_calls(message: JSONObject, where: str) -> list[Call | OtherCall]:
    """An assistant message's ``tool_calls`` (``where`` is the message's path)."""
    calls = message.get("tool_calls")
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise BadRequest(f"'{where}.tool_calls' must be an array", param=f"{where}.tool_calls")
    return [_call(call, f"{where}.tool_calls[{k}]") for k, call in enumerate(calls)]


def read_function_call(message: JSONObject, where: str) -> Call | None:
    """An assistant message's legacy ``function_call``."""
    fc = message.get("function_call")
    if fc is None:
        return None
    fwhere = f"{where}.function_call"
    obj = _object(fc, fwhere)
    name = _string(obj.get("name"), f"{fwhere}.name", empty=False)
    return Call(None, name, read_arguments(obj.get("arguments"), f"{fwhere}.arguments"), fwhere, obj)


def read_tool_call_id(message: JSONObject, where: str) -> str:
    """A tool message's ``tool_call_id`` (required, as OpenAI requires it)."""
    return _string(message.get("tool_call_id"), f"{where}.tool_call_id", empty=False)


# Generation parameters -----------------------------------------------------------------------


def read_max_tokens(body: JSONObject) -> int | None:
    """The output token limit: ``max_completion_tokens``, else the older ``max_tokens``."""
    result = None
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if value is not None:
            if not _is_int(value) or value < 1:
                raise BadRequest(f"'{key}' must be a positive integer", param=key)
            result = value
    return result


def read_stop(body: JSONObject) -> list[str]:
    """The stop sequences, empty ones left out (no provider stops on an empty string)."""
    stop = body.get("stop")
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop] if stop else []
    if not isinstance(stop, list):
        raise BadRequest("'stop' must be a string or an array of strings", param="stop")
    return [_string(s, f"stop[{k}]") for k, s in enumerate(stop) if s != ""]


def _number(body: JSONObject, key: str, low: float, high: float) -> int | float | None:
    value = body.get(key)
    if value is None:
        return None
    if not _is_number(value) or not low <= value <= high:
        raise BadRequest(f"'{key}' must be a number from {low:g} to {high:g}", param=key)
    result: int | float = value
    return result


def read_temperature(body: JSONObject) -> int | float | None:
    return _number(body, "temperature", 0, 2)


def read_top_p(body: JSONObject) -> int | float | None:
    return _number(body, "top_p", 0, 1)


def read_n(body: JSONObject) -> int:
    """How many choices the client wants (1 unless it said)."""
    n = body.get("n")
    if n is None:
        return 1
    if not _is_int(n) or n < 1:
        raise BadRequest("'n' must be a positive integer", param="n")
    result: int = n
    return result


def read_reasoning_effort(body: JSONObject) -> str | None:
    """``reasoning_effort`` as sent: OpenAI adds words (``minimal``, ``none``), so any string reads;
    a mapper refuses a word it cannot map."""
    value = body.get("reasoning_effort")
    return None if value is None else _string(value, "reasoning_effort", empty=False)


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """``response_format``: ``type`` text, json_object, json_schema (with its fields), or another word."""

    type: str
    name: str | None = None
    description: str | None = None
    schema: JSONObject | None = None
    strict: bool | None = None


def read_response_format(body: JSONObject) -> ResponseFormat | None:
    raw = body.get("response_format")
    if raw is None:
        return None
    obj = _object(raw, "response_format")
    rtype = _string(obj.get("type"), "response_format.type", empty=False)
    if rtype != "json_schema":
        return ResponseFormat(rtype)
    where = "response_format.json_schema"
    spec = _object(obj.get("json_schema"), where)
    schema = spec.get("schema")
    if schema is not None:
        _object(schema, f"{where}.schema")
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise BadRequest(f"'{where}.strict' must be a boolean", param=f"{where}.strict")
    name = _optional_string(spec, "name", where)
    return ResponseFormat(rtype, name, _optional_string(spec, "description", where), schema, strict)
