"""The Anthropic Messages front door's wire format: the event encoder and the request reader.

Golden streams: the recorded and hand-written upstream streams of ``tests/fixtures/anthropic``
and ``tests/fixtures/gemini`` run through their own decoders with ``MessagesEncoder``; the
Anthropic events that come out are stored in ``tests/fixtures/anthropic_door/`` (provenance in
the README there; regenerate with ``REGEN_GOLDEN=1`` and review the diff). Every output is also
read by the real ``anthropic`` SDK (its ``messages.stream`` accumulator, over an in-process
transport) and checked as a client sees it. The Anthropic -> neutral -> Anthropic round trip
must give the client the same message as the upstream stream itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Any

import anthropic
import httpx2
import orjson
import pytest

from proxy.config import build
from proxy.errors import BadRequest, ProxyError, StreamError, UpstreamError
from proxy.protocols.anthropic.encode import PING, MessagesEncoder, encode_message, error_body, error_frame
from proxy.protocols.anthropic.messages import THOUGHT_SIGNATURE_PREFIX, to_chat
from proxy.protocols.anthropic.stream import AnthropicStream
from proxy.protocols.gemini.stream import GeminiStream
from proxy.protocols.stream import Completion, StreamContext, StreamDecoder, ToolCall, Usage
from proxy.providers.gemini import build_request as gemini_request
from proxy.wire.sse import SSEDecoder
from tests import test_anthropic as anthropic_cases
from tests import test_gemini as gemini_cases
from tests.support import FIXTURES, relayed_every_split

DIR = FIXTURES / "anthropic_door"
CTX = StreamContext(id="msg_test", created=1700000000, model="test-model", call_id_prefix="test")

Factory = Callable[[], StreamDecoder]
# golden case "<upstream>-<fixture>" -> (decoder factory, upstream bytes, whether the stream fails)
SOURCES: dict[str, tuple[Factory, Callable[[], bytes], bool]] = {}
for _name in anthropic_cases.CASES:
    SOURCES[f"anthropic-{_name}"] = (
        lambda: AnthropicStream(MessagesEncoder(CTX)),
        partial(anthropic_cases.load, _name),
        _name in anthropic_cases.FAILURES,
    )
for _name in gemini_cases.CASES:
    SOURCES[f"gemini-{_name}"] = (
        lambda: GeminiStream(MessagesEncoder(CTX), CTX),
        partial(gemini_cases.load, _name),
        _name in gemini_cases.FAILURES,
    )
FAILING = sorted(case for case, (_, _, fails) in SOURCES.items() if fails)
PASSING = sorted(case for case, (_, _, fails) in SOURCES.items() if not fails)


def relay_error(decoder: StreamDecoder, exc: StreamError) -> bytes:
    """The front door's error event, as the relay writes it after a failure."""
    return error_frame(exc)


def golden(case: str) -> bytes:
    """The case's output, the same whether its input is fed whole, byte by byte or in random splits."""
    make, load, _ = SOURCES[case]
    return relayed_every_split(make, load(), relay_error)


# --------------------------------------------------------------------------------------------
# Reading the output: as events, and as the anthropic SDK does


def events(out: bytes) -> list[dict[str, Any]]:
    """The output's events; each event name must equal its data's ``type``."""
    decoder = SSEDecoder()
    result = []
    for event in decoder.feed(out) + decoder.close():
        data = orjson.loads(event.data)
        assert event.event == data["type"]
        result.append(data)
    return result


def check_structure(out: bytes) -> None:
    """Anthropic's grammar: message_start, blocks 0..n each started/deltas/stopped, message_delta, message_stop."""
    evs = events(out)
    kinds = [e["type"] for e in evs]
    assert kinds[0] == "message_start" and kinds.count("message_start") == 1
    assert kinds[-2:] == ["message_delta", "message_stop"] and kinds.count("message_delta") == 1
    open_index, next_index = None, 0
    for e in evs[1:-2]:
        if e["type"] == "content_block_start":
            assert open_index is None and e["index"] == next_index
            open_index, next_index = e["index"], next_index + 1
        elif e["type"] == "content_block_delta":
            assert e["index"] == open_index
        else:
            assert e["type"] == "content_block_stop" and e["index"] == open_index
            open_index = None
    assert open_index is None


