"""Browser defences: Content-Type, Origin and CORS, and Host on loopback binds (DNS rebinding)."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest

MOCK = {"providers": {"mock": {"chunk_delay_ms": 0}}}
CHAT = orjson.dumps({"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]})
STREAM = orjson.dumps({"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}], "stream": True})
JSON = {"Content-Type": "application/json"}


async def send(
    server: Any, method: str, path: str, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, Any, bytes]:
    async with (
        aiohttp.ClientSession(skip_auto_headers=("Content-Type",)) as session,
        session.request(method, server.make_url(path), data=body, headers=headers) as resp,
    ):
        return resp.status, resp.headers, await resp.read()


def error_of(body: bytes) -> dict[str, Any]:
    error = orjson.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


async def test_a_text_plain_post_from_a_foreign_page_is_refused(start_proxy: Any) -> None:
    server = await start_proxy(MOCK)
    headers = {"Content-Type": "text/plain", "Origin": "https://evil.example"}
    status, _, body = await send(server, "POST", "/v1/chat/completions", headers, CHAT)
    assert status == 403 and "https://evil.example" in error_of(body)["message"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None]
)
async def test_a_post_must_be_json(start_proxy: Any, content_type: str | None) -> None:
    server = await start_proxy(MOCK)
    headers = {} if content_type is None else {"Content-Type": content_type}
    status, _, body = await send(server, "POST", "/v1/chat/completions", headers, CHAT)
    assert status == 415 and error_of(body)["code"] == "unsupported_media_type"
    status, _, _ = await send(
        server, "POST", "/v1/chat/completions", {"Content-Type": "application/json; charset=utf-8"}, CHAT
    )
    assert status == 200


async def test_a_foreign_origin_is_refused_even_with_json(start_proxy: Any) -> None:
    server = await start_proxy(MOCK)
    status, _, body = await send(server, "POST", "/v1/chat/completions", {**JSON, "Origin": "null"}, CHAT)
    assert status == 403 and error_of(body)["type"] == "permission_error"
    status, _, _ = await send(server, "GET", "/v1/models", {"Origin": "https://evil.example"})
    assert status == 403


async def test_an_allowed_origin_gets_preflights_and_cors_headers(start_proxy: Any) -> None:
    server = await start_proxy({**MOCK, "server": {"cors_origins": ["https://app.example"]}})
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    status, headers, _ = await send(server, "OPTIONS", "/v1/chat/completions", preflight)
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert headers["Access-Control-Allow-Headers"] == "authorization, content-type"
    assert int(headers["Access-Control-Max-Age"]) > 0
    assert "Origin" in headers["Vary"]
    status, _, _ = await send(
        server, "OPTIONS", "/v1/chat/completions", {**preflight, "Origin": "https://evil.example"}
    )
    assert status == 403
    for body in (CHAT, STREAM):  # whole answers and streams alike
        status, headers, _ = await send(
            server, "POST", "/v1/chat/completions", {**JSON, "Origin": "https://app.example"}, body
        )
        assert status == 200
        assert headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert "Origin" in headers.getall("Vary")
    status, headers, _ = await send(server, "POST", "/v1/chat/completions", JSON, CHAT)
    assert status == 200 and "Access-Control-Allow-Origin" not in headers


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8080", "192.168.1.5:80", "localhost.evil.com"])
async def test_a_foreign_host_is_refused_on_a_loopback_bind(start_proxy: Any, host: str) -> None:
    server = await start_proxy(MOCK)  # [server] host defaults to 127.0.0.1
    status, _, body = await send(server, "POST", "/v1/chat/completions", {**JSON, "Host": host}, CHAT)
    assert status == 403 and "loopback" in error_of(body)["message"]
    status, _, _ = await send(server, "GET", "/healthz", {"Host": host})
    assert status == 403


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:1234", "127.0.0.1:9", "127.0.0.2", "[::1]:8080", "app.localhost"]
)
async def test_loopback_hosts_are_accepted(start_proxy: Any, host: str) -> None:
    server = await start_proxy(MOCK)
    status, _, _ = await send(server, "POST", "/v1/chat/completions", {**JSON, "Host": host}, CHAT)
    assert status == 200


async def test_the_host_is_not_checked_on_a_public_bind(start_proxy: Any) -> None:
    server = await start_proxy({**MOCK, "server": {"host": "0.0.0.0"}})
    status, _, _ = await send(server, "POST", "/v1/chat/completions", {**JSON, "Host": "proxy.example.com"}, CHAT)
    assert status == 200
