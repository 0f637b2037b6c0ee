"""OpenAI chat body -> Gemini generateContent request body (see the package docstring)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from proxy.errors import BadRequest, UnsupportedByProvider
from proxy.protocols.depth import too_deep
from proxy.protocols.gemini.wire import (
    API_VERSION,
    EFFORT_BUDGETS,
    SKIP_SIGNATURE,
    _is_int,
)
from proxy.protocols.openai_chat.reading import (
    AudioPart,
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

_IMAGE_TYPES: Mapping[str, str] = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "heic": "image/heic",
    "heif": "image/heif",
}
_AUDIO_TYPES: Mapping[str, str] = {"wav": "audio/wav", "mp3": "audio/mp3"}
_FILES_HOST = "generativelanguage.googleapis.com"

_NO_TURNS = "'messages' must contain at least one user or assistant message with content"
_GEMINI_MAJOR = re.compile(r"gemini-(\d+)")

JSONBody = dict[str, Any]


# --------------------------------------------------------------------------------------------
# Request


def build_body(body: JSONBody, model: str, options: Mapping[str, Any]) -> JSONBody:
    """The client's OpenAI chat body as a Gemini ``generateContent`` request body (``body`` is not
    changed). ``options`` are the provider's kind options (``safety_settings``)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise BadRequest("'messages' must be a list", param="messages")
    _check_unsupported(body)
    tools = read_tools(body)
    declarations = _declarations(tools)
    system, contents = _convert_messages(messages, _major_version(model) >= 3)
    out: JSONBody = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    if declarations:
        out["tools"] = [{"functionDeclarations": declarations}]
    calling = _calling_config(body, tools)
    if calling is not None:
        out["toolConfig"] = {"functionCallingConfig": calling}
    generation = _generation_config(body, model)
    if generation:
        out["generationConfig"] = generation
    safety = options.get("safety_settings")
    if isinstance(safety, list | tuple):
        out["safetySettings"] = list(safety)
    return out


def url(base_url: str, model: str, stream: bool) -> str:
    """The generateContent (or streaming) URL of ``model`` under ``base_url``."""
    base = base_url.rstrip("/")
    if not re.search(r"/v1(alpha|beta)?$", base):
        base = f"{base}/{API_VERSION}"
    path = model if "/" in model else f"models/{model}"  # tunedModels/... and models/... pass as given
    segments = path.split("/")
    if any(segment in ("", ".", "..") for segment in segments):  # routing refuses these first
        raise BadRequest(f"the model {model!r} is not a valid Gemini model name", param="model")
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    # Each segment is encoded whole ('?', '#', '%', ':' and '/' inside included): the model
    # can name a resource under the API version, never another path or a query.
    return f"{base}/{'/'.join(quote(segment, safe='-._~') for segment in segments)}:{method}"


def _major_version(model: str) -> int:
    match = _GEMINI_MAJOR.search(model)
    return int(match.group(1)) if match else 0


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_unsupported(body: JSONBody) -> None:
    if read_n(body) > 1:
        raise UnsupportedByProvider(
            "Gemini models are served one choice at a time: 'n' greater than 1 is not supported", param="n"
        )
    if body.get("logit_bias"):
        raise UnsupportedByProvider(
            "Gemini models have no token bias: 'logit_bias' is not supported", param="logit_bias"
        )
    modalities = body.get("modalities")
    if isinstance(modalities, list) and any(m != "text" for m in modalities):
        raise UnsupportedByProvider(
            "only text output is supported for Gemini models through this endpoint", param="modalities"
        )


# Messages ------------------------------------------------------------------------------------

_USER_PARTS = frozenset({"text", "image_url", "input_audio", "file"})
_TEXT_PARTS = frozenset({"text"})
_ASSISTANT_PARTS = frozenset({"text", "refusal"})
_TOOL_PARTS = frozenset({"text", "image_url"})


def _convert_messages(raw: list[Any], gemini3: bool) -> tuple[list[str], list[JSONBody]]:
    """OpenAI messages → (system texts, Gemini contents with consecutive roles merged)."""
    system: list[str] = []
    contents: list[JSONBody] = []
    call_names: dict[str, str] = {}  # tool_call_id → function name, from earlier assistant turns
    for i, msg in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise BadRequest(f"'{where}' must be an object", param=where)
        role = msg.get("role")
        if role in ("system", "developer"):
            system += [p["text"] for p in _parts(msg.get("content"), where, _TEXT_PARTS)]
            continue
        if role == "user":
            turn_role, parts = "user", _parts(msg.get("content"), where, _USER_PARTS)
        elif role == "assistant":
            turn_role, parts = "model", _assistant_parts(msg, where, call_names, gemini3)
        elif role == "tool":
            turn_role, parts = "user", _tool_parts(msg, where, call_names)
        elif role == "function":
            turn_role, parts = "user", _function_parts(msg, where)
        else:
            raise BadRequest(f"'{where}.role' {role!r} is not a supported role", param=f"{where}.role")
        if not parts:
            continue
        if contents and contents[-1]["role"] == turn_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": turn_role, "parts": parts})
    if not contents:
        raise UnsupportedByProvider(_NO_TURNS, param="messages")
    return system, contents


