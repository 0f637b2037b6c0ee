"""The relay against real fake OpenAI upstreams on 127.0.0.1, read with a raw HTTP client."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from proxy.server import STATE
from tests.conftest import UPSTREAM_KEY, Recorder, frames, openai_provider
from tests.support import FIXTURES, refusing_port

RECORDINGS = sorted((FIXTURES / "openai").glob("*.sse"))
CHAT = {
    "model": "up/gpt-4o",
    "stream": True,
    "stream_options": {"include_usage": True},
    "messages": [{"role": "user", "content": "hi"}],
}


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def send_all(data: bytes):
    async def handler(request: web.Request, response: web.StreamResponse, rec: Recorder) -> None:
        await response.write(data)

    return handler


async def post(url: Any, body: dict[str, Any] | bytes, **kw: Any) -> tuple[int, dict[str, str], bytes]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    kw["headers"] = {"Content-Type": "application/json", **kw.get("headers", {})}  # the proxy requires it (415 else)
    async with aiohttp.ClientSession() as session, session.post(url, data=data, **kw) as resp:
        return resp.status, {k.title(): v for k, v in resp.headers.items()}, await resp.read()


def error_of(body: bytes) -> dict[str, Any]:
    error = orjson.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name)
async def test_recorded_streams_reach_the_client_byte_for_byte(path: Path, sse_upstream, start_proxy) -> None:
    data = path.read_bytes()
    upstream, rec = await sse_upstream(send_all(data))
    proxy = await start_proxy(openai_provider(upstream))
    status, headers, body = await post(
        proxy.make_url("/v1/chat/completions"), CHAT, headers={"Authorization": "Bearer client-key"}
    )
    assert status == 200
    assert body == data
    assert headers["Content-Type"] == "text/event-stream"
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Accel-Buffering"] == "no"
    assert headers["X-Request-Id"]
    assert "Content-Encoding" not in headers
    sent = rec.requests[0]
    assert sent["headers"]["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent["body"] == {**CHAT, "model": "gpt-4o"}


async def test_upstream_frames_split_across_reads_arrive_whole(sse_upstream, start_proxy) -> None:
    data = (FIXTURES / "openai" / "chat-parallel-tool-calls.sse").read_bytes()

    async def dribble(request: web.Request, response: web.StreamResponse, rec: Recorder) -> None:
        for i in range(0, len(data), 7):
            await response.write(data[i : i + 7])
            await asyncio.sleep(0)

    upstream, _ = await sse_upstream(dribble)
    proxy = await start_proxy(openai_provider(upstream))
    async with (
        aiohttp.ClientSession() as session,
        session.post(proxy.make_url("/v1/chat/completions"), json=CHAT) as resp,
    ):
        received = [piece async for piece in resp.content.iter_any()]
    assert b"".join(received) == data
    # Every piece the proxy wrote ends on a frame boundary: no half frames are forwarded.
    assert all(piece.endswith(b"\n\n") for piece in received)


async def test_legacy_function_call_frames_pass_through(sse_upstream, start_proxy) -> None:
    data = b"".join(
        frames(
            chunk({"role": "assistant", "content": None, "function_call": {"name": "get_weather", "arguments": ""}}),
            chunk({"function_call": {"arguments": '{"city":'}}),
            chunk({"function_call": {"arguments": '"Paris"}'}}),
            chunk({}, "function_call"),
            "[DONE]",
        )
    )
    upstream, _ = await sse_upstream(send_all(data))
    proxy = await start_proxy(openai_provider(upstream))
    status, _, body = await post(proxy.make_url("/v1/chat/completions"), CHAT)
    assert (status, body) == (200, data)


async def test_first_frame_reaches_client_before_upstream_sends_the_next(sse_upstream, start_proxy) -> None:
    """No buffering: the upstream waits for the client to see frame one before sending frame two."""
    client_got_first = asyncio.Event()
    first, second, done = frames(chunk({"content": "one"}), chunk({"content": "two"}, "stop"), "[DONE]")

    async def lockstep(request: web.Request, response: web.StreamResponse, rec: Recorder) -> None:
        await response.write(first)
        await asyncio.wait_for(client_got_first.wait(), 10)
        await response.write(second + done)

    upstream, _ = await sse_upstream(lockstep)
    proxy = await start_proxy(openai_provider(upstream))
    async with (
        aiohttp.ClientSession() as session,
        session.post(proxy.make_url("/v1/chat/completions"), json=CHAT) as resp,
    ):
        got = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 10)
        assert got == first
        client_got_first.set()
        assert await resp.read() == second + done


async def test_slow_upstream_streams_every_frame(sse_upstream, start_proxy) -> None:
    parts = frames(*[chunk({"content": f"t{i} "}) for i in range(5)], chunk({}, "stop"), "[DONE]")

    async def slow(request: web.Request, response: web.StreamResponse, rec: Recorder) -> None:
        for part in parts:
            await asyncio.sleep(0.05)
            await response.write(part)

    upstream, _ = await sse_upstream(slow)
    proxy = await start_proxy(openai_provider(upstream))
    status, _, body = await post(proxy.make_url("/v1/chat/completions"), CHAT)
    assert status == 200 and body == b"".join(parts)


@pytest.mark.parametrize("status", [400, 401, 404, 429, 500, 503])
async def test_upstream_error_status_before_stream_keeps_status_and_message(
    aiohttp_server, start_proxy, status
) -> None:
    async def fail(request: web.Request) -> web.Response:
        body = {"error": {"message": f"upstream says {status}", "type": "x_error", "param": "p", "code": "c"}}
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", fail)
    upstream = await aiohttp_server(app)
    proxy = await start_proxy(openai_provider(upstream))
    got, headers, body = await post(proxy.make_url("/v1/chat/completions"), CHAT)
    assert got == status
    assert headers["Content-Type"].startswith("application/json")
    assert error_of(body) == {"message": f"upstream says {status}", "type": "x_error", "param": "p", "code": "c"}


async def test_error_frame_mid_stream_reaches_client_once_without_done(sse_upstream, start_proxy) -> None:
    good = frames(chunk({"role": "assistant", "content": "par"}))[0]
    bad = b'data: {"error":{"message":"overloaded","type":"server_error","param":null,"code":null}}\n\n'
    upstream, _ = await sse_upstream(send_all(good + bad))
    proxy = await start_proxy(openai_provider(upstream))
    status, _, body = await post(proxy.make_url("/v1/chat/completions"), CHAT)
    assert status == 200
    assert body.startswith(good)
    rest = body[len(good) :]
    assert rest.count(b"data: ") == 1 and error_of(rest.removeprefix(b"data: "))["message"] == "overloaded"
    assert b"[DONE]" not in body


async def test_upstream_reset_mid_stream_becomes_error_frame(sse_upstream, start_proxy) -> None:
    first = frames(chunk({"content": "hel"}))[0]

    async def reset(request: web.Request, response: web.StreamResponse, rec: Recorder) -> None:
        await response.write(first)
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.abort()

    upstream, _ = await sse_upstream(reset)
    proxy = await start_proxy(openai_provider(upstream))
    status, _, body = await post(proxy.make_url("/v1/chat/completions"), CHAT)
    assert status == 200 and body.startswith(first)
    error = error_of(body[len(first) :].removeprefix(b"data: "))
    assert "up" in error["message"]
    assert b"[DONE]" not in body


async def test_clean_close_without_done_is_reported_as_truncated(sse_upstream, start_proxy) -> None:
    part = frames(chunk({"content": "partial"}))[0]
    upstream, _ = await sse_upstream(send_all(part))
    proxy = await start_proxy(openai_provider(upstream))
    _, _, body = await post(proxy.make_url("/v1/chat/completions"), CHAT)
    assert body.startswith(part)
    assert "truncated" in error_of(body[len(part) :].removeprefix(b"data: "))["message"]


async def test_empty_stream_without_any_frame_is_an_http_error(sse_upstream, start_proxy) -> None:
    upstream, _ = await sse_upstream(send_all(b""))
    proxy = await start_proxy(openai_provider(upstream))
    status, _, body = await post(proxy.make_url("/v1/chat/completions"), CHAT)
    assert status == 502
    assert "truncated" in error_of(body)["message"]


async def test_client_disconnect_mid_stream_closes_upstream(sse_upstream, start_proxy) -> None:
    first = frames(chunk({"content": "one"}))[0]

    async def forever(request: web.Request, response: web.StreamResponse, rec: Recorder) -> None:
        await response.write(first)
        for _ in range(600):
            await asyncio.sleep(0.05)
            await response.write(b": still generating\n\n")

    upstream, rec = await sse_upstream(forever)
    proxy = await start_proxy(openai_provider(upstream))
    session = aiohttp.ClientSession()
    resp = await session.post(proxy.make_url("/v1/chat/completions"), json=CHAT)
    assert await resp.content.readuntil(b"\n\n") == first
    resp.close()
    await session.close()
    await asyncio.wait_for(rec.disconnected.wait(), 10)


async def test_client_disconnect_before_first_token_closes_upstream(sse_upstream, start_proxy) -> None:
    async def thinking(request: web.Request, response: web.StreamResponse, rec: Recorder) -> None:
        await asyncio.sleep(60)

    upstream, rec = await sse_upstream(thinking)
    proxy = await start_proxy(openai_provider(upstream))
    async with aiohttp.ClientSession() as session:
        task = asyncio.ensure_future(session.post(proxy.make_url("/v1/chat/completions"), json=CHAT))
        while not rec.calls:
            await asyncio.sleep(0.01)
        task.cancel()
    await asyncio.wait_for(rec.disconnected.wait(), 10)


async def test_idle_upstream_mid_stream_gets_error_frame(sse_upstream, start_proxy) -> None:
    first = frames(chunk({"content": "one"}))[0]

    async def stall(request: web.Request, response: web.StreamResponse, rec: Recorder) -> None:
        await response.write(first)
        await asyncio.sleep(30)

    upstream, rec = await sse_upstream(stall)
    proxy = await start_proxy(openai_provider(upstream, idle_timeout_s=0.3))
    status, _, body = await post(proxy.make_url("/v1/chat/completions"), CHAT)
    assert status == 200 and body.startswith(first)
    error = error_of(body[len(first) :].removeprefix(b"data: "))
    assert error["type"] == "timeout_error" and "0.3 s" in error["message"]
    await asyncio.wait_for(rec.disconnected.wait(), 10)


async def test_upstream_silent_after_headers_times_out_as_504(sse_upstream, start_proxy) -> None:
    async def silent(request: web.Request, response: web.StreamResponse, rec: Recorder) -> None:
        await asyncio.sleep(30)

    upstream, _ = await sse_upstream(silent)
    proxy = await start_proxy(openai_provider(upstream, first_byte_timeout_s=0.3))
    status, _, body = await post(proxy.make_url("/v1/chat/completions"), CHAT)
    assert status == 504 and error_of(body)["type"] == "timeout_error"


async def test_upstream_hanging_before_headers_times_out_as_504(aiohttp_server, start_proxy) -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response()

    app = web.Application()
    app.router.add_post("/v1/chat/completions", hang)
    upstream = await aiohttp_server(app)
    proxy = await start_proxy(openai_provider(upstream, first_byte_timeout_s=0.3))
    status, _, body = await post(proxy.make_url("/v1/chat/completions"), CHAT)
    assert status == 504 and "0.3 s" in error_of(body)["message"]


async def test_unreachable_upstream_is_502(start_proxy) -> None:
    port = refusing_port()
    data = {"providers": {"up": {"kind": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "api_key": UPSTREAM_KEY}}}
    proxy = await start_proxy(data)
    status, _, body = await post(proxy.make_url("/v1/chat/completions"), CHAT)
    assert status == 502
    assert "unreachable" in error_of(body)["message"]


async def test_non_stream_json_is_relayed(aiohttp_server, start_proxy) -> None:
    completion = {
        "id": "chatcmpl-9",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-2024",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }

    async def ok(request: web.Request) -> web.Response:
        return web.json_response(completion)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", ok)
    upstream = await aiohttp_server(app)
    proxy = await start_proxy(openai_provider(upstream))
    status, headers, body = await post(proxy.make_url("/v1/chat/completions"), {**CHAT, "stream": False})
    assert status == 200 and orjson.loads(body) == completion
    assert headers["X-Proxy-Model"] == "up/gpt-4o"


@pytest.mark.parametrize(
    ("payload", "status", "param"),
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        (orjson.dumps({"messages": []}), 400, "model"),
        (orjson.dumps({"model": "up/x", "messages": "hi"}), 400, "messages"),
        (orjson.dumps({"model": "up/x", "messages": [{"role": "robot", "content": "x"}]}), 400, "messages[0].role"),
        (orjson.dumps({**CHAT, "temperature": "hot"}), 400, "temperature"),
        (orjson.dumps({**CHAT, "stream": "yes"}), 400, "stream"),
        (orjson.dumps({**CHAT, "n": True}), 400, "n"),
        (orjson.dumps({**CHAT, "model": "nowhere/x"}), 404, "model"),
        (orjson.dumps({**CHAT, "model": "noslash"}), 404, "model"),
        (orjson.dumps({**CHAT, "model": "up/"}), 400, "model"),
    ],
)
async def test_bad_requests_get_clear_errors(start_proxy, payload: bytes, status: int, param: str | None) -> None:
    proxy = await start_proxy({"providers": {"up": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}}})
    got, _, body = await post(proxy.make_url("/v1/chat/completions"), payload)
    assert got == status
    error = error_of(body)
    assert error["param"] == param
    if status == 404:
        assert "known" in error["message"] and "up" in error["message"]


async def test_body_over_the_limit_is_413(start_proxy) -> None:
    proxy = await start_proxy({"server": {"max_body_bytes": 1000}})
    big = orjson.dumps({"model": "mock/x", "messages": [{"role": "user", "content": "x" * 5000}]})
    status, _, body = await post(proxy.make_url("/v1/chat/completions"), big)
    assert status == 413 and "limit" in error_of(body)["message"]


async def test_missing_key_names_the_variable(start_proxy) -> None:
    proxy = await start_proxy()
    status, _, body = await post(
        proxy.make_url("/v1/chat/completions"), {**CHAT, "model": "anthropic/claude-sonnet-4-5"}
    )
    assert status == 401
    assert "ANTHROPIC_API_KEY" in error_of(body)["message"]


async def test_unknown_route_is_an_openai_shaped_404(start_proxy) -> None:
    proxy = await start_proxy()
    async with aiohttp.ClientSession() as session, session.get(proxy.make_url("/v1/nothing")) as resp:
        assert resp.status == 404
        assert error_of(await resp.read())["type"] == "not_found_error"


async def test_models_and_health(start_proxy) -> None:
    proxy = await start_proxy(env={"OPENAI_API_KEY": "sk-test"})
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.make_url("/healthz")) as resp:
            assert resp.status == 200
        async with session.get(proxy.make_url("/v1/models")) as resp:
            listing = await resp.json()
    ids = {m["id"]: m["owned_by"] for m in listing["data"]}
    assert listing["object"] == "list"
    assert ids["openai/gpt-4o"] == "openai" and ids["mock/echo"] == "mock"
    assert not any(i.startswith("anthropic/") for i in ids)  # no key, not usable


async def test_provider_key_never_reaches_client_or_log(sse_upstream, aiohttp_server, start_proxy, caplog) -> None:
    caplog.set_level(logging.DEBUG)

    async def leaky(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "bad request"}}, status=400)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", leaky)
    upstream = await aiohttp_server(app)
    proxy = await start_proxy(openai_provider(upstream))
    bodies = []
    for body in (CHAT, {**CHAT, "stream": False}, {**CHAT, "model": "nowhere/x"}):
        _, headers, raw = await post(proxy.make_url("/v1/chat/completions"), body)
        bodies.append(raw + repr(headers).encode())
    assert not any(UPSTREAM_KEY.encode() in b for b in bodies)
    assert UPSTREAM_KEY not in caplog.text


async def test_a_response_started_by_two_callers_at_once_is_prepared_once(aiohttp_server) -> None:
    # The stream's first frame and a keep-alive may both start the client response.
    from proxy.relay import SSE_HEADERS, _Sink

    seen: list[bool] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        sink = _Sink(request, SSE_HEADERS, asyncio.get_running_loop())
        first, second = await asyncio.gather(sink.start(), sink.start())
        seen.append(first is second is sink.response)
        await first.write(b"data: one\n\n")
        await first.write_eof()
        return first

    app = web.Application()
    app.router.add_get("/", handler)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session, session.get(server.make_url("/")) as resp:
        assert resp.headers["Content-Type"] == "text/event-stream"
        assert await resp.read() == b"data: one\n\n"
    assert seen == [True]


async def test_a_caller_waiting_on_a_failed_start_sees_a_connection_error(
    aiohttp_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from proxy.relay import SSE_HEADERS, _Sink

    async def failing_prepare(self: web.StreamResponse, request: web.Request) -> None:
        await asyncio.sleep(0)
        raise ConnectionResetError("client gone")

    outcomes: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        sink = _Sink(request, SSE_HEADERS, asyncio.get_running_loop())
        with monkeypatch.context() as patch:
            patch.setattr(web.StreamResponse, "prepare", failing_prepare)
            results = await asyncio.gather(sink.start(), sink.start(), return_exceptions=True)
        outcomes.extend(type(r).__name__ for r in results)
        return web.Response(text="done")

    app = web.Application()
    app.router.add_get("/", handler)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session, session.get(server.make_url("/")) as resp:
        assert await resp.text() == "done"
    assert outcomes == ["ConnectionResetError", "ConnectionResetError"]  # neither hangs nor is cancelled


async def test_every_ending_of_a_stream_leaves_no_watch_behind(aiohttp_server, start_proxy) -> None:
    """Finished, failed, timed-out and abandoned streams all take their watch off the watchdog."""
    first = frames(chunk({"content": "one"}))[0]
    whole = b"".join(frames(chunk({"content": "one"}), chunk({}, "stop"), "[DONE]"))

    async def upstream_handler(request: web.Request) -> web.StreamResponse:
        model = (await request.json())["model"]
        if model == "hang":  # no headers
            await asyncio.sleep(30)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if model == "ok":
            await response.write(whole)
        elif model == "cut":
            await response.write(first)
        else:  # "stall": one frame, then silence
            await response.write(first)
            await asyncio.sleep(30)
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", upstream_handler)
    upstream = await aiohttp_server(app)
    # "quick" times out fast; "slow" never within the test, so only the relay can end its watches.
    config = openai_provider(upstream, "quick", first_byte_timeout_s=0.3, idle_timeout_s=0.3)
    config["providers"].update(openai_provider(upstream, "slow", idle_timeout_s=60)["providers"])
    proxy = await start_proxy(config)
    url = proxy.make_url("/v1/chat/completions")
    watchdog = proxy.app[STATE].transport.watchdog
    for model, status in (("slow/ok", 200), ("slow/cut", 200), ("quick/stall", 200), ("quick/hang", 504)):
        got, _, _ = await post(url, {**CHAT, "model": model})
        assert got == status, model
    assert watchdog.watching == 0
    async with aiohttp.ClientSession() as session:  # a client leaving mid-stream
        resp = await session.post(url, json={**CHAT, "model": "slow/stall"})
        assert await resp.content.readuntil(b"\n\n") == first
        assert watchdog.watching == 1
        resp.close()
    for _ in range(100):
        if not watchdog.watching:
            break
        await asyncio.sleep(0.02)
    assert watchdog.watching == 0


async def test_upstream_cookies_are_not_kept_for_later_requests(aiohttp_server, start_proxy) -> None:
    seen: list[str | None] = []
    whole = b"".join(frames(chunk({"content": "one"}), chunk({}, "stop"), "[DONE]"))

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Cookie"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        response.set_cookie("__cf_bm", "client-a-session", path="/")
        await response.prepare(request)
        await response.write(whole)
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    upstream = await aiohttp_server(app)
    config = openai_provider(upstream)
    # By name: a cookie jar keeps no cookies for bare IP addresses, so 127.0.0.1 would prove nothing.
    config["providers"]["up"]["base_url"] = f"http://localhost:{upstream.port}/v1"
    proxy = await start_proxy(config)
    for _ in range(2):
        status, headers, _ = await post(proxy.make_url("/v1/chat/completions"), CHAT)
        assert status == 200 and "Set-Cookie" not in headers
    assert seen == [None, None]


@pytest.mark.parametrize(
    ("server", "provider", "resolution"),
    [
        ({}, {}, 1.0),  # the defaults (600 s / 120 s timeouts): once a second
        ({"keepalive_s": 2}, {}, 0.25),
        ({}, {"idle_timeout_s": 0.4}, 0.05),
    ],
)
def test_the_watchdog_sweeps_at_an_eighth_of_the_shortest_time(server, provider, resolution) -> None:
    from proxy.config import build
    from proxy.server import create_app

    config = build(
        {"server": server, "providers": {"up": {"kind": "openai", "base_url": "http://h", **provider}}}, "t", {}
    )
    assert create_app(config)[STATE].transport.watchdog.resolution == resolution