def sdk_stream(out: bytes) -> anthropic.MessageStream:
    """The real anthropic client reading ``out`` as the answer to a ``messages.stream`` call."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=out, headers={"content-type": "text/event-stream"})

    http = httpx2.Client(transport=httpx2.MockTransport(answer))
    client = anthropic.Anthropic(api_key="test", base_url="http://door.test", http_client=http, max_retries=0)
    manager = client.messages.stream(model="m", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    return manager.__enter__()


def sdk_message(out: bytes) -> dict[str, Any]:
    """The final message the SDK accumulates (as a dict), after checking each tool input came as fragments."""
    with sdk_stream(out) as stream:
        message = stream.get_final_message()
    return message.model_dump()


def fragments(out: bytes) -> dict[int, str]:
    """Each tool_use block's ``partial_json`` fragments, joined."""
    evs = events(out)
    tools = {e["index"] for e in evs if e["type"] == "content_block_start" and e["content_block"]["type"] == "tool_use"}
    joined = dict.fromkeys(tools, "")
    for e in evs:
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta":
            joined[e["index"]] += e["delta"]["partial_json"]
    return joined


def blocks(message: dict[str, Any]) -> list[tuple[Any, ...]]:
    """A message's content as comparable tuples."""
    out: list[tuple[Any, ...]] = []
    for b in message["content"]:
        if b["type"] == "text":
            out.append(("text", b["text"]))
        elif b["type"] == "thinking":
            out.append(("thinking", b["thinking"], b["signature"]))
        elif b["type"] == "redacted_thinking":
            out.append(("redacted_thinking", b["data"]))
        elif b["type"] == "tool_use":
            out.append(("tool_use", b["id"], b["name"], b["input"]))
        else:
            out.append((b["type"],))
    return out


def usage_of(message: dict[str, Any]) -> tuple[Any, ...]:
    u = message["usage"]
    thinking = (u.get("output_tokens_details") or {}).get("thinking_tokens")
    return (
        u["input_tokens"],
        u["cache_creation_input_tokens"] or 0,
        u["cache_read_input_tokens"] or 0,
        u["output_tokens"],
        thinking,
    )


# --------------------------------------------------------------------------------------------
# Golden streams


def test_every_case_has_its_expected_output() -> None:
    stored = {p.name.removesuffix(".sse") for p in DIR.iterdir() if p.name.endswith(".sse")}
    assert stored == set(SOURCES)


@pytest.mark.parametrize("case", sorted(SOURCES))
def test_golden_stream(case: str) -> None:
    out = golden(case)
    expected = DIR / f"{case}.sse"
    if os.environ.get("REGEN_GOLDEN"):
        expected.write_bytes(out)
    assert out == expected.read_bytes()


@pytest.mark.parametrize("case", PASSING)
def test_every_output_is_well_formed_and_read_by_the_sdk(case: str) -> None:
    out = golden(case)
    check_structure(out)
    message = sdk_message(out)
    assert message["id"] == "msg_test" and message["model"] == "test-model"
    # Claude Code takes tool input only from input_json_delta: every tool block has fragments
    # that parse to the input the SDK accumulated, never an {} standing for lost arguments.
    joined = fragments(out)
    for index, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            assert orjson.loads(joined[index]) == block["input"]
    if any(b["type"] == "tool_use" for b in message["content"]):
        assert message["stop_reason"] == "tool_use"


@pytest.mark.parametrize("case", FAILING)
def test_a_failing_stream_ends_with_an_error_event_the_sdk_raises(case: str) -> None:
    out = golden(case)
    evs = events(out)
    last = evs[-1]
    assert last["type"] == "error" and isinstance(last["error"]["message"], str)
    assert "message_stop" not in [e["type"] for e in evs]
    with sdk_stream(out) as stream, pytest.raises(anthropic.APIStatusError) as info:
        stream.get_final_message()
    assert isinstance(info.value.body, dict) and info.value.body["error"]["type"] == last["error"]["type"]


# Anthropic -> neutral -> Anthropic: the client sees what the upstream said. Left out, with the
# difference each shows by design: json-schema (the proxy's answer tool is text), the refusals
# (the explanation becomes text), server-tool-pause (server blocks have no neutral form).
ROUND_TRIPS = [
    "messages-basic-text",
    "messages-tool-use",
    "vercel-thinking-summarized",
    "vercel-tool-use-quoted-input",
    "text-cached",
    "text-crlf",
    "thinking-text",
    "parallel-tools",
    "tool-empty-input",
    "max-tokens",
    "redacted-thinking",
    "legacy-functions",
]


