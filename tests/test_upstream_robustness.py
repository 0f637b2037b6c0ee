"""Upstream robustness (issue 10, "Bounded resources"): through the proxy, against real fake
upstreams on 127.0.0.1 speaking each provider's wire format."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from dataclasses import replace
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp import web

from proxy.config import build
from proxy.errors import StreamError
from proxy.protocols.gemini.stream import GeminiStream
from proxy.protocols.openai_chat.encode import ChatEncoder
from proxy.protocols.openai_chat.passthrough import PassthroughTranslator
from tests.conftest import UPSTREAM_KEY, openai_provider
from tests.support import CTX, FIXTURES, assert_same_every_split, splits
from tests.test_gemini import load as gemini_load

CHAT = {"model": "up/gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


async def post(url: Any, body: dict[str, Any], **kw: Any) -> tuple[int, dict[str, str], bytes]:
    kw.setdefault("headers", {"Content-Type": "application/json"})
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


# --- A reused connection reset before the response is retried once -----------------------------

COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    }
)


async def _read_request(reader: asyncio.StreamReader) -> bool:
    """One HTTP request off ``reader`` (head and Content-Length body); False at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return False
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    await reader.readexactly(length)
    return True


async def keepalive_then_drop(how: str) -> tuple[asyncio.Server, list[int]]:
    """An upstream that answers the first request of each connection with keep-alive, and drops
    the connection on its second request without a byte of response (closes or resets it)."""
    served: list[int] = []  # per request: which request of its connection it was

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        count = 0
        while await _read_request(reader):
            count += 1
            served.append(count)
            if count == 2:
                if how == "reset":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.close()
                return
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
                + b"Content-Length: %d\r\n\r\n" % len(COMPLETION)
                + COMPLETION
            )
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(connection, "127.0.0.1", 0)
    return server, served


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_a_reused_connection_dropped_before_the_response_is_retried_on_a_new_one(
    start_proxy: Any, how: str
) -> None:
    server, served = await keepalive_then_drop(how)
    port = server.sockets[0].getsockname()[1]
    provider = {"kind": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "api_key": UPSTREAM_KEY}
    proxy = await start_proxy({"providers": {"up": provider}})
    try:
        for _ in range(3):
            status, _, body = await post(proxy.make_url("/v1/chat/completions"), {**CHAT, "stream": False})
            assert status == 200, body
            assert orjson.loads(body)["choices"][0]["message"]["content"] == "ok"
        assert 2 in served  # a pooled connection was reused and dropped, and the client never saw it
    finally:
        server.close()


# --- A connect timeout is reported as one ------------------------------------------------------


