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
from proxy.server import create_app
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
    gemini_chunks,
    gemini_response,
    gemini_sse,
    openai_chunks,
    openai_completion,
    openai_sse,
    sse_event,
    summary,
)

OPENAI_KEY = "sk-openai-provider-key"
ANTHROPIC_KEY = "sk-ant-provider-key"
GEMINI_KEY = "gemini-provider-key"
MODELS = {"openai": "up/gpt-x", "anthropic": "anthropic/claude-sonnet-4-5", "gemini": "gemini/gemini-2.5-flash"}
VENDORS = sorted(MODELS)
TOOLS = [
    {
        "name": "get_weather",
        "description": "Current weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
    {"name": "get_time", "description": "The time now", "input_schema": {"type": "object", "properties": {}}},
]
HELLO = [{"role": "user", "content": "Hello"}]

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