@pytest.mark.parametrize("case", ROUND_TRIPS)
def test_anthropic_round_trip_gives_the_client_the_same_message(case: str) -> None:
    upstream = sdk_message(anthropic_cases.load(case))
    ours = sdk_message(golden(f"anthropic-{case}"))
    source_blocks = [b for b in blocks(upstream) if b != ("text", "")]  # empty blocks carry nothing
    assert blocks(ours) == source_blocks
    assert ours["stop_reason"] == upstream["stop_reason"]
    assert usage_of(ours) == usage_of(upstream)


def test_round_trip_of_a_refusal_keeps_the_reason_and_the_explanation() -> None:
    ours = sdk_message(golden("anthropic-messages-refusal"))
    assert ours["stop_reason"] == "refusal"
    assert blocks(ours) == [("text", "This request was refused due to policy.")]
    empty = sdk_message(golden("anthropic-vercel-refusal"))
    assert empty["stop_reason"] == "refusal" and usage_of(empty) == (18, 0, 0, 5, None)


def test_round_trip_of_server_tools_keeps_the_text() -> None:
    ours = sdk_message(golden("anthropic-server-tool-pause"))
    assert [b[0] for b in blocks(ours)] == ["text"] * len(ours["content"])
    assert ours["stop_reason"] == "end_turn"  # pause_turn is stop in the neutral vocabulary


def test_gemini_tool_call_carries_its_signature_before_the_call() -> None:
    message = sdk_message(golden("gemini-gemini-tool-call"))
    (thinking, call) = blocks(message)
    assert thinking[0] == "thinking" and thinking[1] == ""
    assert thinking[2].startswith(THOUGHT_SIGNATURE_PREFIX + "EqUCCqICAb4")
    assert call == ("tool_use", "call_test_0", "weather", {"location": "San Francisco"})
    assert message["stop_reason"] == "tool_use"
    assert usage_of(message) == (29, 0, 0, 60, 45)


def test_gemini_signature_round_trips_to_the_functioncall_part() -> None:
    """The client sends the answer back: to_chat and the Gemini mapper put the signature where it came from."""
    message = sdk_message(golden("gemini-gemini-tool-call"))
    content = [
        {k: v for k, v in b.items() if v is not None and k not in ("caller", "toolset_name", "citations")}
        for b in message["content"]
    ]
    body = {
        "model": "gemini/x",
        "max_tokens": 64,
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_test_0", "content": "sunny"}]},
        ],
    }
    chat = to_chat(body)
    signature = message["content"][0]["signature"].removeprefix(THOUGHT_SIGNATURE_PREFIX)
    assert chat["messages"][1]["tool_calls"][0]["extra_content"] == {"google": {"thought_signature": signature}}
    assert "thinking_blocks" not in chat["messages"][1]
    gemini = build({"providers": {"gemini": {"api_key": "k"}}}, "<test>", {}).providers["gemini"]
    request = orjson.loads(gemini_request(chat, "gemini-3-pro-preview", gemini, CTX).body)
    call_part = request["contents"][1]["parts"][0]
    assert call_part["functionCall"]["name"] == "weather" and call_part["thoughtSignature"] == signature


def test_gemini_text_then_calls_ends_with_tool_use() -> None:
    message = sdk_message(golden("gemini-parallel-calls"))
    kinds = [b[0] for b in blocks(message)]
    assert kinds[0] == "text" and kinds.count("tool_use") == 2 and message["stop_reason"] == "tool_use"


def test_gemini_calls_without_arguments_get_an_empty_object_fragment() -> None:
    out = golden("gemini-call-no-args")
    assert list(fragments(out).values()) == ["{}", "{}"]
    assert [b[3] for b in blocks(sdk_message(out)) if b[0] == "tool_use"] == [{}, {}]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("gemini-max-tokens", "max_tokens"),
        ("gemini-prompt-blocked", "refusal"),
        ("gemini-safety-finish", "refusal"),
        ("gemini-text-cached", "end_turn"),
        ("gemini-thinking-text", "end_turn"),
        ("anthropic-max-tokens", "max_tokens"),
        ("anthropic-json-schema", "end_turn"),
    ],
)
def test_stop_reasons(case: str, reason: str) -> None:
    assert sdk_message(golden(case))["stop_reason"] == reason


def test_gemini_cached_usage_is_counted_once() -> None:
    meta = [orjson.loads(line)["usageMetadata"] for line in gemini_cases.load("text-cached").split(b"data: ")[1:]][-1]
    message = sdk_message(golden("gemini-text-cached"))
    cached = meta["cachedContentTokenCount"]
    assert message["usage"]["cache_read_input_tokens"] == cached
    assert message["usage"]["input_tokens"] + cached == meta["promptTokenCount"]