def _parts(content: Any, where: str, allowed: frozenset[str]) -> list[JSONBody]:
    """A message's ``content`` (string or parts) as Gemini parts; empty text is left out."""
    parts: list[JSONBody] = []
    for part in read_parts(content, where):
        converted = _part(part, allowed)
        if converted is not None:
            parts.append(converted)
    return parts


def _part(part: Part, allowed: frozenset[str]) -> JSONBody | None:
    ptype = str(part.raw.get("type"))
    if ptype not in allowed:
        raise UnsupportedByProvider(
            f"'{part.where}': content part type {ptype!r} is not supported here for Gemini models", param=part.where
        )
    if isinstance(part, TextPart | RefusalPart):
        text = part.text if isinstance(part, TextPart) else part.refusal
        return {"text": text} if text else None
    if isinstance(part, ImagePart):
        return _image_part(part)
    if isinstance(part, AudioPart):
        return _audio_part(part)
    assert isinstance(part, FilePart)
    if part.data is None:
        raise UnsupportedByProvider(
            f"'{part.where}.file': Gemini models need 'file_data' as a base64 data: URL", param=f"{part.where}.file"
        )
    return {"inlineData": {"mimeType": part.data.mime, "data": part.data.data}}


def _image_part(part: ImagePart) -> JSONBody:
    if part.data is not None:
        return {"inlineData": {"mimeType": part.data.mime, "data": part.data.data}}
    url, where = part.url, f"{part.where}.image_url.url"
    parsed = urlsplit(url)
    if parsed.hostname == _FILES_HOST and "/files/" in parsed.path:
        return {"fileData": {"fileUri": url}}  # an upload to the Gemini Files API knows its own type
    extension = parsed.path.rsplit(".", 1)[-1].lower() if "." in parsed.path.rsplit("/", 1)[-1] else ""
    mime = _IMAGE_TYPES.get(extension)
    if mime is None:
        raise UnsupportedByProvider(
            f"'{where}': Gemini needs the image type of a URL, told by its extension "
            f"({', '.join(_IMAGE_TYPES)}); send this image as a data: URL instead",
            param=where,
        )
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _audio_part(part: AudioPart) -> JSONBody:
    mime = _AUDIO_TYPES.get(part.format)
    if mime is None:
        where = f"{part.where}.input_audio.format"
        raise UnsupportedByProvider(f"'{where}' {part.format!r}: Gemini models take wav or mp3 here", param=where)
    return {"inlineData": {"mimeType": mime, "data": part.data}}


def _signature(extra: Any) -> str | None:
    """The ``extra_content.google.thought_signature`` of a message or tool call, if any."""
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None


def _assistant_parts(msg: JSONBody, where: str, call_names: dict[str, str], gemini3: bool) -> list[JSONBody]:
    parts = _parts(msg.get("content"), where, _ASSISTANT_PARTS)
    signature = _signature(msg.get("extra_content"))
    if signature and parts:
        parts[-1] = {**parts[-1], "thoughtSignature": signature}
    calls: list[Call] = []
    for call in read_tool_calls(msg, where):
        if not isinstance(call, Call):
            raise UnsupportedByProvider(
                f"'{call.where}.type' {call.type!r}: Gemini models take only function tool calls",
                param=f"{call.where}.type",
            )
        assert call.id is not None
        call_names[call.id] = call.name
        calls.append(call)
    legacy = read_function_call(msg, where)
    if legacy is not None:
        calls.append(legacy)
    signed = False
    for call in calls:
        part: JSONBody = {"functionCall": {"name": call.name, "args": call.arguments}}
        call_signature = _signature(call.raw.get("extra_content")) if call.id is not None else None
        if call_signature:
            part["thoughtSignature"] = call_signature
            signed = True
        elif gemini3 and not signed:
            part["thoughtSignature"] = SKIP_SIGNATURE
        parts.append(part)
    return parts


def _tool_parts(msg: JSONBody, where: str, call_names: dict[str, str]) -> list[JSONBody]:
    call_id = read_tool_call_id(msg, where)
    name = call_names.get(call_id)
    if name is None:
        fallback = msg.get("name")
        if not isinstance(fallback, str) or not fallback:
            raise BadRequest(
                f"'{where}.tool_call_id' {call_id!r} does not match a tool call of an earlier assistant message",
                param=f"{where}.tool_call_id",
            )
        name = fallback
    return _result_parts(name, msg.get("content"), where, _TOOL_PARTS)


def _function_parts(msg: JSONBody, where: str) -> list[JSONBody]:
    name = msg.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"'{where}.name' must name the function whose result this is", param=f"{where}.name")
    return _result_parts(name, msg.get("content"), where, _TEXT_PARTS)


