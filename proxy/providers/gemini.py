"""Google Gemini upstreams: OpenAI chat requests in, ``generateContent`` out, and back.

Request (OpenAI → Gemini), decisions the OpenAI shape leaves open:

- ``system``/``developer`` messages, wherever they stand, become ``systemInstruction``: one text
  part, the texts joined with blank lines.
- ``assistant`` → role ``model``; ``tool``/``function`` results → ``functionResponse`` parts in a
  ``user`` turn (``name`` looked up from the earlier assistant call with that id, else the message's
  own ``name``; ``response`` is the content parsed when it is a JSON object, else
  ``{"content": text}``; images in a tool result follow it as their own parts). Consecutive turns of
  one role are merged, empty text parts dropped. Tool-call ids are not sent (Gemini pairs calls and
  results by order and name); ``reasoning_content`` of earlier turns is not replayed (the thought
  signatures carry that context).
- Thought signatures: a tool call's ``extra_content.google.thought_signature`` (Google's own
  OpenAI-compatibility field) becomes the ``thoughtSignature`` of its ``functionCall`` part; the
  same field on an assistant message goes on the message's last text part. For Gemini 3 models a
  replayed call without one (history from another model) gets Google's documented
  ``skip_thought_signature_validator`` sentinel, unless an earlier call of the same turn carries a
  real one (Gemini signs only the first call of a parallel batch); without it Gemini 3 answers 400.
- ``image_url``: ``data:`` URLs → ``inlineData``; http(s) URLs → ``fileData`` with the MIME type
  taken from the extension (png, jpg, jpeg, webp, heic, heif), or none for a Gemini Files-API URL;
  anything else is a 400. ``input_audio`` and ``file`` parts with ``file_data`` → ``inlineData``.
- Tools are sent as ``parametersJsonSchema`` (full JSON Schema: ``additionalProperties``, ``anyOf``,
  type lists, ``$ref`` are accepted there, unlike the OpenAPI-subset ``parameters`` field, which
  rejects them with "Unknown name ..."). ``$schema`` keys are removed and a scalar ``const`` becomes
  a one-value ``enum`` (both rejected by Gemini). The same cleaning applies to a ``json_schema``
  ``response_format``, sent as ``responseJsonSchema``. ``tool_choice`` ``none|auto|required|{name}``
  (legacy ``function_call`` likewise) → ``NONE|AUTO|ANY|ANY`` + ``allowedFunctionNames``.
  ``parallel_tool_calls`` has no Gemini equivalent: it is accepted and ignored.
- Thinking: ``thinking_budget`` (an int: ``-1`` dynamic, ``0`` off, else tokens) wins over
  ``reasoning_effort`` ``none`` 0, ``minimal`` 512, ``low`` 1024, ``medium`` 8192, ``high`` 24576
  (Google's own OpenAI-compatibility budgets). A non-zero budget sets ``includeThoughts`` so that the
  thought summaries stream as ``reasoning_content``.
- Mapped: ``temperature``, ``top_p``, ``top_k``, ``stop``, ``max_completion_tokens`` (wins over
  ``max_tokens``), ``seed``, non-zero ``presence_penalty``/``frequency_penalty`` (dropped for
  gemini-2.5 models, whose Developer API rejects them). Dropped as harmless: ``logprobs``,
  ``top_logprobs``, ``user``, ``metadata``, ``store``, ``service_tier``, ``stream_options``. A 400
  because the answer would be wrong: ``n > 1``, a non-empty ``logit_bias``, audio ``modalities``.
- Provider option ``safety_settings`` (a list) is sent as ``safetySettings``.

Stream (``data: {GenerateContentResponse}`` frames, CRLF-framed, no terminator): text parts →
``content`` and ``thought`` parts → ``reasoning_content``, one chunk per part as it arrives; a
``thoughtSignature`` on such a part rides along as ``delta.extra_content.google.thought_signature``
(an empty text part that only carries one becomes a chunk with just that field). A whole
``functionCall`` → one tool-call delta with its arguments serialised (``{}`` when none), id
``functionCall.id`` when Gemini gives one, else ``call_<prefix>_<index>``. The finish chunk is
written when ``finishReason`` arrives; usage keeps arriving after it, so the usage chunk and
``[DONE]`` are written at upstream EOF (``finish``). A stream that ends before a ``finishReason``
was truncated. An error object (``data: {"error": ...}``, or the raw JSON error body Gemini appends
without SSE framing when it fails mid-stream) ends the stream with that error.

``finishReason``: ``STOP`` → ``stop`` (``tool_calls`` after a call), ``MAX_TOKENS`` → ``length``;
safety-type reasons, ``OTHER`` and unknown future reasons → ``content_filter`` (Gemini ended the
answer early for its own reasons: ``stop`` would claim a complete answer).
``MALFORMED_FUNCTION_CALL``, ``UNEXPECTED_TOOL_CALL``, ``TOO_MANY_TOOL_CALLS`` and
``MALFORMED_RESPONSE`` are errors (502, retryable: the output is unusable, and before the first
byte another attempt may succeed); ``MISSING_THOUGHT_SIGNATURE`` is a 400. A blocked prompt
(``promptFeedback.blockReason``, no candidates) → ``delta.refusal`` naming the reason, then
``finish_reason: content_filter``.

Usage: ``prompt_tokens = promptTokenCount + toolUsePromptTokenCount``, ``completion_tokens =
candidatesTokenCount + thoughtsTokenCount``, ``cached_tokens = cachedContentTokenCount``,
``reasoning_tokens = thoughtsTokenCount``; the last ``usageMetadata`` wins (running totals).

Errors: Google's ``{"error": {"code", "message", "status"}}`` (or a list of one) keeps the HTTP
status, with ``status`` mapped to an OpenAI type and kept as ``code``; a ``RetryInfo`` delay sets
``retry_after``. Two exceptions, so the router falls back instead of blaming the client: an invalid
API key (400 ``API_KEY_INVALID``) is a 401 and ``FAILED_PRECONDITION`` (billing/region) a 403.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from proxy.config import ProviderConfig
from proxy.errors import BadRequest, ProxyError, StreamError, UpstreamError, error_type
from proxy.providers.base import Adapter, JSONBody, StreamContext, UpstreamRequest
from proxy.providers.chunks import DONE, ChunkWriter, completion_body, usage_dict
from proxy.sse import Event, SSEDecoder, SSEError

__all__ = [
    "ADAPTER",
    "API_VERSION",
    "EFFORT_BUDGETS",
    "SKIP_SIGNATURE",
    "GeminiStream",
    "build_request",
    "clean_schema",
    "translate_error",
    "translate_response",
]

API_VERSION = "v1beta"
EFFORT_BUDGETS: Mapping[str, int] = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
SKIP_SIGNATURE = "skip_thought_signature_validator"

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

_FINISH: Mapping[str, str] = {
    "STOP": "stop",
    "FINISH_REASON_UNSPECIFIED": "stop",
    "MAX_TOKENS": "length",
}
# finishReason values that leave nothing usable: (HTTP status, OpenAI type) of the error.
_FAILED_FINISH: Mapping[str, tuple[int, str]] = {
    "MALFORMED_FUNCTION_CALL": (502, "upstream_error"),
    "UNEXPECTED_TOOL_CALL": (502, "upstream_error"),
    "TOO_MANY_TOOL_CALLS": (502, "upstream_error"),
    "MALFORMED_RESPONSE": (502, "upstream_error"),
    "MISSING_THOUGHT_SIGNATURE": (400, "invalid_request_error"),
}
_NO_BLOCK = frozenset({"", "BLOCK_REASON_UNSPECIFIED", "BLOCKED_REASON_UNSPECIFIED"})

# google.rpc status → OpenAI error type.
_ERROR_TYPES: Mapping[str, str] = {
    "INVALID_ARGUMENT": "invalid_request_error",
    "OUT_OF_RANGE": "invalid_request_error",
    "ALREADY_EXISTS": "invalid_request_error",
    "UNIMPLEMENTED": "invalid_request_error",
    "FAILED_PRECONDITION": "permission_error",
    "UNAUTHENTICATED": "authentication_error",
    "PERMISSION_DENIED": "permission_error",
    "NOT_FOUND": "not_found_error",
    "RESOURCE_EXHAUSTED": "rate_limit_error",
    "DEADLINE_EXCEEDED": "timeout_error",
    "CANCELLED": "api_error",
    "ABORTED": "api_error",
    "INTERNAL": "api_error",
    "UNKNOWN": "api_error",
    "DATA_LOSS": "api_error",
    "UNAVAILABLE": "api_error",
}

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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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


# --------------------------------------------------------------------------------------------
# Responses: shared pieces


def _int(value: Any) -> int:
    return value if _is_int(value) else 0


def _usage(meta: Any) -> JSONBody:
    """OpenAI usage from Gemini's ``usageMetadata`` (running totals: pass the last one)."""
    m = meta if isinstance(meta, dict) else {}
    thoughts = _int(m.get("thoughtsTokenCount"))
    prompt = _int(m.get("promptTokenCount")) + _int(m.get("toolUsePromptTokenCount"))
    completion = _int(m.get("candidatesTokenCount")) + thoughts
    return usage_dict(prompt, completion, _int(m.get("cachedContentTokenCount")), thoughts)


