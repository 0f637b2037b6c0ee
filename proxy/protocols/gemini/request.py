"""OpenAI chat body -> Gemini generateContent request body (see the package docstring)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from proxy.config import ProviderConfig
from proxy.errors import BadRequest
from proxy.protocols.gemini.wire import (
    API_VERSION,
    EFFORT_BUDGETS,
    SKIP_SIGNATURE,
    _is_int,
)
from proxy.providers.base import JSONBody, StreamContext, UpstreamRequest

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


# --------------------------------------------------------------------------------------------
# Request


def build_request(body: JSONBody, model: str, provider: ProviderConfig, ctx: StreamContext) -> UpstreamRequest:
    """The client's OpenAI chat body as a Gemini ``generateContent`` request (``body`` is not changed)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise BadRequest("'messages' must be a list", param="messages")
    _check_unsupported(body)
    declarations, legacy = _tools(body)
    system, contents = _convert_messages(messages, _major_version(model) >= 3)
    out: JSONBody = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    if declarations:
        out["tools"] = [{"functionDeclarations": declarations}]
    calling = _calling_config(body, declarations, legacy)
    if calling is not None:
        out["toolConfig"] = {"functionCallingConfig": calling}
    generation = _generation_config(body, model)
    if generation:
        out["generationConfig"] = generation
    safety = provider.options.get("safety_settings")
    if isinstance(safety, list | tuple):
        out["safetySettings"] = list(safety)

    headers = {"content-type": "application/json"}
    if provider.api_key:
        headers["x-goog-api-key"] = provider.api_key
    if provider.headers:  # a read-only mapping: updating from it is slow even when empty
        headers.update(provider.headers)
    return UpstreamRequest(
        url=_url(provider.base_url, model, bool(body.get("stream"))), headers=headers, body=orjson.dumps(out)
    )


def _url(base_url: str, model: str, stream: bool) -> str:
    base = base_url.rstrip("/")
    if not re.search(r"/v1(alpha|beta)?$", base):
        base = f"{base}/{API_VERSION}"
    path = model if "/" in model else f"models/{model}"  # tunedModels/... and models/... pass as given
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"{base}/{quote(path, safe='/-._~')}:{method}"


def _major_version(model: str) -> int:
    match = _GEMINI_MAJOR.search(model)
    return int(match.group(1)) if match else 0


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_unsupported(body: JSONBody) -> None:
    n = body.get("n")
    if n is not None:
        if not _is_int(n) or n < 1:
            raise BadRequest("'n' must be a positive integer", param="n")
        if n > 1:
            raise BadRequest(
                "Gemini models are served one choice at a time: 'n' greater than 1 is not supported", param="n"
            )
    if body.get("logit_bias"):
        raise BadRequest("Gemini models have no token bias: 'logit_bias' is not supported", param="logit_bias")
    modalities = body.get("modalities")
    if isinstance(modalities, list) and any(m != "text" for m in modalities):
        raise BadRequest("only text output is supported for Gemini models through this endpoint", param="modalities")


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
        raise BadRequest(_NO_TURNS, param="messages")
    return system, contents


