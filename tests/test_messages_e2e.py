"""End to end (issue 11): the ``anthropic`` SDK -> the proxy's ``/v1/messages`` -> three fake vendors.

Each scenario is written once as what the model said (``tests/messages_scenarios.py``) and served
by an OpenAI-compatible, an Anthropic and a Gemini fake on 127.0.0.1 in that vendor's own wire
format, split in 7-byte writes. Whatever the vendor, the message the SDK accumulates must be the
one a direct Anthropic call gives: the same blocks, tool inputs, stop reason and usage.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import anthropic
import pytest
from aiohttp.test_utils import TestServer

from proxy.config import build
from proxy.errors import StreamError
from proxy.protocols.anthropic.passthrough import AnthropicPassthrough
from proxy.server import create_app
from proxy.wire.sse import SSEDecoder
from tests import test_anthropic as anthropic_cases
from tests.messages_scenarios import (
    Answer,
    Said,
    Text,
    Thinking,
    Tool,
    Upstream,
    anthropic_blocks,
    anthropic_head,
    anthropic_message,
    anthropic_sse,
    data_frame,
    expected,
    gemini_chunk,
    gemini_chunks,
    gemini_response,
    gemini_sse,
    openai_chunks,
    openai_completion,
    openai_sse,
    sse_event,
    summary,
)
from tests.support import splits
from tests.test_anthropic import load as load_anthropic

OPENAI_KEY = "sk-openai-provider-key"
ANTHROPIC_KEY = "sk-ant-provider-key"
GEMINI_KEY = "gemini-provider-key"
MODELS = {"openai": "up/gpt-x", "anthropic": "anthropic/claude-sonnet-4-5", "gemini": "gemini/gemini-2.5-flash"}
VENDORS = sorted(MODELS)
TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "Current weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
    {"name": "get_time", "description": "The time now", "input_schema": {"type": "object", "properties": {}}},
]
HELLO: list[Any] = [{"role": "user", "content": "Hello"}]

SCENARIOS: dict[str, Said] = {
    "text": Said((Text("Hello there, how can I help you today?"),)),
    "thinking-text": Said(
        (Thinking("The user greets me. 2 + 2 = 4, so I answer briefly."), Text("Hi! It is 4.")), output=40
    ),
    "tools-after-text": Said(
        (
            Text("I'll check both cities."),
            Tool("toolu_01Paris", "get_weather", {"city": "Paris", "unit": "celsius"}),
            Tool("toolu_01Tokyo", "get_weather", {"city": "Tokyo", "days": [1, 2], "note": 'say "hi" \u00e9'}),
        ),
        stop="tool_use",
        output=60,
    ),
    "tool-no-input": Said((Tool("toolu_01Time", "get_time", {}),), stop="tool_use", output=12),
    "max-tokens": Said((Text("Once upon a time there was a"),), stop="max_tokens", output=8),
    "refusal": Said((Text("I can't help with that."),), stop="refusal", output=6),
    "cached": Said((Text("Cached answer."),), input=12, cached=2048, output=4),
}


def render(vendor: str, said: Said) -> bytes:
    return {"openai": openai_sse, "anthropic": anthropic_sse, "gemini": gemini_sse}[vendor](said)


def whole(vendor: str, said: Said) -> bytes:
    make = {"openai": openai_completion, "anthropic": anthropic_message, "gemini": gemini_response}[vendor]
    return json.dumps(make(said)).encode()


@dataclass
class Rig:
    """The proxy, its client and the three fakes behind it."""

    proxy: TestServer
    client: anthropic.AsyncAnthropic
    fakes: dict[str, Upstream]
    servers: dict[str, TestServer]

    def url(self, path: str) -> str:
        return str(self.proxy.make_url(path))


Start = Callable[..., Awaitable[Rig]]


@pytest.fixture
def rig(aiohttp_server: Any) -> Start:
    async def start(**extra: Any) -> Rig:
        fakes = {vendor: Upstream() for vendor in VENDORS}
        servers = {vendor: await aiohttp_server(fake.app()) for vendor, fake in fakes.items()}
        base = {vendor: f"http://127.0.0.1:{server.port}" for vendor, server in servers.items()}
        providers = {
            "up": {"kind": "openai", "base_url": base["openai"] + "/v1", "api_key": OPENAI_KEY},
            "anthropic": {"base_url": base["anthropic"], "api_key": ANTHROPIC_KEY},
            "gemini": {"base_url": base["gemini"], "api_key": GEMINI_KEY},
        }
        config = build({"providers": providers, **extra}, "<test>", {})
        proxy: TestServer = await aiohttp_server(create_app(config))
        client = anthropic.AsyncAnthropic(base_url=str(proxy.make_url("")), api_key="client-key", max_retries=0)
        return Rig(proxy, client, fakes, servers)

    return start


async def stream_final(client: anthropic.AsyncAnthropic, model: str, **extra: Any) -> anthropic.types.Message:
    fields: dict[str, Any] = {"max_tokens": 1024, "messages": HELLO, "tools": TOOLS, **extra}
    async with client.messages.stream(model=model, **fields) as stream:
        async for _ in stream:
            pass
        return await stream.get_final_message()


# -- Streams: the same final message whatever the vendor ------------------------------------


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_stream_gives_the_message_a_direct_call_gives(rig: Start, scenario: str, vendor: str) -> None:
    said = SCENARIOS[scenario]
    r = await rig()
    r.fakes[vendor].queue(Answer(render(vendor, said)))
    final = await stream_final(r.client, MODELS[vendor])
    assert summary(final.model_dump()) == expected(said)
    assert final.type == "message" and final.role == "assistant" and final.id.startswith("msg_")
    ids = [b.id for b in final.content if b.type == "tool_use"]
    assert len(set(ids)) == len(ids) and all(ids)
    if vendor != "gemini":  # Gemini sends no call ids: the proxy makes them
        assert ids == [b.id for b in said.blocks if isinstance(b, Tool)]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_three_vendors_agree(rig: Start, scenario: str) -> None:
    """The scenario once more, the three final messages side by side (one proxy for all)."""
    said = SCENARIOS[scenario]
    r = await rig()
    finals = {}
    for vendor in VENDORS:
        r.fakes[vendor].queue(Answer(render(vendor, said)))
        finals[vendor] = summary((await stream_final(r.client, MODELS[vendor])).model_dump())
    assert finals["openai"] == finals["anthropic"] == finals["gemini"]


# -- Failures mid-stream: the SDK raises, never a normal end --------------------------------

PARTIAL = Said((Text("Let me think about that carefully"),))
MIDSTREAM_ERRORS = {
    "openai": data_frame({"error": {"message": "The server is overloaded", "type": "server_error", "code": None}}),
    "anthropic": sse_event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    "gemini": data_frame({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}),
}


def started(vendor: str, said: Said) -> bytes:
    """The vendor's stream for ``said`` without its end (no finish, no usage, no terminator)."""
    if vendor == "anthropic":
        return anthropic_head(said) + anthropic_blocks(said)
    chunks = openai_chunks(said) if vendor == "openai" else gemini_chunks(said)
    return b"".join(data_frame(c) for c in chunks)


