"""Routing policies end to end: fake upstreams on 127.0.0.1 failing in every way, the real proxy,
and the real ``openai`` SDK (or a raw aiohttp client where the exact bytes matter).

Every fake upstream is a path prefix on one aiohttp server (``/<name>/v1/...``) whose behaviour
is looked up per request, and every call is appended to one ordered list, so a test can assert
which upstreams were called, in which order, with which body and key."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.routing import rendezvous_order
from tests.conftest import UPSTREAM_KEY, frames
from tests.support import FIXTURES, refusing_port

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = [{"role": "user", "content": "hi"}]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-up",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def good_stream(model: str, words: tuple[str, ...] = ("Hello", " world")) -> bytes:
    parts = [chunk(model, {"role": "assistant", "content": ""})]
    parts += [chunk(model, {"content": w}) for w in words]
    parts += [chunk(model, {}, "stop"), "[DONE]"]
    return b"".join(frames(*parts))


def good_json(model: str, text: str = "Hello world") -> dict[str, Any]:
    return {
        "id": "chatcmpl-up",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }


async def until_disconnected(request: web.Request, limit_s: float = 10.0) -> None:
    """Wait until the proxy drops the connection (the handler would otherwise outlive the test)."""
    for _ in range(int(limit_s / 0.01)):
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(0.01)


async def sse_response(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    return response


# -- behaviours ----------------------------------------------------------------------------------


def ok(model: str = "upstream-model-v2", words: tuple[str, ...] = ("Hello", " world"), delay_s: float = 0.0) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("stream"):
            return web.json_response(good_json(model, "".join(words)))
        response = await sse_response(request)
        if delay_s:
            await asyncio.sleep(delay_s)
        await response.write(good_stream(model, words))
        return response

    return handle


def status(http: int, headers: dict[str, str] | None = None, **error: Any) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        payload = {"message": f"fake upstream says {http}", "type": "upstream_test", "param": None, "code": None}
        return web.json_response({"error": {**payload, **error}}, status=http, headers=headers)

    return handle


async def hang_before_headers(request: web.Request) -> web.StreamResponse:
    await until_disconnected(request)
    return web.Response(status=200)


async def hang_after_headers(request: web.Request) -> web.StreamResponse:
    response = await sse_response(request)
    await until_disconnected(request)
    return response


def die_after(prelude: bytes, delay_s: float = 0.0) -> Handler:
    """Start a 200 stream, write ``prelude`` (maybe nothing), then drop the connection mid-body."""

    async def handle(request: web.Request) -> web.StreamResponse:
        response = await sse_response(request)
        if delay_s:
            await asyncio.sleep(delay_s)
        if prelude:
            await response.write(prelude)
        await asyncio.sleep(0.02)  # let the bytes leave before the reset
        assert request.transport is not None
        request.transport.close()
        await until_disconnected(request)
        return response

    return handle


ERROR_FRAME = b'data: {"error":{"message":"overloaded","type":"server_error","param":null,"code":null}}\n\n'


class Fakes:
    """Fake upstreams as path prefixes of one server; ``calls`` is every request, in order."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.calls: list[str] = []
        self.bodies: dict[str, list[dict[str, Any]]] = {}
        self.keys: dict[str, list[str]] = {}
        self.server: TestServer | None = None

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.calls.append(name)
        self.bodies.setdefault(name, []).append(await request.json())
        auth = request.headers.get("Authorization") or request.headers.get("x-api-key") or ""
        self.keys.setdefault(name, []).append(auth.removeprefix("Bearer "))
        return await self.handlers[name](request)

    def provider(self, name: str, handler: Handler, kind: str = "openai", **extra: Any) -> dict[str, Any]:
        assert self.server is not None
        self.handlers[name] = handler
        base = f"/{name}/v1" if kind == "openai" else f"/{name}"
        return {"kind": kind, "base_url": str(self.server.make_url(base)), "api_key": UPSTREAM_KEY, **extra}


