"""The built-in mock model, served in-process: ``mock/<anything>`` answers with no key and no network.

A newcomer's first try runs an agent's tool loop or a structured-output example on it, so it
behaves like a sensible (if simple-minded) model, deterministically:

- text: an echo of the last user message, word by word (option ``text`` when there is none);
- tools offered and ``tool_choice`` not ``none``: a call of the chosen (or first) tool with
  arguments that fit its JSON schema; but once the conversation ends with the results of its
  calls (``tool`` or legacy ``function`` messages) it answers in text that uses them, so a tool
  loop ends after two model calls. ``tool_choice: "required"`` or a named function always calls;
- ``response_format``: ``json_object`` gives ``{"echo": <text>}``, ``json_schema`` a value made
  from the schema (``schema_example``);
- usage: prompt tokens are the words of the messages, completion tokens the pieces streamed
  (a word of text, eight characters of JSON).

Some model names fail on purpose: ``fail-<status>`` answers that HTTP status, ``fail-mid`` sends
an error frame after two chunks, ``truncate`` ends without ``[DONE]``. Options: ``chunk_delay_ms``
(pace, default 20), ``first_token_ms``, ``text``.

``plan_answer`` (the model) and ``answer_frames``/``answer_body`` (its OpenAI wire bytes) are
sans-IO; ``MockTransport``/``MockResponse`` put them behind the transport interface. A body the
mock cannot read is a ``BadRequest``, never another exception.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson

import proxy.transport.mock_embeddings as mock_embeddings
from proxy.config import ProviderConfig
from proxy.errors import BadRequest, ProxyError
from proxy.protocols.openai_chat.encode import ChatEncoder, encode_completion
from proxy.protocols.stream import Completion, StreamContext, ToolCall, Usage
from proxy.transport.base import UpstreamRequest, UpstreamResponse

__all__ = [
    "DEFAULT_TEXT",
    "Answer",
    "MockResponse",
    "MockTransport",
    "answer_body",
    "answer_frames",
    "plan_answer",
    "schema_example",
]

DEFAULT_TEXT = "Hello from the sse-proxy mock provider. Ask for a real model as provider/model."
_WORDS = re.compile(r"\s*\S+")
_JSON_PIECE = 8  # characters of JSON per streamed chunk

JSONBody = dict[str, Any]


def _words(text: str) -> int:
    return len(_WORDS.findall(text))


# --- reading the request ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tool:
    name: str
    parameters: Any  # a JSON schema (object) or None
    where: str  # the body path of its parameters, for error messages


def _tool_of(function: Any, where: str) -> _Tool:
    if not isinstance(function, dict):
        raise BadRequest(f"'{where}' must be an object", param=where)
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"'{where}.name' must be a non-empty string", param=f"{where}.name")
    parameters = function.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise BadRequest(f"'{where}.parameters' must be an object", param=f"{where}.parameters")
    return _Tool(name, parameters, f"{where}.parameters")


def _declared_tools(body: JSONBody) -> list[_Tool]:
    """The functions the request offers (``tools`` then legacy ``functions``), checked."""
    tools: list[_Tool] = []
    for key in ("tools", "functions"):
        entries = body.get(key)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise BadRequest(f"'{key}' must be an array", param=key)
        for i, entry in enumerate(entries):
            where = f"{key}[{i}]"
            if key == "functions":
                tools.append(_tool_of(entry, where))
                continue
            if not isinstance(entry, dict):
                raise BadRequest(f"'{where}' must be an object", param=where)
            kind = entry.get("type", "function")
            if kind != "function":
                raise BadRequest(f"'{where}.type' {kind!r} is not supported by the mock", param=f"{where}.type")
            tools.append(_tool_of(entry.get("function"), f"{where}.function"))
    return tools


def _tool_choice(body: JSONBody) -> tuple[str, str | None]:
    """(mode, function name): mode is ``auto``, ``none``, ``required`` or ``named``."""
    key = "tool_choice" if body.get("tool_choice") is not None else "function_call"
    choice = body.get(key)
    if choice is None:
        return "auto", None
    if choice in ("auto", "none", "required"):
        return str(choice), None
    if isinstance(choice, dict):
        function = choice.get("function") if key == "tool_choice" else choice
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str):
            return "named", name
    raise BadRequest(f"'{key}' must be 'auto', 'none', 'required' or name a function", param=key)


def _content_text(content: Any, where: str) -> str:
    """The text of a message's content (a string or a list of parts); other parts are skipped."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise BadRequest(f"'{where}' must be a string or an array", param=where)
    texts: list[str] = []
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        if not isinstance(part, dict):
            raise BadRequest(f"'{at}' must be an object", param=at)
        kind = part.get("type")
        if not isinstance(kind, str):
            raise BadRequest(f"'{at}.type' must be a string", param=f"{at}.type")
        if kind in ("text", "refusal"):
            text = part.get(kind)
            if not isinstance(text, str):
                raise BadRequest(f"'{at}.{kind}' must be a string", param=f"{at}.{kind}")
            texts.append(text)
    return " ".join(texts)


