"""The Anthropic adapter: golden streams, request mapping, non-stream responses and errors.

Golden streams live in ``tests/fixtures/anthropic/``: the recorded ones copied unchanged from the
shared fixtures (see the README there) and our own cases in the API's exact shapes. Each input
has its expected OpenAI output next to it as ``<case>.expected``, byte for byte. A failing
stream's expected output ends with the error frame the relay writes (``error_frame``).
Regenerate after a deliberate change with ``REGEN_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.config import build
from proxy.errors import BadRequest, StreamError, UnsupportedByProvider, UpstreamError
from proxy.protocols.anthropic.request import JSON_OBJECT_INSTRUCTION, JSON_TOOL_INSTRUCTION
from proxy.protocols.anthropic.response import decode_response
from proxy.protocols.anthropic.stream import AnthropicStream
from proxy.protocols.anthropic.wire import JSON_TOOL, translate_error
from proxy.protocols.openai_chat.encode import ChatEncoder, encode_completion, error_frame
from proxy.protocols.stream import StreamContext
from proxy.providers import provider_kind
from proxy.providers.anthropic import PROVIDER as KIND
from proxy.providers.anthropic import build_request
from proxy.wire.sse import SSEDecoder
from tests.support import CTX, FIXTURES, assert_same_every_split, relayed_every_split


def translate_response(body: bytes, ctx: StreamContext) -> bytes:
    """The non-stream path as the chat front door runs it: decode, then encode."""
    return encode_completion(decode_response(body, ctx), ctx)


DIR = FIXTURES / "anthropic"
USAGE = replace(CTX, include_usage=True)
LEGACY = replace(CTX, include_usage=True, legacy_functions=True)

# case → the context it runs with (every fixture input must be listed here)
CASES: dict[str, StreamContext] = {
    "messages-basic-text": USAGE,
    "messages-tool-use": USAGE,
    "messages-refusal": USAGE,
    "vercel-thinking-summarized": USAGE,
    "vercel-tool-use-quoted-input": USAGE,
    "vercel-refusal": USAGE,
    "text-cached": USAGE,
    "text-crlf": CTX,
    "thinking-text": USAGE,
    "parallel-tools": USAGE,
    "tool-empty-input": USAGE,
    "refusal-after-text": USAGE,
    "max-tokens": USAGE,
    "redacted-thinking": USAGE,
    "legacy-functions": LEGACY,
    "json-schema": USAGE,
    "server-tool-pause": USAGE,
    "error-midstream": USAGE,
    "truncated": USAGE,
    "truncated-mid-event": USAGE,
    "malformed-json": USAGE,
}
# copied unchanged from /work/shared/fixtures/anthropic (provenance in the README there)
RECORDED = {name for name in CASES if name.startswith(("messages-", "vercel-"))}
# failing cases → (status, type, start of the message) of the StreamError
FAILURES: dict[str, tuple[int, str, str]] = {
    "error-midstream": (503, "api_error", "Overloaded"),
    "truncated": (502, "upstream_error", "the Anthropic stream was truncated"),
    "truncated-mid-event": (502, "upstream_error", "the Anthropic stream was truncated"),
    "malformed-json": (502, "upstream_error", "the Anthropic stream sent malformed JSON"),
}


def _input_path(case: str) -> Path:
    for suffix in (".sse", ".chunks.jsonl"):
        path = DIR / f"{case}{suffix}"
        if path.exists():
            return path
    raise FileNotFoundError(case)


def load(case: str) -> bytes:
    """A fixture as the upstream would send it, SSE-framed and ending with a blank line."""
    path = _input_path(case)
    raw = path.read_bytes()
    if path.name.endswith(".chunks.jsonl"):
        # vercel/ai stores one payload per line with the SSE framing stripped: put it back.
        out = []
        for line in raw.splitlines():
            if line.strip():
                out.append(b"event: " + orjson.loads(line)["type"].encode() + b"\ndata: " + line + b"\n\n")
        return b"".join(out)
    if case in RECORDED and not raw.endswith(b"\n\n"):
        # The recordings were stored without the last event's blank line; our own cases are exact.
        return raw + (b"\n" if raw.endswith(b"\n") else b"\n\n")
    return raw


def golden(case: str) -> bytes:
    ctx, data = CASES[case], load(case)
    if case in FAILURES:
        return relayed_every_split(lambda: AnthropicStream(ChatEncoder(ctx)), data, lambda _, exc: error_frame(exc))
    return assert_same_every_split(lambda: AnthropicStream(ChatEncoder(ctx)), data)


def test_every_fixture_is_a_case() -> None:
    names = [p.name for p in DIR.iterdir() if p.name.endswith((".sse", ".chunks.jsonl"))]
    assert {n.removesuffix(".sse").removesuffix(".chunks.jsonl") for n in names} == set(CASES)
    assert all((DIR / f"{case}.expected").exists() for case in CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_stream(case: str) -> None:
    out = golden(case)
    expected = DIR / f"{case}.expected"
    if os.environ.get("REGEN_GOLDEN"):
        expected.write_bytes(out)
    assert out == expected.read_bytes()


# --------------------------------------------------------------------------------------------
# A tiny OpenAI stream accumulator, to check what a client ends up with


def accumulate(out: bytes, ctx: StreamContext) -> dict[str, Any]:
    acc: dict[str, Any] = {
        "content": "",
        "reasoning": "",
        "refusal": None,
        "calls": {},
        "function_call": None,
        "thinking_blocks": [],
        "finish": None,
        "usage": None,
        "error": None,
        "done": False,
        "roles": 0,
    }
    for frame in out.split(b"\n\n"):
        if not frame:
            continue
        assert frame.startswith(b"data: "), frame
        assert not acc["done"], "nothing may follow [DONE]"
        payload = frame[6:]
        if payload == b"[DONE]":
            acc["done"] = True
            continue
        chunk = json.loads(payload)
        if "error" in chunk:
            acc["error"] = chunk["error"]
            continue
        assert acc["error"] is None
        assert (chunk["id"], chunk["created"], chunk["model"]) == (ctx.id, ctx.created, ctx.model)
        assert chunk["object"] == "chat.completion.chunk"
        if not chunk["choices"]:
            assert acc["usage"] is None, "exactly one usage chunk"
            acc["usage"] = chunk["usage"]
            continue
        assert acc["usage"] is None, "the usage chunk comes last"
        assert acc["finish"] is None, "no choice chunk after the finish chunk"
        (choice,) = chunk["choices"]
        delta = choice["delta"]
        acc["roles"] += "role" in delta
        if acc["roles"] == 0:
            raise AssertionError("the first chunk must carry the role")
        acc["content"] += delta.get("content") or ""
        acc["reasoning"] += delta.get("reasoning_content") or ""
        if delta.get("refusal"):
            acc["refusal"] = (acc["refusal"] or "") + delta["refusal"]
        acc["thinking_blocks"] += delta.get("thinking_blocks") or []
        for call in delta.get("tool_calls") or []:
            index = call["index"]
            if index not in acc["calls"]:
                assert index == len(acc["calls"]), "tool-call indexes count up from 0"
                assert call["type"] == "function" and call["id"] and call["function"]["name"]
                acc["calls"][index] = {"id": call["id"], "name": call["function"]["name"], "arguments": ""}
            else:
                assert "id" not in call and "type" not in call and "name" not in call["function"]
            acc["calls"][index]["arguments"] += call["function"].get("arguments") or ""
        if "function_call" in delta:
            fc = delta["function_call"]
            if acc["function_call"] is None:
                acc["function_call"] = {"name": fc["name"], "arguments": ""}
            acc["function_call"]["arguments"] += fc.get("arguments") or ""
        if choice["finish_reason"] is not None:
            acc["finish"] = choice["finish_reason"]
    assert acc["roles"] <= 1
    return acc


def source_tools(data: bytes) -> list[tuple[str, str, Any]]:
    """The (id, name, parsed input) of every client tool call in an Anthropic stream."""
    decoder = SSEDecoder()
    calls: dict[int, list[Any]] = {}
    for event in decoder.feed(data):
        body = json.loads(event.data)
        if body["type"] == "content_block_start" and body["content_block"]["type"] == "tool_use":
            calls[body["index"]] = [body["content_block"]["id"], body["content_block"]["name"], ""]
        elif body["type"] == "content_block_delta" and body["index"] in calls:
            calls[body["index"]][2] += body["delta"]["partial_json"]
    return [(i, n, json.loads(args) if args else {}) for i, n, args in calls.values() if n != JSON_TOOL]


@pytest.mark.parametrize("case", sorted(set(CASES) - set(FAILURES)))
def test_client_accumulates_valid_tool_calls(case: str) -> None:
    ctx, data = CASES[case], load(case)
    acc = accumulate(golden(case), ctx)
    assert acc["done"] and acc["finish"] is not None
    assert (acc["usage"] is not None) == ctx.include_usage
    expected = source_tools(data)
    if ctx.legacy_functions:
        assert not acc["calls"]
        got = [(expected[0][0], acc["function_call"]["name"], json.loads(acc["function_call"]["arguments"]))]
    else:
        got = [(c["id"], c["name"], json.loads(c["arguments"])) for c in acc["calls"].values()]
    assert got == expected
    if expected:
        assert acc["finish"] == ("function_call" if ctx.legacy_functions else "tool_calls")


def test_accumulated_text_thinking_and_usage() -> None:
    acc = accumulate(golden("thinking-text"), USAGE)
    assert acc["reasoning"].startswith("The user asks for 27 * 453.") and acc["reasoning"].endswith("= 12231.")
    assert acc["content"] == "27 \u00d7 453 = **12,231**."
    (block,) = acc["thinking_blocks"]
    assert block["type"] == "thinking" and block["thinking"] == acc["reasoning"] and block["signature"]
    assert acc["usage"] == {
        "prompt_tokens": 52,
        "completion_tokens": 96,
        "total_tokens": 148,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 71},
    }


def test_usage_counts_cache_and_takes_the_latest_values() -> None:
    acc = accumulate(golden("parallel-tools"), USAGE)
    assert acc["usage"]["prompt_tokens"] == 633 + 512 + 120
    assert acc["usage"]["prompt_tokens_details"] == {"cached_tokens": 512}
    assert acc["usage"]["completion_tokens"] == 141  # the last cumulative count, not a sum
    acc = accumulate(golden("text-cached"), USAGE)
    assert acc["usage"]["prompt_tokens"] == 14 + 2048 and acc["usage"]["completion_tokens"] == 17


def test_redacted_and_signed_thinking_blocks_can_be_sent_back() -> None:
    acc = accumulate(golden("redacted-thinking"), USAGE)
    blocks = acc["thinking_blocks"]
    assert [b["type"] for b in blocks] == ["redacted_thinking", "thinking"]
    assert [b["index"] for b in blocks] == [0, 1]
    assert blocks[1]["thinking"] == "Now I can answer directly."
    body = {
        "messages": [
            {"role": "user", "content": "Q"},
            {"role": "assistant", "content": acc["content"], "thinking_blocks": blocks},
            {"role": "user", "content": "Next"},
        ]
    }
    sent = request_body(body)
    assert sent["messages"][1]["content"] == [
        {"type": "redacted_thinking", "data": blocks[0]["data"]},
        {"type": "thinking", "thinking": blocks[1]["thinking"], "signature": blocks[1]["signature"]},
        {"type": "text", "text": "Done."},
    ]


def test_json_schema_answer_streams_as_content() -> None:
    acc = accumulate(golden("json-schema"), USAGE)
    assert json.loads(acc["content"]) == {"name": "Ada Lovelace", "born": 1815}
    assert acc["finish"] == "stop" and not acc["calls"]


def test_refusals() -> None:
    acc = accumulate(golden("messages-refusal"), USAGE)
    assert acc["finish"] == "content_filter" and acc["refusal"] == "This request was refused due to policy."
    acc = accumulate(golden("refusal-after-text"), USAGE)
    assert acc["finish"] == "content_filter" and acc["refusal"] is None
    assert acc["content"] == "Here is how you could start:"


def test_finish_reasons() -> None:
    assert accumulate(golden("max-tokens"), USAGE)["finish"] == "length"
    assert accumulate(golden("server-tool-pause"), USAGE)["finish"] == "stop"
    assert accumulate(golden("server-tool-pause"), USAGE)["content"] == "Searching.aiohttp 3.14 is out."
    assert accumulate(golden("messages-basic-text"), USAGE)["finish"] == "stop"


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_failures(case: str) -> None:
    status, etype, message = FAILURES[case]
    translator = AnthropicStream(ChatEncoder(USAGE))
    with pytest.raises(StreamError) as info:
        translator.feed(load(case))
        translator.finish()
    assert (info.value.status, info.value.type) == (status, etype)
    assert info.value.message.startswith(message)
    assert not translator.done
    acc = accumulate(golden(case), USAGE)
    assert acc["error"]["message"] == info.value.message
    assert not acc["done"] and acc["finish"] is None  # never a fake [DONE] or finish after a failure


def test_error_event_keeps_the_frames_before_it() -> None:
    translator = AnthropicStream(ChatEncoder(USAGE))
    with pytest.raises(StreamError) as info:
        translator.feed(load("error-midstream"))
    err = info.value
    assert err.code == "overloaded_error" and err.retryable
    assert accumulate(err.output, USAGE)["content"] == "Let me think about that"


def test_error_before_any_content_leaves_nothing_written() -> None:
    """An error right after message_start fails the attempt before the client saw a byte."""
    data = load("error-midstream")
    cut = data.index(b"event: content_block_start")
    data = data[:cut] + data[data.index(b"event: error") :]
    translator = AnthropicStream(ChatEncoder(USAGE))
    with pytest.raises(StreamError) as info:
        translator.feed(data)
    assert info.value.output == b"" and info.value.status == 503


def test_unknown_error_type_in_stream() -> None:
    translator = AnthropicStream(ChatEncoder(CTX))
    with pytest.raises(StreamError) as info:
        translator.feed(b'event: error\ndata: {"type":"error","error":{"type":"brand_new_error"}}\n\n')
    assert (info.value.status, info.value.type, info.value.code) == (502, "api_error", "brand_new_error")
    assert info.value.message == "Anthropic reported an error (brand_new_error)"


def test_done_and_ignoring_anything_after_message_stop() -> None:
    data = load("messages-basic-text")
    translator = AnthropicStream(ChatEncoder(CTX))
    before_stop = data[: data.index(b"event: message_stop")]
    out = translator.feed(before_stop)
    done = [translator.done]
    assert b"[DONE]" not in out
    out = translator.feed(data[len(before_stop) :] + b"event: ping\ndata: {}\n\ndata: {broken")
    done.append(translator.done)
    assert done == [False, True] and out.endswith(b"data: [DONE]\n\n")
    assert translator.feed(b"more") == b"" and translator.finish() == b""


def test_no_usage_chunk_unless_asked() -> None:
    out = assert_same_every_split(lambda: AnthropicStream(ChatEncoder(CTX)), load("messages-basic-text"))
    assert b'"usage"' not in out and accumulate(out, CTX)["usage"] is None


def test_events_typed_only_by_the_event_line() -> None:
    """The JSON ``type`` normally repeats the event name; without it the name decides."""
    data = (
        b'event: content_block_delta\ndata: {"index":0,"delta":{"type":"text_delta","text":"hi"}}\n\n'
        b"event: message_stop\ndata: {}\n\n"
    )
    acc = accumulate(assert_same_every_split(lambda: AnthropicStream(ChatEncoder(CTX)), data), CTX)
    assert acc["content"] == "hi" and acc["finish"] == "stop" and acc["done"]


def test_non_object_event_data_is_an_error() -> None:
    with pytest.raises(StreamError, match="not a JSON object"):
        AnthropicStream(ChatEncoder(CTX)).feed(b"event: message_start\ndata: [1]\n\n")


def test_registry_and_provider() -> None:
    assert provider_kind("anthropic") is KIND
    assert KIND.kind == "anthropic" and KIND.native("anthropic", PROVIDER) is not None
    assert isinstance(KIND.stream_decoder(ChatEncoder(CTX), CTX, PROVIDER), AnthropicStream)


# --------------------------------------------------------------------------------------------
# Requests


def provider(**raw: Any) -> Any:
    data = {"providers": {"anthropic": {"api_key": "sk-ant-test", **raw}}}
    return build(data, "<test>", {}).providers["anthropic"]


PROVIDER = provider()


def request_body(body: dict[str, Any], model: str = "claude-sonnet-4-5", **raw: Any) -> dict[str, Any]:
    prov = provider(**raw) if raw else PROVIDER
    result: dict[str, Any] = orjson.loads(build_request(body, model, prov, CTX).body)
    return result


def bad(body: dict[str, Any]) -> BadRequest:
    with pytest.raises(BadRequest) as info:
        build_request(body, "m", PROVIDER, CTX)
    assert info.value.status == 400 and info.value.type == "invalid_request_error"
    return info.value


def user(text: Any = "Hi") -> dict[str, Any]:
    return {"role": "user", "content": text}


def test_url_headers_and_minimal_body() -> None:
    prov = provider(headers={"anthropic-beta": "prompt-caching-2024-07-31"})
    req = build_request({"model": "anthropic/x", "messages": [user()]}, "claude-sonnet-4-5", prov, CTX)
    assert req.url == "https://api.anthropic.com/v1/messages"
    assert dict(req.headers) == {
        "x-api-key": "sk-ant-test",
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
        "anthropic-beta": "prompt-caching-2024-07-31",
    }
    assert orjson.loads(req.body) == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
    }


def test_provider_options_and_base_url_forms() -> None:
    prov = provider(base_url="http://127.0.0.1:9/v1/", anthropic_version="2024-01-01", default_max_tokens=777)
    req = build_request({"messages": [user()], "stream": True}, "m", prov, CTX)
    assert req.url == "http://127.0.0.1:9/v1/messages"
    assert req.headers["anthropic-version"] == "2024-01-01"
    body = orjson.loads(req.body)
    assert body["max_tokens"] == 777 and body["stream"] is True
    no_key = build({"providers": {"anthropic": {"base_url": "http://h", "needs_key": False}}}, "<t>", {}).providers[
        "anthropic"
    ]
    assert "x-api-key" not in build_request({"messages": [user()]}, "m", no_key, CTX).headers


def test_system_and_developer_messages_become_top_level_system() -> None:
    body = request_body(
        {
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                user(),
                {"role": "system", "content": "Late rule."},
            ]
        }
    )
    assert body["system"] == "You are terse.\n\nAnswer in French.\n\nLate rule."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]


def test_cache_control_is_kept() -> None:
    cc = {"type": "ephemeral"}
    body = request_body(
        {
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": "Long context", "cache_control": cc}]},
                {"role": "system", "content": "Rules"},
                user([{"type": "text", "text": "Doc", "cache_control": cc}]),
            ]
        }
    )
    assert body["system"] == [
        {"type": "text", "text": "Long context", "cache_control": cc},
        {"type": "text", "text": "Rules"},
    ]
    assert body["messages"][0]["content"] == [{"type": "text", "text": "Doc", "cache_control": cc}]


C0 = "messages[0].content[0]"


def test_content_parts_and_images() -> None:
    parts = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "image_url", "image_url": "http://example.com/dog.webp"},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}},
        {"type": "text", "text": ""},
    ]
    body = request_body({"messages": [user(parts)]})
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is in these?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "image", "source": {"type": "url", "url": "http://example.com/dog.webp"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}},
    ]


@pytest.mark.parametrize(
    ("part", "param"),
    [
        (
            {"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}},
            f"{C0}.image_url.url",
        ),
        (
            {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}},
            f"{C0}.image_url.url",
        ),
        ({"type": "image_url", "image_url": {}}, f"{C0}.image_url.url"),
        (
            {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}},
            f"{C0}.input_audio.data",
        ),
        ({"type": "file", "file": {}}, f"{C0}.file"),
        ({"type": "text", "text": 3}, f"{C0}.text"),
        ({"text": "no type"}, f"{C0}.type"),
        ("just a string", C0),
    ],
)
def test_bad_content_parts(part: Any, param: str) -> None:
    err = bad({"messages": [user([part])]})
    assert err.param == param and not isinstance(err, UnsupportedByProvider)


@pytest.mark.parametrize(
    ("part", "param"),
    [
        (
            {"type": "image_url", "image_url": {"url": "data:text/plain;base64,aGk="}},
            f"{C0}.image_url.url",
        ),
        ({"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}, C0),
        ({"type": "file", "file": {"file_id": "file-abc"}}, f"{C0}.file"),
        ({"type": "video_url", "video_url": {"url": "https://e.com/v.mp4"}}, C0),
    ],
)
def test_content_parts_anthropic_cannot_take(part: Any, param: str) -> None:
    with pytest.raises(UnsupportedByProvider) as info:
        build_request({"messages": [user([part])]}, "m", PROVIDER, CTX)
    assert info.value.param == param and info.value.code == "unsupported_by_provider"


def test_tool_calls_results_and_merged_turns() -> None:
    messages = [
        {"role": "system", "content": "sys"},
        user("Weather in Paris and Tokyo?"),
        user("Celsius please."),
        {
            "role": "assistant",
            "content": "Checking both.",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "wx", "arguments": '{"city":"Paris"}'}},
                {"id": "functions.wx:1", "type": "function", "function": {"name": "wx", "arguments": ""}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "functions.wx:1", "content": [{"type": "text", "text": "25C"}]},
        user("Thanks. And tomorrow?"),
    ]
    original = copy.deepcopy(messages)
    body = request_body({"messages": messages})
    assert messages == original
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather in Paris and Tokyo?"},
                {"type": "text", "text": "Celsius please."},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking both."},
                {"type": "tool_use", "id": "call_1", "name": "wx", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "functions_wx_1", "name": "wx", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "functions_wx_1", "content": [{"type": "text", "text": "25C"}]},
                {"type": "text", "text": "Thanks. And tomorrow?"},
            ],
        },
    ]


def test_tool_results_go_first_in_their_user_turn() -> None:
    body = request_body(
        {
            "messages": [
                user("Q"),
                {"role": "assistant", "content": None, "tool_calls": [tool_call("c1", "f", "{}")]},
                user("(an interjection)"),
                {"role": "tool", "tool_call_id": "c1", "content": ""},
            ]
        }
    )
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "c1"},
        {"type": "text", "text": "(an interjection)"},
    ]


def tool_call(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [('{"city": "Par', "is not valid JSON"), ("[1, 2]", "must encode a JSON object"), (5, "must be a JSON string")],
)
def test_bad_tool_call_arguments(arguments: Any, message: str) -> None:
    err = bad({"messages": [user(), {"role": "assistant", "tool_calls": [tool_call("c", "f", arguments)]}]})
    assert err.param == "messages[1].tool_calls[0].function.arguments" and message in err.message


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ({"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]}, "messages[1].tool_calls[0].function"),
        ({"role": "assistant", "tool_calls": [tool_call("", "f", "{}")]}, "messages[1].tool_calls[0].id"),
        ({"role": "assistant", "tool_calls": [tool_call("c", "", "{}")]}, "messages[1].tool_calls[0].function.name"),
        ({"role": "assistant", "tool_calls": {"id": "c"}}, "messages[1].tool_calls"),
        ({"role": "tool", "content": "x"}, "messages[1].tool_call_id"),
        ({"role": "narrator", "content": "x"}, "messages[1].role"),
        ({"role": "function", "name": "nobody_called_me", "content": "x"}, "messages[1]"),
        ({"role": "user", "content": 5}, "messages[1].content"),
        ("not an object", "messages[1]"),
    ],
)
def test_bad_messages(message: Any, param: str) -> None:
    assert bad({"messages": [user(), message]}).param == param


def test_messages_must_hold_a_turn() -> None:
    assert bad({"messages": [{"role": "system", "content": "only rules"}]}).param == "messages"
    assert bad({"messages": "Hi"}).param == "messages"
    assert bad({}).param == "messages"


def test_prefill_loses_trailing_whitespace() -> None:
    body = request_body({"messages": [user(), {"role": "assistant", "content": "The answer is: "}]})
    assert body["messages"][-1] == {"role": "assistant", "content": [{"type": "text", "text": "The answer is:"}]}
    body = request_body({"messages": [user(), {"role": "assistant", "content": "   "}]})
    assert [m["role"] for m in body["messages"]] == ["user"]


def test_legacy_functions() -> None:
    body = request_body(
        {
            "messages": [
                user("Price of AAPL?"),
                {"role": "assistant", "content": None, "function_call": {"name": "price", "arguments": '{"t":"AAPL"}'}},
                {"role": "function", "name": "price", "content": "227.5"},
            ],
            "functions": [{"name": "price", "description": "Stock price", "parameters": {"type": "object"}}],
        }
    )
    assert body["tools"] == [{"name": "price", "description": "Stock price", "input_schema": {"type": "object"}}]
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_legacy_1", "name": "price", "input": {"t": "AAPL"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_legacy_1", "content": "227.5"}]},
    ]


@pytest.mark.parametrize(
    ("function_call", "choice"),
    [
        ("none", {"type": "none"}),
        ("auto", {"type": "auto", "disable_parallel_tool_use": True}),
        ({"name": "price"}, {"type": "tool", "name": "price", "disable_parallel_tool_use": True}),
    ],
)
def test_legacy_function_call_choice(function_call: Any, choice: dict[str, Any]) -> None:
    body = request_body({"messages": [user()], "functions": [{"name": "price"}], "function_call": function_call})
    assert body["tool_choice"] == choice
    assert body["tools"] == [{"name": "price", "input_schema": {"type": "object", "properties": {}}}]


WX_TOOL = {
    "type": "function",
    "function": {
        "name": "wx",
        "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "strict": True,
    },
}


@pytest.mark.parametrize(
    ("extra", "choice"),
    [
        ({}, None),
        ({"tool_choice": "auto"}, {"type": "auto"}),
        ({"tool_choice": "none"}, {"type": "none"}),
        ({"tool_choice": "required"}, {"type": "any"}),
        ({"tool_choice": {"type": "function", "function": {"name": "wx"}}}, {"type": "tool", "name": "wx"}),
        ({"parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
        ({"parallel_tool_calls": True}, None),
        ({"tool_choice": "required", "parallel_tool_calls": False}, {"type": "any", "disable_parallel_tool_use": True}),
        ({"tool_choice": "none", "parallel_tool_calls": False}, {"type": "none"}),
    ],
)
def test_tools_and_tool_choice(extra: dict[str, Any], choice: dict[str, Any] | None) -> None:
    body = request_body({"messages": [user()], "tools": [WX_TOOL], **extra})
    assert body["tools"] == [
        {
            "name": "wx",
            "description": "Weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        }
    ]
    assert body.get("tool_choice") == choice


def test_tool_choice_without_tools_is_dropped_unless_it_needs_one() -> None:
    for choice in ("none", "auto"):
        body = request_body({"messages": [user()], "tool_choice": choice, "parallel_tool_calls": False, "tools": []})
        assert "tool_choice" not in body and "tools" not in body
    assert bad({"messages": [user()], "tool_choice": "required", "tools": []}).param == "tool_choice"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [WX_TOOL], "functions": [{"name": "f"}]}, "functions"),
        ({"tools": [{"type": "function", "function": {"description": "no name"}}]}, "tools[0].function.name"),
        ({"tools": [{"type": "function"}]}, "tools[0].function"),
        ({"tools": [{"function": {"name": "f"}}]}, "tools[0].type"),
        ({"tools": [WX_TOOL], "tool_choice": "sometimes"}, "tool_choice"),
        ({"tools": [WX_TOOL], "tool_choice": {"type": "function", "function": {}}}, "tool_choice.function.name"),
        (
            {"tools": [WX_TOOL], "tool_choice": {"type": "function", "function": {"name": "zz"}}},
            "tool_choice.function.name",
        ),
        ({"functions": [{"name": "f"}], "function_call": "required"}, "function_call"),
        ({"tools": {"wx": WX_TOOL}}, "tools"),
    ],
)
def test_bad_tools(extra: dict[str, Any], param: str) -> None:
    err = bad({"messages": [user()], **extra})
    assert err.param == param and not isinstance(err, UnsupportedByProvider)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]},
            "tools[0].function.parameters",
        ),
        ({"tools": [{"type": "function", "function": {"name": JSON_TOOL}}]}, "tools[0].function.name"),
        ({"tools": [WX_TOOL], "tool_choice": {"type": "allowed_tools", "allowed_tools": {}}}, "tool_choice.type"),
        (
            {"messages": [user(), {"role": "assistant", "tool_calls": [{"id": "c", "type": "custom"}]}]},
            "messages[1].tool_calls[0].type",
        ),
        ({"n": 2}, "n"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"messages": [{"role": "system", "content": "only rules"}]}, "messages"),
    ],
)
def test_well_formed_but_not_for_anthropic(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(UnsupportedByProvider) as info:
        build_request({"messages": [user()], **extra}, "m", PROVIDER, CTX)
    assert info.value.param == param


def test_sampling_and_metadata() -> None:
    body = request_body(
        {
            "messages": [user()],
            "temperature": 0.3,
            "top_p": 0.9,
            "top_k": 40,
            "stop": "\n\nHuman:",
            "max_tokens": 100,
            "user": "user-42",
            "logprobs": True,
            "top_logprobs": 3,
            "presence_penalty": 0.5,
            "frequency_penalty": 0.5,
            "seed": 7,
            "logit_bias": {"50256": -100},
            "metadata": {"trace": "x"},
            "store": True,
            "service_tier": "auto",
            "stream_options": {"include_usage": True},
            "n": 1,
        }
    )
    assert body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 40,
        "stop_sequences": ["\n\nHuman:"],
        "metadata": {"user_id": "user-42"},
    }


def test_stop_lists_max_completion_tokens_and_temperature_clamp() -> None:
    body = request_body(
        {
            "messages": [user()],
            "stop": ["END", "STOP"],
            "max_tokens": 100,
            "max_completion_tokens": 300,
            "temperature": 1.7,
        }
    )
    assert body["stop_sequences"] == ["END", "STOP"]
    assert body["max_tokens"] == 300
    assert body["temperature"] == 1
    assert "stop_sequences" not in request_body({"messages": [user()], "stop": []})
    assert "stop_sequences" not in request_body({"messages": [user()], "stop": ""})
    assert request_body({"messages": [user()], "stop": ["", "END"]})["stop_sequences"] == ["END"]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 0}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": "many"}, "max_completion_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"stop": ["a", 1]}, "stop[1]"),
        ({"stop": 5}, "stop"),
        ({"user": 42}, "user"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"reasoning_effort": ""}, "reasoning_effort"),
        ({"thinking_budget": 500}, "thinking_budget"),
        ({"thinking": "on"}, "thinking"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": []}}},
            "response_format.json_schema.schema",
        ),
        (
            {"messages": [user(), {"role": "assistant", "thinking_blocks": [{"type": "thinking"}]}]},
            "messages[1].thinking_blocks[0]",
        ),
        ({"messages": [user(), {"role": "assistant", "thinking_blocks": {"x": 1}}]}, "messages[1].thinking_blocks"),
    ],
)
def test_bad_parameters(extra: dict[str, Any], param: str) -> None:
    err = bad({"messages": [user()], **extra})
    assert err.param == param and not isinstance(err, UnsupportedByProvider)


def test_json_schema_of_an_array_is_beyond_anthropic() -> None:
    rf = {"type": "json_schema", "json_schema": {"name": "l", "schema": {"type": "array"}}}
    with pytest.raises(UnsupportedByProvider) as info:
        build_request({"messages": [user()], "response_format": rf}, "m", PROVIDER, CTX)
    assert info.value.param == "response_format.json_schema.schema"


def test_n_greater_than_one_says_why() -> None:
    assert "'n' greater than 1 is not supported" in bad({"messages": [user()], "n": 3}).message


@pytest.mark.parametrize(("effort", "budget"), [("minimal", 1024), ("low", 1024), ("medium", 4096), ("high", 16384)])
def test_reasoning_effort(effort: str, budget: int) -> None:
    body = request_body({"messages": [user()], "reasoning_effort": effort, "max_tokens": 32000})
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == 32000


def test_max_tokens_is_raised_above_the_thinking_budget() -> None:
    body = request_body({"messages": [user()], "reasoning_effort": "high"})
    assert body["max_tokens"] == 16384 + 4096
    body = request_body({"messages": [user()], "reasoning_effort": "low", "max_completion_tokens": 1024})
    assert body["max_tokens"] == 2048
    body = request_body({"messages": [user()], "thinking_budget": 8000, "max_tokens": 500})
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 8000} and body["max_tokens"] == 8500


def test_thinking_passthrough_and_effort_none() -> None:
    body = request_body(
        {"messages": [user()], "thinking": {"type": "enabled", "budget_tokens": 2000}, "reasoning_effort": "high"}
    )
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2000} and body["max_tokens"] == 4096
    body = request_body({"messages": [user()], "thinking": {"type": "adaptive"}})
    assert body["thinking"] == {"type": "adaptive"}
    assert "thinking" not in request_body({"messages": [user()], "reasoning_effort": "none"})


def test_thinking_blocks_lead_the_assistant_turn() -> None:
    blocks = [
        {"type": "thinking", "thinking": "Need the tool.", "signature": "sig==", "index": 0},
        {"type": "redacted_thinking", "data": "opaque", "index": 1},
    ]
    body = request_body(
        {
            "messages": [
                user("Weather?"),
                {
                    "role": "assistant",
                    "content": "Let me check.",
                    "tool_calls": [tool_call("c1", "wx", "{}")],
                    "thinking_blocks": blocks,
                },
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            ],
            "tools": [WX_TOOL],
            "reasoning_effort": "low",
        }
    )
    assert body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "Need the tool.", "signature": "sig=="},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "c1", "name": "wx", "input": {}},
    ]


def test_response_format_json_object() -> None:
    body = request_body(
        {
            "messages": [{"role": "system", "content": "Be brief."}, user()],
            "response_format": {"type": "json_object"},
        }
    )
    assert body["system"] == "Be brief.\n\n" + JSON_OBJECT_INSTRUCTION
    assert "tools" not in body
    assert "system" not in request_body({"messages": [user()], "response_format": {"type": "text"}})


PERSON: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "person",
        "strict": True,
        "schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
    },
}


def test_response_format_json_schema_is_a_forced_tool() -> None:
    body = request_body({"messages": [user()], "response_format": PERSON})
    assert body["tools"] == [
        {
            "name": JSON_TOOL,
            "description": "Give the final answer as this tool's input. The answer is a person.",
            "input_schema": PERSON["json_schema"]["schema"],
        }
    ]
    assert body["tool_choice"] == {"type": "tool", "name": JSON_TOOL}
    assert "system" not in body


@pytest.mark.parametrize(
    ("extra", "choice", "instructed"),
    [
        ({}, {"type": "any"}, True),
        ({"tool_choice": "required"}, {"type": "any"}, True),
        ({"parallel_tool_calls": False}, {"type": "any", "disable_parallel_tool_use": True}, True),
        ({"tool_choice": "none"}, {"type": "tool", "name": JSON_TOOL}, False),
        ({"tool_choice": {"type": "function", "function": {"name": "wx"}}}, {"type": "tool", "name": "wx"}, False),
        ({"reasoning_effort": "low"}, {"type": "auto"}, True),
    ],
)
def test_json_schema_with_client_tools_or_thinking(
    extra: dict[str, Any], choice: dict[str, Any], instructed: bool
) -> None:
    body = request_body({"messages": [user()], "tools": [WX_TOOL], "response_format": PERSON, **extra})
    assert [t["name"] for t in body["tools"]] == ["wx", JSON_TOOL]
    assert body["tool_choice"] == choice
    assert (body.get("system") == JSON_TOOL_INSTRUCTION) == instructed


def test_json_schema_with_thinking_and_no_client_tools() -> None:
    body = request_body({"messages": [user()], "response_format": PERSON, "thinking_budget": 2048})
    assert body["tool_choice"] == {"type": "auto"} and body["system"] == JSON_TOOL_INSTRUCTION


def test_json_schema_without_a_schema_or_type() -> None:
    rf = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"properties": {"a": {"type": "integer"}}}}}
    body = request_body({"messages": [user()], "response_format": rf})
    assert body["tools"][0]["input_schema"] == {"type": "object", "properties": {"a": {"type": "integer"}}}
    body = request_body(
        {"messages": [user()], "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}
    )
    assert body["tools"][0]["input_schema"] == {"type": "object", "properties": {}}


def test_the_body_is_never_mutated() -> None:
    body = {
        "model": "anthropic/claude",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}]},
            user([{"type": "text", "text": "q"}]),
            {
                "role": "assistant",
                "content": "a ",
                "tool_calls": [tool_call("c1", "wx", '{"city": "Oslo"}')],
                "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "s", "index": 0}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "cold"},
            {"role": "assistant", "content": "prefill  "},
        ],
        "tools": [WX_TOOL],
        "tool_choice": "required",
        "response_format": PERSON,
        "reasoning_effort": "medium",
        "stop": ["x"],
        "stream": True,
    }
    snapshot = copy.deepcopy(body)
    first = build_request(body, "m", PROVIDER, CTX).body
    assert body == snapshot
    assert build_request(body, "m", PROVIDER, CTX).body == first  # the same body can be sent again


# --------------------------------------------------------------------------------------------
# Non-stream responses


def message(content: list[dict[str, Any]], stop: str | None = "end_turn", **extra: Any) -> bytes:
    return orjson.dumps(
        {
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 10,
                "cache_creation_input_tokens": 5,
                "cache_read_input_tokens": 100,
                "output_tokens": 20,
            },
            **extra,
        }
    )


def test_response_text() -> None:
    out = orjson.loads(
        translate_response(message([{"type": "text", "text": "Hello"}, {"type": "text", "text": "!"}]), CTX)
    )
    assert out == {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "test-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello!", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 115,
            "completion_tokens": 20,
            "total_tokens": 135,
            "prompt_tokens_details": {"cached_tokens": 100},
        },
    }


THINKING_AND_TOOLS: list[dict[str, Any]] = [
    {"type": "thinking", "thinking": "Two cities.", "signature": "EqQB=="},
    {"type": "redacted_thinking", "data": "EmwK=="},
    {"type": "text", "text": "Checking."},
    {"type": "tool_use", "id": "toolu_01A", "name": "wx", "input": {"city": "Paris"}},
    {"type": "tool_use", "id": "toolu_01B", "name": "now", "input": {}},
]


def test_response_thinking_and_tool_calls() -> None:
    out = orjson.loads(translate_response(message(THINKING_AND_TOOLS, "tool_use"), CTX))
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": "Checking.",
        "refusal": None,
        "tool_calls": [
            {"id": "toolu_01A", "type": "function", "function": {"name": "wx", "arguments": '{"city":"Paris"}'}},
            {"id": "toolu_01B", "type": "function", "function": {"name": "now", "arguments": "{}"}},
        ],
        "reasoning_content": "Two cities.",
        "thinking_blocks": [
            {"type": "thinking", "thinking": "Two cities.", "signature": "EqQB=="},
            {"type": "redacted_thinking", "data": "EmwK=="},
        ],
    }


def test_response_legacy_function_call() -> None:
    content = [{"type": "tool_use", "id": "toolu_01A", "name": "price", "input": {"t": "AAPL"}}]
    out = orjson.loads(translate_response(message(content, "tool_use"), LEGACY))
    choice = out["choices"][0]
    assert choice["finish_reason"] == "function_call"
    assert choice["message"]["function_call"] == {"name": "price", "arguments": '{"t":"AAPL"}'}
    assert choice["message"]["content"] is None and "tool_calls" not in choice["message"]


def test_response_json_schema_answer_is_content() -> None:
    content = [{"type": "tool_use", "id": "toolu_01J", "name": JSON_TOOL, "input": {"name": "Ada"}}]
    out = orjson.loads(translate_response(message(content, "tool_use"), CTX))
    assert out["choices"][0]["message"]["content"] == '{"name":"Ada"}'
    assert out["choices"][0]["finish_reason"] == "stop" and "tool_calls" not in out["choices"][0]["message"]


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
        (None, "stop"),
        ("something_new", "stop"),
    ],
)
def test_response_finish_reasons(stop: str | None, finish: str) -> None:
    out = orjson.loads(translate_response(message([{"type": "text", "text": "x"}], stop), CTX))
    assert out["choices"][0]["finish_reason"] == finish


def test_response_refusal() -> None:
    details = {"type": "refusal", "category": "cyber", "explanation": "Refused under the usage policy."}
    out = orjson.loads(translate_response(message([], "refusal", stop_details=details), CTX))
    choice = out["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"] == {"role": "assistant", "content": None, "refusal": "Refused under the usage policy."}


def test_response_thinking_usage() -> None:
    body = orjson.loads(message([{"type": "text", "text": "x"}]))
    body["usage"] = {"input_tokens": 3, "output_tokens": 50, "output_tokens_details": {"thinking_tokens": 40}}
    out = orjson.loads(translate_response(orjson.dumps(body), CTX))
    assert out["usage"]["completion_tokens_details"] == {"reasoning_tokens": 40}
    assert out["usage"]["prompt_tokens"] == 3


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b""])
def test_response_malformed(body: bytes) -> None:
    with pytest.raises(UpstreamError) as info:
        translate_response(body, CTX)
    assert info.value.status == 502


def test_response_error_object_with_200() -> None:
    body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    with pytest.raises(UpstreamError) as info:
        translate_response(body, CTX)
    assert (info.value.status, info.value.message) == (503, "Overloaded")


# --------------------------------------------------------------------------------------------
# Error statuses


@pytest.mark.parametrize(
    ("status", "atype", "reported", "otype"),
    [
        (400, "invalid_request_error", 400, "invalid_request_error"),
        (401, "authentication_error", 401, "authentication_error"),
        (402, "billing_error", 402, "insufficient_quota"),
        (403, "permission_error", 403, "permission_error"),
        (404, "not_found_error", 404, "not_found_error"),
        (413, "request_too_large", 413, "invalid_request_error"),
        (429, "rate_limit_error", 429, "rate_limit_error"),
        (500, "api_error", 500, "api_error"),
        (504, "timeout_error", 504, "timeout_error"),
        (529, "overloaded_error", 503, "api_error"),
        (409, "some_future_error", 409, "invalid_request_error"),
    ],
)
def test_translate_error(status: int, atype: str, reported: int, otype: str) -> None:
    body = orjson.dumps(
        {"type": "error", "error": {"type": atype, "message": f"upstream says {atype}"}, "request_id": "req_011"}
    )
    err = translate_error(status, body)
    assert isinstance(err, UpstreamError)
    assert (err.status, err.type, err.code, err.message) == (reported, otype, atype, f"upstream says {atype}")
    assert err.message == f"upstream says {atype}"


@pytest.mark.parametrize(
    ("status", "body", "reported", "otype"),
    [
        (502, b"<html>Bad Gateway</html>", 502, "api_error"),
        (529, b"", 503, "api_error"),
        (429, b'{"unexpected": true}', 429, "rate_limit_error"),
        (400, b'{"type":"error","error":"flat string"}', 400, "invalid_request_error"),
    ],
)
def test_translate_error_unparseable(status: int, body: bytes, reported: int, otype: str) -> None:
    err = translate_error(status, body)
    assert (err.status, err.type, err.message) == (reported, otype, f"Anthropic returned HTTP {status}")
    assert err.retryable == (reported >= 500 or reported == 429)