# --------------------------------------------------------------------------------------------
# The encoder, call by call


def run(calls: Callable[[MessagesEncoder], list[bytes]], enc: MessagesEncoder | None = None) -> bytes:
    return b"".join(calls(enc or MessagesEncoder(CTX)))


def kinds(out: bytes) -> list[str]:
    result = []
    for e in events(out):
        if e["type"] == "content_block_start":
            result.append(f"start:{e['content_block']['type']}")
        elif e["type"] == "content_block_delta":
            result.append(e["delta"]["type"])
        else:
            result.append(e["type"])
    return result


def test_text_after_a_tool_call_is_a_new_block_and_the_turn_ends_with_tool_use() -> None:
    out = run(
        lambda e: [
            e.text("a"),
            e.tool_call_start("c1", "f", '{"x":'),
            e.tool_call_arguments(0, "1}"),
            e.text("b"),
            e.finish("stop"),
            e.usage(Usage(10, 5)),
            e.end(),
        ]
    )
    check_structure(out)
    assert kinds(out)[1:-2] == [
        *("start:text", "text_delta", "content_block_stop"),
        *("start:tool_use", "input_json_delta", "input_json_delta", "content_block_stop"),
        *("start:text", "text_delta", "content_block_stop"),
    ]
    message = sdk_message(out)
    assert blocks(message) == [("text", "a"), ("tool_use", "c1", "f", {"x": 1}), ("text", "b")]
    assert message["stop_reason"] == "tool_use" and usage_of(message) == (10, 0, 0, 5, None)


def test_a_stream_without_blocks_or_usage_still_starts_and_ends() -> None:
    out = run(lambda e: [e.finish("length"), e.end()])
    assert kinds(out) == ["message_start", "message_delta", "message_stop"]
    message = sdk_message(out)
    assert message["stop_reason"] == "max_tokens" and message["content"] == []
    assert usage_of(message) == (0, 0, 0, 0, None)


def test_message_start_has_the_api_shape() -> None:
    start = events(run(lambda e: [e.text("x")]))[0]
    assert list(start["message"]) == [
        *("id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"),
    ]
    assert start["message"]["usage"]["input_tokens"] == 0
    other = events(run(lambda e: [e.text("x")], MessagesEncoder(StreamContext("abc", 0, "m"))))[0]
    assert other["message"]["id"] == "msg_abc"


def test_thinking_text_that_came_only_with_its_signature() -> None:
    out = run(lambda e: [e.thinking_block("why", "sig"), e.text("ok"), e.finish("stop"), e.end()])
    assert blocks(sdk_message(out)) == [("thinking", "why", "sig"), ("text", "ok")]
    assert kinds(out)[1:4] == ["start:thinking", "thinking_delta", "signature_delta"]


def test_streamed_thinking_closed_by_its_signature_is_not_repeated() -> None:
    out = run(lambda e: [e.reasoning("a"), e.reasoning("b"), e.thinking_block("ab", "sig"), e.end()])
    assert blocks(sdk_message(out)) == [("thinking", "ab", "sig")]


def test_gemini_signed_reasoning_and_text() -> None:
    out = run(lambda e: [e.reasoning("r", "s1"), e.text("t", "s2"), e.signature("s3"), e.end()])
    p = THOUGHT_SIGNATURE_PREFIX
    assert blocks(sdk_message(out)) == [
        ("thinking", "r", p + "s1"),
        ("text", "t"),
        ("thinking", "", p + "s2"),
        ("thinking", "", p + "s3"),
    ]


def test_redacted_thinking_and_refusal() -> None:
    out = run(lambda e: [e.redacted_thinking("xyz"), e.refusal("no"), e.finish("content_filter"), e.end()])
    message = sdk_message(out)
    assert blocks(message) == [("redacted_thinking", "xyz"), ("text", "no")]
    assert message["stop_reason"] == "refusal"


def test_several_calls_and_a_late_fragment_for_a_closed_call() -> None:
    out = run(
        lambda e: [
            e.tool_call_start("a", "f", '{"x":'),
            e.tool_call_start("b", "g", "{}"),
            e.tool_call_arguments(0, "1}"),
            e.tool_call_arguments(7, "ignored"),
            e.finish("tool_calls"),
            e.end(),
        ]
    )
    message = sdk_message(out)
    assert blocks(message) == [("tool_use", "a", "f", {"x": 1}), ("tool_use", "b", "g", {})]
    assert message["stop_reason"] == "tool_use"
    assert b"ignored" not in out


