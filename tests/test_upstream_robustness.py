"""Upstream robustness (issue 10, "Bounded resources"): through the proxy, against real fake
upstreams on 127.0.0.1 speaking each provider's wire format."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp import web

from tests.conftest import UPSTREAM_KEY

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
