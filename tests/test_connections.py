"""Client connections within bounds, over raw sockets against the proxy served as the CLI
serves it (``ProxyRunner``): slow headers and idle keep-alive closed, connections over the cap
refused while a pooled client is still served, aiohttp's parse errors in OpenAI's shape, and
the open-file limit raised at start."""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from proxy.config import build
from proxy.connections import ProxyRunner, raise_open_files_limit
from proxy.server import create_app

Serve = Callable[[dict[str, Any]], Awaitable[tuple[str, int]]]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def start(server: dict[str, Any]) -> tuple[str, int]:
        runner = ProxyRunner(create_app(build({"server": server}, "<test>", {})), handler_cancellation=True)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return host, port

    yield start
    for runner in runners:
        await runner.cleanup()


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the proxy sends until it closes the connection (fails if it stays open); a
    reset (the proxy closed while the client was still sending) counts as closed."""
    try:
        return await asyncio.wait_for(reader.read(), seconds)
    except ConnectionResetError:
        return b""


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def test_slow_headers_are_cut_at_the_header_timeout(serve: Serve) -> None:
    host, port = await serve({"header_timeout_s": 0.5, "keepalive_timeout_s": 60})
    reader, writer = await asyncio.open_connection(host, port)
    request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100 + b"\r\n\r\n"

    async def trickle() -> None:
        for byte in request:
            writer.write(bytes([byte]))
            await asyncio.sleep(0.05)  # 5 s for the whole head

    sender = asyncio.create_task(trickle())
    try:
        assert await closed_within(reader, 3) == b""
        assert not sender.done()  # cut while the headers were still arriving
    finally:
        sender.cancel()
        writer.close()


async def test_a_silent_new_connection_is_closed_at_the_header_timeout(serve: Serve) -> None:
    host, port = await serve({"header_timeout_s": 0.3, "keepalive_timeout_s": 60})
    reader, writer = await asyncio.open_connection(host, port)
    assert await closed_within(reader, 3) == b""
    writer.close()


async def test_idle_keepalive_is_closed_and_a_served_request_is_not_cut(serve: Serve) -> None:
    host, port = await serve({"header_timeout_s": 0.3, "keepalive_timeout_s": 0.6})
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(HEALTHZ)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    assert head.startswith(b"HTTP/1.1 200")
    # The header deadline armed at connect passes while the connection is idle after a served
    # request: only the keep-alive timeout closes it, a little later.
    rest = await closed_within(reader, 3)
    assert rest.startswith(b"{") or rest == b"" or b"ok" in rest
    writer.close()


async def test_a_keepalive_connection_serves_its_second_request(serve: Serve) -> None:
    host, port = await serve({"header_timeout_s": 0.3, "keepalive_timeout_s": 5})
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            r = await session.get(f"http://{host}:{port}/healthz")
            assert r.status == 200
            await r.read()
            await asyncio.sleep(0.5)  # past the header deadline armed at connect: still one connection


async def test_connections_over_the_cap_are_refused_while_a_pooled_client_is_served(serve: Serve) -> None:
    host, port = await serve({"max_connections": 3, "header_timeout_s": 30})
    url = f"http://{host}:{port}/v1/chat/completions"
    body = {"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as client:
        assert (await client.post(url, json=body)).status == 200
        idle = [await asyncio.open_connection(host, port) for _ in range(2)]  # the cap is full
        await asyncio.sleep(0.05)
        reader, writer = await asyncio.open_connection(host, port)
        refused = await closed_within(reader, 2)  # closed at once, with a 503 when it arrives in time
        assert refused == b"" or refused.startswith(b"HTTP/1.1 503")
        if refused:
            head, _, payload = refused.partition(b"\r\n\r\n")
            assert b"Retry-After: 1" in head
            assert orjson.loads(payload)["error"]["code"] == "too_many_connections"
        writer.close()
        r = await client.post(url, json=body)  # the pooled connection is still served
        assert r.status == 200 and (await r.json())["choices"]
        for _, w in idle:
            w.close()
        await asyncio.sleep(0.1)
    async with aiohttp.ClientSession() as fresh:  # the places were given back
        assert (await fresh.post(url, json=body)).status == 200


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: " + b"b" * 9000 + b"\r\n\r\n",
    ],
    ids=["bad-request-line", "long-request-line", "bad-header", "long-header"],
)
async def test_http_parser_errors_leave_in_the_openai_error_shape(serve: Serve, raw: bytes) -> None:
    host, port = await serve({})
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(raw)
    response = await closed_within(reader, 3)
    head, _, payload = response.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400", response[:200]
    assert b"Content-Type: application/json" in head
    error = orjson.loads(payload)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["message"].startswith("malformed HTTP request")
    writer.close()


def test_raise_open_files_limit_sets_soft_to_hard() -> None:
    code = (
        "import resource\n"
        "from proxy.connections import raise_open_files_limit\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "print(raise_open_files_limit() == hard == resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30, preexec_fn=_low_soft_limit
    )
    assert out.stdout.strip() == "True", out.stderr
    assert raise_open_files_limit() == resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _low_soft_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))


@pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="reads /proc/<pid>/limits")
def test_the_cli_raises_the_open_files_limit_at_start() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= 256:
        pytest.skip("the hard open-file limit is already 256 or less")
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy", "--port", "0", "--no-uvloop"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_low_soft_limit,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        assert "listening on" in proc.stdout.readline()
        limits = Path(f"/proc/{proc.pid}/limits").read_text().splitlines()
        line = next(x for x in limits if x.startswith("Max open files"))
        soft, hard_seen = line.split()[3:5]
        assert soft == hard_seen != "256"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