async def read_until_failure(client: anthropic.AsyncAnthropic, model: str) -> tuple[str, BaseException]:
    """The text the SDK saw, and what it raised; fails the test if the stream ended normally."""
    text = ""
    with pytest.raises(anthropic.APIError) as info:
        async with client.messages.stream(model=model, max_tokens=64, messages=HELLO) as stream:
            async for event in stream:
                if event.type == "text":
                    text += event.text
            await stream.get_final_message()
    return text, info.value


@pytest.mark.parametrize("piece", [7, 4096])
@pytest.mark.parametrize("vendor", VENDORS)
async def test_error_mid_stream_raises_in_the_sdk(rig: Start, vendor: str, piece: int) -> None:
    r = await rig()
    r.fakes[vendor].queue(Answer(started(vendor, PARTIAL) + MIDSTREAM_ERRORS[vendor], piece=piece))
    text, err = await read_until_failure(r.client, MODELS[vendor])
    assert isinstance(err, anthropic.APIStatusError)
    assert "overloaded" in err.message.lower()
    assert text == "Let me think about that carefully"


@pytest.mark.parametrize("mid_event", [False, True])
@pytest.mark.parametrize("vendor", VENDORS)
async def test_truncated_stream_raises_in_the_sdk(rig: Start, vendor: str, mid_event: bool) -> None:
    r = await rig()
    data = started(vendor, PARTIAL)
    if mid_event:  # the connection ends in the middle of a last, unfinished event
        data += render(vendor, Said((Text("never finished"),)))[:40]
    r.fakes[vendor].queue(Answer(data))
    text, err = await read_until_failure(r.client, MODELS[vendor])
    assert isinstance(err, anthropic.APIStatusError)
    assert "truncated" in err.message
    assert text == "Let me think about that carefully"