def _first_candidate(data: JSONBody) -> JSONBody | None:
    candidates = data.get("candidates")
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
        candidate: JSONBody = candidates[0]
        return candidate
    return None


def _block_reason(data: JSONBody) -> str | None:
    feedback = data.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    return reason if isinstance(reason, str) and reason not in _NO_BLOCK else None


def _block_message(reason: str) -> str:
    return f"Gemini blocked the prompt (blockReason: {reason})"


def _parts_of(candidate: JSONBody) -> list[Any]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return parts if isinstance(parts, list) else []


def _part_signature(part: JSONBody) -> str | None:
    signature = part.get("thoughtSignature")
    return signature if isinstance(signature, str) and signature else None


def _extra(signature: str) -> JSONBody:
    return {"extra_content": {"google": {"thought_signature": signature}}}


def _call_fields(call: JSONBody) -> tuple[str, str, str | None]:
    """(name, serialised arguments, Gemini's own call id) of a whole ``functionCall``."""
    name = call.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("a functionCall without a name")
    args = call.get("args")
    arguments = args if isinstance(args, str) else orjson.dumps(args if args is not None else {}).decode()
    call_id = call.get("id")
    return name, arguments, call_id if isinstance(call_id, str) and call_id else None


def _finish_reason(candidate: JSONBody, cls: type[ProxyError]) -> str | None:
    """The OpenAI finish reason of a candidate (``None`` while it is not finished).

    Raises ``cls`` for the finish reasons that leave nothing usable.
    """
    reason = candidate.get("finishReason")
    if not isinstance(reason, str) or not reason:
        return None
    failed = _FAILED_FINISH.get(reason)
    if failed is not None:
        detail = candidate.get("finishMessage")
        message = f"Gemini could not complete the answer ({reason})"
        if isinstance(detail, str) and detail:
            message += f": {detail}"
        raise cls(message, status=failed[0], type=failed[1], code=reason)
    return _FINISH.get(reason, "content_filter")


