"""One verdict per body, whichever provider serves it.

A malformed body is a 400 with the same ``param`` for every provider kind: the front door's
validation refuses it before any provider sees it, and the translating mappers (which read the
body through the same readers) refuse it the same way when called on their own. A well-formed
body that a provider cannot serve is ``UnsupportedByProvider`` from that provider's mapper (so a
fallback moves on), never a plain 400.
"""

from __future__ import annotations

import copy
from typing import Any

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.config import ProviderConfig, build
from proxy.errors import BadRequest, UnsupportedByProvider
from proxy.protocols.openai_chat.validate import validate_chat_request
from proxy.providers.anthropic import build_request as anthropic_request
from proxy.providers.base import UpstreamRequest
from proxy.providers.gemini import build_request as gemini_request
from proxy.providers.mock import build_request as mock_request
from proxy.providers.openai import build_request as openai_request
from proxy.server import create_app
from tests.support import CTX

KINDS = ("openai", "anthropic", "gemini", "mock")
BUILD = {"openai": openai_request, "anthropic": anthropic_request, "gemini": gemini_request, "mock": mock_request}
TRANSLATING = ("anthropic", "gemini")
_CONFIG = build(
    {
        "providers": {
            "openai": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "k"},
            "anthropic": {"api_key": "k"},
            "gemini": {"api_key": "k"},
        }
    },
    "<test>",
    {},
)
PROVIDERS: dict[str, ProviderConfig] = {kind: _CONFIG.providers[kind] for kind in KINDS}
MODEL = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash", "mock": "echo"}

USER = {"role": "user", "content": "Hi"}
FN = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def call(arguments: Any = "{}", **fields: Any) -> dict[str, Any]:
    return {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}, **fields}


