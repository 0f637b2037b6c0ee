"""Routing policies: pure routing decisions, and fallbacks through real failing upstreams."""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp import web

from proxy.config import ConfigError, HealthRule, build
from proxy.routing import Router, rendezvous_order, weighted_order
from tests.conftest import UPSTREAM_KEY
from tests.support import refusing_port

MESSAGES = [{"role": "user", "content": "hi"}]


def within_3_sigma(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 3 * math.sqrt(n * p * (1 - p))


# -- pure routing decisions ----------------------------------------------------------------------


def test_weighted_random_order_follows_weights() -> None:
    rng = random.Random(7)
    members = [("a/x", 70.0), ("b/y", 30.0)]
    firsts = Counter(weighted_order(members, rng)[0] for _ in range(4000))
    assert within_3_sigma(firsts["a/x"], 4000, 0.7)


def test_sticky_keys_follow_weights_and_never_move_while_healthy() -> None:
    members = [("a/x", 70.0), ("b/y", 20.0), ("c/z", 10.0)]
    firsts = {f"user-{i}": rendezvous_order(members, f"user-{i}")[0] for i in range(5000)}
    counts = Counter(firsts.values())
    for name, weight in members:
        assert within_3_sigma(counts[name], 5000, weight / 100), counts
    assert all(rendezvous_order(members, key)[0] == first for key, first in list(firsts.items())[:500])
    # Take b out: only b's users move, and they spread over the rest by weight.
    without_b = [m for m in members if m[0] != "b/y"]
    moved = {key for key, first in firsts.items() if rendezvous_order(without_b, key)[0] != first}
    assert moved == {key for key, first in firsts.items() if first == "b/y"}


def test_unhealthy_member_is_skipped_for_its_cooldown_then_tried_again() -> None:
    now = [1000.0]
    config = build({"providers": {"mock": {}}}, "<t>", {})
    router = Router(config, clock=lambda: now[0])
    policy = HealthRule(failure_threshold=2, cooldown_s=30)
    members = [("mock/a", 50.0), ("mock/b", 50.0)]
    key = next(f"k{i}" for i in range(100) if rendezvous_order(members, f"k{i}")[0] == "mock/a")
    assert router.order_members(members, key, policy)[0] == "mock/a"
    target = router.target("mock/a")
    from proxy.errors import UpstreamError

    router.record(target, UpstreamError("down", status=500))
    assert router.order_members(members, key, policy)[0] == "mock/a"  # one failure is not enough
    router.record(target, UpstreamError("down", status=500))
    assert router.order_members(members, key, policy) == ["mock/b", "mock/a"]
    now[0] += 31
    assert router.order_members(members, key, policy)[0] == "mock/a"  # cooled down: tried again
    router.record(target, None)
    assert router.healthy("mock/a", policy)


def test_several_keys_rotate_and_a_rate_limited_key_is_skipped() -> None:
    now = [0.0]
    config = build(
        {"providers": {"up": {"kind": "openai", "base_url": "http://h/v1", "api_keys": ["k1", "k2", "k3"]}}}, "<t>", {}
    )
    router = Router(config, clock=lambda: now[0])
    target = router.target("up/m")
    assert [router.with_key(target).provider.api_key for _ in range(4)] == ["k1", "k2", "k3", "k1"]
    router.key_limited(Target_with(router, target, "k2"), retry_after=10)
    assert [router.with_key(target).provider.api_key for _ in range(3)] == ["k3", "k1", "k3"]
    now[0] = 11
    assert {router.with_key(target).provider.api_key for _ in range(3)} == {"k1", "k2", "k3"}


def Target_with(router: Router, target: Any, key: str) -> Any:
    from proxy.routing import Target

    return Target(target.provider.with_key(key), target.model, target.label)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"aliases": {"a": "b", "b": "a"}}, "cycle: a -> b -> a"),
        (
            {
                "policies": {
                    "p": {"type": "fallback", "models": ["policy/q"]},
                    "q": {"type": "loadbalance", "models": {"policy/p": 1}},
                }
            },
            "cycle",
        ),
        ({"policies": {"p": {"type": "fallback", "models": ["nowhere/x"]}}}, "unknown provider 'nowhere'"),
        ({"policies": {"p": {"type": "fallback", "models": ["policy/none"]}}}, "unknown policy 'policy/none'"),
        ({"policies": {"p": {"type": "spread", "models": ["mock/x"]}}}, "key 'type'"),
        ({"policies": {"p": {"type": "loadbalance", "models": {"mock/x": -1}}}}, "positive number"),
        ({"policies": {"p": {"type": "fallback", "models": ["mock/x"], "retries": "2"}}}, "non-negative integer"),
    ],
)
def test_bad_policy_configs_are_rejected_with_a_clear_message(data: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match="<t>") as info:
        build(data, "<t>", {})
    assert needle in str(info.value)