# --------------------------------------------------------------------------------------------
# Stream

_SSE_FIELDS = (b"data", b"event", b"id", b"retry", b":")
_RAW_LIMIT = 64 * 1024


class _Decoder(SSEDecoder):
    """The SSE decoder, plus Gemini's habit of appending a raw (pretty-printed) JSON error body,
    without SSE framing, when a stream fails midway: a WHATWG decoder would ignore those lines as
    unknown fields and the failure would pass unseen. The first line that is no SSE field starts
    ``raw``: it and every later line are collected there, and ``raw_value`` is set as soon as the
    collected lines parse as JSON (checked at line ends, so the result cannot depend on how reads
    split)."""

    __slots__ = ("raw", "raw_size", "raw_value")

    def __init__(self) -> None:
        super().__init__()
        self.raw: list[bytes] = []
        self.raw_size = 0
        self.raw_value: Any = None

    def _field(self, line: bytes) -> None:
        if not self.raw and line.startswith(_SSE_FIELDS):
            super()._field(line)
            return
        if not self.raw:
            self._data = []  # an event cut short by non-SSE bytes is dropped
        if self.raw_value is not None or self.raw_size > _RAW_LIMIT:
            return
        self.raw.append(line)
        self.raw_size += len(line) + 1
        if line.rstrip().endswith((b"}", b"]")):
            with contextlib.suppress(orjson.JSONDecodeError):
                self.raw_value = orjson.loads(b"\n".join(self.raw))

    def close(self) -> list[Event]:
        if not self.raw:
            return super().close()
        if self._buf:
            self._field(self._buf.removesuffix(b"\r"))
            self._buf = b""
        return []