def test_a_call_without_fragments_gets_one_empty_object_fragment() -> None:
    out = run(lambda e: [e.tool_call_start("a", "f"), e.text("after"), e.tool_call_start("b", "g"), e.end()])
    assert list(fragments(out).values()) == ["{}", "{}"]
    assert [b[3] for b in blocks(sdk_message(out)) if b[0] == "tool_use"] == [{}, {}]


def test_stop_sequence_by_method_and_by_constructor() -> None:
    out = run(lambda e: [e.text("x"), e.stop_sequence("END"), e.finish("stop"), e.end()])
    message = sdk_message(out)
    assert message["stop_reason"] == "stop_sequence" and message["stop_sequence"] == "END"
    out = run(lambda e: [e.text("x"), e.finish("stop"), e.end()], MessagesEncoder(CTX, stop_sequence="###"))
    assert sdk_message(out)["stop_sequence"] == "###"
    out = run(lambda e: [e.text("x"), e.finish("length"), e.end()], MessagesEncoder(CTX, stop_sequence="###"))
    assert sdk_message(out)["stop_sequence"] is None


def test_usage_counts_cache_reads_and_writes_apart() -> None:
    usage = Usage(input_tokens=100, output_tokens=7, cached_tokens=60, cache_creation_tokens=30, reasoning_tokens=3)
    out = run(lambda e: [e.text("x"), e.finish("stop"), e.usage(usage), e.end()])
    delta = events(out)[-2]
    assert delta["usage"] == {
        "input_tokens": 10,
        "cache_creation_input_tokens": 30,
        "cache_read_input_tokens": 60,
        "output_tokens": 7,
        "output_tokens_details": {"thinking_tokens": 3},
    }
    assert kinds(out).count("message_delta") == 1


def test_ping_is_the_api_keepalive() -> None:
    assert PING == b'event: ping\ndata: {"type": "ping"}\n\n'
    assert events(PING) == [{"type": "ping"}]


@pytest.mark.parametrize(
    ("err", "atype"),
    [
        (BadRequest("bad"), "invalid_request_error"),
        (ProxyError("k", status=401), "authentication_error"),
        (ProxyError("p", status=403), "permission_error"),
        (ProxyError("n", status=404), "not_found_error"),
        (ProxyError("big", status=413), "request_too_large"),
        (ProxyError("slow down", status=429), "rate_limit_error"),
        (ProxyError("oops", status=500), "api_error"),
        (ProxyError("gateway", status=502), "api_error"),
        (ProxyError("busy", status=503), "overloaded_error"),
        (ProxyError("busy", status=529), "overloaded_error"),
        (ProxyError("late", status=504), "timeout_error"),
        (ProxyError("conflict", status=409), "invalid_request_error"),
        (UpstreamError("Overloaded", status=503, code="overloaded_error"), "overloaded_error"),
        (UpstreamError("pay", status=402, code="billing_error"), "billing_error"),
    ],
)
def test_error_body_and_frame(err: ProxyError, atype: str) -> None:
    body = {"type": "error", "error": {"type": atype, "message": err.message}}
    assert orjson.loads(error_body(err)) == body
    assert error_frame(err) == b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"


