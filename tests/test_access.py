"""Access keys: who may call, which models, how much (real sockets, the real openai SDK)."""

from __future__ import annotations

import asyncio
import hmac
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from proxy.access.gate import Gate
from proxy.config import ConfigError, build
from proxy.observability.record import RequestRecord
from proxy.pipeline import STATE

ALICE, BOB = "sk-alice-0123456789abcdef", "sk-bob-fedcba9876543210"
ENV = {"PROXY_API_KEYS": f"alice:{ALICE},bob:{BOB}"}
MOCK = {"providers": {"mock": {"chunk_delay_ms": 0}}}
HELLO = [{"role": "user", "content": "hello there"}]


def config(**access: Any) -> dict[str, Any]:
    return (
        {"server": {"api_keys_env": "PROXY_API_KEYS"}, **MOCK, "access": {"keys": access}}
        if access
        else {
            "server": {"api_keys_env": "PROXY_API_KEYS"},
            **MOCK,
        }
    )


async def proxy_with(start_proxy: Any, data: dict[str, Any]) -> tuple[Any, list[RequestRecord]]:
    server = await start_proxy(data, ENV)
    records: list[RequestRecord] = []
    server.app[STATE].records.sinks.append(records.append)
    return server, records


def client(server: Any, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key=key, max_retries=0)


async def raw(server: Any, method: str, path: str, headers: dict[str, str], body: Any = None) -> tuple[int, Any, Any]:
    data = None if body is None else orjson.dumps(body)
    headers = {"Content-Type": "application/json", **headers}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, server.make_url(path), data=data, headers=headers) as r,
    ):
        return r.status, r.headers, orjson.loads(await r.read())


# -- configuration ----------------------------------------------------------------------------


def test_keys_come_from_the_variable_with_optional_names() -> None:
    cfg = build({"server": {"api_keys_env": "K"}}, "proxy.toml", {"K": f" alice:{ALICE} , {BOB} ,"})
    names = [k.name for k in cfg.access.keys]
    assert names[0] == "alice" and names[1].startswith("key-") and len(names[1]) == 12
    assert [k.secret for k in cfg.access.keys] == [ALICE, BOB]
    assert ALICE not in repr(cfg) and BOB not in repr(cfg)


