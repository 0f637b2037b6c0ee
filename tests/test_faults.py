"""The fault-injection suite (issue 10), fast part: every upstream fault and every client
disconnect, through the real proxy to real fake upstreams on 127.0.0.1, for each provider kind
that streams (OpenAI pass-through, Anthropic, Gemini).

The contract each case checks: the client sees an HTTP error in OpenAI's shape or exactly one
error frame at the end of its stream; never a ``[DONE]`` after a failure, never a hang, never a
bare 500. Where the proxy gives up on an upstream, the fake notes its connection closing and the
test waits for that (an event with a generous bound, not a speed assertion).

Cases already covered for the OpenAI path elsewhere (tests/test_relay.py,
tests/test_upstream_robustness.py) are here for the translating kinds as well; the 16 MiB
event cap, gzip, the missing final blank line and the keep-alive phase are new.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import UPSTREAM_KEY
from tests.support import refusing_port

MiB = 1024 * 1024
SEEN_WITHIN_S = 2.0  # how long a closed upstream connection may take to be noticed (generous)
ANSWER_WITHIN_S = 15.0  # any answer at all; a hang fails here instead of at pytest's timeout


# --- Each kind's wire format ---------------------------------------------------------------------


def _openai(text: str, finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _anthropic_event(data: dict[str, Any]) -> bytes:
    return b"event: " + str(data["type"]).encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _anthropic(text: str) -> bytes:
    return _anthropic_event({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}})


ANTHROPIC_START = _anthropic_event(
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": "claude-x",
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 3, "output_tokens": 1},
        },
    }
) + _anthropic_event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})

ANTHROPIC_END = (
    _anthropic_event({"type": "content_block_stop", "index": 0})
    + _anthropic_event(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 2},
        }
    )
    + _anthropic_event({"type": "message_stop"})
)


def _gemini(text: str, finish: bool = False) -> bytes:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    event: dict[str, Any] = {"candidates": [candidate]}
    if finish:
        candidate["finishReason"] = "STOP"
        event["usageMetadata"] = {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5}
    return b"data: " + orjson.dumps(event) + b"\r\n\r\n"


@dataclass(frozen=True)
class Kind:
    """How one provider kind is served by a fake: its route, its config, its events."""

    name: str
    route: str
    model: str
    start: bytes  # what opens a stream before the first text (may be empty)
    text: Callable[[str], bytes]  # one event carrying text
    end: bytes  # what ends a good stream, final blank line included
    base_path: str = ""

    def provider(self, server: TestServer, **extra: Any) -> dict[str, Any]:
        base_url = str(server.make_url(self.base_path)).rstrip("/")
        return {"providers": {"up": {"kind": self.name, "base_url": base_url, "api_key": UPSTREAM_KEY, **extra}}}

    def first(self, text: str = "Hello") -> bytes:
        return self.start + self.text(text)


KINDS = {
    "openai": Kind(
        "openai", "/v1/chat/completions", "up/gpt-4o", b"", _openai, _openai("", "stop") + b"data: [DONE]\n\n", "/v1"
    ),
    "anthropic": Kind("anthropic", "/v1/messages", "up/claude-x", ANTHROPIC_START, _anthropic, ANTHROPIC_END),
    "gemini": Kind("gemini", "/v1beta/models/{tail}", "up/gemini-2.5-flash", b"", _gemini, _gemini("!", finish=True)),
}
kinds = pytest.mark.parametrize("kind", [KINDS[k] for k in KINDS], ids=list(KINDS))


# --- The fake upstream --------------------------------------------------------------------------


Behaviour = Callable[["Fake", web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Fake:
    """An upstream whose answer is written by ``behaviour``; it records when the proxy's request
    arrived, how many bytes it managed to send, and when the proxy closed the connection."""

    behaviour: Behaviour
    received: asyncio.Event = field(default_factory=asyncio.Event)
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.received.set()
        try:
            return await self.behaviour(self, request)
        except (ConnectionError, asyncio.CancelledError):
            self.disconnected.set()
            raise

    async def idle(self, request: web.Request, seconds: float = 30.0) -> None:
        """Send nothing for ``seconds``, noticing a closed connection at once (aiohttp does not
        cancel handlers: the protocol drops its transport when the peer goes)."""
        for _ in range(int(seconds / 0.01)):
            if request.transport is None or request.transport.is_closing():
                raise ConnectionResetError("the proxy closed the connection")
            await asyncio.sleep(0.01)

    async def open(self, request: web.Request, **headers: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **headers})
        await response.prepare(request)
        return response

    async def send(self, response: web.StreamResponse, data: bytes) -> None:
        await response.write(data)
        self.sent += len(data)


async def serve_fake(aiohttp_server: Any, kind: Kind, behaviour: Behaviour) -> tuple[TestServer, Fake]:
    fake = Fake(behaviour)
    app = web.Application()
    app.router.add_post(kind.route, fake.handle)
    server: TestServer = await aiohttp_server(app)
    return server, fake


def streaming(*parts: bytes, then: str = "close") -> Behaviour:
    """A behaviour that sends ``parts`` and then closes cleanly, resets, or stalls."""

    async def behaviour(fake: Fake, request: web.Request) -> web.StreamResponse:
        response = await fake.open(request)
        for part in parts:
            await fake.send(response, part)
        if then == "reset":
            await asyncio.sleep(0.05)
            assert request.transport is not None
            request.transport.abort()
        elif then == "stall":
            await fake.idle(request)
        return response

    return behaviour


# --- The client's view --------------------------------------------------------------------------


@dataclass
class Seen:
    """What the client got: the status, and for a stream its text, error frames and ``[DONE]``."""

    status: int
    body: bytes
    text: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    last_is_error: bool = False


def seen(status: int, body: bytes) -> Seen:
    result = Seen(status, body)
    if status != 200:
        result.errors.append(orjson.loads(body)["error"])
        return result
    frames = [f for f in body.split(b"\n\n") if f.strip() and not f.startswith(b":")]
    for frame in frames:
        assert frame.startswith(b"data: "), frame[:200]
        data = frame.removeprefix(b"data: ")
        if data == b"[DONE]":
            result.done, result.last_is_error = True, False
            continue
        event = orjson.loads(data)
        result.last_is_error = "error" in event
        if result.last_is_error:
            result.errors.append(event["error"])
        else:
            result.text += "".join(c["delta"].get("content") or "" for c in event["choices"])
    return result


def assert_failed_cleanly(result: Seen) -> dict[str, Any]:
    """An HTTP error in OpenAI's shape, or a 200 stream ending with its one error frame."""
    if result.status != 200:
        assert 400 <= result.status < 600 and result.status != 500, result.status
    else:
        assert not result.done, "a failed stream must not end with [DONE]"
        assert result.last_is_error and len(result.errors) == 1, result.body[-400:]
    (error,) = result.errors
    assert set(error) == {"message", "type", "param", "code"}
    assert "Traceback" not in error["message"]
    return error


