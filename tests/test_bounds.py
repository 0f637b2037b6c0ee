"""Request bodies within bounds: the body budget (503 + Retry-After), the body deadline (408),
JSON nested too deeply (400 before any provider). Raw sockets where a client must stall."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.frontdoors.body import BodyBudget
from proxy.protocols.depth import MAX_DEPTH, too_deep

from .conftest import Recorder, frames, openai_provider

StartProxy = Callable[..., Awaitable[TestServer]]
JSON = {"Content-Type": "application/json"}
CHAT = "/v1/chat/completions"


def chat(content: str = "hi", model: str = "mock/echo", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def deep_text(depth: int) -> bytes:
    """``depth`` levels of JSON arrays as text (orjson cannot write more than 254)."""
    return b"[" * depth + b"1" + b"]" * depth


def nested(depth: int) -> Any:
    """A JSON value with ``depth`` levels of containers, alternating objects and arrays."""
    value: Any = 1
    for i in range(depth):
        value = {"a": value} if i % 2 else [value]
    return value


async def stalled_body(server: TestServer, declared: int, sent: bytes) -> tuple[asyncio.StreamReader, Any]:
    """A raw connection that sent its headers (``Content-Length: declared``) and ``sent``, then stalls."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    head = f"POST {CHAT} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {declared}\r\n\r\n"
    writer.write(head.encode() + sent)
    await writer.drain()
    return reader, writer


async def response_of(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Status, headers and JSON body of one HTTP/1.1 response with a Content-Length."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if line)}
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10)
    return status, headers, orjson.loads(body)


# The budget ------------------------------------------------------------------------------------


def test_budget_refuses_what_does_not_fit_but_never_the_only_body() -> None:
    budget = BodyBudget(100)
    assert budget.take(150)  # the only body: admitted whatever its size
    assert not budget.take(1)
    budget.give(150)
    assert budget.take(60) and budget.take(40)
    assert not budget.take(1)
    budget.give(40)
    assert budget.take(40)


async def test_full_budget_answers_503_with_retry_after_then_recovers(start_proxy: StartProxy) -> None:
    proxy = await start_proxy({"server": {"max_inflight_body_bytes": 1000, "max_body_bytes": 4000}})
    body = orjson.dumps(chat("x" * 600))
    reader, writer = await stalled_body(proxy, len(body), body[:100])  # holds len(body) of the budget
    await asyncio.sleep(0.05)
    async with aiohttp.ClientSession() as session:
        async with session.post(proxy.make_url(CHAT), data=body, headers={"Content-Type": "application/json"}) as r:
            assert r.status == 503, await r.text()
            assert r.headers["Retry-After"] == "1"
            error = (await r.json())["error"]
            assert error["code"] == "server_busy" and error["type"] == "api_error" and error["param"] is None

        # A chunked body (no Content-Length) reserves as it arrives: refused too.
        async def chunked() -> Any:
            yield body

        async with session.post(proxy.make_url(CHAT), data=chunked(), headers=JSON) as r:
            assert r.status == 503
        writer.write(body[100:])  # the stalled body completes: its bytes are given back
        await writer.drain()
        status, _, _ = await response_of(reader)
        assert status == 200
        async with session.post(proxy.make_url(CHAT), data=body, headers={"Content-Type": "application/json"}) as r:
            assert r.status == 200, await r.text()
    writer.close()


async def test_a_disconnected_reader_gives_its_budget_back(start_proxy: StartProxy) -> None:
    proxy = await start_proxy({"server": {"max_inflight_body_bytes": 1000, "max_body_bytes": 4000}})
    body = orjson.dumps(chat("x" * 600))
    _, writer = await stalled_body(proxy, len(body), body[:100])
    await asyncio.sleep(0.05)
    writer.close()
    await asyncio.sleep(0.1)
    async with aiohttp.ClientSession() as session:
        r = await session.post(proxy.make_url(CHAT), data=body, headers={"Content-Type": "application/json"})
        assert r.status == 200, await r.text()


async def test_chunked_body_over_the_cap_is_413(start_proxy: StartProxy) -> None:
    proxy = await start_proxy({"server": {"max_body_bytes": 1000}})

    async def chunked() -> Any:
        for _ in range(5):
            yield b" " * 400

    async with (
        aiohttp.ClientSession() as session,
        session.post(proxy.make_url(CHAT), data=chunked(), headers=JSON) as r,
    ):
        assert r.status == 413
        assert "exceeds the limit of 1000 bytes" in (await r.json())["error"]["message"]


# The body deadline -----------------------------------------------------------------------------


async def test_a_body_that_stalls_gets_408_in_the_openai_shape(start_proxy: StartProxy) -> None:
    proxy = await start_proxy({"server": {"body_timeout_s": 0.3}})
    body = orjson.dumps(chat())
    reader, writer = await stalled_body(proxy, len(body), body[:10])
    status, _, payload = await response_of(reader)
    assert status == 408
    assert payload["error"]["code"] == "request_timeout" and "0.3 s" in payload["error"]["message"]
    writer.close()