def test_nested_policies_and_aliases_resolve() -> None:
    config = build(
        {
            "policies": {
                "inner": {"type": "fallback", "models": ["mock/a", "mock/b"]},
                "outer": {"type": "loadbalance", "models": {"policy/inner": 1, "mock/c": 1}, "sticky_key": "user"},
            },
            "aliases": {"fast": "policy/outer"},
        },
        "<t>",
        {},
    )
    router = Router(config)
    labels = [step.target.label for step in router._steps("fast", {"user": "u1"})]
    assert sorted(labels) == ["mock/a", "mock/b", "mock/c"]
    assert labels == [step.target.label for step in router._steps("fast", {"user": "u1"})]  # sticky


# -- fallbacks through real failing upstreams ------------------------------------------------------


def ok_stream(label: str) -> bytes:
    chunks = [
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": f"{label}-upstream",
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": f"from {label}"}, "finish_reason": None}
            ],
        },
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": f"{label}-upstream",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        },
    ]
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


async def upstream(aiohttp_server: Any, behaviour: str, calls: list[str], label: str) -> str:
    """A fake OpenAI upstream that fails (or succeeds) in one way; returns its base URL."""

    async def handler(request: web.Request) -> web.StreamResponse:
        calls.append(f"{label}:{request.headers.get('Authorization', '')[-2:]}")
        if behaviour.startswith("status"):
            code = int(behaviour[6:])
            headers = {"Retry-After": "0"} if code == 429 else {}
            return web.json_response(
                {"error": {"message": f"{label} failed {code}", "type": "x"}}, status=code, headers=headers
            )
        if behaviour == "hang":
            await asyncio.sleep(30)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if behaviour == "die-before-first-frame":
            await response.write(b": processing\n\n")
            return response
        if behaviour == "error-event-first":
            await response.write(b'data: {"error":{"message":"overloaded","type":"server_error"}}\n\n')
            return response
        data = ok_stream(label)
        if behaviour == "ok" and not (await request.json()).get("stream"):
            completion = {
                "id": "c",
                "object": "chat.completion",
                "created": 1,
                "model": f"{label}-upstream",
                "choices": [
                    {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": f"from {label}"}}
                ],
            }
            await response.write(orjson.dumps(completion))
            return response
        if behaviour == "die-after-first-frame":
            await response.write(data[: data.index(b"\n\n") + 2])
            await asyncio.sleep(0.05)
            assert request.transport is not None
            request.transport.abort()
            return response
        if behaviour == "slow-first-token":
            await asyncio.sleep(0.3)
        await response.write(data)
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    server = await aiohttp_server(app)
    return str(server.make_url("/v1"))


def refused_url() -> str:
    return f"http://127.0.0.1:{refusing_port()}/v1"


async def chain_proxy(
    aiohttp_server: Any, start_proxy: Any, behaviours: list[str], calls: list[str], **policy: Any
) -> Any:
    providers = {}
    for i, behaviour in enumerate(behaviours):
        url = refused_url() if behaviour == "refuse" else await upstream(aiohttp_server, behaviour, calls, f"u{i}")
        providers[f"u{i}"] = {
            "kind": "openai",
            "base_url": url,
            "api_key": UPSTREAM_KEY + f"{i:02d}",
            "first_byte_timeout_s": 0.3,
        }
    data = {
        "providers": providers,
        "policies": {
            "chain": {
                "type": "fallback",
                "models": [f"u{i}/m" for i in range(len(behaviours))],
                "backoff_ms": [1],
                **policy,
            }
        },
        "aliases": {"reliable": "policy/chain"},
    }
    return await start_proxy(data)


async def test_fallback_through_every_failure_before_first_byte(aiohttp_server, start_proxy) -> None:
    calls: list[str] = []
    behaviours = [
        "refuse",
        "status429",
        "status500",
        "status529",
        "hang",
        "die-before-first-frame",
        "error-event-first",
        "ok",
    ]
    proxy = await chain_proxy(aiohttp_server, start_proxy, behaviours, calls)
    client = openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="client", max_retries=0)
    raw = await client.chat.completions.with_raw_response.create(model="reliable", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in raw.parse()]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "from u7"  # exactly once: nothing from a failed attempt reached the client
    assert raw.headers["X-Proxy-Model"] == "u7/m"
    assert raw.headers["X-Proxy-Attempts"] == "8"
    assert chunks[0].model == "u7-upstream"  # the upstream's model field is kept
    assert [c.split(":")[0] for c in calls] == ["u1", "u2", "u3", "u4", "u5", "u6", "u7"]