@dataclass(frozen=True, slots=True)
class _Message:
    role: str
    text: str
    name: str | None  # a legacy ``function`` result's function name
    tool_call_id: str | None
    calls: dict[str, str]  # an assistant's tool calls: id -> function name
    call_words: int  # words of the calls' names and arguments (prompt usage)


def _calls_of(message: JSONBody, where: str) -> tuple[dict[str, str], int]:
    calls = message.get("tool_calls")
    if calls is None:
        calls = []
    if not isinstance(calls, list):
        raise BadRequest(f"'{where}.tool_calls' must be an array", param=f"{where}.tool_calls")
    legacy = message.get("function_call")
    names: dict[str, str] = {}
    words = 0
    for j, call in enumerate([*calls, *([legacy] if legacy is not None else [])]):
        at = f"{where}.tool_calls[{j}]" if j < len(calls) else f"{where}.function_call"
        if not isinstance(call, dict):
            raise BadRequest(f"'{at}' must be an object", param=at)
        function = call.get("function", call) if j < len(calls) else call
        if not isinstance(function, dict):
            raise BadRequest(f"'{at}.function' must be an object", param=f"{at}.function")
        name, arguments, call_id = function.get("name"), function.get("arguments"), call.get("id")
        if isinstance(name, str):
            words += _words(name)
            if isinstance(call_id, str):
                names[call_id] = name
        if isinstance(arguments, str):
            words += _words(arguments)
    return names, words


def _messages(body: JSONBody) -> list[_Message]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise BadRequest("'messages' must be an array", param="messages")
    result: list[_Message] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise BadRequest(f"'{where}' must be an object", param=where)
        role = message.get("role")
        if not isinstance(role, str):
            raise BadRequest(f"'{where}.role' must be a string", param=f"{where}.role")
        text = _content_text(message.get("content"), f"{where}.content")
        calls, call_words = _calls_of(message, where) if role == "assistant" else ({}, 0)
        name, call_id = message.get("name"), message.get("tool_call_id")
        result.append(
            _Message(
                role,
                text,
                name if isinstance(name, str) else None,
                call_id if isinstance(call_id, str) else None,
                calls,
                call_words,
            )
        )
    return result


def _results_text(messages: list[_Message]) -> str | None:
    """The answer that uses the tool results ending the conversation, or None when it does not
    end with results. Each result is named after the call it answers."""
    tail: list[_Message] = []
    for message in reversed(messages):
        if message.role not in ("tool", "function"):
            break
        tail.insert(0, message)
    if not tail:
        return None
    calls: dict[str, str] = {}
    for message in messages[: len(messages) - len(tail)]:
        calls.update(message.calls)
    parts = []
    for message in tail:
        name = calls.get(message.tool_call_id or "") or message.name or "requested"
        parts.append(f"The {name} tool returned: {message.text}")
    return "\n".join(parts)


def _last_user_text(messages: list[_Message]) -> str | None:
    return next((m.text for m in reversed(messages) if m.role == "user"), None)