def _unanswered_port(held: list[socket.socket]) -> int:
    """A port whose listen queue is full, so that a new connect hangs (its SYN is dropped)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    held.append(listener)
    port = int(listener.getsockname()[1])
    for _ in range(4):  # fill the accept queue; never accepted
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        held.append(filler)
    return port


async def test_a_connect_timeout_is_reported_as_a_connect_timeout(start_proxy: Any) -> None:
    held: list[socket.socket] = []
    try:
        port = _unanswered_port(held)
        provider = {
            "kind": "openai",
            "base_url": f"http://127.0.0.1:{port}/v1",
            "api_key": UPSTREAM_KEY,
            "connect_timeout_s": 0.3,
            "first_byte_timeout_s": 20,
        }
        proxy = await start_proxy({"providers": {"up": provider}})
        status, _, body = await post(proxy.make_url("/v1/chat/completions"), CHAT)
        error = error_of(body)
        assert status == 504 and error["type"] == "timeout_error" and error["code"] == "connect_timeout"
        assert "could not be connected within 0.3 s" in error["message"]
    finally:
        for sock in held:
            sock.close()


# --- Junk from an OpenAI-compatible upstream -----------------------------------------------------

PRESETS = build({}, "<t>", {})
MODES = {"normalise": PRESETS.providers["openrouter"], "exact": PRESETS.providers["openai"]}


def chunk_frame(content: str) -> bytes:
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


GOOD = chunk_frame("Hello") + chunk_frame(" world")
JUNK = {
    "random-bytes": bytes(random.Random(7).randrange(256) for _ in range(3000)),
    "invalid-json": b'data: {"id": "chatcmpl-1", "choices": [\n\n',
    "not-an-object": b"data: [1, 2, 3]\n\n",
    "a-string": b'data: "hello"\n\n',
    "plain-text": b"Internal Server Error\n\n",
    "html": b"<html><body>502 Bad Gateway</body></html>\n\n",
}


def outcome(translator: PassthroughTranslator, parts: list[bytes]) -> tuple[bytes, str | None]:
    """Everything the client would get (frames, then the error's message if one was raised)."""
    out: list[bytes] = []
    try:
        for part in parts:
            out.append(translator.feed(part))
        out.append(translator.finish())
    except StreamError as exc:
        return b"".join(out) + exc.output, exc.message
    return b"".join(out), None


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("junk", sorted(JUNK))
@pytest.mark.parametrize("framing", ["lf", "crlf"])
def test_junk_after_good_frames_ends_with_an_error(mode: str, junk: str, framing: str) -> None:
    data = GOOD + JUNK[junk] + chunk_frame("never") + b"data: [DONE]\n\n"
    if framing == "crlf":
        data = data.replace(b"\n", b"\r\n")
    results = {name: outcome(PassthroughTranslator(CTX, MODES[mode]), parts) for name, parts in splits(data)}
    out, message = results["whole"]
    assert all(result == (out, message) for result in results.values())
    assert message is not None, "junk passed as a stream"
    assert b"[DONE]" not in out and b"never" not in out
    assert out == GOOD or junk == "random-bytes"  # the frames before the junk reach the client
    assert out.startswith(GOOD) or junk == "random-bytes"


@pytest.mark.parametrize("mode", sorted(MODES))
def test_upstream_comments_are_dropped_in_both_modes(mode: str) -> None:
    data = b": OPENROUTER PROCESSING\n\n" + chunk_frame("a") + b": ping\n\n" + chunk_frame("b") + b"data: [DONE]\n\n"
    out = assert_same_every_split(lambda: PassthroughTranslator(CTX, MODES[mode]), data)
    assert out == chunk_frame("a") + chunk_frame("b") + b"data: [DONE]\n\n"


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_frame_end_that_never_comes_is_bounded(mode: str) -> None:
    translator = PassthroughTranslator(CTX, MODES[mode])
    piece = b"x" * (1024 * 1024)
    with pytest.raises(StreamError, match="exceeds"):
        for _ in range(17):
            translator.feed(piece)


async def test_junk_from_an_openai_upstream_reaches_the_sdk_as_an_error(sse_upstream: Any, start_proxy: Any) -> None:
    async def junk(request: web.Request, response: web.StreamResponse, rec: Any) -> None:
        await response.write(GOOD)
        await asyncio.sleep(0.05)
        await response.write(b"data: [1, 2, 3]\n\n")
        await response.write(b"data: [DONE]\n\n")

    upstream, _ = await sse_upstream(junk)
    proxy = await start_proxy(openai_provider(upstream, normalise=False))
    client = openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="client", max_retries=0)
    stream = await client.chat.completions.create(
        model="up/gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = ""
    with pytest.raises(openai.APIError, match="not an OpenAI chunk"):
        async for chunk in stream:
            text += chunk.choices[0].delta.content or ""
    assert text == "Hello world"


# --- Timeouts count events, not bytes; keep-alives while the upstream opens ---------------------


async def test_an_upstream_sending_only_comments_meets_its_first_byte_timeout(
    sse_upstream: Any, start_proxy: Any
) -> None:
    async def comments(request: web.Request, response: web.StreamResponse, rec: Any) -> None:
        for _ in range(300):
            await response.write(b": OPENROUTER PROCESSING\n\n")
            await asyncio.sleep(0.05)

    upstream, rec = await sse_upstream(comments)
    proxy = await start_proxy(openai_provider(upstream, first_byte_timeout_s=0.5))
    status, _, body = await asyncio.wait_for(post(proxy.make_url("/v1/chat/completions"), CHAT), 10)
    assert status == 504 and error_of(body)["type"] == "timeout_error" and "0.5 s" in error_of(body)["message"]
    await asyncio.wait_for(rec.disconnected.wait(), 10)


@pytest.mark.parametrize("normalise", [True, False])
async def test_an_upstream_dribbling_bytes_meets_its_idle_timeout(
    sse_upstream: Any, start_proxy: Any, normalise: bool
) -> None:
    first = chunk_frame("one")

    async def dribble(request: web.Request, response: web.StreamResponse, rec: Any) -> None:
        await response.write(first)
        for byte in chunk_frame("two" * 100):
            await response.write(bytes([byte]))
            await asyncio.sleep(0.05)

    upstream, rec = await sse_upstream(dribble)
    proxy = await start_proxy(openai_provider(upstream, idle_timeout_s=0.5, normalise=normalise))
    status, _, body = await asyncio.wait_for(post(proxy.make_url("/v1/chat/completions"), CHAT), 10)
    assert status == 200 and body.startswith(first)
    error = error_of(body[len(first) :].removeprefix(b"data: "))
    assert error["type"] == "timeout_error" and "0.5 s" in error["message"]
    await asyncio.wait_for(rec.disconnected.wait(), 10)


def late_headers(delay_s: float, then: bytes) -> web.Application:
    """An upstream that sends its response head only after ``delay_s``."""

    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(delay_s)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(then)
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", slow)
    return app


async def test_keepalives_flow_while_the_upstream_has_not_sent_its_headers(
    aiohttp_server: Any, start_proxy: Any
) -> None:
    answer = chunk_frame("late") + b"data: [DONE]\n\n"
    upstream = await aiohttp_server(late_headers(0.6, answer))
    proxy = await start_proxy({**openai_provider(upstream), "server": {"keepalive_s": 0.1}})
    status, _, body = await post(proxy.make_url("/v1/chat/completions"), CHAT)
    assert status == 200 and body.endswith(answer)
    assert body.startswith(b": keep-alive\n\n") and body[: -len(answer)].count(b": keep-alive\n\n") >= 2


async def test_a_failure_after_a_keepalive_before_the_headers_is_an_error_frame(
    aiohttp_server: Any, start_proxy: Any
) -> None:
    upstream = await aiohttp_server(late_headers(30, b""))
    provider = openai_provider(upstream, first_byte_timeout_s=0.6)
    proxy = await start_proxy({**provider, "server": {"keepalive_s": 0.1}})
    status, _, body = await asyncio.wait_for(post(proxy.make_url("/v1/chat/completions"), CHAT), 10)
    assert status == 200 and body.startswith(b": keep-alive\n\n")
    frame = body.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
    error = error_of(frame.removeprefix(b"data: "))
    assert error["type"] == "timeout_error" and "0.6 s" in error["message"]


# --- A slow client is not an idle upstream -------------------------------------------------------


async def read_slowly(port: int, body: bytes, pauses: int, pause_s: float) -> bytes:
    """POST ``body`` over a raw socket with a tiny receive buffer; stop reading ``pauses`` times
    for ``pause_s`` early on, then read to the end."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    await loop.sock_sendall(sock, head + body)
    received = bytearray()
    try:
        for _ in range(pauses):
            received += await loop.sock_recv(sock, 4096)
            await asyncio.sleep(pause_s)
        while chunk := await loop.sock_recv(sock, 65536):
            received += chunk
    finally:
        sock.close()
    return bytes(received)


async def test_a_slow_reader_does_not_get_a_healthy_upstream_timed_out(sse_upstream: Any, start_proxy: Any) -> None:
    batch = b"".join(chunk_frame(f"{i:04d}" + "x" * 1000) for i in range(100))
    batches = 200  # about 23 MB: more than every socket buffer on the way holds

    async def lots(request: web.Request, response: web.StreamResponse, rec: Any) -> None:
        for _ in range(batches):
            await response.write(batch)
        await response.write(b"data: [DONE]\n\n")

    upstream, _ = await sse_upstream(lots)
    proxy = await start_proxy(openai_provider(upstream, idle_timeout_s=0.5, normalise=False))
    raw = await asyncio.wait_for(read_slowly(proxy.port, orjson.dumps(CHAT), pauses=3, pause_s=1.2), 60)
    assert raw.startswith(b"HTTP/1.1 200")
    assert b'"error"' not in raw
    assert raw.count(b"x" * 1000) == 100 * batches and raw.rstrip(b"\r\n0").endswith(b"data: [DONE]")