# Nesting ---------------------------------------------------------------------------------------


def test_too_deep_counts_container_levels() -> None:
    assert not too_deep(nested(MAX_DEPTH)) and too_deep(nested(MAX_DEPTH + 1))
    assert not too_deep("x" * 10) and not too_deep({}) and not too_deep(nested(3), 3) and too_deep(nested(4), 3)
    wide = {"a": [nested(MAX_DEPTH - 2) for _ in range(50)], "b": nested(MAX_DEPTH - 1)}
    assert too_deep(wide) is False and too_deep({"w": wide}) is True


@pytest.mark.parametrize("depth", [MAX_DEPTH, 300, 1000])
async def test_deep_json_is_a_400_before_any_provider(
    start_proxy: StartProxy,
    sse_upstream: Callable[..., Awaitable[tuple[TestServer, Recorder]]],
    depth: int,
) -> None:
    async def answer(_r: web.Request, response: web.StreamResponse, _rec: Recorder) -> None:
        for frame in frames({"choices": [{"index": 0, "delta": {"content": "ok"}}]}, "[DONE]"):
            await response.write(frame)

    upstream, recorder = await sse_upstream(answer)
    config = openai_provider(upstream)
    config["providers"]["ant"] = {"kind": "anthropic", "base_url": str(upstream.make_url("/")), "api_key": "k"}
    config["providers"]["gem"] = {"kind": "gemini", "base_url": str(upstream.make_url("/")), "api_key": "k"}
    proxy = await start_proxy(config)
    async with aiohttp.ClientSession() as session:
        for model in ("up/m", "ant/m", "gem/m", "mock/echo"):
            # The client body's own depth: the metadata value sits two levels down.
            body = orjson.dumps(chat(model=model, stream=True, metadata={"deep": "DEEP"}))
            body = body.replace(b'"DEEP"', deep_text(depth - 2))
            async with session.post(proxy.make_url(CHAT), data=body, headers=JSON) as r:
                text = await r.text()
                if depth <= MAX_DEPTH:
                    assert r.status != 400 or "nested" not in text, text
                    continue
                assert r.status == 400, (model, text)
                error = orjson.loads(text)["error"]
                assert error["param"] is None and "nested too deeply" in error["message"]
    if depth > MAX_DEPTH:
        assert recorder.calls == 0


@pytest.mark.parametrize("kind", ["anthropic", "gemini"])
async def test_deep_json_inside_tool_call_arguments_is_a_400(
    start_proxy: StartProxy, sse_upstream: Callable[..., Awaitable[tuple[TestServer, Recorder]]], kind: str
) -> None:
    """Arguments are a JSON string the translating mappers parse and write again."""

    async def never(_r: web.Request, _response: web.StreamResponse, _rec: Recorder) -> None:
        raise AssertionError("the upstream must not be called")

    upstream, recorder = await sse_upstream(never)
    proxy = await start_proxy(
        {"providers": {"p": {"kind": kind, "base_url": str(upstream.make_url("/")), "api_key": "k"}}}
    )
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "ARGS"}}
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]
    body = orjson.dumps({"model": "p/m", "messages": messages})
    args = b'{"a":' + deep_text(300) + b"}"
    body = body.replace(b'"ARGS"', orjson.dumps(args.decode()))
    async with aiohttp.ClientSession() as session:
        r = await session.post(proxy.make_url(CHAT), data=body, headers=JSON)
        text = await r.text()
    assert r.status == 400, text
    error = orjson.loads(text)["error"]
    assert "nested too deeply" in error["message"] and error["param"] == "messages[1].tool_calls[0].function.arguments"
    assert recorder.calls == 0


async def test_deep_json_tool_result_goes_to_gemini_as_text(
    start_proxy: StartProxy, sse_upstream: Callable[..., Awaitable[tuple[TestServer, Recorder]]]
) -> None:
    async def answer(_r: web.Request, response: web.StreamResponse, _rec: Recorder) -> None:
        await response.write(
            b'data: {"candidates":[{"content":{"parts":[{"text":"ok"}]},"finishReason":"STOP"}]}\r\n\r\n'
        )

    upstream, recorder = await sse_upstream(answer, path="/v1beta/models/m:streamGenerateContent")
    proxy = await start_proxy(
        {"providers": {"g": {"kind": "gemini", "base_url": str(upstream.make_url("/")), "api_key": "k"}}}
    )
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "RESULT"},
    ]
    body = orjson.dumps({"model": "g/m", "messages": messages, "stream": True})
    result = (b'{"a":' + deep_text(300) + b"}").decode()
    body = body.replace(b'"RESULT"', orjson.dumps(result))
    async with aiohttp.ClientSession() as session:
        r = await session.post(proxy.make_url(CHAT), data=body, headers=JSON)
        text = await r.text()
    assert r.status == 200, text
    sent = recorder.requests[0]["body"]["contents"][2]["parts"][0]["functionResponse"]["response"]
    assert sent == {"content": result}