def _error_object(data: Any) -> Any:
    """The ``error`` member of a Google error body (a dict, or a list holding one), else None."""
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    return data.get("error") if isinstance(data, dict) else None


class GeminiStream:
    """Gemini ``streamGenerateContent?alt=sse`` in, OpenAI ``chat.completion.chunk`` frames out (sans-IO)."""

    __slots__ = ("_ctx", "_decoder", "_finished", "_usage", "_writer", "done")

    def __init__(self, ctx: StreamContext, provider: ProviderConfig | None = None) -> None:
        self._ctx = ctx
        self._writer = ChunkWriter(ctx)
        self._decoder = _Decoder()
        self._usage: Any = None  # the last usageMetadata seen
        self._finished = False  # a finishReason (or a prompt block) has been translated
        self.done = False

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        try:
            events = self._decoder.feed(data)
        except SSEError as exc:
            raise StreamError(f"the Gemini stream could not be decoded: {exc}") from None
        out = self._events(events)
        if self._decoder.raw_value is not None or self._decoder.raw_size > _RAW_LIMIT:
            raise self._raw_error(output=out)
        return out

    def finish(self) -> bytes:
        if self.done:
            return b""
        try:
            events = self._decoder.close()
        except SSEError:
            if not self._finished:
                raise StreamError("the Gemini stream was truncated: it ended in the middle of an event") from None
            events = []  # the answer was complete; only a trailing usage update was cut
        out = self._events(events)
        if self._decoder.raw:
            raise self._raw_error(output=out)
        if not self._finished:
            raise StreamError("the Gemini stream was truncated: it ended before a finishReason", output=out)
        self.done = True
        return out + self._writer.usage(_usage(self._usage)) + DONE

    def _raw_error(self, output: bytes) -> StreamError:
        err = _error_object(self._decoder.raw_value)
        if isinstance(err, dict):
            result = _error_from(err, StreamError, default_status=502)
            assert isinstance(result, StreamError)
            result.output = output
            return result
        head = b"\n".join(self._decoder.raw)[:200].decode("utf-8", "replace")
        return StreamError(f"the Gemini stream sent data outside SSE framing: {head!r}", output=output)

    def _events(self, events: list[Event]) -> bytes:
        out: list[bytes] = []
        for event in events:
            try:
                frame = self._event(event)
            except StreamError as exc:
                exc.output = b"".join(out) + exc.output
                raise
            if frame:
                out.append(frame)
        return b"".join(out)

    def _event(self, event: Event) -> bytes:
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise StreamError("the Gemini stream sent malformed JSON") from None
        err = _error_object(data)
        if isinstance(err, dict):
            raise _error_from(err, StreamError, default_status=502)
        if not isinstance(data, dict):
            raise StreamError("the Gemini stream sent an event that is not a JSON object")
        if data.get("usageMetadata") is not None:
            self._usage = data["usageMetadata"]
        if self._finished:
            return b""  # after the finish only usage matters
        candidate = _first_candidate(data)
        if candidate is None:
            block = _block_reason(data)
            if block is None:
                return b""
            self._finished = True
            return self._writer.refusal(_block_message(block)) + self._writer.finish("content_filter")
        frames: list[bytes] = []
        try:
            for part in _parts_of(candidate):
                if isinstance(part, dict):
                    frames.append(self._part(part))
            reason = _finish_reason(candidate, StreamError)
        except StreamError as exc:
            exc.output = b"".join(frames)
            raise
        if reason is not None:
            self._finished = True
            frames.append(self._writer.finish(reason))
        return b"".join(frames)

    def _part(self, part: JSONBody) -> bytes:
        signature = _part_signature(part)
        extra = _extra(signature) if signature else {}
        call = part.get("functionCall")
        if isinstance(call, dict):
            try:
                name, arguments, call_id = _call_fields(call)
            except ValueError as exc:
                raise StreamError(f"the Gemini stream sent {exc}") from None
            index = self._writer.tool_calls
            _, frame = self._writer.tool_call_start(
                call_id or f"call_{self._ctx.call_id_prefix}_{index}", name, arguments, extra or None
            )
            return frame
        text = part.get("text")
        if not isinstance(text, str):
            return b""  # inline images, code execution and future part kinds have no OpenAI form
        if text:
            key = "reasoning_content" if part.get("thought") is True else "content"
            return self._writer.delta({key: text, **extra})
        return self._writer.delta(extra) if extra else b""