async def ask(proxy: TestServer, kind: Kind, **headers: str) -> Seen:
    body = {"model": kind.model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            proxy.make_url("/v1/chat/completions"),
            data=orjson.dumps(body),
            headers={"Content-Type": "application/json", **headers},
        )
        async with response:
            raw = await asyncio.wait_for(response.read(), ANSWER_WITHIN_S)
    return seen(response.status, raw)


StartProxy = Callable[..., Awaitable[TestServer]]


# --- Connection-level faults --------------------------------------------------------------------


@kinds
async def test_an_upstream_refusing_the_connection_is_an_http_error(kind: Kind, start_proxy: StartProxy) -> None:
    port = refusing_port()
    provider = {"kind": kind.name, "base_url": f"http://127.0.0.1:{port}{kind.base_path}", "api_key": UPSTREAM_KEY}
    proxy = await start_proxy({"providers": {"up": provider}})
    result = await ask(proxy, kind)
    assert result.status == 502
    assert_failed_cleanly(result)


@kinds
async def test_an_upstream_reset_mid_stream_is_one_error_frame(
    kind: Kind, aiohttp_server: Any, start_proxy: StartProxy
) -> None:
    upstream, _ = await serve_fake(aiohttp_server, kind, streaming(kind.first(), then="reset"))
    proxy = await start_proxy(kind.provider(upstream))
    result = await ask(proxy, kind)
    assert result.status == 200 and result.text == "Hello"
    assert_failed_cleanly(result)


