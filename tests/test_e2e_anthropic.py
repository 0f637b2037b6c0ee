"""End to end: the openai SDK → the proxy → a fake Anthropic server speaking the real wire format.

The fake server checks what the proxy sends (the configured key, never the client's; Anthropic's
headers and body shape) and answers with the same recordings and cases the golden tests use,
written in small pieces so events are split across network reads.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import openai
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import BaseModel

from proxy.config import build
from proxy.protocols.anthropic.wire import JSON_TOOL
from proxy.server import create_app
from tests.test_anthropic import load

MODEL = "anthropic/claude-sonnet-4-5"


@dataclass
class FakeAnthropic:
    """What the fake server answers next, and every request it saw."""

    status: int = 200
    body: bytes = b""
    stream: bytes = b""
    piece: int = 7  # bytes per write, so events arrive split across reads
    requests: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append({"headers": dict(request.headers), "body": await request.json()})
        if self.status != 200 or not self.stream:
            return web.Response(status=self.status, body=self.body, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        for i in range(0, len(self.stream), self.piece):
            await response.write(self.stream[i : i + self.piece])
        await response.write_eof()
        return response

    @property
    def sent(self) -> dict[str, Any]:
        """The last request's body, after checking its headers."""
        headers = self.requests[-1]["headers"]
        assert headers["x-api-key"] == "test-key"
        assert "client-key" not in json.dumps(headers)
        assert "Authorization" not in headers
        assert headers["anthropic-version"] == "2023-06-01"
        assert headers["Content-Type"].startswith("application/json")
        body: dict[str, Any] = self.requests[-1]["body"]
        return body


Setup = Callable[[], Awaitable[tuple[FakeAnthropic, openai.AsyncOpenAI]]]


@pytest.fixture
def setup(aiohttp_server: Any) -> Setup:
    async def start() -> tuple[FakeAnthropic, openai.AsyncOpenAI]:
        fake = FakeAnthropic()
        upstream = web.Application()
        upstream.router.add_post("/v1/messages", fake.handle)
        upstream_server: TestServer = await aiohttp_server(upstream)
        base_url = f"http://127.0.0.1:{upstream_server.port}"
        config = build({"providers": {"anthropic": {"base_url": base_url, "api_key": "test-key"}}}, "<test>", {})
        proxy: TestServer = await aiohttp_server(create_app(config))
        client = openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="client-key", max_retries=0)
        return fake, client

    return start


def message_body(content: list[dict[str, Any]], stop: str = "end_turn") -> bytes:
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
                "input_tokens": 21,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 300,
                "output_tokens": 12,
            },
        }
    )


async def test_streaming_text(setup: Setup) -> None:
    fake, client = await setup()
    fake.stream = load("vercel-thinking-summarized")
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Be exact."}, {"role": "user", "content": "gcd(1071, 462)?"}],
        stream=True,
        reasoning_effort="low",
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("# Finding GCD(1071, 462)") and text.endswith("462 = 21 \u00d7 22 \u2713")
    assert chunks[0].choices[0].delta.role == "assistant"
    assert {c.id for c in chunks} == {chunks[0].id} and chunks[-1].choices[0].finish_reason == "stop"
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks)
    assert reasoning.startswith("I'm working through the Euclidean algorithm")
    assert all(c.usage is None for c in chunks)  # not asked for
    sent = fake.sent
    assert sent["model"] == "claude-sonnet-4-5" and sent["stream"] is True and sent["system"] == "Be exact."
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024} and sent["max_tokens"] == 4096
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "gcd(1071, 462)?"}]}]


async def test_streaming_parallel_tool_calls(setup: Setup) -> None:
    fake, client = await setup()
    fake.stream = load("parallel-tools")
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Paris and Tokyo?"}],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
                },
            }
        ],
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    text = ""
    async for chunk in stream:
        delta = chunk.choices[0].delta
        text += delta.content or ""
        for call in delta.tool_calls or []:
            entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += call.id or ""
            assert call.function is not None
            entry["name"] += call.function.name or ""
            entry["arguments"] += call.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert text == "I'll look up the weather in both cities at once."
    assert finish == "tool_calls"
    assert [(c["id"], c["name"], json.loads(c["arguments"])) for c in calls.values()] == [
        ("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather", {"location": "Paris, France", "unit": "celsius"}),
        (
            "toolu_01HvJd8bQWRm3YzCqKfN2sXe",
            "get_weather",
            {"location": "Tokyo, Japan", "unit": "celsius", "days": [1, 2], "note": 'say "hi" \u00e9'},
        ),
    ]
    assert fake.sent["tools"] == [
        {"name": "get_weather", "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}
    ]


async def test_streaming_usage(setup: Setup) -> None:
    fake, client = await setup()
    fake.stream = load("parallel-tools")
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1] and chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1265, 141, 1406)
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 512
    assert "stream_options" not in fake.sent