# --------------------------------------------------------------------------------------------
# Non-stream response and errors


def translate_response(body: bytes, ctx: StreamContext) -> bytes:
    """A Gemini ``GenerateContentResponse`` body as an OpenAI ``chat.completion`` body."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError("Gemini returned a response that is not valid JSON", status=502) from None
    err = _error_object(data)
    if isinstance(err, dict):
        raise _error_from(err, UpstreamError, default_status=502)
    if not isinstance(data, dict):
        raise UpstreamError("Gemini returned a response that is not a JSON object", status=502)
    usage = _usage(data.get("usageMetadata"))
    candidate = _first_candidate(data)
    if candidate is None:
        block = _block_reason(data)
        if block is None:
            raise UpstreamError("Gemini returned no candidates", status=502)
        message: JSONBody = {"role": "assistant", "content": None, "refusal": _block_message(block)}
        return completion_body(ctx, message, "content_filter", usage)
    message, calls = _message(candidate, ctx)
    finish = _finish_reason(candidate, UpstreamError) or "stop"
    if calls and finish == "stop":
        finish = "function_call" if ctx.legacy_functions else "tool_calls"
    return completion_body(ctx, message, finish, usage)


def _message(candidate: JSONBody, ctx: StreamContext) -> tuple[JSONBody, int]:
    """The assistant message of a candidate, and how many tool calls it holds."""
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[JSONBody] = []
    text_signature: str | None = None
    for part in _parts_of(candidate):
        if not isinstance(part, dict):
            continue
        signature = _part_signature(part)
        call = part.get("functionCall")
        if isinstance(call, dict):
            try:
                name, arguments, call_id = _call_fields(call)
            except ValueError as exc:
                raise UpstreamError(f"Gemini returned {exc}", status=502) from None
            entry: JSONBody = {
                "id": call_id or f"call_{ctx.call_id_prefix}_{len(calls)}",
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
            calls.append({**entry, **_extra(signature)} if signature else entry)
            continue
        text = part.get("text")
        if isinstance(text, str):
            (reasoning if part.get("thought") is True else texts).append(text)
            text_signature = signature or text_signature
    message: JSONBody = {"role": "assistant", "content": "".join(texts) if texts else None, "refusal": None}
    if calls and ctx.legacy_functions:
        message["function_call"] = calls[0]["function"]
    elif calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if text_signature:
        message.update(_extra(text_signature))
    return message, len(calls)


def _retry_delay(details: Any) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail (``"retryDelay": "37s"``)."""
    for detail in details if isinstance(details, list) else ():
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return float(delay[:-1])
            except ValueError:
                return None
    return None


def _key_invalid(details: Any) -> bool:
    return any(isinstance(d, dict) and d.get("reason") == "API_KEY_INVALID" for d in details or ())


def _error_from(err: JSONBody, cls: type[ProxyError], default_status: int, status: int | None = None) -> ProxyError:
    """A Google ``error`` object as ``cls``: OpenAI type from its ``status`` (kept as ``code``)."""
    google_status = err.get("status") if isinstance(err.get("status"), str) else None
    code = err.get("code")
    http = default_status if status is None else status
    if status is None and isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599:
        http = code
    details = err.get("details") if isinstance(err.get("details"), list) else None
    etype = _ERROR_TYPES.get(google_status or "") or error_type(http)
    if _key_invalid(details):
        http, etype = 401, "authentication_error"  # the proxy's key, not the client's request
    elif google_status == "FAILED_PRECONDITION":
        http = 403  # billing or region of the provider account: another provider may serve it
    message = err.get("message")
    if not isinstance(message, str) or not message:
        message = f"Gemini returned an error ({google_status or http})"
    result = cls(message, status=http, type=etype, code=google_status)
    result.retry_after = _retry_delay(details)
    return result


def translate_error(status: int, body: bytes) -> ProxyError:
    """A Gemini error status as an OpenAI-shaped ``UpstreamError`` with the same HTTP status."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    err = _error_object(data)
    if isinstance(err, dict):
        return _error_from(err, UpstreamError, default_status=status, status=status)
    etype = error_type(status)
    return UpstreamError(f"Gemini returned HTTP {status}", status=status, type=etype)


ADAPTER = Adapter(
    kind="gemini",
    build_request=build_request,
    stream_translator=GeminiStream,
    translate_response=translate_response,
    translate_error=translate_error,
)