# -- Whole answers ---------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("scenario", ["text", "tools-after-text", "tool-no-input", "thinking-text"])
async def test_non_stream_is_an_anthropic_message(rig: Start, scenario: str, vendor: str) -> None:
    said = SCENARIOS[scenario]
    r = await rig()
    r.fakes[vendor].queue(Answer(whole(vendor, said), sse=False))
    message = await r.client.messages.create(model=MODELS[vendor], max_tokens=1024, messages=HELLO, tools=TOOLS)
    assert message.type == "message" and message.role == "assistant"
    assert summary(message.model_dump()) == expected(said)
    seen = r.fakes[vendor].last
    assert "stream" not in (seen.body or {}) or seen.body["stream"] is False
    if vendor == "gemini":
        assert seen.path.endswith(":generateContent")


# -- A two-turn tool loop driven by the SDK --------------------------------------------------


def second_turn(final: anthropic.types.Message) -> list[Any]:
    """The conversation after ``final``'s two tool calls: one result, one failure (``is_error``)."""
    ids = [b.id for b in final.content if b.type == "tool_use"]
    results = [
        {"type": "tool_result", "tool_use_id": ids[0], "content": "18 degrees, sunny"},
        {"type": "tool_result", "tool_use_id": ids[1], "content": "service down", "is_error": True},
    ]
    return [*HELLO, {"role": "assistant", "content": final.content}, {"role": "user", "content": results}]


@pytest.mark.parametrize("vendor", VENDORS)
async def test_tool_loop(rig: Start, vendor: str) -> None:
    r = await rig()
    fake = r.fakes[vendor]
    fake.queue(Answer(render(vendor, SCENARIOS["tools-after-text"])), Answer(render(vendor, SCENARIOS["text"])))
    first = await stream_final(r.client, MODELS[vendor])
    assert first.stop_reason == "tool_use"
    ids = [b.id for b in first.content if b.type == "tool_use"]
    messages = second_turn(first)
    final = await stream_final(r.client, MODELS[vendor], messages=messages)
    assert summary(final.model_dump()) == expected(SCENARIOS["text"])
    sent = fake.last.body
    if vendor == "openai":
        assistant, *tools = sent["messages"][1:]
        assert assistant["role"] == "assistant" and assistant["content"] == "I'll check both cities."
        calls = assistant["tool_calls"]
        assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
            (ids[0], "get_weather", {"city": "Paris", "unit": "celsius"}),
            (ids[1], "get_weather", {"city": "Tokyo", "days": [1, 2], "note": 'say "hi" \u00e9'}),
        ]
        assert tools == [
            {"role": "tool", "tool_call_id": ids[0], "content": "18 degrees, sunny"},
            {"role": "tool", "tool_call_id": ids[1], "content": "Error: service down"},
        ]
    elif vendor == "gemini":
        user, model, results = sent["contents"]
        assert user == {"role": "user", "parts": [{"text": "Hello"}]}
        assert model["role"] == "model"
        assert [p["functionCall"]["args"] for p in model["parts"] if "functionCall" in p] == [
            {"city": "Paris", "unit": "celsius"},
            {"city": "Tokyo", "days": [1, 2], "note": 'say "hi" \u00e9'},
        ]
        assert [p["functionResponse"] for p in results["parts"]] == [
            {"name": "get_weather", "response": {"content": "18 degrees, sunny"}},
            {"name": "get_weather", "response": {"content": "Error: service down"}},
        ]
    else:  # what a direct call sends, the model aside
        direct = anthropic.AsyncAnthropic(base_url=f"http://127.0.0.1:{r.servers['anthropic'].port}", api_key="k")
        await stream_final(direct, "claude-sonnet-4-5", messages=messages)
        assert fake.seen[-1].body == fake.seen[-2].body


# -- Anthropic upstreams: a byte pass-through ------------------------------------------------

CLIENT_HEADERS = {
    "x-api-key": "client-key",
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "context-management-2025-06-27,interleaved-thinking-2025-05-14",
    "content-type": "application/json",
}
UNKNOWN_FIELDS = {
    "context_management": {"edits": [{"type": "clear_tool_uses_20250919", "trigger": {"type": "input_tokens"}}]},
    "some_future_field": [1, {"nested": None}],
}


