"""End to end with the real ``openai`` SDK (sync and async) through the proxy."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import orjson
import pytest
from aiohttp import web

from proxy.config import build
from proxy.server import create_app
from tests.conftest import UPSTREAM_KEY, BackgroundLoop, Recorder, openai_provider, serve_in
from tests.support import FIXTURES

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}},
        },
    },
]


def consume(stream: Any) -> dict[str, Any]:
    """The seed usage pattern: iterate chunks, read delta.content, delta.tool_calls, delta.function_call."""
    text, calls, function_call, finish, usage = "", {}, {"name": "", "arguments": ""}, None, None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            delta = choice.delta
            text += delta.content or ""
            for call in delta.tool_calls or ():
                slot = calls.setdefault(call.index, {"id": call.id, "name": "", "arguments": ""})
                slot["name"] += (call.function and call.function.name) or ""
                slot["arguments"] += (call.function and call.function.arguments) or ""
            if delta.function_call:
                function_call["name"] += delta.function_call.name or ""
                function_call["arguments"] += delta.function_call.arguments or ""
            finish = choice.finish_reason or finish
    return {"text": text, "calls": calls, "function_call": function_call, "finish": finish, "usage": usage}


async def aconsume(stream: Any) -> dict[str, Any]:
    chunks = [chunk async for chunk in stream]
    return consume(chunks)


@pytest.fixture
def proxy_url(start_proxy):
    async def make(data: dict[str, Any] | None = None) -> str:
        server = await start_proxy(data or {"providers": {"mock": {"chunk_delay_ms": 0}}})
        return str(server.make_url("/v1"))

    return make


async def test_async_stream_text_with_usage_from_mock(proxy_url) -> None:
    client = openai.AsyncOpenAI(base_url=await proxy_url(), api_key="client-key", max_retries=0)
    stream = await client.chat.completions.create(
        model="mock/echo",
        messages=[{"role": "user", "content": "the quick brown fox"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    result = await aconsume(stream)
    assert result["text"] == "the quick brown fox"
    assert result["finish"] == "stop"
    assert result["usage"].completion_tokens == 4 and result["usage"].total_tokens == result["usage"].prompt_tokens + 4


async def test_async_stream_tool_calls_from_mock(proxy_url) -> None:
    client = openai.AsyncOpenAI(base_url=await proxy_url(), api_key="client-key", max_retries=0)
    stream = await client.chat.completions.create(
        model="mock/echo", messages=[{"role": "user", "content": "weather?"}], tools=TOOLS, stream=True
    )
    result = await aconsume(stream)
    assert result["finish"] == "tool_calls"
    assert result["calls"][0]["name"] == "get_weather"
    assert orjson.loads(result["calls"][0]["arguments"]) == {"city": "mock", "days": 1}


async def test_async_stream_legacy_function_call_from_mock(proxy_url) -> None:
    client = openai.AsyncOpenAI(base_url=await proxy_url(), api_key="client-key", max_retries=0)
    stream = await client.chat.completions.create(
        model="mock/echo",
        messages=[{"role": "user", "content": "weather?"}],
        functions=[TOOLS[0]["function"]],
        stream=True,
    )
    result = await aconsume(stream)
    assert result["finish"] == "function_call"
    assert result["function_call"]["name"] == "get_weather"
    assert orjson.loads(result["function_call"]["arguments"]) == {"city": "mock", "days": 1}


async def test_async_non_stream_from_mock(proxy_url) -> None:
    client = openai.AsyncOpenAI(base_url=await proxy_url(), api_key="client-key", max_retries=0)
    completion = await client.chat.completions.create(
        model="mock/echo", messages=[{"role": "user", "content": "hello"}]
    )
    assert completion.choices[0].message.content == "hello"
    assert completion.usage is not None and completion.usage.completion_tokens == 1


async def test_async_sdk_against_recorded_parallel_tool_calls(sse_upstream, start_proxy) -> None:
    data = (FIXTURES / "openai" / "chat-parallel-tool-calls.sse").read_bytes()

    async def send(request: web.Request, response: web.StreamResponse, rec: Recorder) -> None:
        await response.write(data)

    upstream, rec = await sse_upstream(send)
    proxy = await start_proxy(openai_provider(upstream))
    client = openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="client-key", max_retries=0)
    result = await aconsume(
        await client.chat.completions.create(
            model="up/gpt-4o", messages=[{"role": "user", "content": "weather in two cities"}], stream=True
        )
    )
    assert result["finish"] == "tool_calls"
    assert [c["name"] for c in result["calls"].values()] == ["GetWeatherArgs", "get_stock_price"]
    for call in result["calls"].values():
        assert isinstance(orjson.loads(call["arguments"]), dict)
    assert rec.requests[0]["headers"]["Authorization"] == f"Bearer {UPSTREAM_KEY}"


async def test_async_sdk_sees_mid_stream_error_as_api_error(proxy_url) -> None:
    client = openai.AsyncOpenAI(base_url=await proxy_url(), api_key="client-key", max_retries=0)
    stream = await client.chat.completions.create(
        model="mock/fail-mid", messages=[{"role": "user", "content": "one two three four"}], stream=True
    )
    seen = []
    with pytest.raises(openai.APIError, match="mock failure mid-stream"):
        async for chunk in stream:
            seen.append(chunk.choices[0].delta.content)
    assert seen == ["one", " two"]


async def test_async_sdk_sees_upstream_status_errors(proxy_url) -> None:
    client = openai.AsyncOpenAI(base_url=await proxy_url(), api_key="client-key", max_retries=0)
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model="mock/fail-429", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError, match="known providers"):
        await client.chat.completions.create(model="nowhere/x", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.APIError, match="truncated"):
        await aconsume(
            await client.chat.completions.create(
                model="mock/truncate", messages=[{"role": "user", "content": "x"}], stream=True
            )
        )


def test_sync_sdk_stream_and_non_stream(background_loop: BackgroundLoop) -> None:
    """The synchronous client, against a proxy and a fake upstream running in another thread."""
    data = (FIXTURES / "openai" / "chat-text-stream.sse").read_bytes()
    expected = "".join(
        orjson.loads(f[6:])["choices"][0]["delta"].get("content") or ""
        for f in data.split(b"\n\n")
        if f.startswith(b"data: {") and orjson.loads(f[6:])["choices"]
    )

    async def upstream_handler(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "c",
                    "object": "chat.completion",
                    "created": 1,
                    "model": "gpt-4o",
                    "choices": [
                        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "whole"}}
                    ],
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(data)
        return response

    async def setup() -> str:
        upstream_app = web.Application()
        upstream_app.router.add_post("/v1/chat/completions", upstream_handler)
        upstream = await serve_in(background_loop.servers, upstream_app)  # type: ignore[attr-defined]
        config = build(openai_provider(upstream), "<test>", {})
        proxy = await serve_in(background_loop.servers, create_app(config))  # type: ignore[attr-defined]
        return str(proxy.make_url("/v1"))

    base_url = background_loop.run(setup())
    client = openai.OpenAI(base_url=base_url, api_key="client-key", max_retries=0)
    result = consume(
        client.chat.completions.create(
            model="up/gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert result["text"] == expected and result["finish"] == "stop"
    assert result["usage"].total_tokens == 61
    completion = client.chat.completions.create(model="up/gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == "whole"
    with pytest.raises(openai.AuthenticationError, match="ANTHROPIC_API_KEY"):
        client.chat.completions.create(model="anthropic/claude-sonnet-4-5", messages=[{"role": "user", "content": "x"}])


def test_sync_sdk_stream_from_mock(background_loop: BackgroundLoop) -> None:
    async def setup() -> str:
        config = build({"providers": {"mock": {"chunk_delay_ms": 1}}}, "<test>", {})
        proxy = await serve_in(background_loop.servers, create_app(config))  # type: ignore[attr-defined]
        return str(proxy.make_url("/v1"))

    client = openai.OpenAI(base_url=background_loop.run(setup()), api_key="k", max_retries=0)
    with client.chat.completions.create(
        model="mock/echo", messages=[{"role": "user", "content": "sync works"}], stream=True
    ) as stream:
        assert consume(stream)["text"] == "sync works"
    asyncio.get_event_loop_policy()  # the sync test leaves no loop of its own behind