def _parts(content: Any, where: str, allowed: frozenset[str]) -> list[JSONBody]:
    """A message's ``content`` (string or parts) as Gemini parts; empty text is left out."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise BadRequest(f"'{where}.content' must be a string or a list of parts", param=f"{where}.content")
    parts: list[JSONBody] = []
    for j, part in enumerate(content):
        pwhere = f"{where}.content[{j}]"
        ptype = part.get("type") if isinstance(part, dict) else None
        if ptype not in allowed:
            raise BadRequest(f"'{pwhere}': content part type {ptype!r} is not supported here", param=pwhere)
        assert isinstance(part, dict)
        converted = _part(part, ptype, pwhere)
        if converted is not None:
            parts.append(converted)
    return parts


def _part(part: JSONBody, ptype: str, where: str) -> JSONBody | None:
    if ptype in ("text", "refusal"):
        text = part.get(ptype)
        if not isinstance(text, str):
            raise BadRequest(f"'{where}.{ptype}' must be a string", param=f"{where}.{ptype}")
        return {"text": text} if text else None
    if ptype == "image_url":
        return _image_part(part.get("image_url"), where)
    if ptype == "input_audio":
        return _audio_part(part.get("input_audio"), where)
    return _file_part(part.get("file"), where)


def _image_part(image: Any, where: str) -> JSONBody:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise BadRequest(f"'{where}.image_url.url' must be a non-empty string", param=f"{where}.image_url")
    if url.startswith("data:"):
        return _data_url_part(url, f"{where}.image_url")
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https"):
        raise BadRequest(f"'{where}.image_url.url' must be an http(s) or data: URL", param=f"{where}.image_url")
    if parsed.hostname == _FILES_HOST and "/files/" in parsed.path:
        return {"fileData": {"fileUri": url}}  # an upload to the Gemini Files API knows its own type
    extension = parsed.path.rsplit(".", 1)[-1].lower() if "." in parsed.path.rsplit("/", 1)[-1] else ""
    mime = _IMAGE_TYPES.get(extension)
    if mime is None:
        raise BadRequest(
            f"'{where}.image_url.url': Gemini needs the image type of a URL, told by its extension "
            f"({', '.join(_IMAGE_TYPES)}); send this image as a data: URL instead",
            param=f"{where}.image_url",
        )
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _data_url_part(url: str, where: str) -> JSONBody:
    header, comma, data = url[5:].partition(",")
    mime, _, params = header.partition(";")
    if not comma or not mime or "base64" not in params.split(";") or not data:
        raise BadRequest(f"'{where}' must be a base64 data: URL with a MIME type", param=where)
    return {"inlineData": {"mimeType": mime.lower(), "data": data}}


def _audio_part(audio: Any, where: str) -> JSONBody:
    fmt = audio.get("format") if isinstance(audio, dict) else None
    data = audio.get("data") if isinstance(audio, dict) else None
    mime = _AUDIO_TYPES.get(fmt) if isinstance(fmt, str) else None
    if mime is None or not isinstance(data, str) or not data:
        raise BadRequest(f"'{where}.input_audio' needs base64 'data' and a 'format' of wav or mp3", param=where)
    return {"inlineData": {"mimeType": mime, "data": data}}


def _file_part(file: Any, where: str) -> JSONBody:
    data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data, str) or not data.startswith("data:"):
        raise BadRequest(f"'{where}.file' must carry 'file_data' as a base64 data: URL", param=f"{where}.file")
    return _data_url_part(data, f"{where}.file.file_data")


def _signature(extra: Any) -> str | None:
    """The ``extra_content.google.thought_signature`` of a message or tool call, if any."""
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None


def _arguments(raw: Any, where: str) -> JSONBody:
    if raw is None or raw == "":
        return {}
    if not isinstance(raw, str):
        raise BadRequest(f"'{where}' must be a JSON string", param=where)
    try:
        args = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest(f"'{where}' is not valid JSON", param=where) from None
    if not isinstance(args, dict):
        raise BadRequest(f"'{where}' must be a JSON object", param=where)
    return args


def _assistant_parts(msg: JSONBody, where: str, call_names: dict[str, str], gemini3: bool) -> list[JSONBody]:
    parts = _parts(msg.get("content"), where, _ASSISTANT_PARTS)
    signature = _signature(msg.get("extra_content"))
    if signature and parts:
        parts[-1] = {**parts[-1], "thoughtSignature": signature}
    calls: list[tuple[str, JSONBody, str | None]] = []  # (name, args, signature)
    tool_calls = msg.get("tool_calls")
    if tool_calls is not None:
        if not isinstance(tool_calls, list):
            raise BadRequest(f"'{where}.tool_calls' must be a list", param=f"{where}.tool_calls")
        for j, call in enumerate(tool_calls):
            calls.append(_tool_call(call, f"{where}.tool_calls[{j}]", call_names))
    legacy = msg.get("function_call")
    if legacy is not None:
        name, args = _function(legacy, f"{where}.function_call")
        calls.append((name, args, None))
    signed = False
    for name, args, call_signature in calls:
        part: JSONBody = {"functionCall": {"name": name, "args": args}}
        if call_signature:
            part["thoughtSignature"] = call_signature
            signed = True
        elif gemini3 and not signed:
            part["thoughtSignature"] = SKIP_SIGNATURE
        parts.append(part)
    return parts


def _function(fn: Any, where: str) -> tuple[str, JSONBody]:
    name = fn.get("name") if isinstance(fn, dict) else None
    if not isinstance(name, str) or not name:
        raise BadRequest(f"'{where}.name' must be a non-empty string", param=f"{where}.name")
    assert isinstance(fn, dict)
    return name, _arguments(fn.get("arguments"), f"{where}.arguments")


def _tool_call(call: Any, where: str, call_names: dict[str, str]) -> tuple[str, JSONBody, str | None]:
    if not isinstance(call, dict):
        raise BadRequest(f"'{where}' must be an object", param=where)
    if call.get("type", "function") != "function":
        raise BadRequest(f"'{where}.type' must be 'function'", param=f"{where}.type")
    name, args = _function(call.get("function"), f"{where}.function")
    call_id = call.get("id")
    if isinstance(call_id, str) and call_id:
        call_names[call_id] = name
    return name, args, _signature(call.get("extra_content"))


def _tool_parts(msg: JSONBody, where: str, call_names: dict[str, str]) -> list[JSONBody]:
    call_id = msg.get("tool_call_id")
    name = call_names.get(call_id) if isinstance(call_id, str) else None
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
        if isinstance(value, dict):
            return value
    return {"content": text}


# Tools ---------------------------------------------------------------------------------------


def _tools(body: JSONBody) -> tuple[list[JSONBody], bool]:
    """The function declarations, and whether they came from legacy ``functions``."""
    tools, functions = body.get("tools"), body.get("functions")
    if tools and functions:
        raise BadRequest("use either 'tools' or the legacy 'functions', not both", param="functions")
    if functions:
        if not isinstance(functions, list):
            raise BadRequest("'functions' must be a list", param="functions")
        return [_declaration(fn, f"functions[{j}]") for j, fn in enumerate(functions)], True
    if not tools:
        return [], False
    if not isinstance(tools, list):
        raise BadRequest("'tools' must be a list", param="tools")
    declarations = []
    for j, tool in enumerate(tools):
        where = f"tools[{j}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise BadRequest(f"'{where}': only tools of type 'function' are supported for Gemini models", param=where)
        declarations.append(_declaration(tool.get("function"), f"{where}.function"))
    return declarations, False


def _declaration(fn: Any, where: str) -> JSONBody:
    name = fn.get("name") if isinstance(fn, dict) else None
    if not isinstance(name, str) or not name:
        raise BadRequest(f"'{where}.name' must be a non-empty string", param=f"{where}.name")
    assert isinstance(fn, dict)
    declaration: JSONBody = {"name": name}
    description = fn.get("description")
    if isinstance(description, str) and description:
        declaration["description"] = description
    parameters = fn.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise BadRequest(f"'{where}.parameters' must be a JSON schema object", param=f"{where}.parameters")
    if parameters:
        declaration["parametersJsonSchema"] = clean_schema(parameters)
    return declaration


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


def _calling_config(body: JSONBody, declarations: list[JSONBody], legacy: bool) -> JSONBody | None:
    key = "function_call" if legacy else "tool_choice"
    choice = body.get(key)
    if choice is None:
        return None
    if choice in ("none", "auto"):
        return {"mode": choice.upper()} if declarations else None
    if not declarations:
        raise BadRequest(
            f"'{key}' {choice!r} needs at least one function in '{'functions' if legacy else 'tools'}'", param=key
        )
    if choice == "required" and not legacy:
        return {"mode": "ANY"}
    if isinstance(choice, dict):
        fn = choice if legacy else choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if not legacy and choice.get("type") != "function":
            name = None
        if isinstance(name, str) and name in {d["name"] for d in declarations}:
            return {"mode": "ANY", "allowedFunctionNames": [name]}
        if isinstance(name, str):
            raise BadRequest(f"'{key}' names the function {name!r}, which is not declared", param=key)
    allowed = "'none', 'auto' or {'name': ...}" if legacy else "'none', 'auto', 'required' or a function"
    raise BadRequest(f"'{key}' must be {allowed}", param=key)


# Generation config ---------------------------------------------------------------------------


def _generation_config(body: JSONBody, model: str) -> JSONBody:
    config: JSONBody = {}
    for key, target in (("temperature", "temperature"), ("top_p", "topP")):
        value = body.get(key)
        if value is not None:
            if not _is_number(value):
                raise BadRequest(f"'{key}' must be a number", param=key)
            config[target] = value
    for key, target in (("top_k", "topK"), ("seed", "seed")):
        value = body.get(key)
        if value is not None:
            if not _is_int(value):
                raise BadRequest(f"'{key}' must be an integer", param=key)
            config[target] = value
    max_tokens = _max_tokens(body)
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = _stop_sequences(body.get("stop"))
    if stop:
        config["stopSequences"] = stop
    _penalties(body, model, config)
    _response_format(body.get("response_format"), config)
    thinking = _thinking(body)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    return config


def _max_tokens(body: JSONBody) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is not None:
            if not _is_int(value) or value < 1:
                raise BadRequest(f"'{key}' must be a positive integer", param=key)
            result: int = value
            return result
    return None


def _stop_sequences(stop: Any) -> list[str]:
    if stop is None:
        return []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise BadRequest("'stop' must be a string or a list of strings", param="stop")
    return [s for s in stop if s]


def _penalties(body: JSONBody, model: str, config: JSONBody) -> None:
    for key, target in (("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty")):
        value = body.get(key)
        if value is None:
            continue
        if not _is_number(value):
            raise BadRequest(f"'{key}' must be a number", param=key)
        if value and "gemini-2.5" not in model:
            config[target] = value


def _response_format(fmt: Any, config: JSONBody) -> None:
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return
    if kind == "json_object":
        config["responseMimeType"] = "application/json"
        return
    if kind == "json_schema":
        assert isinstance(fmt, dict)
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict):
            raise BadRequest("'response_format.json_schema' must be an object", param="response_format")
        config["responseMimeType"] = "application/json"
        schema = spec.get("schema")
        if schema is not None:
            if not isinstance(schema, dict):
                raise BadRequest("'response_format.json_schema.schema' must be an object", param="response_format")
            config["responseJsonSchema"] = clean_schema(schema)
        return
    raise BadRequest("'response_format.type' must be one of text, json_object, json_schema", param="response_format")


def _thinking(body: JSONBody) -> JSONBody | None:
    budget = body.get("thinking_budget")
    if budget is not None:
        if not _is_int(budget) or budget < -1:
            raise BadRequest(
                "'thinking_budget' must be an integer: -1 (dynamic), 0 (off) or a number of tokens",
                param="thinking_budget",
            )
    else:
        effort = body.get("reasoning_effort")
        if effort is None:
            return None
        if effort not in EFFORT_BUDGETS:
            raise BadRequest(f"'reasoning_effort' must be one of {', '.join(EFFORT_BUDGETS)}", param="reasoning_effort")
        budget = EFFORT_BUDGETS[effort]
    config: JSONBody = {"thinkingBudget": budget}
    if budget != 0:
        config["includeThoughts"] = True
    return config