def _result_parts(name: str, content: Any, where: str, allowed: frozenset[str]) -> list[JSONBody]:
    """A ``functionResponse`` part, followed by any media parts of the result."""
    parts = _parts(content, where, allowed)
    text = "".join(p["text"] for p in parts if "text" in p)
    media = [p for p in parts if "text" not in p]
    response = {"functionResponse": {"name": name, "response": _response_object(text)}}
    return [response, *media]


def _response_object(text: str) -> JSONBody:
    if text[:1] == "{":
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            value = None
        if isinstance(value, dict) and not too_deep(value):  # too deep to write back: sent as text
            return value
    return {"content": text}


# Tools ---------------------------------------------------------------------------------------


def _declarations(tools: Tools) -> list[JSONBody]:
    """The function declarations of the client's function tools (or legacy ``functions``)."""
    declarations = []
    for tool in tools.items:
        if not isinstance(tool, FunctionTool):
            raise UnsupportedByProvider(
                f"'{tool.where}.type' {tool.type!r}: only tools of type 'function' are supported for Gemini models",
                param=f"{tool.where}.type",
            )
        declaration: JSONBody = {"name": tool.name}
        if tool.description:
            declaration["description"] = tool.description
        if tool.parameters:
            declaration["parametersJsonSchema"] = clean_schema(tool.parameters)
        declarations.append(declaration)
    return declarations


_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_SCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_SCHEMA_ONE = frozenset({"items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else"})


def clean_schema(schema: Any) -> Any:
    """A copy of a JSON schema without what Gemini rejects: ``$schema`` keys, scalar ``const``."""
    if not isinstance(schema, dict):
        return schema
    out: JSONBody = {}
    for key, value in schema.items():
        if key == "$schema":
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: clean_schema(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [clean_schema(sub) for sub in value]
        elif key in _SCHEMA_ONE:
            out[key] = [clean_schema(sub) for sub in value] if isinstance(value, list) else clean_schema(value)
        elif key == "const" and "enum" not in schema and _is_scalar(value):
            out["enum"] = [value]
        else:
            out[key] = value
    return out


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str) or _is_number(value)


def _calling_config(body: JSONBody, tools: Tools) -> JSONBody | None:
    choice = read_tool_choice(body, tools)
    if choice is None:
        return None
    if choice.mode in ("none", "auto"):
        return {"mode": choice.mode.upper()} if tools.items else None
    if choice.mode == "required":
        return {"mode": "ANY"}
    if choice.mode == "function":
        return {"mode": "ANY", "allowedFunctionNames": [choice.name]}
    raise UnsupportedByProvider(
        f"'{choice.key}.type' {choice.type!r} is not supported for Gemini models", param=f"{choice.key}.type"
    )


# Generation config ---------------------------------------------------------------------------


def _generation_config(body: JSONBody, model: str) -> JSONBody:
    config: JSONBody = {}
    for target, value in (("temperature", read_temperature(body)), ("topP", read_top_p(body))):
        if value is not None:
            config[target] = value
    for key, target in (("top_k", "topK"), ("seed", "seed")):
        value = body.get(key)
        if value is not None:
            if not _is_int(value):
                raise BadRequest(f"'{key}' must be an integer", param=key)
            config[target] = value
    max_tokens = read_max_tokens(body)
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = read_stop(body)
    if stop:
        config["stopSequences"] = stop
    _penalties(body, model, config)
    _response_format(body, config)
    thinking = _thinking(body)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    return config


def _penalties(body: JSONBody, model: str, config: JSONBody) -> None:
    for key, target in (("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty")):
        value = body.get(key)
        if value is None:
            continue
        if not _is_number(value):
            raise BadRequest(f"'{key}' must be a number", param=key)
        if value and "gemini-2.5" not in model:
            config[target] = value


def _response_format(body: JSONBody, config: JSONBody) -> None:
    fmt = read_response_format(body)
    if fmt is None or fmt.type == "text":
        return
    if fmt.type not in ("json_object", "json_schema"):
        raise UnsupportedByProvider(
            f"'response_format.type' {fmt.type!r} is not supported for Gemini models", param="response_format.type"
        )
    config["responseMimeType"] = "application/json"
    if fmt.schema is not None:
        config["responseJsonSchema"] = clean_schema(fmt.schema)


def _thinking(body: JSONBody) -> JSONBody | None:
    budget = body.get("thinking_budget")
    if budget is not None:
        if not _is_int(budget) or budget < -1:
            raise BadRequest(
                "'thinking_budget' must be an integer: -1 (dynamic), 0 (off) or a number of tokens",
                param="thinking_budget",
            )
    else:
        effort = read_reasoning_effort(body)
        if effort is None:
            return None
        if effort not in EFFORT_BUDGETS:
            raise UnsupportedByProvider(
                f"'reasoning_effort' {effort!r} has no Gemini thinking budget: use {', '.join(EFFORT_BUDGETS)}",
                param="reasoning_effort",
            )
        budget = EFFORT_BUDGETS[effort]
    config: JSONBody = {"thinkingBudget": budget}
    if budget != 0:
        config["includeThoughts"] = True
    return config