@kinds
async def test_an_upstream_stalling_before_its_headers_meets_the_first_byte_timeout(
    kind: Kind, aiohttp_server: Any, start_proxy: StartProxy
) -> None:
    async def stall(fake: Fake, request: web.Request) -> web.StreamResponse:
        await fake.idle(request)
        return web.Response()

    upstream, fake = await serve_fake(aiohttp_server, kind, stall)
    proxy = await start_proxy(kind.provider(upstream, first_byte_timeout_s=0.4))
    result = await ask(proxy, kind)
    assert result.status == 504 and assert_failed_cleanly(result)["type"] == "timeout_error"
    await asyncio.wait_for(fake.disconnected.wait(), SEEN_WITHIN_S)


@kinds
async def test_an_upstream_stalling_mid_stream_meets_the_idle_timeout(
    kind: Kind, aiohttp_server: Any, start_proxy: StartProxy
) -> None:
    upstream, fake = await serve_fake(aiohttp_server, kind, streaming(kind.first(), then="stall"))
    proxy = await start_proxy(kind.provider(upstream, idle_timeout_s=0.4))
    result = await ask(proxy, kind)
    assert result.status == 200 and result.text == "Hello"
    error = assert_failed_cleanly(result)
    assert error["type"] == "timeout_error" and "0.4 s" in error["message"]
    await asyncio.wait_for(fake.disconnected.wait(), SEEN_WITHIN_S)


# --- What the upstream sends --------------------------------------------------------------------


@kinds
async def test_a_5_mib_event_is_relayed_whole(kind: Kind, aiohttp_server: Any, start_proxy: StartProxy) -> None:
    big = "x" * (5 * MiB)
    event = kind.text(big)
    pieces = [event[i : i + 256 * 1024] for i in range(0, len(event), 256 * 1024)]
    upstream, _ = await serve_fake(aiohttp_server, kind, streaming(kind.first(), *pieces, kind.end))
    proxy = await start_proxy(kind.provider(upstream))
    result = await ask(proxy, kind)
    assert result.status == 200 and result.done and not result.errors
    assert result.text.startswith("Hello" + big)


@kinds
async def test_a_50_mib_line_without_an_end_is_cut_at_16_mib(
    kind: Kind, aiohttp_server: Any, start_proxy: StartProxy
) -> None:
    async def endless_line(fake: Fake, request: web.Request) -> web.StreamResponse:
        response = await fake.open(request)
        await fake.send(response, kind.first() + b"data: ")
        piece = b"y" * MiB
        for _ in range(50):
            await fake.send(response, piece)
        await fake.idle(request)
        return response

    upstream, fake = await serve_fake(aiohttp_server, kind, endless_line)
    proxy = await start_proxy(kind.provider(upstream))
    result = await ask(proxy, kind)
    assert result.status == 200 and result.text == "Hello"
    assert "exceeds" in assert_failed_cleanly(result)["message"]
    await asyncio.wait_for(fake.disconnected.wait(), SEEN_WITHIN_S)
    # Bounded memory: the proxy stopped reading at the cap, so the fake could not hand over all
    # 50 MiB (what it did send sits in the cap plus the socket buffers on the way).
    assert fake.sent < 40 * MiB


@kinds
async def test_a_stream_without_its_final_blank_line(kind: Kind, aiohttp_server: Any, start_proxy: StartProxy) -> None:
    unterminated = kind.end.rstrip(b"\r\n")
    upstream, _ = await serve_fake(aiohttp_server, kind, streaming(kind.first(), unterminated))
    proxy = await start_proxy(kind.provider(upstream))
    result = await ask(proxy, kind)
    assert result.status == 200 and result.text.startswith("Hello")
    # SSE drops an event without its blank line: the end never arrived, and the client is told.
    assert "truncated" in assert_failed_cleanly(result)["message"]