def _response_format(body: JSONBody) -> tuple[str, Any]:
    """(``text`` | ``json_object`` | ``json_schema``, the schema)."""
    fmt = body.get("response_format")
    if fmt is None:
        return "text", None
    if not isinstance(fmt, dict):
        raise BadRequest("'response_format' must be an object", param="response_format")
    kind = fmt.get("type")
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict):
            raise BadRequest("'response_format.json_schema' must be an object", param="response_format.json_schema")
        schema = spec.get("schema")
        if schema is None:
            return "json_object", None
        if not isinstance(schema, dict):
            raise BadRequest(
                "'response_format.json_schema.schema' must be an object", param="response_format.json_schema.schema"
            )
        return "json_schema", schema
    if kind in ("text", "json_object"):
        return str(kind), None
    raise BadRequest(
        "'response_format.type' must be 'text', 'json_object' or 'json_schema'", param="response_format.type"
    )


# --- values from JSON schemas ----------------------------------------------------------------

_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00Z",
    "duration": "P1D",
    "email": "mock@example.com",
    "idn-email": "mock@example.com",
    "uri": "https://example.com/mock",
    "url": "https://example.com/mock",
    "iri": "https://example.com/mock",
    "uri-reference": "https://example.com/mock",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "hostname": "example.com",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
}
_SOFT_DEPTH = 6  # past it, optional parts are left out, so recursive models end
_HARD_DEPTH = 64  # past it, the schema has no finite value (or is absurdly deep)
_BUDGET = 10_000  # schema nodes visited for one value: a bound on fan-out through $refs
_MAX_ITEMS = 100
_MAX_LENGTH = 10_000
_INT64 = 2**63


def _number(value: Any) -> float | int | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _bounds(schema: JSONBody) -> tuple[float | None, bool, float | None, bool]:
    """(low, low exclusive, high, high exclusive), from draft 4 and draft 2020 keywords alike."""
    low, high = _number(schema.get("minimum")), _number(schema.get("maximum"))
    low_x = high_x = False
    if schema.get("exclusiveMinimum") is True or schema.get("exclusiveMaximum") is True:  # draft 4
        low_x, high_x = schema.get("exclusiveMinimum") is True, schema.get("exclusiveMaximum") is True
    x_low, x_high = _number(schema.get("exclusiveMinimum")), _number(schema.get("exclusiveMaximum"))
    if x_low is not None and (low is None or x_low >= low):
        low, low_x = x_low, True
    if x_high is not None and (high is None or x_high <= high):
        high, high_x = x_high, True
    return low, low_x, high, high_x