@pytest.fixture
async def fakes(aiohttp_server: Any) -> Fakes:
    fake = Fakes()
    app = web.Application()
    app.router.add_post("/{name}/{tail:.*}", fake.dispatch)
    fake.server = await aiohttp_server(app)
    return fake


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that refuses connections."""
    return refusing_port()


_CLIENTS: list[openai.AsyncOpenAI] = []


def sdk(proxy: TestServer) -> openai.AsyncOpenAI:
    client = openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="client", max_retries=0)
    _CLIENTS.append(client)
    return client


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    while _CLIENTS:
        await _CLIENTS.pop().close()


async def raw_post(proxy: TestServer, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            proxy.make_url("/v1/chat/completions"),
            data=orjson.dumps(body),
            headers={"Authorization": "Bearer client", "Content-Type": "application/json"},
        ) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.read()


def text_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# -- the fallback chain ----------------------------------------------------------------------------

FAILURES = ["r429", "e500", "e529", "hang", "silent", "dsil", "dcom", "derr"]


async def chain_proxy(fakes: Fakes, start_proxy: Any, closed_port: int, retries: int) -> TestServer:
    providers = {
        "refused": {"kind": "openai", "base_url": f"http://127.0.0.1:{closed_port}/v1", "api_key": UPSTREAM_KEY},
        "r429": fakes.provider("r429", status(429, {"Retry-After": "0"}, type="rate_limit_error")),
        "e500": fakes.provider("e500", status(500)),
        "e529": fakes.provider("e529", status(529, type="overloaded_error")),
        "hang": fakes.provider("hang", hang_before_headers, first_byte_timeout_s=0.2),
        "silent": fakes.provider("silent", hang_after_headers, first_byte_timeout_s=0.2),
        "dsil": fakes.provider("dsil", die_after(b"")),
        "dcom": fakes.provider("dcom", die_after(b": PROCESSING\n\n")),
        "derr": fakes.provider("derr", die_after(ERROR_FRAME)),
        "good": fakes.provider("good", ok("served-by-good-v7")),
    }
    models = ["refused/m-refused", *[f"{n}/m-{n}" for n in FAILURES], "good/m-good"]
    data = {
        "providers": providers,
        "policies": {"reliable": {"type": "fallback", "models": models, "retries": retries, "backoff_ms": [1]}},
        "aliases": {"sturdy": "policy/reliable"},
    }
    return await start_proxy(data)


async def test_fallback_through_every_failure_before_the_first_frame(fakes: Fakes, start_proxy, closed_port) -> None:
    proxy = await chain_proxy(fakes, start_proxy, closed_port, retries=1)
    raw = await sdk(proxy).chat.completions.with_raw_response.create(
        model="sturdy", messages=MESSAGES, stream=True, user="alice"
    )
    chunks = [c async for c in raw.parse()]

    # Each failing model was tried twice (retries = 1), in chain order; the good one once.
    assert fakes.calls == [n for n in FAILURES for _ in range(2)] + ["good"]
    assert raw.headers["X-Proxy-Model"] == "good/m-good"
    assert raw.headers["X-Proxy-Attempts"] == str(2 + 2 * len(FAILURES) + 1)  # the refused model counts too
    assert text_of(chunks) == "Hello world"  # exactly once
    assert [c.choices[0].finish_reason for c in chunks] == [None, None, None, "stop"]
    assert {c.model for c in chunks} == {"served-by-good-v7"}  # the upstream's model field is kept
    # The request was rebuilt for every attempt: each upstream saw its own model name, same messages.
    for name in [*FAILURES, "good"]:
        assert [b["model"] for b in fakes.bodies[name]] == [f"m-{name}"] * len(fakes.bodies[name])
        assert all(b["messages"] == MESSAGES and b["user"] == "alice" for b in fakes.bodies[name])
        assert set(fakes.keys[name]) == {UPSTREAM_KEY}  # the provider's key, never the client's


async def test_nothing_from_a_failed_attempt_reaches_the_client(fakes: Fakes, start_proxy, closed_port) -> None:
    proxy = await chain_proxy(fakes, start_proxy, closed_port, retries=0)
    status_, headers, body = await raw_post(proxy, {"model": "policy/reliable", "messages": MESSAGES, "stream": True})
    assert status_ == 200
    assert body == good_stream("served-by-good-v7")  # byte for byte: no keep-alive, comment, frame or error twice
    assert headers["X-Proxy-Model"] == "good/m-good" and headers["X-Proxy-Attempts"] == str(len(FAILURES) + 2)
    assert fakes.calls == [*FAILURES, "good"]


async def test_non_stream_requests_fall_back_too(fakes: Fakes, start_proxy, closed_port) -> None:
    proxy = await chain_proxy(fakes, start_proxy, closed_port, retries=0)
    raw = await sdk(proxy).chat.completions.with_raw_response.create(model="sturdy", messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello world"
    assert completion.model == "served-by-good-v7"
    assert raw.headers["X-Proxy-Model"] == "good/m-good"
    assert fakes.calls[-1] == "good" and fakes.calls.count("good") == 1


async def test_when_every_model_fails_the_last_error_is_returned(fakes: Fakes, start_proxy) -> None:
    data = {
        "providers": {"a": fakes.provider("a", status(500)), "b": fakes.provider("b", status(503))},
        "policies": {"p": {"type": "fallback", "models": ["a/x", "b/y"], "retries": 1, "backoff_ms": [1]}},
    }
    proxy = await start_proxy(data)
    with pytest.raises(openai.InternalServerError) as info:
        await sdk(proxy).chat.completions.create(model="policy/p", messages=MESSAGES, stream=True)
    assert info.value.status_code == 503 and "fake upstream says 503" in info.value.message
    assert fakes.calls == ["a", "a", "b", "b"]


# -- never after the first frame, never for a client mistake ------------------------------------------


async def test_a_stream_that_dies_after_its_first_frame_does_not_fall_back(fakes: Fakes, start_proxy) -> None:
    first = b"".join(frames(chunk("up", {"role": "assistant", "content": ""}), chunk("up", {"content": "Hel"})))
    data = {
        "providers": {"dies": fakes.provider("dies", die_after(first)), "good": fakes.provider("good", ok())},
        "policies": {"p": {"type": "fallback", "models": ["dies/a", "good/b"], "retries": 2, "backoff_ms": [1]}},
    }
    proxy = await start_proxy(data)
    stream = await sdk(proxy).chat.completions.create(model="policy/p", messages=MESSAGES, stream=True)
    seen: list[str | None] = []
    with pytest.raises(openai.APIError, match="mid-stream"):
        async for c in stream:
            seen.append(c.choices[0].delta.content)
    assert seen == ["", "Hel"]
    assert fakes.calls == ["dies"]  # neither retried nor fallen back: the client had bytes

    status_, headers, body = await raw_post(proxy, {"model": "policy/p", "messages": MESSAGES, "stream": True})
    assert status_ == 200 and headers["X-Proxy-Model"] == "dies/a" and headers["X-Proxy-Attempts"] == "1"
    assert body.startswith(first) and body.count(b"data: ") == 3
    assert body[len(first) :].startswith(b'data: {"error":') and b"[DONE]" not in body
    assert fakes.calls == ["dies", "dies"]


async def test_an_error_frame_after_content_is_relayed_not_retried(start_proxy) -> None:
    proxy = await start_proxy(
        {
            "providers": {"mock": {"chunk_delay_ms": 0}},
            "policies": {"p": {"type": "fallback", "models": ["mock/fail-mid", "mock/echo"], "retries": 1}},
        }
    )
    raw = await sdk(proxy).chat.completions.with_raw_response.create(
        model="policy/p", messages=[{"role": "user", "content": "one two three four"}], stream=True
    )
    assert raw.headers["X-Proxy-Model"] == "mock/fail-mid" and raw.headers["X-Proxy-Attempts"] == "1"
    seen = []
    with pytest.raises(openai.APIError, match="mock failure mid-stream"):
        async for c in raw.parse():
            seen.append(c.choices[0].delta.content)
    assert seen == ["one", " two"]


@pytest.mark.parametrize(
    ("code", "error", "exc"),
    [
        (400, {"code": "context_length_exceeded"}, openai.BadRequestError),
        (400, {"code": "content_policy_violation", "type": "invalid_request_error"}, openai.BadRequestError),
        (422, {}, openai.UnprocessableEntityError),
    ],
)
async def test_a_client_mistake_is_returned_and_never_moves_on(
    fakes: Fakes, start_proxy, code: int, error: dict[str, Any], exc: type[openai.APIStatusError]
) -> None:
    data = {
        "providers": {"bad": fakes.provider("bad", status(code, **error)), "good": fakes.provider("good", ok())},
        "policies": {"p": {"type": "fallback", "models": ["bad/a", "good/b"], "retries": 3, "backoff_ms": [1]}},
    }
    proxy = await start_proxy(data)
    for stream in (True, False):
        with pytest.raises(exc) as info:
            await sdk(proxy).chat.completions.create(model="policy/p", messages=MESSAGES, stream=stream)
        assert info.value.status_code == code and f"fake upstream says {code}" in info.value.message
        assert isinstance(info.value.body, dict) and info.value.body.get("code") == error.get("code")
    assert fakes.calls == ["bad", "bad"]  # once per request: no retry, no fallback


@pytest.mark.parametrize("code", [401, 403, 404])
async def test_provider_trouble_moves_on_without_retrying(fakes: Fakes, start_proxy, code: int) -> None:
    data = {
        "providers": {"odd": fakes.provider("odd", status(code)), "good": fakes.provider("good", ok())},
        "policies": {"p": {"type": "fallback", "models": ["odd/a", "good/b"], "retries": 3, "backoff_ms": [1]}},
    }
    proxy = await start_proxy(data)
    raw = await sdk(proxy).chat.completions.with_raw_response.create(model="policy/p", messages=MESSAGES, stream=True)
    assert text_of([c async for c in raw.parse()]) == "Hello world"
    assert fakes.calls == ["odd", "good"] and raw.headers["X-Proxy-Attempts"] == "2"


async def test_a_retry_after_beyond_the_budget_moves_on_instead_of_waiting(fakes: Fakes, start_proxy) -> None:
    data = {
        "providers": {
            "slow429": fakes.provider("slow429", status(429, {"Retry-After": "30"})),
            "zero429": fakes.provider("zero429", status(429, {"Retry-After": "0"})),
            "good": fakes.provider("good", ok()),
        },
        "policies": {
            "budget": {"type": "fallback", "models": ["slow429/a", "good/b"], "retries": 3, "max_retry_s": 1},
            "zero": {"type": "fallback", "models": ["zero429/a", "good/b"], "retries": 2, "backoff_ms": [1]},
        },
    }
    proxy = await start_proxy(data)
    raw = await sdk(proxy).chat.completions.with_raw_response.create(model="policy/budget", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == "Hello world"
    assert fakes.calls == ["slow429", "good"]  # waiting 30 s would overrun max_retry_s = 1
    fakes.calls.clear()
    raw = await sdk(proxy).chat.completions.with_raw_response.create(model="policy/zero", messages=MESSAGES)
    assert fakes.calls == ["zero429"] * 3 + ["good"] and raw.headers["X-Proxy-Attempts"] == "4"


async def test_a_policy_adds_no_buffering(fakes: Fakes, start_proxy) -> None:
    """The first frame reaches the client while the upstream still holds the rest back."""
    gate = asyncio.Event()
    whole = good_stream("m")
    cut = whole.index(b"\n\n") + 2  # one whole frame: a partial one is rightly held until it completes
    first, rest = whole[:cut], whole[cut:]

    async def gated(request: web.Request) -> web.StreamResponse:
        response = await sse_response(request)
        await response.write(first)
        await asyncio.wait_for(gate.wait(), 10)
        await response.write(rest)
        return response

    data = {
        "providers": {"e500": fakes.provider("e500", status(500)), "gated": fakes.provider("gated", gated)},
        "policies": {"p": {"type": "fallback", "models": ["e500/a", "gated/b"]}},
    }
    proxy = await start_proxy(data)
    body = orjson.dumps({"model": "policy/p", "messages": MESSAGES, "stream": True})
    url = proxy.make_url("/v1/chat/completions")
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp,
    ):
        received = b""
        while len(received) < len(first):
            received += await asyncio.wait_for(resp.content.readany(), 5)  # fails if the proxy held bytes back
        assert received == first
        gate.set()
        received += await resp.content.read()
    assert received == first + rest and fakes.calls == ["e500", "gated"]


async def test_a_stream_failing_after_its_first_frame_counts_against_health(fakes: Fakes, start_proxy) -> None:
    first = b"".join(frames(chunk("up", {"role": "assistant", "content": "Hel"})))
    data = {
        "providers": {"flaky": fakes.provider("flaky", die_after(first)), "steady": fakes.provider("steady", ok())},
        "policies": {
            "lb": {
                "type": "loadbalance",
                "models": {"flaky/m": 99, "steady/m": 1},
                "sticky_key": "user",
                "failure_threshold": 1,
                "cooldown_s": 300,
            }
        },
    }
    proxy = await start_proxy(data)
    members = [("flaky/m", 99.0), ("steady/m", 1.0)]
    user = next(f"u{i}" for i in range(100) if rendezvous_order(members, f"u{i}")[0] == "flaky/m")
    request = {"model": "policy/lb", "messages": MESSAGES, "stream": True, "user": user}
    _, headers, body = await raw_post(proxy, request)
    assert headers["X-Proxy-Model"] == "flaky/m" and b'data: {"error":' in body
    _, headers, _ = await raw_post(proxy, request)
    assert headers["X-Proxy-Model"] == "steady/m"  # flaky rests after its failure


# -- mixed kinds, keys, load balancing --------------------------------------------------------------

ANTHROPIC_SSE = (FIXTURES / "anthropic" / "text-cached.sse").read_bytes()
ANTHROPIC_TEXT = "".join(
    event["delta"]["text"]
    for line in ANTHROPIC_SSE.splitlines()
    if line.startswith(b"data: ") and (event := orjson.loads(line[6:])).get("type") == "content_block_delta"
)


def anthropic_ok() -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        response = await sse_response(request)
        await response.write(ANTHROPIC_SSE)
        return response

    return handle


async def test_a_chain_mixes_provider_kinds(fakes: Fakes, start_proxy) -> None:
    data = {
        "providers": {
            "mock": {"chunk_delay_ms": 0},
            "a529": fakes.provider("a529", status(529, type="overloaded_error"), kind="anthropic"),
            "o500": fakes.provider("o500", status(500)),
            "anth": fakes.provider("anth", anthropic_ok(), kind="anthropic"),
            "oai": fakes.provider("oai", ok("gpt-upstream")),
        },
        "policies": {
            "mixed": {"type": "fallback", "models": ["mock/fail-500", "a529/claude-x", "o500/gpt-x", "anth/claude-y"]},
            "back": {"type": "fallback", "models": ["a529/claude-x", "mock/fail-503", "oai/gpt-y"]},
        },
    }
    proxy = await start_proxy(data)
    create = sdk(proxy).chat.completions.with_raw_response.create
    raw = await create(model="policy/mixed", messages=MESSAGES, stream=True)
    assert text_of([c async for c in raw.parse()]) == ANTHROPIC_TEXT
    assert raw.headers["X-Proxy-Model"] == "anth/claude-y" and raw.headers["X-Proxy-Attempts"] == "4"
    assert fakes.calls == ["a529", "o500", "anth"]
    # Each attempt was translated for its own kind: Anthropic Messages bodies, an OpenAI body.
    for name, model in (("a529", "claude-x"), ("anth", "claude-y")):
        sent = fakes.bodies[name][0]
        assert sent["model"] == model and sent["max_tokens"] > 0 and sent["stream"] is True
        assert sent["messages"] == [{"role": "user", "content": "hi"}] or sent["messages"][0]["role"] == "user"
    assert fakes.bodies["o500"][0] == {
        "model": "gpt-x",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},  # usage is always asked for, for the record
    }

    fakes.calls.clear()
    raw = await create(model="policy/back", messages=MESSAGES, stream=True)
    chunks = [c async for c in raw.parse()]
    assert text_of(chunks) == "Hello world" and {c.model for c in chunks} == {"gpt-upstream"}
    assert fakes.calls == ["a529", "oai"] and raw.headers["X-Proxy-Model"] == "oai/gpt-y"


async def test_a_rate_limited_key_is_skipped(fakes: Fakes, start_proxy) -> None:
    async def per_key(request: web.Request) -> web.StreamResponse:
        if request.headers["Authorization"] == "Bearer key-a":
            return await status(429, {"Retry-After": "60"})(request)
        return await ok()(request)

    provider = {**fakes.provider("pool", per_key), "api_keys": ["key-a", "key-b"]}
    del provider["api_key"]
    data = {
        "providers": {"pool": provider},
        "policies": {"p": {"type": "fallback", "models": ["pool/m"], "retries": 1, "max_retry_s": 5}},
    }
    proxy = await start_proxy(data)
    client = sdk(proxy)
    raw = await client.chat.completions.with_raw_response.create(model="policy/p", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == "Hello world"
    assert raw.headers["X-Proxy-Attempts"] == "2"  # key-a answered 429; the retry took key-b without waiting 60 s
    for _ in range(3):
        raw = await client.chat.completions.with_raw_response.create(model="policy/p", messages=MESSAGES)
        assert raw.headers["X-Proxy-Attempts"] == "1"
    assert fakes.keys["pool"] == ["key-a", "key-b", "key-b", "key-b", "key-b"]  # key-a rests for its Retry-After


async def test_several_keys_from_env_spread_the_load(fakes: Fakes, start_proxy) -> None:
    provider = fakes.provider("pool", ok())
    del provider["api_key"]
    provider["api_key_envs"] = ["POOL_KEY_1", "POOL_KEY_2", "POOL_KEY_3"]
    proxy = await start_proxy({"providers": {"pool": provider}}, env={"POOL_KEY_1": "k1", "POOL_KEY_3": "k3"})
    for _ in range(4):
        await sdk(proxy).chat.completions.create(model="pool/m", messages=MESSAGES)
    assert fakes.keys["pool"] == ["k1", "k3", "k1", "k3"]


async def test_loadbalance_is_sticky_per_user_and_falls_back_when_the_choice_fails(fakes: Fakes, start_proxy) -> None:
    data = {
        "providers": {"g1": fakes.provider("g1", ok("m1")), "g2": fakes.provider("g2", ok("m2"))},
        "policies": {
            "spread": {
                "type": "loadbalance",
                "models": {"g1/m": 70, "g2/m": 30},
                "sticky_key": "user",
                "failure_threshold": 1,
                "cooldown_s": 300,
            }
        },
        "aliases": {"fast": "policy/spread"},
    }
    proxy = await start_proxy(data)
    client = sdk(proxy)
    chosen: dict[str, set[str]] = {}
    for i in range(12):
        for _ in range(3):
            raw = await client.chat.completions.with_raw_response.create(model="fast", messages=MESSAGES, user=f"u{i}")
            chosen.setdefault(f"u{i}", set()).add(raw.headers["X-Proxy-Model"])
    assert all(len(models) == 1 for models in chosen.values()), chosen
    user = next(u for u, models in chosen.items() if models == {"g1/m"})

    fakes.handlers["g1"] = status(503)
    fakes.calls.clear()
    raw = await client.chat.completions.with_raw_response.create(model="fast", messages=MESSAGES, user=user)
    assert raw.parse().choices[0].message.content == "Hello world"
    assert raw.headers["X-Proxy-Model"] == "g2/m" and raw.headers["X-Proxy-Attempts"] == "2"
    assert fakes.calls == ["g1", "g2"]
    # g1 now rests (failure_threshold = 1): its users go straight to g2, g2's users do not move.
    fakes.calls.clear()
    for u in chosen:
        raw = await client.chat.completions.with_raw_response.create(model="fast", messages=MESSAGES, user=u)
        assert raw.headers["X-Proxy-Model"] == "g2/m" and raw.headers["X-Proxy-Attempts"] == "1"
    assert set(fakes.calls) == {"g2"}


# -- keep-alive -----------------------------------------------------------------------------------


def keepalive_proxy(fakes: Fakes, start_proxy: Any, *handlers: tuple[str, Handler]) -> Awaitable[TestServer]:
    providers = {name: fakes.provider(name, handler) for name, handler in handlers}
    models = [f"{name}/m" for name, _ in handlers]
    return start_proxy(
        {
            "server": {"keepalive_s": 0.05},
            "providers": providers,
            "policies": {"p": {"type": "fallback", "models": models, "backoff_ms": [1]}},
        }
    )


async def test_keepalive_comments_precede_a_slow_first_frame(fakes: Fakes, start_proxy) -> None:
    proxy = await keepalive_proxy(fakes, start_proxy, ("e500", status(500)), ("slow", ok("slow-v1", delay_s=0.4)))
    status_, headers, body = await raw_post(proxy, {"model": "policy/p", "messages": MESSAGES, "stream": True})
    assert status_ == 200 and headers["Content-Type"] == "text/event-stream"
    assert body.startswith(b": keep-alive\n\n")
    assert body.index(b": keep-alive\n\n") < body.index(b"data: ")
    assert body.replace(b": keep-alive\n\n", b"") == good_stream("slow-v1")  # the frames untouched, once
    assert headers["X-Proxy-Model"] == "slow/m" and headers["X-Proxy-Attempts"] == "2"

    raw = await sdk(proxy).chat.completions.with_raw_response.create(model="policy/p", messages=MESSAGES, stream=True)
    chunks = [c async for c in raw.parse()]
    assert text_of(chunks) == "Hello world" and {c.model for c in chunks} == {"slow-v1"}
    assert fakes.calls == ["e500", "slow", "e500", "slow"]


async def test_after_a_keepalive_a_failure_is_an_error_frame_not_a_fallback(fakes: Fakes, start_proxy) -> None:
    proxy = await keepalive_proxy(fakes, start_proxy, ("late", die_after(b"", delay_s=0.4)), ("good", ok()))
    status_, _, body = await raw_post(proxy, {"model": "policy/p", "messages": MESSAGES, "stream": True})
    assert status_ == 200 and body.startswith(b": keep-alive\n\n")
    assert body.rstrip(b"\n").endswith(b"}}") and b'data: {"error":' in body and b"[DONE]" not in body
    assert fakes.calls == ["late"]  # the response had started: bytes reached the client


async def test_without_keepalive_nothing_is_sent_before_the_first_frame(fakes: Fakes, start_proxy) -> None:
    proxy = await start_proxy({"providers": {"slow": fakes.provider("slow", ok("v", delay_s=0.2))}})
    _, _, body = await raw_post(proxy, {"model": "slow/m", "messages": MESSAGES, "stream": True})
    assert body == good_stream("v")


# -- listing and config errors ----------------------------------------------------------------------


async def test_models_lists_policies_and_aliases(start_proxy) -> None:
    proxy = await start_proxy(
        {
            "policies": {
                "reliable": {"type": "fallback", "models": ["mock/a", "openai/gpt-4o"]},
                "spread": {"type": "loadbalance", "models": {"mock/b": 70, "mock/c": 30}, "sticky_key": "user"},
            },
            "aliases": {"fast": "policy/spread", "safe": "policy/reliable"},
        }
    )
    ids = {m.id: m.owned_by async for m in sdk(proxy).models.list()}
    assert {"policy/reliable", "policy/spread", "fast", "safe", "mock/echo"} <= set(ids)
    assert ids["policy/reliable"] == ids["fast"] == "sse-proxy"


async def test_unknown_names_are_openai_shaped_errors(start_proxy) -> None:
    proxy = await start_proxy({"policies": {"p": {"type": "fallback", "models": ["mock/a"]}}})
    client = sdk(proxy)
    with pytest.raises(openai.NotFoundError, match="unknown policy 'policy/nope'"):
        await client.chat.completions.create(model="policy/nope", messages=MESSAGES)
    with pytest.raises(openai.NotFoundError, match="unknown provider 'nope'"):
        await client.chat.completions.create(model="nope/x", messages=MESSAGES)
    with pytest.raises(openai.NotFoundError, match="names no provider, policy or alias"):
        await client.chat.completions.create(model="llama-3", messages=MESSAGES)
    with pytest.raises(openai.BadRequestError, match="provider/model"):
        await client.chat.completions.create(model="openai/", messages=MESSAGES)
    # A bare id with a well-known prefix goes to its provider (which here has no key).
    with pytest.raises(openai.AuthenticationError, match="OPENAI_API_KEY"):
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)


CYCLIC = """
[policies.a]
type = "fallback"
models = ["mock/echo", "policy/b"]

[policies.b]
type = "loadbalance"
models = { "fast" = 1, "mock/echo" = 2 }

[aliases]
fast = "policy/a"
"""


def test_a_cyclic_config_is_rejected_at_start(tmp_path: Path) -> None:
    path = tmp_path / "cyc.toml"
    path.write_text(CYCLIC)
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "--config", str(path), "--port", "0", "--no-uvloop"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0
    assert "listening" not in result.stdout
    assert str(path) in result.stderr and "cycle" in result.stderr
    assert "fast -> policy/a -> policy/b -> fast" in result.stderr, result.stderr