async def test_stream_helper_accumulates_thinking_blocks(setup: Setup) -> None:
    """openai-python's ``.stream()`` helper merges list deltas by ``index``: two blocks must not break it."""
    fake, client = await setup()
    fake.stream = load("redacted-thinking")
    async with client.chat.completions.stream(model=MODEL, messages=[{"role": "user", "content": "Q"}]) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Done."
    blocks = (message.model_extra or {})["thinking_blocks"]
    assert [b["type"] for b in blocks] == ["redacted_thinking", "thinking"]
    assert blocks[1]["thinking"] == "Now I can answer directly."


async def test_non_stream(setup: Setup) -> None:
    fake, client = await setup()
    fake.body = message_body(
        [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"location": "Oslo"}},
        ],
        "tool_use",
    )
    completion = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[{"type": "function", "function": {"name": "get_weather"}}],
        max_completion_tokens=500,
        temperature=0.2,
        stop=["END"],
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Checking."
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.id == "toolu_01A" and call.type == "function"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"location": "Oslo"}
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (321, 12)
    sent = fake.sent
    assert "stream" not in sent
    assert (sent["max_tokens"], sent["temperature"], sent["stop_sequences"]) == (500, 0.2, ["END"])


async def test_structured_output_through_parse(setup: Setup) -> None:
    class Person(BaseModel):
        name: str
        born: int

    fake, client = await setup()
    fake.body = message_body(
        [{"type": "tool_use", "id": "toolu_01J", "name": JSON_TOOL, "input": {"name": "Ada Lovelace", "born": 1815}}],
        "tool_use",
    )
    completion = await client.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "Who wrote the first program?"}], response_format=Person
    )
    assert completion.choices[0].message.parsed == Person(name="Ada Lovelace", born=1815)
    assert completion.choices[0].finish_reason == "stop"
    sent = fake.sent
    assert sent["tool_choice"] == {"type": "tool", "name": JSON_TOOL}
    assert sent["tools"][0]["input_schema"]["properties"] == {
        "name": {"title": "Name", "type": "string"},
        "born": {"title": "Born", "type": "integer"},
    }


async def test_upstream_overloaded_is_a_503(setup: Setup) -> None:
    fake, client = await setup()
    fake.status = 529
    fake.body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True)
    assert info.value.status_code == 503
    assert "Overloaded" in info.value.message
    assert len(fake.requests) == 1


async def test_upstream_invalid_request_keeps_message(setup: Setup) -> None:
    fake, client = await setup()
    fake.status = 400
    fake.body = b'{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too large"}}'
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    assert "max_tokens: too large" in info.value.message


async def test_bad_request_never_reaches_upstream(setup: Setup) -> None:
    fake, client = await setup()
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], n=2)
    assert "'n'" in info.value.message
    assert fake.requests == []


async def test_error_event_mid_stream(setup: Setup) -> None:
    fake, client = await setup()
    fake.stream = load("error-midstream")
    stream = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    text = ""
    with pytest.raises(openai.APIError) as info:
        async for chunk in stream:
            text += chunk.choices[0].delta.content or ""
    assert "Overloaded" in info.value.message
    assert text == "Let me think about that"


async def test_error_event_before_any_content_is_an_http_error(setup: Setup) -> None:
    """Nothing reached the client yet, so the attempt fails as a whole (and could be retried)."""
    fake, client = await setup()
    data = load("error-midstream")
    fake.stream = data[: data.index(b"event: content_block_start")] + data[data.index(b"event: error") :]
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True)
    assert info.value.status_code == 503 and "Overloaded" in info.value.message