class _Examples:
    """Builds one value for one schema document (``root`` is where ``$ref`` pointers start)."""

    def __init__(self, root: Any, where: str) -> None:
        self.root = root
        self.where = where
        self.budget = _BUDGET

    def fail(self, why: str) -> BadRequest:
        return BadRequest(f"'{self.where}': {why}", param=self.where)

    def value(self, schema: Any, depth: int = 0, nth: int = 0) -> Any:
        self.budget -= 1
        if self.budget < 0 or depth > _HARD_DEPTH:
            raise self.fail("the schema is too large or too recursive for the mock to fill")
        if not isinstance(schema, dict):  # true, or something that is no schema: anything goes
            return "mock"
        if "$ref" in schema:
            return self.value(self.resolve(schema["$ref"]), depth + 1, nth)
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[nth % len(enum)]
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                return self.value(self.branch(branches, depth), depth + 1, nth)
        branches = schema.get("allOf")
        if isinstance(branches, list) and branches:
            return self.value(self.merge(schema, branches), depth + 1, nth)
        kind = self.kind(schema)
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, depth)
        if kind == "integer":
            return self.integer(schema, nth)
        if kind == "number":
            return self.number(schema, nth)
        if kind == "boolean":
            return nth % 2 == 0
        if kind == "null":
            return None
        return self.string(schema, nth)

    def resolve(self, ref: Any) -> Any:
        """A local ``$ref`` (a JSON pointer into the document: ``#/$defs/X``, ``#/definitions/X``)."""
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise self.fail(f"the mock resolves only local $ref pointers, not {ref!r}")
        node = self.root
        for token in (unquote(ref[1:]).split("/"))[1:]:
            key = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                raise self.fail(f"$ref {ref!r} points to nothing")
        return node

    def branch(self, branches: list[Any], depth: int) -> Any:
        """The first branch; deep down, a null branch if there is one, so recursion ends."""
        if depth > _SOFT_DEPTH:
            for b in branches:
                if isinstance(b, dict) and (b.get("type") == "null" or b.get("const", 0) is None):
                    return b
        return branches[0]

    def merge(self, schema: JSONBody, branches: list[Any]) -> JSONBody:
        """``allOf`` as one schema: properties and required lists united, other keywords first-wins."""
        merged: JSONBody = {k: v for k, v in schema.items() if k != "allOf"}
        for b in branches:
            part = self.resolve(b["$ref"]) if isinstance(b, dict) and "$ref" in b else b
            if not isinstance(part, dict):
                continue
            for key, sub in part.items():
                if key == "properties" and isinstance(sub, dict):
                    props = merged.get("properties")
                    merged["properties"] = {**sub, **(props if isinstance(props, dict) else {})}
                elif key == "required" and isinstance(sub, list):
                    required = merged.get("required")
                    merged["required"] = [*(required if isinstance(required, list) else []), *sub]
                else:
                    merged.setdefault(key, sub)
        return merged

    @staticmethod
    def kind(schema: JSONBody) -> str | None:
        kind = schema.get("type")
        if isinstance(kind, list):  # ["string", "null"]: the first that is not null
            names = [k for k in kind if isinstance(k, str)]
            return next((k for k in names if k != "null"), "null" if names else None)
        if isinstance(kind, str):
            return kind
        if any(k in schema for k in ("properties", "required", "additionalProperties")):
            return "object"
        if any(k in schema for k in ("items", "prefixItems", "minItems")):
            return "array"
        if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
            return "number"
        return None

    def object(self, schema: JSONBody, depth: int) -> JSONBody:
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        required = schema.get("required")
        required = [r for r in required if isinstance(r, str)] if isinstance(required, list) else []
        result: JSONBody = {}
        for name, sub in props.items():
            if depth <= _SOFT_DEPTH or name in required:
                result[name] = self.value(sub, depth + 1)
        extra = schema.get("additionalProperties")
        for name in required:
            if name not in result:
                result[name] = self.value(extra if isinstance(extra, dict) else True, depth + 1)
        return result

    def array(self, schema: JSONBody, depth: int) -> list[Any]:
        prefix = schema.get("prefixItems")
        items = schema.get("items")
        if isinstance(items, list):  # draft 4 tuples
            prefix, items = items, schema.get("additionalItems")
        head = [self.value(s, depth + 1) for s in prefix] if isinstance(prefix, list) else []
        low, high = _count(schema.get("minItems")) or 0, _count(schema.get("maxItems"))
        wanted = 1 if depth <= _SOFT_DEPTH and items is not False and not head else 0
        n = max(low, min(wanted, high if high is not None else wanted)) - len(head)
        if n > _MAX_ITEMS:
            raise self.fail(f"the mock writes arrays of at most {_MAX_ITEMS} items")
        return head + [self.value(items if items is not None else True, depth + 1, i) for i in range(max(n, 0))]

    def integer(self, schema: JSONBody, nth: int) -> int:
        low, low_x, high, high_x = _bounds(schema)
        value = 1 + nth
        if low is not None:
            value = max(value, math.floor(low) + 1 if low_x else math.ceil(low))
        if high is not None:
            value = min(value, math.ceil(high) - 1 if high_x else math.floor(high))
        step = _count(schema.get("multipleOf"))
        if step:
            value = -(-value // step) * step
        if not -_INT64 <= value < _INT64:
            raise self.fail("the mock writes integers of 64 bits only")
        return value

    def number(self, schema: JSONBody, nth: int) -> float:
        low, low_x, high, high_x = _bounds(schema)
        value = 1.5 + nth
        if low is not None and (value < low or (low_x and value <= low)):
            value = low + 1 if low_x else low
        if high is not None and (value > high or (high_x and value >= high)):
            value = low / 2 + high / 2 if low is not None else (high - 1 if high_x else high)
        return float(value)

    def string(self, schema: JSONBody, nth: int) -> str:
        fmt = schema.get("format")
        text = _FORMATS.get(fmt, "") if isinstance(fmt, str) else ""
        text = text or ("mock" if nth == 0 else f"mock{nth + 1}")
        low, high = _count(schema.get("minLength")), _count(schema.get("maxLength"))
        if low is not None and low > _MAX_LENGTH:
            raise self.fail(f"the mock writes strings of at most {_MAX_LENGTH} characters")
        if low is not None and len(text) < low:
            text += "k" * (low - len(text))
        return text[:high] if high is not None else text


def schema_example(schema: Any, where: str = "schema") -> Any:
    """A JSON value that fits ``schema`` (what pydantic and zod emit: objects, arrays, enums,
    ``const``, ``anyOf``/``oneOf``/``allOf``, local ``$ref``, type lists, bounds, string formats).
    ``pattern`` is not honoured. Raises ``BadRequest`` (naming ``where``) for a ``$ref`` it cannot
    resolve or a schema with no finite value."""
    return _Examples(schema, where).value(schema)


# --- the answer ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """What the mock says: content, or one call of ``tool`` whose arguments are the pieces."""

    pieces: tuple[str, ...]  # streamed one per chunk; together the content or the arguments
    tool: str | None
    prompt_tokens: int

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def completion_tokens(self) -> int:
        return len(self.pieces) + (self.tool is not None)


def _json_pieces(value: Any) -> tuple[str, ...]:
    text = orjson.dumps(value).decode()
    return tuple(text[i : i + _JSON_PIECE] for i in range(0, len(text), _JSON_PIECE))


def _call(tools: list[_Tool], name: str | None) -> tuple[str, Any]:
    tool = next((t for t in tools if t.name == name), None) if name is not None else tools[0]
    if tool is None:
        raise BadRequest(f"the chosen function {name!r} is not among the request's tools", param="tool_choice")
    arguments = schema_example(tool.parameters, tool.where) if tool.parameters is not None else {}
    return tool.name, arguments if isinstance(arguments, dict) else {}


def plan_answer(body: JSONBody, options: Mapping[str, Any]) -> Answer:
    """The mock's answer to a chat request body. Raises only ``BadRequest``."""
    messages = _messages(body)
    tools = _declared_tools(body)
    mode, name = _tool_choice(body)
    fmt, schema = _response_format(body)
    prompt_tokens = sum(_words(m.text) + m.call_words for m in messages)
    results = _results_text(messages)
    if tools and (mode in ("required", "named") or (mode == "auto" and results is None)):
        tool, arguments = _call(tools, name)
        return Answer(_json_pieces(arguments), tool, prompt_tokens)
    fallback = options.get("text")
    text = results or _last_user_text(messages) or (fallback if isinstance(fallback, str) else DEFAULT_TEXT)
    if fmt == "json_schema":
        pieces = _json_pieces(schema_example(schema, "response_format.json_schema.schema"))
    elif fmt == "json_object":
        pieces = _json_pieces({"echo": text})
    else:
        pieces = tuple(_WORDS.findall(text)) or (text,)
    return Answer(pieces, None, prompt_tokens)


def answer_frames(answer: Answer, ctx: StreamContext, model: str = "") -> list[bytes]:
    """The answer as OpenAI stream frames; ``model`` names a failure model (``fail-mid``, ``truncate``)."""
    writer = ChatEncoder(ctx)
    frames: list[bytes] = []
    if answer.tool is None:
        frames += [writer.text(piece) for piece in answer.pieces]
    else:
        frames.append(writer.tool_call_start(f"call_{ctx.call_id_prefix}_0", answer.tool))
        frames += [writer.tool_call_arguments(0, piece) for piece in answer.pieces]
    if model == "fail-mid":
        error = {"error": {"message": "mock failure mid-stream", "type": "mock_error", "param": None, "code": None}}
        return [*frames[:2], b"data: " + orjson.dumps(error) + b"\n\n"]
    frames.append(writer.finish("stop"))
    usage = writer.usage(Usage(answer.prompt_tokens, answer.completion_tokens))
    if usage:
        frames.append(usage)
    if model != "truncate":
        frames.append(writer.end())
    return frames


def answer_body(answer: Answer, ctx: StreamContext) -> bytes:
    """The answer as a ``chat.completion`` body."""
    completion = Completion(usage=Usage(answer.prompt_tokens, answer.completion_tokens))
    if answer.tool is None:
        completion.text = answer.text
    else:
        completion.tool_calls.append(ToolCall(f"call_{ctx.call_id_prefix}_0", answer.tool, answer.text))
    return encode_completion(completion, ctx)


# --- the transport ---------------------------------------------------------------------------


def _seconds(options: Mapping[str, Any], name: str, default_ms: float) -> float:
    value = options.get(name, default_ms)
    if _number(value) is None or value < 0:
        raise ProxyError(f"mock option '{name}' must be a non-negative number of milliseconds")
    return float(value) / 1000


class MockResponse:
    """An in-process ``proxy.transport.http.UpstreamResponse``: the answer's frames, paced."""

    def __init__(
        self,
        status: int,
        answer: Answer | None,
        ctx: StreamContext,
        options: Mapping[str, Any] | None = None,
        stream: bool = False,
    ) -> None:
        self.status = status
        self.answer = answer
        self.ctx = ctx
        options = options or {}
        self.first_token_s = _seconds(options, "first_token_ms", 0)
        self.chunk_delay_s = _seconds(options, "chunk_delay_ms", 20)
        self.headers: Mapping[str, str] = {"Content-Type": "text/event-stream" if stream else "application/json"}
        self.received = 0
        self._closed = False

    async def read(self) -> bytes:
        if self.answer is None:
            text = f"mock failure with HTTP {self.status}"
            data = orjson.dumps({"error": {"message": text, "type": "mock_error", "param": None, "code": None}})
        else:
            data = answer_body(self.answer, self.ctx)
        self.received += len(data)
        return data

    async def chunks(self) -> AsyncIterator[bytes]:
        if self.answer is None:
            yield await self.read()
            return
        if self.first_token_s:
            await asyncio.sleep(self.first_token_s)
        for i, frame in enumerate(answer_frames(self.answer, self.ctx, self.ctx.model)):
            if self._closed:
                return
            if i and self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
            self.received += len(frame)
            yield frame

    def close(self) -> None:
        self._closed = True


def _context(body: JSONBody, model: str) -> StreamContext:
    """The answer's own names: ``chatcmpl-mock-<hex>`` and ``call_mock<hex>_0``, created now."""
    token = f"{random.getrandbits(64):016x}"
    options = body.get("stream_options")
    return StreamContext(
        id=f"chatcmpl-mock-{token}",
        created=int(time.time()),
        model=model,
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
        legacy_functions=bool(body.get("functions")) and not body.get("tools"),
        call_id_prefix=f"mock{token[:8]}",
    )


class MockTransport:
    """Opens ``mock://<model>`` requests in-process (the interface of ``HTTPTransport.open``)."""

    async def open(self, req: UpstreamRequest, provider: ProviderConfig) -> UpstreamResponse:
        """Answer at once; raises ``BadRequest`` for a body the mock cannot read."""
        model = req.url.removeprefix("mock://")
        embeddings = model.endswith(mock_embeddings.SUFFIX)
        model = model.removesuffix(mock_embeddings.SUFFIX)
        try:
            body = orjson.loads(req.body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"the request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        ctx = _context(body, model)
        failure = re.fullmatch(r"fail-(\d{3})", model)
        if failure:
            return MockResponse(int(failure.group(1)), None, ctx)
        if embeddings:
            return mock_embeddings.EmbeddingsResponse(mock_embeddings.embeddings_body(body, model))
        answer = plan_answer(body, provider.options)
        return MockResponse(200, answer, ctx, provider.options, stream=body.get("stream") is True)