@kinds
@pytest.mark.parametrize("status", [502, 503])
async def test_a_5xx_with_an_html_body_is_an_error_in_openai_shape(
    kind: Kind, status: int, aiohttp_server: Any, start_proxy: StartProxy
) -> None:
    async def html(fake: Fake, request: web.Request) -> web.StreamResponse:
        return web.Response(
            status=status, text="<html><body><h1>Bad Gateway</h1></body></html>", content_type="text/html"
        )

    upstream, _ = await serve_fake(aiohttp_server, kind, html)
    proxy = await start_proxy(kind.provider(upstream))
    result = await ask(proxy, kind)
    assert result.status == status
    assert str(status) in assert_failed_cleanly(result)["message"]


@kinds
async def test_a_gzip_encoded_stream_is_relayed(kind: Kind, aiohttp_server: Any, start_proxy: StartProxy) -> None:
    body = gzip.compress(kind.first() + kind.text(" world") + kind.end)

    async def gzipped(fake: Fake, request: web.Request) -> web.StreamResponse:
        response = await fake.open(request, **{"Content-Encoding": "gzip"})
        for i in range(0, len(body), 16):
            await fake.send(response, body[i : i + 16])
        return response

    upstream, _ = await serve_fake(aiohttp_server, kind, gzipped)
    proxy = await start_proxy(kind.provider(upstream))
    result = await ask(proxy, kind)
    assert result.status == 200 and result.done and not result.errors
    assert result.text.startswith("Hello world")


# --- The client goes away -----------------------------------------------------------------------


PHASES = ["before_the_upstream_answered", "after_the_upstream_headers", "mid_stream", "during_a_keepalive"]


def upstream_for(phase: str, kind: Kind) -> Behaviour:
    async def behaviour(fake: Fake, request: web.Request) -> web.StreamResponse:
        if phase in ("before_the_upstream_answered", "during_a_keepalive"):
            await fake.idle(request)
            return web.Response()
        response = await fake.open(request)
        fake.opened.set()
        if phase == "mid_stream":
            await fake.send(response, kind.first())
        await fake.idle(request)
        return response

    return behaviour


async def hang_up(proxy: TestServer, kind: Kind, phase: str, fake: Fake) -> None:
    """Send a request and drop the connection at ``phase``."""
    body = {"model": kind.model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as session:
        request = asyncio.ensure_future(
            session.post(
                proxy.make_url("/v1/chat/completions"),
                data=orjson.dumps(body),
                headers={"Content-Type": "application/json"},
            )
        )
        if phase in ("before_the_upstream_answered", "after_the_upstream_headers"):
            ready = fake.received if phase == "before_the_upstream_answered" else fake.opened
            await asyncio.wait_for(ready.wait(), ANSWER_WITHIN_S)
            assert not request.done()  # nothing has reached the client yet
            request.cancel()
            return
        response = await asyncio.wait_for(request, ANSWER_WITHIN_S)
        first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), ANSWER_WITHIN_S)
        assert first.startswith(b": keep-alive" if phase == "during_a_keepalive" else b"data: {")
        response.close()


@kinds
@pytest.mark.parametrize("phase", PHASES)
async def test_a_client_hanging_up_closes_the_upstream_promptly(
    kind: Kind, phase: str, aiohttp_server: Any, start_proxy: StartProxy
) -> None:
    upstream, fake = await serve_fake(aiohttp_server, kind, upstream_for(phase, kind))
    config = kind.provider(upstream)
    if phase == "during_a_keepalive":
        config["server"] = {"keepalive_s": 0.1}
    proxy = await start_proxy(config)
    await hang_up(proxy, kind, phase, fake)
    await asyncio.wait_for(fake.disconnected.wait(), SEEN_WITHIN_S)