def test_encode_message() -> None:
    completion = Completion(
        text="hello",
        reasoning="hmm",
        thinking_blocks=[{"type": "thinking", "thinking": "hmm", "signature": "s", "index": 0}],
        tool_calls=[ToolCall("c1", "f", '{"a": [1]}'), ToolCall("c2", "g", "", signature="gs")],
        finish="stop",
        usage=Usage(input_tokens=20, output_tokens=4, cached_tokens=5),
    )
    body = orjson.loads(encode_message(completion, CTX))
    assert list(body) == [
        *("id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"),
    ]
    assert body["id"] == "msg_test" and body["type"] == "message" and body["model"] == "test-model"
    assert body["content"] == [
        {"type": "thinking", "thinking": "hmm", "signature": "s"},
        {"type": "text", "text": "hello"},
        {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": [1]}},
        {"type": "thinking", "thinking": "", "signature": THOUGHT_SIGNATURE_PREFIX + "gs"},
        {"type": "tool_use", "id": "c2", "name": "g", "input": {}},
    ]
    assert body["stop_reason"] == "tool_use" and body["stop_sequence"] is None
    assert body["usage"] == {
        "input_tokens": 15,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 5,
        "output_tokens": 4,
    }
    anthropic.types.Message.model_validate(body)  # the SDK's own model accepts it


@pytest.mark.parametrize(
    ("completion", "stop", "reason"),
    [
        (Completion(text="x", finish="length"), None, "max_tokens"),
        (Completion(refusal="no", finish="content_filter"), None, "refusal"),
        (Completion(text="x"), "END", "stop_sequence"),
        (Completion(text="x", finish="tool_calls"), None, "end_turn"),
    ],
)
def test_encode_message_stop_reasons(completion: Completion, stop: str | None, reason: str) -> None:
    body = orjson.loads(encode_message(completion, CTX, stop_sequence=stop))
    assert body["stop_reason"] == reason
    assert body["stop_sequence"] == (stop if reason == "stop_sequence" else None)
    assert body["usage"]["input_tokens"] == 0


def test_encode_message_reasoning_without_signature_and_text_signature() -> None:
    body = orjson.loads(encode_message(Completion(text="t", reasoning="r", text_signature="ts"), CTX))
    assert body["content"] == [
        {"type": "thinking", "thinking": "r", "signature": ""},
        {"type": "text", "text": "t"},
        {"type": "thinking", "thinking": "", "signature": THOUGHT_SIGNATURE_PREFIX + "ts"},
    ]


# --------------------------------------------------------------------------------------------
# The request reader: to_chat


def req(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gemini/flash", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    body.update(fields)
    return body


def test_minimal_request() -> None:
    assert to_chat(req()) == {
        "model": "gemini/flash",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 100,
    }


def test_system_string_and_blocks_with_cache_control() -> None:
    assert to_chat(req(system="be brief"))["messages"][0] == {"role": "system", "content": "be brief"}
    system = [{"type": "text", "text": "a"}, {"type": "text", "text": "b", "cache_control": {"type": "ephemeral"}}]
    assert to_chat(req(system=system))["messages"][0] == {
        "role": "system",
        "content": [
            {"type": "text", "text": "a"},
            {"type": "text", "text": "b", "cache_control": {"type": "ephemeral"}},
        ],
    }


def test_images_and_documents() -> None:
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
        {
            "type": "image",
            "source": {"type": "url", "url": "https://x.test/a.jpg"},
            "cache_control": {"type": "ephemeral"},
        },
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"},
            "title": "r.pdf",
        },
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain words"}},
        {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "inner"}]}},
        {"type": "text", "text": "what is this?"},
    ]
    chat = to_chat(req(messages=[{"role": "user", "content": content}]))
    assert chat["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://x.test/a.jpg"},
                    "cache_control": {"type": "ephemeral"},
                },
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBER", "filename": "r.pdf"}},
                {"type": "text", "text": "plain words"},
                {"type": "text", "text": "inner"},
                {"type": "text", "text": "what is this?"},
            ],
        }
    ]


def test_tool_use_and_results_before_the_users_text() -> None:
    messages = [
        {"role": "user", "content": "weather and time?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "t2", "name": "time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "sunny"}]},
                {"type": "text", "text": "and hurry"},
                {"type": "tool_result", "tool_use_id": "t2", "content": "no clock", "is_error": True},
            ],
        },
    ]
    assert to_chat(req(messages=messages))["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}},
                {"id": "t2", "type": "function", "function": {"name": "time", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "t2", "content": "Error: no clock"},
        {"role": "user", "content": [{"type": "text", "text": "and hurry"}]},
    ]


def test_tool_results_alone_and_with_images() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}}
    content = [
        {"type": "tool_result", "tool_use_id": "t1"},
        {
            "type": "tool_result",
            "tool_use_id": "t2",
            "content": [{"type": "text", "text": "see"}, image],
            "is_error": True,
        },
    ]
    assert to_chat(req(messages=[{"role": "user", "content": content}]))["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": ""},
        {
            "role": "tool",
            "tool_call_id": "t2",
            "content": [
                {"type": "text", "text": "Error:"},
                {"type": "text", "text": "see"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
            ],
        },
    ]