def test_keys_come_from_a_file_with_comments(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# team keys\nalice:{ALICE}\n\n{BOB}\n", encoding="utf-8")
    cfg = build({"server": {"api_keys_file": str(path)}}, "proxy.toml", {})
    assert [k.secret for k in cfg.access.keys] == [ALICE, BOB]


@pytest.mark.parametrize(
    ("data", "env", "needle"),
    [
        ({"server": {"api_keys_env": "K"}}, {}, "K, which is not set"),
        ({"server": {"api_keys_file": "/nonexistent/keys"}}, {}, "cannot read api_keys_file"),
        ({"server": {"api_keys_env": "K"}}, {"K": "a:x1234567,a:y1234567"}, "used twice: a"),
        ({"server": {"api_keys_env": "K"}, "access": {"keys": {"carol": {}}}}, {"K": "a:x1234567"}, "'carol'"),
        ({"access": {"keys": {"carol": {}}}}, {}, "set [server] api_keys_env"),
        ({"server": {"api_keys_env": "K"}, "access": {"keys": {"a": {"rpm": 5}}}}, {"K": "a:x"}, "unknown key 'rpm'"),
        (
            {"server": {"api_keys_env": "K"}, "access": {"keys": {"a": {"requests_per_minute": 0}}}},
            {"K": "a:x"},
            "positive integer",
        ),
        ({"access": {"limits": {}}}, {}, "[access]: unknown key 'limits'"),
    ],
)
def test_access_config_is_strict(data: dict[str, Any], env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        build(data, "proxy.toml", env)
    assert needle in str(info.value) and str(info.value).startswith("proxy.toml: ")


def test_every_key_is_compared_whatever_matched(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    gate = Gate(build(config(), "t", ENV))
    assert gate.authenticate({"Authorization": f"Bearer {ALICE}"}).name == "alice"
    assert len(calls) == 2


# -- authentication -----------------------------------------------------------------------------


async def test_without_a_key_every_v1_route_is_401_in_openai_shape(start_proxy: Any) -> None:
    server, records = await proxy_with(start_proxy, config())
    with pytest.raises(openai.AuthenticationError) as info:
        await client(server, "sk-wrong-key-000000").chat.completions.create(model="mock/echo", messages=HELLO)
    assert info.value.status_code == 401
    assert info.value.body["code"] == "invalid_api_key"  # type: ignore[index]
    assert records[-1].outcome == "rejected" and records[-1].key_name is None and records[-1].status == 401
    for method, path in [("GET", "/v1/models"), ("GET", "/models"), ("POST", "/chat/completions")]:
        status, _, body = await raw(server, method, path, {}, {"model": "mock/echo", "messages": HELLO})
        assert status == 401 and set(body["error"]) == {"message", "type", "param", "code"}
    status, _, _ = await raw(server, "GET", "/healthz", {})
    assert status == 200


async def test_bearer_and_x_api_key_are_both_accepted_and_the_name_is_recorded(start_proxy: Any) -> None:
    server, records = await proxy_with(start_proxy, config())
    answer = await client(server, ALICE).chat.completions.create(model="mock/echo", messages=HELLO)
    assert answer.choices[0].message.content
    assert records[-1].key_name == "alice"
    status, _, _ = await raw(
        server, "POST", "/v1/chat/completions", {"x-api-key": BOB}, {"model": "mock/echo", "messages": HELLO}
    )
    assert status == 200 and records[-1].key_name == "bob"
    status, _, _ = await raw(server, "GET", "/v1/models", {"x-api-key": BOB})
    assert status == 200
    assert all(ALICE not in repr(r) and BOB not in repr(r) for r in records)


# -- per-key limits -----------------------------------------------------------------------------


async def test_a_model_outside_allowed_models_is_403(start_proxy: Any) -> None:
    data = config(alice={"allowed_models": ["mock/e*"]})
    data["aliases"] = {"fast": "mock/echo", "other": "mock/other"}
    server, _ = await proxy_with(start_proxy, data)
    alice = client(server, ALICE)
    await alice.chat.completions.create(model="mock/echo", messages=HELLO)
    await alice.chat.completions.create(model="fast", messages=HELLO)  # an alias of an allowed model
    for model in ("mock/other", "other"):
        with pytest.raises(openai.PermissionDeniedError) as info:
            await alice.chat.completions.create(model=model, messages=HELLO)
        assert info.value.body["code"] == "model_not_allowed"  # type: ignore[index]
    await client(server, BOB).chat.completions.create(model="mock/other", messages=HELLO)  # bob has no list


async def test_requests_per_minute_is_429_with_retry_after(start_proxy: Any) -> None:
    server, _ = await proxy_with(start_proxy, config(alice={"requests_per_minute": 2}))
    alice = client(server, ALICE)
    for _ in range(2):
        await alice.chat.completions.create(model="mock/echo", messages=HELLO)
    with pytest.raises(openai.RateLimitError) as info:
        await alice.chat.completions.create(model="mock/echo", messages=HELLO)
    assert 1 <= int(info.value.response.headers["Retry-After"]) <= 60
    await client(server, BOB).chat.completions.create(model="mock/echo", messages=HELLO)  # bob is not limited


async def test_tokens_per_minute_counts_the_usage_of_finished_requests(start_proxy: Any) -> None:
    server, records = await proxy_with(start_proxy, config(alice={"tokens_per_minute": 4}))
    alice = client(server, ALICE)
    await alice.chat.completions.create(model="mock/echo", messages=HELLO)
    usage = records[-1].usage
    assert usage is not None and usage.input_tokens + usage.output_tokens >= 4
    with pytest.raises(openai.RateLimitError) as info:
        await alice.chat.completions.create(model="mock/echo", messages=HELLO)
    assert "tokens per minute" in info.value.message
    assert int(info.value.response.headers["Retry-After"]) >= 1


async def test_concurrent_streams_are_capped_per_key(start_proxy: Any) -> None:
    data = config(alice={"max_concurrent_streams": 1})
    data["providers"] = {"mock": {"chunk_delay_ms": 20, "text": "one two three four five six seven eight"}}
    server, _ = await proxy_with(start_proxy, data)
    alice = client(server, ALICE)
    first = await alice.chat.completions.create(model="mock/echo", messages=HELLO, stream=True)
    with pytest.raises(openai.RateLimitError) as info:
        await alice.chat.completions.create(model="mock/echo", messages=HELLO, stream=True)
    assert "max_concurrent_streams" in info.value.message
    await alice.chat.completions.create(model="mock/echo", messages=HELLO)  # a whole answer is no stream
    await client(server, BOB).chat.completions.create(model="mock/echo", messages=HELLO, stream=True)
    _ = [chunk async for chunk in first]
    await asyncio.sleep(0)  # the slot is released when the handler returns
    second = await alice.chat.completions.create(model="mock/echo", messages=HELLO, stream=True)
    assert [chunk async for chunk in second]