Raw = tuple[int, dict[str, str], bytes]


async def post(r: Rig, path: str, body: Any, headers: dict[str, str] | None = None) -> Raw:
    """A raw POST to the proxy: status, headers and the body's exact bytes."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(r.url(path), data=data, headers=headers or CLIENT_HEADERS) as response,
    ):
        return response.status, dict(response.headers), await response.read()


def assert_forwarded(seen: Any, client_body: dict[str, Any], model: str) -> None:
    """The upstream got the client's body (only the model changed), its Anthropic headers and our key."""
    assert seen.body == {**client_body, "model": model}
    assert seen.headers["x-api-key"] == ANTHROPIC_KEY
    assert seen.headers["anthropic-beta"] == CLIENT_HEADERS["anthropic-beta"]
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert "client-key" not in json.dumps(seen.headers) and "Authorization" not in seen.headers


@pytest.mark.parametrize("fixture", ["messages-basic-text", "text-crlf", "thinking-text", "parallel-tools"])
async def test_anthropic_stream_passes_byte_for_byte(rig: Start, fixture: str) -> None:
    sent = load_anthropic(fixture)
    r = await rig()
    r.fakes["anthropic"].queue(Answer(sent))
    body = {"model": MODELS["anthropic"], "max_tokens": 512, "messages": HELLO, "stream": True, **UNKNOWN_FIELDS}
    status, headers, received = await post(r, "/v1/messages", body)
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    assert received == sent
    assert_forwarded(r.fakes["anthropic"].last, body, "claude-sonnet-4-5")


async def test_anthropic_message_passes_byte_for_byte(rig: Start) -> None:
    sent = json.dumps(anthropic_message(SCENARIOS["tools-after-text"]), indent=1).encode()
    r = await rig()
    r.fakes["anthropic"].queue(Answer(sent, sse=False))
    body = {"model": MODELS["anthropic"], "max_tokens": 512, "messages": HELLO, **UNKNOWN_FIELDS}
    status, _, received = await post(r, "/v1/messages", body)
    assert status == 200 and received == sent
    assert_forwarded(r.fakes["anthropic"].last, body, "claude-sonnet-4-5")


async def test_anthropic_error_mid_stream_reaches_the_client_as_whole_events(rig: Start) -> None:
    """Written in 7-byte pieces, the upstream's error event is cut across reads: the client
    still gets whole events only, the last one the error, each with valid JSON."""
    r = await rig()
    r.fakes["anthropic"].queue(Answer(started("anthropic", PARTIAL) + MIDSTREAM_ERRORS["anthropic"]))
    body = {"model": MODELS["anthropic"], "max_tokens": 64, "messages": HELLO, "stream": True}
    status, _, received = await post(r, "/v1/messages", body)
    assert status == 200
    decoder = SSEDecoder()
    events = decoder.feed(received) + decoder.close()  # raises on a half event
    assert [json.loads(e.data)["type"] for e in events][-2:] == ["content_block_stop", "error"]
    assert json.loads(events[-1].data)["error"]["type"] == "overloaded_error"
    assert received.startswith(started("anthropic", PARTIAL))


# -- Errors before the stream, in Anthropic's shape ------------------------------------------


def error_of(body: bytes) -> dict[str, Any]:
    data = json.loads(body)
    assert data["type"] == "error" and set(data["error"]) >= {"type", "message"}
    error: dict[str, Any] = data["error"]
    return error


@pytest.mark.parametrize("model", ["nowhere/gpt-x", "totally-unknown-model"])
async def test_unknown_model_is_404_not_found(rig: Start, model: str) -> None:
    r = await rig()
    with pytest.raises(anthropic.NotFoundError) as info:
        await r.client.messages.create(model=model, max_tokens=16, messages=HELLO)
    assert error_of(info.value.response.content)["type"] == "not_found_error"
    assert all(not fake.seen for fake in r.fakes.values())


