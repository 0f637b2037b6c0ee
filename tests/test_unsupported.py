"""A provider's limitation (``UnsupportedByProvider``) moves a policy on; it never ends a chain.

Unit tests drive ``Attempts`` like the handler does; the end-to-end tests run the proxy with two
real fake upstreams, the first an Anthropic one whose request builder refuses ``n > 1`` (patched
in here, as providers' own refusals are added elsewhere).
"""

from __future__ import annotations

from typing import Any

import openai
import pytest
from aiohttp import web

from proxy.errors import BadRequest, ProxyError, UnsupportedByProvider
from proxy.routing import Router, classify
from tests.conftest import UPSTREAM_KEY
from tests.test_policies import upstream
from tests.test_routing import HEALTH, body, err, make, walk

UNSUPPORTED = UnsupportedByProvider("n > 1 is not supported by this provider", param="n")


def test_unsupported_is_its_own_verdict_and_other_400s_stay_final() -> None:
    assert classify(UNSUPPORTED) == "unsupported"
    assert classify(BadRequest("bad")) == "final"
    assert UNSUPPORTED.status == 400 and UNSUPPORTED.code == "unsupported_by_provider"


async def test_fallback_moves_on_without_retrying_the_unsupported_model() -> None:
    router = Router(make({"p": {"type": "fallback", "models": ["mock/a", "mock/b"], "retries": 2}}))
    tried, result = await walk(router.attempts(body("policy/p")), lambda t, n: UNSUPPORTED if n == 1 else None)
    assert tried == ["mock/a", "mock/b"] and result.label == "mock/b"


async def test_loadbalance_moves_on_to_the_next_member() -> None:
    router = Router(make({"lb": {"type": "loadbalance", "models": {"mock/a": 1, "mock/b": 1}, "retries": 1}}))
    tried, result = await walk(router.attempts(body("policy/lb")), lambda t, n: UNSUPPORTED if n == 1 else None)
    assert len(tried) == 2 and tried[0] != tried[1] and result.label == tried[1]


async def test_when_no_member_can_serve_the_client_gets_the_providers_400() -> None:
    router = Router(make({"p": {"type": "fallback", "models": ["mock/a", "mock/b"], "retries": 2}}))
    tried, result = await walk(router.attempts(body("policy/p")), lambda t, n: UNSUPPORTED)
    assert tried == ["mock/a", "mock/b"] and result is UNSUPPORTED


async def test_a_single_model_request_gets_the_providers_400() -> None:
    router = Router(make())
    tried, result = await walk(router.attempts(body("mock/a")), lambda t, n: UNSUPPORTED)
    assert tried == ["mock/a"] and result is UNSUPPORTED


async def test_a_member_that_could_serve_but_failed_reports_its_own_error() -> None:
    router = Router(make({"p": {"type": "fallback", "models": ["mock/a", "mock/b"]}}))
    tried, result = await walk(router.attempts(body("policy/p")), lambda t, n: UNSUPPORTED if n == 1 else err(503))
    assert tried == ["mock/a", "mock/b"] and isinstance(result, ProxyError) and result.status == 503


async def test_unsupported_is_no_failure_of_the_model() -> None:
    config = make({"p": {"type": "fallback", "models": ["mock/a", "mock/b"]}})
    router = Router(config)
    for _ in range(5):  # well past the failure threshold
        await walk(router.attempts(body("policy/p")), lambda t, n: UNSUPPORTED if n == 1 else None)
    assert router.healthy("mock/a", HEALTH)


# -- through the proxy ---------------------------------------------------------------------------


async def fake_anthropic(aiohttp_server: Any, calls: list[str]) -> str:
    async def handler(request: web.Request) -> web.Response:
        calls.append("anthropic")
        return web.json_response({"type": "error", "error": {"type": "api_error", "message": "unexpected"}}, status=500)

    app = web.Application()
    app.router.add_post("/v1/messages", handler)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


async def two_member_proxy(aiohttp_server: Any, start_proxy: Any, calls: list[str], second: str) -> Any:
    data = {
        "providers": {
            "anthropic": {"base_url": await fake_anthropic(aiohttp_server, calls), "api_key": UPSTREAM_KEY},
            "u1": {
                "kind": "openai",
                "base_url": await upstream(aiohttp_server, second, calls, "u1"),
                "api_key": "key-01",
            },
        },
        "policies": {
            "p": {"type": "fallback", "models": ["anthropic/claude-sonnet-4-5", "u1/m"], "retries": 2},
            "claudes": {"type": "fallback", "models": ["anthropic/claude-sonnet-4-5", "anthropic/claude-opus-4-1"]},
        },
    }
    return await start_proxy(data)


async def test_through_the_proxy_an_unsupported_member_passes_to_the_next(aiohttp_server, start_proxy) -> None:
    calls: list[str] = []
    server = await two_member_proxy(aiohttp_server, start_proxy, calls, "ok")
    client = openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="client", max_retries=0)
    raw = await client.chat.completions.with_raw_response.create(
        model="policy/p", messages=[{"role": "user", "content": "hi"}], n=2
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "from u1"
    assert raw.headers["X-Proxy-Model"] == "u1/m" and raw.headers["X-Proxy-Attempts"] == "2"
    assert calls == ["u1:01"]  # Anthropic was never called, and not retried


async def test_through_the_proxy_no_member_can_serve_is_the_providers_400(aiohttp_server, start_proxy) -> None:
    calls: list[str] = []
    server = await two_member_proxy(aiohttp_server, start_proxy, calls, "ok")
    client = openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="client", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="policy/claudes", messages=[{"role": "user", "content": "hi"}], n=2)
    assert info.value.status_code == 400
    assert info.value.code == "unsupported_by_provider" and info.value.param == "n"
    assert calls == []