def assistant(*calls: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": list(calls)}


def part(p: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": [p]}]}


C0 = "messages[0].content[0]"

# (what is wrong, the body's fields over a minimal valid one, the param every kind names)
MALFORMED: list[tuple[str, dict[str, Any], str]] = [
    ("a tool that is not an object", {"tools": ["f"]}, "tools[0]"),
    ("a tool without a type", {"tools": [{"function": {"name": "f"}}]}, "tools[0].type"),
    ("a function tool without a name", {"tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
    ("a function tool without its function", {"tools": [{"type": "function"}]}, "tools[0].function"),
    (
        "parameters that are not an object",
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]},
        "tools[0].function.parameters",
    ),
    ("a legacy function without a name", {"functions": [{"description": "d"}]}, "functions[0].name"),
    ("both tools and functions", {"tools": [FN], "functions": [{"name": "f"}]}, "functions"),
    ("an unknown tool_choice word", {"tools": [FN], "tool_choice": "sometimes"}, "tool_choice"),
    (
        "tool_choice naming an undeclared function",
        {"tools": [FN], "tool_choice": {"type": "function", "function": {"name": "g"}}},
        "tool_choice.function.name",
    ),
    ("tool_choice required without tools", {"tool_choice": "required"}, "tool_choice"),
    ("function_call required", {"functions": [{"name": "f"}], "function_call": "required"}, "function_call"),
    ("a content part that is not an object", part("hi"), C0),
    ("a content part without a type", part({"text": "hi"}), f"{C0}.type"),
    ("a content part whose type is not a string", part({"type": 1}), f"{C0}.type"),
    ("a text part whose text is not a string", part({"type": "text", "text": ["hi"]}), f"{C0}.text"),
    ("an image_url without a url", part({"type": "image_url", "image_url": {}}), f"{C0}.image_url.url"),
    (
        "an image url of another scheme",
        part({"type": "image_url", "image_url": {"url": "ftp://h/a.png"}}),
        f"{C0}.image_url.url",
    ),
    (
        "a data: URL that is not base64",
        part({"type": "image_url", "image_url": {"url": "data:image/png,xx"}}),
        f"{C0}.image_url.url",
    ),
    (
        "input_audio without data",
        part({"type": "input_audio", "input_audio": {"format": "wav"}}),
        f"{C0}.input_audio.data",
    ),
    ("a file without data or id", part({"type": "file", "file": {"filename": "a.pdf"}}), f"{C0}.file"),
    ("content that is a number", {"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    (
        "tool_calls that is not an array",
        {"messages": [USER, {"role": "assistant", "tool_calls": {}}]},
        "messages[1].tool_calls",
    ),
    ("a tool call that is not an object", {"messages": [USER, assistant("c1")]}, "messages[1].tool_calls[0]"),
    (
        "a tool call without an id",
        {"messages": [USER, assistant({"type": "function", "function": {"name": "f"}})]},
        "messages[1].tool_calls[0].id",
    ),
    (
        "object arguments",
        {"messages": [USER, assistant(call({"a": 1}))]},
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        "arguments that are not JSON",
        {"messages": [USER, assistant(call("{"))]},
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        "arguments of an array",
        {"messages": [USER, assistant(call("[]"))]},
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        "a tool message without tool_call_id",
        {"messages": [USER, {"role": "tool", "content": "x"}]},
        "messages[1].tool_call_id",
    ),
    ("an unknown role", {"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ("max_tokens of zero", {"max_tokens": 0}, "max_tokens"),
    ("a stop list with a number", {"stop": ["a", 1]}, "stop[1]"),
    ("temperature above 2", {"temperature": 2.5}, "temperature"),
    ("top_p above 1", {"top_p": 1.5}, "top_p"),
    ("n of zero", {"n": 0}, "n"),
    ("an empty reasoning_effort", {"reasoning_effort": ""}, "reasoning_effort"),
    ("response_format without a type", {"response_format": {}}, "response_format.type"),
    ("json_schema without its object", {"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
    (
        "a json_schema schema that is not an object",
        {"response_format": {"type": "json_schema", "json_schema": {"schema": 1}}},
        "response_format.json_schema.schema",
    ),
]

# (what a provider lacks, the body's fields, the param of each kind's refusal; None: served)
UNSUPPORTED: list[tuple[str, dict[str, Any], dict[str, str | None]]] = [
    ("n > 1", {"n": 2}, {"anthropic": "n", "gemini": "n"}),
    ("logit_bias", {"logit_bias": {"50256": -100}}, {"anthropic": None, "gemini": "logit_bias"}),
    ("audio output", {"modalities": ["text", "audio"]}, {"anthropic": None, "gemini": "modalities"}),
    (
        "a custom tool",
        {"tools": [{"type": "custom", "custom": {"name": "x"}}]},
        {"anthropic": "tools[0].type", "gemini": "tools[0].type"},
    ),
    (
        "an allowed_tools choice",
        {"tools": [FN], "tool_choice": {"type": "allowed_tools", "allowed_tools": {}}},
        {"anthropic": "tool_choice.type", "gemini": "tool_choice.type"},
    ),
    (
        "a custom tool call",
        {"messages": [USER, assistant({"id": "c", "type": "custom", "custom": {"name": "x", "input": ""}})]},
        {"anthropic": "messages[1].tool_calls[0].type", "gemini": "messages[1].tool_calls[0].type"},
    ),
    (
        "an unknown content part",
        part({"type": "video_url", "video_url": {"url": "https://e.com/v.mp4"}}),
        {"anthropic": C0, "gemini": C0},
    ),
    (
        "audio input",
        part({"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}),
        {"anthropic": C0, "gemini": None},
    ),
    (
        "an uploaded file id",
        part({"type": "file", "file": {"file_id": "file-abc"}}),
        {"anthropic": f"{C0}.file", "gemini": f"{C0}.file"},
    ),
    (
        "an unknown reasoning effort",
        {"reasoning_effort": "xhigh"},
        {"anthropic": "reasoning_effort", "gemini": "reasoning_effort"},
    ),
    (
        "an unknown response format",
        {"response_format": {"type": "grammar"}},
        {"anthropic": "response_format.type", "gemini": "response_format.type"},
    ),
    (
        "a GIF by URL",
        part({"type": "image_url", "image_url": {"url": "https://e.com/a.gif"}}),
        {"anthropic": None, "gemini": f"{C0}.image_url.url"},
    ),
]


def body_of(fields: dict[str, Any]) -> dict[str, Any]:
    return {"model": "p/m", "messages": [USER], **copy.deepcopy(fields)}


def verdict(kind: str, body: dict[str, Any], validate: bool = True) -> UpstreamRequest | BadRequest:
    """What the proxy decides for ``body`` on the way to ``kind``: a request, or the 400."""
    try:
        if validate:
            validate_chat_request(body)
        return BUILD[kind](body, MODEL[kind], PROVIDERS[kind], CTX)
    except BadRequest as err:
        return err


def test_the_tables_name_every_kind() -> None:
    assert set(BUILD) == set(KINDS) == set(PROVIDERS)
    assert {kind for _, _, params in UNSUPPORTED for kind in params} == set(TRANSLATING)


@pytest.mark.parametrize(("why", "fields", "param"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_bodies_get_the_same_400_from_every_kind(why: str, fields: dict[str, Any], param: str) -> None:
    body = body_of(fields)
    for kind in KINDS:
        err = verdict(kind, body)
        assert isinstance(err, BadRequest) and not isinstance(err, UnsupportedByProvider), (kind, err)
        assert (err.status, err.type, err.param) == (400, "invalid_request_error", param), kind
    # The translating mappers read through the same readers: alone, they refuse it the same way.
    for kind in TRANSLATING:
        err = verdict(kind, body, validate=False)
        assert isinstance(err, BadRequest) and not isinstance(err, UnsupportedByProvider), (kind, err)
        assert err.param == param, kind


@pytest.mark.parametrize(("why", "fields", "params"), UNSUPPORTED, ids=[u[0] for u in UNSUPPORTED])
def test_well_formed_bodies_are_served_or_unsupported(why: str, fields: dict[str, Any], params: dict[str, Any]) -> None:
    body = body_of(fields)
    validate_chat_request(body)  # well formed: the front door lets it through
    for kind in KINDS:
        result = verdict(kind, body)
        param = params.get(kind)
        if param is None:
            assert isinstance(result, UpstreamRequest), (kind, result)
        else:
            assert isinstance(result, UnsupportedByProvider), (kind, result)
            assert (result.status, result.param, result.code) == (400, param, "unsupported_by_provider"), kind


@pytest.mark.parametrize(
    "fields",
    [
        {"future_field": {"x": 1}, "prediction": {"type": "content", "content": "x"}},
        {"tools": [{"type": "custom", "custom": {"name": "x"}}, {"type": "web_search"}]},
        part({"type": "video_url", "video_url": {"url": "https://e.com/v.mp4"}}),
        {"messages": [USER, assistant(call(""), call(" \n", id="c2"), call(None, id="c3"))]},
        {"messages": [USER, assistant({"id": "c", "function": {"name": "f", "arguments": "{}"}})]},
        {"tool_choice": "none"},
        {"tool_choice": "auto", "tools": []},
        {"reasoning_effort": "xhigh", "response_format": {"type": "grammar", "grammar": "x"}},
        {"messages": [{"role": "system", "content": "rules only"}]},
    ],
)
def test_validation_is_lenient_on_what_openai_accepts_or_may_add(fields: dict[str, Any]) -> None:
    body = body_of(fields)
    validate_chat_request(body)
    assert isinstance(verdict("openai", body), UpstreamRequest)


def test_empty_or_whitespace_arguments_are_no_arguments_everywhere() -> None:
    body = body_of(
        {"messages": [USER, assistant(call(" \n")), {"role": "tool", "tool_call_id": "c1", "content": "ok"}]}
    )
    for kind in KINDS:
        assert isinstance(verdict(kind, body), UpstreamRequest), kind


# --------------------------------------------------------------------------------------------
# Through the proxy: the openai SDK gets the same 400 JSON, whichever kind the model names


async def test_one_malformed_body_gets_the_same_400_json_from_every_kind(aiohttp_server: Any) -> None:
    seen: list[str] = []

    async def upstream(request: web.Request) -> web.Response:
        seen.append(request.path)  # validation must refuse before any upstream is asked
        return web.json_response({}, status=500)

    app = web.Application()
    app.router.add_post("/{tail:.*}", upstream)
    fake: TestServer = await aiohttp_server(app)
    base = f"http://127.0.0.1:{fake.port}"
    config = build(
        {
            "providers": {
                "oa": {"kind": "openai", "base_url": f"{base}/v1", "api_key": "k"},
                "anthropic": {"base_url": base, "api_key": "k"},
                "gemini": {"base_url": base, "api_key": "k"},
            }
        },
        "<test>",
        {},
    )
    proxy: TestServer = await aiohttp_server(create_app(config))
    client = openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="client-key", max_retries=0)
    answers = {}
    for model in ("oa/gpt-4o", "anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash", "mock/echo"):
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": "Hi"}],
                tools=[{"type": "function", "function": {"description": "no name"}}],  # type: ignore[typeddict-item]
            )
        assert info.value.status_code == 400
        answers[model] = info.value.response.json()
    first = next(iter(answers.values()))
    assert first["error"]["param"] == "tools[0].function.name"
    assert first["error"]["type"] == "invalid_request_error"
    assert all(answer == first for answer in answers.values()), answers
    assert seen == []