RATE_LIMITED = {
    "openai": b'{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}',
    "anthropic": b'{"type":"error","error":{"type":"rate_limit_error","message":"Rate limit reached"}}',
    "gemini": b'{"error":{"code":429,"message":"Rate limit reached","status":"RESOURCE_EXHAUSTED"}}',
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("vendor", VENDORS)
async def test_upstream_429_is_a_rate_limit_error_with_retry_after(rig: Start, vendor: str, stream: bool) -> None:
    r = await rig()
    r.fakes[vendor].queue(Answer(RATE_LIMITED[vendor], status=429, headers={"Retry-After": "7"}))
    with pytest.raises(anthropic.RateLimitError) as info:
        if stream:
            await stream_final(r.client, MODELS[vendor])
        else:
            await r.client.messages.create(model=MODELS[vendor], max_tokens=16, messages=HELLO)
    assert info.value.response.headers["retry-after"] == "7"
    error = error_of(info.value.response.content)
    assert error["type"] == "rate_limit_error" and "Rate limit reached" in error["message"]


OVERLOADED = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'


async def test_anthropic_529_is_overloaded(rig: Start) -> None:
    """A direct call would raise ``OverloadedError`` (status 529): so does a call through the proxy."""
    r = await rig()
    r.fakes["anthropic"].queue(Answer(OVERLOADED, status=529))
    with pytest.raises(anthropic.OverloadedError) as info:
        await stream_final(r.client, MODELS["anthropic"])
    assert info.value.status_code == 529
    assert error_of(info.value.response.content) == {"type": "overloaded_error", "message": "Overloaded"}
    with pytest.raises(anthropic.OverloadedError):
        await r.client.messages.count_tokens(model=MODELS["anthropic"], messages=HELLO)


async def test_openai_503_stays_503(rig: Start) -> None:
    r = await rig()
    r.fakes["openai"].queue(Answer(b'{"error":{"message":"Busy","type":"server_error","code":null}}', status=503))
    with pytest.raises(anthropic.APIStatusError) as info:
        await stream_final(r.client, MODELS["openai"])
    assert info.value.status_code == 503 and "Busy" in error_of(info.value.response.content)["message"]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"max_tokens": "many"}, "max_tokens"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"tools": [{"description": "no name"}]}, "tools[0].name"),
        ({"model": 7}, "model"),
    ],
)
@pytest.mark.parametrize("vendor", ["openai", "gemini"])
async def test_malformed_body_is_400_naming_the_field(
    rig: Start, vendor: str, fields: dict[str, Any], param: str
) -> None:
    r = await rig()
    body = {"model": MODELS[vendor], "max_tokens": 16, "messages": HELLO, **fields}
    status, _, received = await post(r, "/v1/messages", body)
    assert status == 400
    error = error_of(received)
    assert error["type"] == "invalid_request_error" and param in error["message"]
    assert all(not fake.seen for fake in r.fakes.values())


async def test_a_body_that_is_not_json_is_400(rig: Start) -> None:
    r = await rig()
    status, _, received = await post(r, "/v1/messages", b'{"model": "up/gpt-x", ')
    assert status == 400 and error_of(received)["type"] == "invalid_request_error"


# -- Bare model ids --------------------------------------------------------------------------


async def test_bare_ids_go_to_their_alias_or_to_the_anthropic_provider(rig: Start) -> None:
    r = await rig(aliases={"claude-sonnet-4-5": "up/gpt-x"})
    said = SCENARIOS["text"]
    r.fakes["openai"].queue(Answer(render("openai", said)))
    r.fakes["anthropic"].queue(Answer(render("anthropic", said)))
    assert summary((await stream_final(r.client, "claude-sonnet-4-5")).model_dump()) == expected(said)
    assert [s.body["model"] for s in r.fakes["openai"].seen] == ["gpt-x"] and not r.fakes["anthropic"].seen
    assert summary((await stream_final(r.client, "claude-haiku-4-5")).model_dump()) == expected(said)
    assert [s.body["model"] for s in r.fakes["anthropic"].seen] == ["claude-haiku-4-5"]
    assert r.fakes["anthropic"].last.headers["x-api-key"] == ANTHROPIC_KEY


# -- count_tokens ----------------------------------------------------------------------------


async def test_count_tokens_is_relayed_to_anthropic(rig: Start) -> None:
    r = await rig()
    r.fakes["anthropic"].queue(Answer(b'{"input_tokens":1234}', sse=False))
    body = {"model": MODELS["anthropic"], "messages": HELLO, "tools": TOOLS, **UNKNOWN_FIELDS}
    status, _, received = await post(r, "/v1/messages/count_tokens", body)
    assert status == 200 and json.loads(received) == {"input_tokens": 1234}
    seen = r.fakes["anthropic"].last
    assert seen.path == "/v1/messages/count_tokens"
    assert_forwarded(seen, body, "claude-sonnet-4-5")
    counted = await r.client.messages.count_tokens(model=MODELS["anthropic"], messages=HELLO)
    assert counted.input_tokens == 1234


