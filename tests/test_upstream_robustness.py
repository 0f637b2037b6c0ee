"""Upstream robustness (issue 10, "Bounded resources"): through the proxy, against real fake
upstreams on 127.0.0.1 speaking each provider's wire format."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp import web

from proxy.protocols.gemini.stream import GeminiStream
from proxy.protocols.openai_chat.encode import ChatEncoder
from tests.conftest import UPSTREAM_KEY
from tests.support import CTX, FIXTURES, assert_same_every_split, splits
from tests.test_gemini import load as gemini_load

CHAT = {"model": "up/gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


async def post(url: Any, body: dict[str, Any], **kw: Any) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session, session.post(url, data=orjson.dumps(body), **kw) as resp:
        return resp.status, {k.title(): v for k, v in resp.headers.items()}, await resp.read()


def error_of(body: bytes) -> dict[str, Any]:
    error: dict[str, Any] = orjson.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


# --- Retry-After ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "path", "body"),
    [
        ("openai", "/v1/chat/completions", {"error": {"message": "slow down", "type": "rate_limit_error"}}),
        ("anthropic", "/v1/messages", {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}),
    ],
)
@pytest.mark.parametrize("status", [429, 503])
async def test_upstream_retry_after_reaches_the_client(
    aiohttp_server: Any, start_proxy: Any, kind: str, path: str, body: dict[str, Any], status: int
) -> None:
    async def limited(request: web.Request) -> web.Response:
        return web.json_response(body, status=status, headers={"Retry-After": "7"})

    app = web.Application()
    app.router.add_post(path, limited)
    upstream = await aiohttp_server(app)
    base = str(upstream.make_url("/v1" if kind == "openai" else ""))
    proxy = await start_proxy({"providers": {"up": {"kind": kind, "base_url": base, "api_key": UPSTREAM_KEY}}})
    client = openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="client", max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="up/m", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == status
    assert caught.value.response.headers["Retry-After"] == "7"


# --- Gemini: a finished answer ends the stream, not EOF ----------------------------------------

USAGE_CTX = replace(CTX, include_usage=True)


@pytest.mark.parametrize("case", ["max-tokens", "thinking-text", "gemini-text", "usage-after-finish"])
def test_gemini_stream_is_done_once_the_answer_is_whole(case: str) -> None:
    """Done within ``feed`` (whatever the reads), so the relay ends the stream without EOF."""
    data = gemini_load(case)
    expected = (FIXTURES / "gemini" / f"{case}.expected").read_bytes()
    for name, parts in splits(data):
        translator = GeminiStream(ChatEncoder(USAGE_CTX), USAGE_CTX)
        out = b"".join(translator.feed(part) for part in parts)
        assert translator.done, name
        assert out == expected and translator.finish() == b"", name


def test_gemini_answer_with_its_final_usage_ignores_what_follows() -> None:
    data = gemini_load("max-tokens") + b'{\n  "error": {"code": 503, "message": "late"}\n}\n' + b"data: junk\r\n\r\n"
    expected = (FIXTURES / "gemini" / "max-tokens.expected").read_bytes()
    assert assert_same_every_split(lambda: GeminiStream(ChatEncoder(USAGE_CTX), USAGE_CTX), data) == expected


def test_gemini_finish_without_final_usage_waits_for_the_next_event() -> None:
    data = gemini_load("usage-after-finish")
    translator = GeminiStream(ChatEncoder(USAGE_CTX), USAGE_CTX)
    first = translator.feed(data[: data.index(b"data:", 1)])
    assert b'"finish_reason":"stop"' in first and not translator.done


async def test_gemini_upstream_keeping_the_connection_open_after_the_answer(
    aiohttp_server: Any, start_proxy: Any
) -> None:
    data = gemini_load("max-tokens")

    async def open_ended(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(data)
        await asyncio.sleep(30)  # the answer is whole, the connection stays open
        return response

    app = web.Application()
    app.router.add_post("/v1beta/models/{tail}", open_ended)
    upstream = await aiohttp_server(app)
    provider = {"kind": "gemini", "base_url": str(upstream.make_url("")), "api_key": UPSTREAM_KEY}
    proxy = await start_proxy({"providers": {"up": {**provider, "idle_timeout_s": 0.3}}})
    client = openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="client", max_retries=0)
    stream = await client.chat.completions.create(
        model="up/gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text, finish = "", None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    assert text == "The history of the Roman Empire spans" and finish == "length"
