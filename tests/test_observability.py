"""/metrics, the access line (text and JSON), /healthz and /readyz: a real proxy on 127.0.0.1,
fake OpenAI upstreams, the real openai SDK."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from proxy.observability.record import JsonFormatter
from proxy.pipeline import STATE
from tests.conftest import UPSTREAM_KEY, frames, openai_provider

MESSAGES = [{"role": "user", "content": "hi"}]


def chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        data["usage"] = usage
    return data


GOOD = frames(
    chunk({"role": "assistant", "content": "Hello"}),
    chunk({}, "stop"),
    chunk({}, None, {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}),
    "[DONE]",
)


async def good(request: web.Request, response: web.StreamResponse, _: Any) -> None:
    for frame in GOOD:
        await response.write(frame)


def client(proxy: TestServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="unused", max_retries=0)


async def scrape(proxy: TestServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    async with aiohttp.ClientSession() as session, session.get(proxy.make_url("/metrics")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items())


async def test_metrics_count_a_streamed_request_with_tokens_and_timings(sse_upstream, start_proxy) -> None:
    upstream, _ = await sse_upstream(good)
    proxy = await start_proxy(openai_provider(upstream, models=["m"]))
    stream = await client(proxy).chat.completions.create(
        model="up/m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert [c async for c in stream]
    samples = await scrape(proxy)
    labels = {"frontdoor": "chat_completions", "provider": "up", "model": "up/m"}
    assert total(samples, "sse_proxy_requests_total", status="200", outcome="ok", **labels) == 1
    assert total(samples, "sse_proxy_tokens_total", direction="in", model="up/m") == 7
    assert total(samples, "sse_proxy_tokens_total", direction="out", model="up/m") == 3
    assert total(samples, "sse_proxy_time_to_first_byte_seconds_count", **labels) == 1
    assert total(samples, "sse_proxy_request_duration_seconds_count", **labels) == 1
    assert total(samples, "sse_proxy_streams_open") == 0


async def test_unknown_client_models_share_one_series(sse_upstream, start_proxy) -> None:
    """A client inventing model names must not grow the label set: they are all ``other``."""
    upstream, _ = await sse_upstream(good)
    proxy = await start_proxy(openai_provider(upstream, models=["m"]))
    for name in ("up/invented-1", "up/invented-2", "nosuch/x"):
        try:
            stream = await client(proxy).chat.completions.create(model=name, messages=MESSAGES, stream=True)
            [c async for c in stream]
        except openai.APIStatusError:
            pass
    samples = await scrape(proxy)
    models = {dict(ls).get("model") for (n, ls) in samples if n == "sse_proxy_requests_total"}
    assert models == {"other"}
    assert total(samples, "sse_proxy_requests_total") == 3
    assert total(samples, "sse_proxy_requests_total", provider="none", outcome="rejected") == 1
    text = repr(samples)
    assert "invented" not in text and UPSTREAM_KEY not in text


async def test_streams_open_gauge_moves_at_start_and_end(sse_upstream, start_proxy) -> None:
    release = asyncio.Event()

    async def held(request: web.Request, response: web.StreamResponse, _: Any) -> None:
        await response.write(GOOD[0])
        await release.wait()
        for frame in GOOD[1:]:
            await response.write(frame)

    upstream, _ = await sse_upstream(held)
    proxy = await start_proxy(openai_provider(upstream, models=["m"]))
    stream = await client(proxy).chat.completions.create(model="up/m", messages=MESSAGES, stream=True)
    first = await stream.__anext__()
    assert first.choices[0].delta.content == "Hello"
    assert total(await scrape(proxy), "sse_proxy_streams_open", frontdoor="chat_completions") == 1
    release.set()
    [c async for c in stream]
    assert total(await scrape(proxy), "sse_proxy_streams_open", frontdoor="chat_completions") == 0


async def test_fallbacks_upstream_errors_and_disconnects_are_counted(sse_upstream, aiohttp_server, start_proxy) -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "down", "type": "server_error"}}, status=500)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", broken)
    bad = await aiohttp_server(app)
    gone = asyncio.Event()

    async def endless(request: web.Request, response: web.StreamResponse, _: Any) -> None:
        await response.write(GOOD[0])
        await gone.wait()

    upstream, _ = await sse_upstream(good)
    slow, slow_recorder = await sse_upstream(endless)
    config = openai_provider(upstream, models=["m"])
    config["providers"].update(openai_provider(bad, "bad", models=["m"])["providers"])
    config["providers"].update(openai_provider(slow, "slow", models=["m"])["providers"])
    config["policies"] = {"pair": {"type": "fallback", "models": ["bad/m", "up/m"], "backoff_ms": [0]}}
    proxy = await start_proxy(config)
    stream = await client(proxy).chat.completions.create(model="policy/pair", messages=MESSAGES, stream=True)
    assert [c async for c in stream]
    with pytest.raises(openai.APIStatusError):
        await client(proxy).chat.completions.create(model="bad/m", messages=MESSAGES)
    async with aiohttp.ClientSession() as session:
        body = {"model": "slow/m", "messages": MESSAGES, "stream": True}
        async with session.post(proxy.make_url("/v1/chat/completions"), json=body) as response:
            await response.content.readline()
    await asyncio.wait_for(slow_recorder.disconnected.wait(), 5)
    for _ in range(100):  # the proxy notices the disconnect on its own schedule
        samples = await scrape(proxy)
        if total(samples, "sse_proxy_client_disconnects_total"):
            break
        await asyncio.sleep(0.02)
    assert total(samples, "sse_proxy_retries_total", model="up/m") == 1
    assert total(samples, "sse_proxy_fallback_requests_total", model="up/m") == 1
    assert total(samples, "sse_proxy_upstream_errors_total", provider="bad", kind="upstream_error") == 1
    assert total(samples, "sse_proxy_client_disconnects_total", frontdoor="chat_completions") == 1
    assert total(samples, "sse_proxy_streams_open") == 0
    gone.set()


@pytest.fixture
def access(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="proxy.access")
    return caplog


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "proxy.access"]


async def test_access_line_text_and_json_carry_the_request(sse_upstream, start_proxy, access) -> None:
    upstream, _ = await sse_upstream(good)
    proxy = await start_proxy(openai_provider(upstream, models=["m"]))
    stream = await client(proxy).chat.completions.create(
        model="up/m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    [c async for c in stream]
    (record,) = access_records(access)
    text = record.getMessage()
    for part in ("chat_completions", "provider=up", "model='up/m'", "status=200", "outcome=ok", "tokens=7/3"):
        assert part in text
    line = JsonFormatter().format(record)
    assert "\n" not in line
    data = orjson.loads(line)
    assert data["frontdoor"] == "chat_completions" and data["provider"] == "up" and data["model"] == "up/m"
    assert data["status"] == 200 and data["outcome"] == "ok" and data["attempts"] == 1
    assert data["tokens_in"] == 7 and data["tokens_out"] == 3
    assert data["ttfb_ms"] >= 0 and data["duration_ms"] >= data["ttfb_ms"]
    assert "key_name" in data and len(data["request_id"]) == 24


async def test_aborted_request_gets_its_line(sse_upstream, start_proxy, access) -> None:
    gone = asyncio.Event()

    async def endless(request: web.Request, response: web.StreamResponse, _: Any) -> None:
        await response.write(GOOD[0])
        await gone.wait()

    upstream, recorder = await sse_upstream(endless)
    proxy = await start_proxy(openai_provider(upstream, models=["m"]))
    async with aiohttp.ClientSession() as session:
        body = {"model": "up/m", "messages": MESSAGES, "stream": True}
        async with session.post(proxy.make_url("/v1/chat/completions"), json=body) as response:
            await response.content.readline()
    await asyncio.wait_for(recorder.disconnected.wait(), 5)
    for _ in range(100):
        if access_records(access):
            break
        await asyncio.sleep(0.02)
    (record,) = access_records(access)
    assert orjson.loads(JsonFormatter().format(record))["outcome"] == "client_disconnect"
    gone.set()


async def test_forged_newline_in_a_model_name_cannot_make_a_second_line(start_proxy, access) -> None:
    proxy = await start_proxy()
    forged = 'x\n2026-01-01 INFO proxy.access: forged status=200 "'
    async with aiohttp.ClientSession() as session:
        body = {"model": forged, "messages": MESSAGES}
        async with session.post(proxy.make_url("/v1/chat/completions"), json=body) as response:
            assert 400 <= response.status < 500
    (record,) = access_records(access)
    text = record.getMessage()
    assert "\n" not in text and "model='x\\n2026" in text
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert orjson.loads(line)["model"] == forged
    assert orjson.loads(line)["outcome"] == "rejected"


def test_json_formatter_writes_other_log_lines_as_json() -> None:
    record = logging.LogRecord("proxy", logging.WARNING, __file__, 1, "hello %s", ("a\nb",), None)
    data = orjson.loads(JsonFormatter().format(record))
    assert data["message"] == "hello a\nb" and data["level"] == "warning" and data["logger"] == "proxy"


async def test_healthz_and_readyz(start_proxy) -> None:
    proxy = await start_proxy()
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.make_url("/healthz")) as response:
            assert response.status == 200
        async with session.get(proxy.make_url("/readyz")) as response:
            assert response.status == 200
            assert (await response.json())["status"] == "ready"
        proxy.app[STATE].draining = True
        async with session.get(proxy.make_url("/readyz")) as response:
            assert response.status == 503
            assert (await response.json())["status"] == "draining"
        async with session.get(proxy.make_url("/healthz")) as response:
            assert response.status == 200