@pytest.mark.parametrize("vendor", ["openai", "gemini"])
async def test_count_tokens_is_estimated_for_other_vendors(rig: Start, vendor: str) -> None:
    r = await rig()
    short = await r.client.messages.count_tokens(model=MODELS[vendor], messages=HELLO)
    long = await r.client.messages.count_tokens(
        model=MODELS[vendor], messages=[{"role": "user", "content": "Hello " * 400}], system="Be brief."
    )
    assert 0 < short.input_tokens < long.input_tokens
    assert long.input_tokens >= 400  # about four characters a token
    assert not r.fakes[vendor].seen


# -- HEAD / ----------------------------------------------------------------------------------


async def test_head_root_answers_200(rig: Start) -> None:
    r = await rig()
    async with aiohttp.ClientSession() as session, session.head(r.url("/")) as response:
        assert response.status == 200
    assert all(not fake.seen for fake in r.fakes.values())


# -- The Anthropic pass-through, sans-IO: every split gives the same, whole events ------------

PASSTHROUGH_OK = sorted(set(anthropic_cases.CASES) - set(anthropic_cases.FAILURES))


def passthrough(parts: list[bytes]) -> tuple[bytes, StreamError | None, AnthropicPassthrough]:
    """What the relay writes from the pass-through: the output, and the failure if one came."""
    decoder, out = AnthropicPassthrough(), []
    try:
        for part in parts:
            out.append(decoder.feed(part))
        out.append(decoder.finish())
    except StreamError as exc:
        return b"".join(out) + exc.output, exc, decoder
    return b"".join(out), None, decoder


@pytest.mark.parametrize("case", PASSTHROUGH_OK)
def test_passthrough_hands_on_every_byte_however_split(case: str) -> None:
    data = anthropic_cases.load(case)
    for name, parts in splits(data):
        out, err, decoder = passthrough(parts)
        assert err is None and out == data, name
        assert decoder.done and decoder.usage is not None and decoder.usage.output_tokens > 0


# malformed-json's bad JSON is in a content event, which the pass-through does not parse: the
# client gets it as a direct call would.
@pytest.mark.parametrize("case", sorted(set(anthropic_cases.FAILURES) - {"malformed-json"}))
def test_a_failing_passthrough_hands_on_whole_events_only(case: str) -> None:
    """Cut anywhere, even inside the failing event: what reaches the client is the same whole
    events (so the door's error event after them is read as one), never the failing event."""
    data = anthropic_cases.load(case)
    outputs = set()
    for name, parts in splits(data):
        out, err, _ = passthrough(parts)
        assert err is not None, name
        outputs.add(out)
        sse = SSEDecoder()
        events = sse.feed(out) + sse.close()  # raises on half an event
        assert events and all(json.loads(e.data)["type"] != "error" for e in events), name
    assert len(outputs) == 1
    assert data.startswith(outputs.pop())


async def test_gemini_thought_signature_survives_the_tool_loop(rig: Start) -> None:
    """Gemini signs its calls; the SDK carries the signature back in a thinking block it knows
    nothing of, and Gemini gets it on the same functionCall part on turn 2."""
    r = await rig()
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnLTE="}
    usage = {"promptTokenCount": 9, "candidatesTokenCount": 5, "totalTokenCount": 14}
    turn1 = b"".join(
        data_frame(c) for c in [gemini_chunk([{"text": "Checking."}]), gemini_chunk([call], "STOP", usage)]
    )
    r.fakes["gemini"].queue(Answer(turn1), Answer(render("gemini", SCENARIOS["text"])))
    first = await stream_final(r.client, MODELS["gemini"])
    assert first.stop_reason == "tool_use"
    assert [b.type for b in first.content] == ["text", "thinking", "tool_use"]
    tool = first.content[-1]
    assert tool.type == "tool_use" and tool.input == {"city": "Paris"}
    results = [{"type": "tool_result", "tool_use_id": tool.id, "content": "sunny"}]
    messages = [*HELLO, {"role": "assistant", "content": first.content}, {"role": "user", "content": results}]
    await stream_final(r.client, MODELS["gemini"], messages=messages)
    model = r.fakes["gemini"].last.body["contents"][1]
    assert model["role"] == "model"
    calls = [p for p in model["parts"] if "functionCall" in p]
    assert calls == [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnLTE="}
    ]