async def test_retries_per_model_before_moving_on(aiohttp_server, start_proxy) -> None:
    calls: list[str] = []
    proxy = await chain_proxy(aiohttp_server, start_proxy, ["status503", "ok"], calls, retries=2)
    client = openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="client", max_retries=0)
    raw = await client.chat.completions.with_raw_response.create(model="policy/chain", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == "from u1"
    assert [c.split(":")[0] for c in calls] == ["u0", "u0", "u0", "u1"]
    assert raw.headers["X-Proxy-Attempts"] == "4"


async def test_no_fallback_after_the_client_received_bytes(aiohttp_server, start_proxy) -> None:
    calls: list[str] = []
    proxy = await chain_proxy(aiohttp_server, start_proxy, ["die-after-first-frame", "ok"], calls)
    client = openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="client", max_retries=0)
    stream = await client.chat.completions.create(model="policy/chain", messages=MESSAGES, stream=True)
    seen = []
    with pytest.raises(openai.APIError):
        async for chunk in stream:
            seen.append(chunk.choices[0].delta.content)
    assert seen == ["from u0"]
    assert [c.split(":")[0] for c in calls] == ["u0"]


async def test_client_mistake_is_returned_and_never_moves_on(aiohttp_server, start_proxy) -> None:
    calls: list[str] = []
    proxy = await chain_proxy(aiohttp_server, start_proxy, ["status400", "ok"], calls)
    client = openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="client", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="u0 failed 400"):
        await client.chat.completions.create(model="policy/chain", messages=MESSAGES, stream=True)
    assert [c.split(":")[0] for c in calls] == ["u0"]


async def test_chain_mixes_provider_kinds(aiohttp_server, start_proxy) -> None:
    calls: list[str] = []
    url = await upstream(aiohttp_server, "ok", calls, "u0")
    proxy = await start_proxy(
        {
            "providers": {
                "u0": {"kind": "openai", "base_url": url, "api_key": UPSTREAM_KEY},
                "mock": {"chunk_delay_ms": 0},
            },
            "policies": {"mixed": {"type": "fallback", "models": ["mock/fail-503", "u0/m"], "backoff_ms": [1]}},
        }
    )
    client = openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="client", max_retries=0)
    completion = await client.chat.completions.create(model="policy/mixed", messages=MESSAGES)
    assert completion.choices[0].message.content == "from u0"
    assert [c.split(":")[0] for c in calls] == ["u0"]


async def test_rate_limited_key_is_skipped_on_retry(aiohttp_server, start_proxy) -> None:
    seen_keys: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        key = request.headers["Authorization"].removeprefix("Bearer ")
        seen_keys.append(key)
        if key == "key-one":
            return web.json_response({"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "60"})
        return web.json_response(
            {
                "id": "c",
                "object": "chat.completion",
                "created": 1,
                "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": key}}],
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    server = await aiohttp_server(app)
    proxy = await start_proxy(
        {
            "providers": {
                "up": {"kind": "openai", "base_url": str(server.make_url("/v1")), "api_keys": ["key-one", "key-two"]}
            },
            "policies": {"p": {"type": "fallback", "models": ["up/m"], "retries": 1, "backoff_ms": [1]}},
        }
    )
    client = openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="client", max_retries=0)
    first = await client.chat.completions.create(model="policy/p", messages=MESSAGES)
    second = await client.chat.completions.create(model="policy/p", messages=MESSAGES)
    assert seen_keys[:2] == ["key-one", "key-two"]  # the 429 was retried with the other key
    assert first.choices[0].message.content == second.choices[0].message.content == "key-two"
    assert seen_keys[2:] == ["key-two"]  # key-one rests until its Retry-After has passed


async def test_keepalive_comments_while_waiting_for_first_token(aiohttp_server, start_proxy) -> None:
    calls: list[str] = []
    url = await upstream(aiohttp_server, "slow-first-token", calls, "u0")
    proxy = await start_proxy(
        {
            "server": {"keepalive_s": 0.05},
            "providers": {"u0": {"kind": "openai", "base_url": url, "api_key": UPSTREAM_KEY}},
        }
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            proxy.make_url("/v1/chat/completions"), json={"model": "u0/m", "messages": MESSAGES, "stream": True}
        ) as resp,
    ):
        body = await resp.read()
    assert body.startswith(b": keep-alive\n\n")
    assert body.endswith(ok_stream("u0"))
    client = openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="client", max_retries=0)
    stream = await client.chat.completions.create(model="u0/m", messages=MESSAGES, stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in stream]) == "from u0"


async def test_models_lists_policies_and_aliases(start_proxy) -> None:
    proxy = await start_proxy(
        {"policies": {"p": {"type": "fallback", "models": ["mock/a"]}}, "aliases": {"fast": "policy/p"}}
    )
    async with aiohttp.ClientSession() as session, session.get(proxy.make_url("/v1/models")) as resp:
        ids = {m["id"] for m in (await resp.json())["data"]}
    assert {"policy/p", "fast", "mock/echo"} <= ids