def test_thinking_blocks_on_assistant_turns() -> None:
    content = [
        {"type": "thinking", "thinking": "let me see", "signature": "sig1"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "42"},
    ]
    msg = to_chat(req(messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": content}]))
    assert msg["messages"][1] == {
        "role": "assistant",
        "content": "42",
        "reasoning_content": "let me see",
        "thinking_blocks": [
            {"type": "thinking", "thinking": "let me see", "signature": "sig1"},
            {"type": "redacted_thinking", "data": "opaque"},
        ],
    }


def test_provider_signatures_go_back_to_their_call_or_the_message() -> None:
    p = THOUGHT_SIGNATURE_PREFIX
    content = [
        {"type": "text", "text": "hi"},
        {"type": "thinking", "thinking": "", "signature": p + "on-text"},
        {"type": "thinking", "thinking": "", "signature": p + "on-call"},
        {"type": "tool_use", "id": "c", "name": "f", "input": {}},
    ]
    msg = to_chat(req(messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": content}]))
    assistant = msg["messages"][1]
    assert assistant["extra_content"] == {"google": {"thought_signature": "on-text"}}
    assert assistant["tool_calls"][0]["extra_content"] == {"google": {"thought_signature": "on-call"}}
    assert "thinking_blocks" not in assistant


def test_server_blocks_in_history_are_dropped() -> None:
    content = [
        {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {"query": "x"}},
        {"type": "web_search_tool_result", "tool_use_id": "s", "content": []},
        {"type": "text", "text": "found", "citations": [{"type": "web_search_result_location"}]},
    ]
    msg = to_chat(req(messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": content}]))
    assert msg["messages"][1] == {"role": "assistant", "content": "found"}
    upload = [{"type": "container_upload", "file_id": "f"}, {"type": "text", "text": "run it"}]
    msg = to_chat(req(messages=[{"role": "user", "content": upload}]))
    assert msg["messages"] == [{"role": "user", "content": [{"type": "text", "text": "run it"}]}]


def test_assistant_text_with_cache_control_stays_parts() -> None:
    content = [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}]
    msg = to_chat(req(messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": content}]))
    assert msg["messages"][1]["content"] == content


def test_tools_and_tool_choice() -> None:
    tools = [
        {"name": "f", "description": "does f", "input_schema": {"type": "object", "properties": {}}},
        {"type": "custom", "name": "g", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
        {"type": "bash_20250124", "name": "bash"},
        {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
    ]
    chat = to_chat(req(tools=tools, tool_choice={"type": "any", "disable_parallel_tool_use": True}))
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {"name": "f", "description": "does f", "parameters": {"type": "object", "properties": {}}},
        },
        {
            "type": "function",
            "function": {"name": "g", "parameters": {"type": "object"}},
            "cache_control": {"type": "ephemeral"},
        },
    ]
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False
    assert to_chat(req(tools=tools, tool_choice={"type": "auto"}))["tool_choice"] == "auto"
    assert to_chat(req(tools=tools, tool_choice={"type": "none"}))["tool_choice"] == "none"
    named = to_chat(req(tools=tools, tool_choice={"type": "tool", "name": "f"}))
    assert (
        named["tool_choice"] == {"type": "function", "function": {"name": "f"}} and "parallel_tool_calls" not in named
    )
    hosted_only = to_chat(req(tools=tools[2:], tool_choice={"type": "any"}))
    assert "tools" not in hosted_only and "tool_choice" not in hosted_only


@pytest.mark.parametrize(
    ("budget", "effort"), [(1024, "low"), (1025, "medium"), (8192, "medium"), (8193, "high"), (32000, "high")]
)
def test_thinking_budget_and_effort(budget: int, effort: str) -> None:
    chat = to_chat(req(thinking={"type": "enabled", "budget_tokens": budget}))
    assert chat["thinking_budget"] == budget and chat["reasoning_effort"] == effort


def test_thinking_disabled_sets_nothing() -> None:
    chat = to_chat(req(thinking={"type": "disabled"}))
    assert "thinking_budget" not in chat and "reasoning_effort" not in chat


def test_sampling_stream_and_user() -> None:
    chat = to_chat(
        req(
            temperature=0.5,
            top_p=0.9,
            top_k=40,
            stop_sequences=["END", "###"],
            metadata={"user_id": "u-1"},
            stream=True,
        )
    )
    assert chat["temperature"] == 0.5 and chat["top_p"] == 0.9 and chat["top_k"] == 40
    assert chat["stop"] == ["END", "###"] and chat["user"] == "u-1"
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert "stream" not in to_chat(req(stream=False))


def test_anthropic_only_fields_are_dropped() -> None:
    extra = {
        "cache_control": {"type": "ephemeral"},
        "context_management": {"edits": []},
        "container": "c-1",
        "mcp_servers": [{"type": "url", "url": "https://m.test", "name": "m"}],
        "service_tier": "auto",
        "output_config": {"effort": "high"},
        "anthropic_beta": ["x"],
    }
    assert to_chat(req(**extra)) == to_chat(req())


def test_the_body_is_not_changed() -> None:
    body = req(system=[{"type": "text", "text": "s"}], tools=[{"name": "f", "input_schema": {"type": "object"}}])
    before = orjson.dumps(body)
    to_chat(body)
    assert orjson.dumps(body) == before


_USER = {"role": "user", "content": "hi"}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"model": None}, "model"),
        ({"model": 3}, "model"),
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"max_tokens": "10"}, "max_tokens"),
        ({"messages": None}, "messages"),
        ({"messages": {"role": "user"}}, "messages"),
        ({"messages": ["hi"]}, "messages[0]"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages[0].content[0].type"),
        ({"messages": [{"role": "user", "content": ["x"]}]}, "messages[0].content[0].type"),
        ({"messages": [{"role": "user", "content": [{"type": 1}]}]}, "messages[0].content[0].type"),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
        ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "messages[0].content[0].type"),
        ({"messages": [{"role": "user", "content": [{"type": "image"}]}]}, "messages[0].content[0].source"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "x"}}]}]},
            "messages[0].content[0].source.media_type",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}
                ]
            },
            "messages[0].content[0].source.type",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "url", "url": "u"}}]}]},
            "messages[0].content[0].source.type",
        ),
        ({"messages": [{"role": "user", "content": [{"type": "tool_result"}]}]}, "messages[0].content[0].tool_use_id"),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "is_error": "y"}]}]},
            "messages[0].content[0].is_error",
        ),
        (
            {
                "messages": [
                    _USER,
                    {"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
                ]
            },
            "messages[1].content[0].type",
        ),
        (
            {
                "messages": [
                    _USER,
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": []}]},
                ]
            },
            "messages[1].content[0].input",
        ),
        (
            {"messages": [_USER, {"role": "assistant", "content": [{"type": "tool_use", "name": "f", "input": {}}]}]},
            "messages[1].content[0].id",
        ),
        (
            {"messages": [_USER, {"role": "assistant", "content": [{"type": "thinking", "thinking": "x"}]}]},
            "messages[1].content[0].signature",
        ),
        (
            {"messages": [_USER, {"role": "assistant", "content": [{"type": "redacted_thinking"}]}]},
            "messages[1].content[0].data",
        ),
        (
            {"messages": [_USER, {"role": "assistant", "content": [{"type": "image", "source": {}}]}]},
            "messages[1].content[0].type",
        ),
        ({"system": 5}, "system"),
        ({"system": [{"type": "image"}]}, "system[0]"),
        ({"tools": {"name": "f"}}, "tools"),
        ({"tools": ["f"]}, "tools[0]"),
        ({"tools": [{"input_schema": {}}]}, "tools[0].name"),
        ({"tools": [{"name": "f"}]}, "tools[0].input_schema"),
        ({"tools": [{"name": "f", "input_schema": {}, "description": 1}]}, "tools[0].description"),
        ({"tools": [{"name": "f", "input_schema": {}}], "tool_choice": "auto"}, "tool_choice.type"),
        ({"tools": [{"name": "f", "input_schema": {}}], "tool_choice": {"type": "tool"}}, "tool_choice.name"),
        (
            {
                "tools": [{"name": "f", "input_schema": {}}],
                "tool_choice": {"type": "auto", "disable_parallel_tool_use": 1},
            },
            "tool_choice.disable_parallel_tool_use",
        ),
        ({"thinking": {"type": "on"}}, "thinking.type"),
        ({"thinking": "enabled"}, "thinking.type"),
        ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": True}, "top_p"),
        ({"top_k": 1.5}, "top_k"),
        ({"stop_sequences": "END"}, "stop_sequences"),
        ({"stop_sequences": ["a", 1]}, "stop_sequences"),
        ({"metadata": "u"}, "metadata"),
        ({"metadata": {"user_id": 5}}, "metadata.user_id"),
        ({"stream": "yes"}, "stream"),
    ],
)
def test_malformed_requests_are_400_naming_the_field(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as info:
        to_chat(req(**fields))
    assert info.value.status == 400 and info.value.param == param


def test_a_body_that_is_no_object_is_400() -> None:
    with pytest.raises(BadRequest):
        to_chat([])  # type: ignore[arg-type]
