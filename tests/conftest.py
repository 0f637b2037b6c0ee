"""Shared fixtures: the proxy on a real socket, fake upstreams, and a background loop for
tests that drive the proxy with a synchronous client."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.config import build
from proxy.server import create_app

UPSTREAM_KEY = "sk-upstream-secret-0123456789"


@dataclass
class Recorder:
    """What a fake upstream saw: each request's headers and JSON body, and disconnects."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    calls: int = 0


def openai_provider(server: TestServer, name: str = "up", **extra: Any) -> dict[str, Any]:
    """A config fragment pointing provider ``name`` (kind openai) at a fake upstream."""
    return {
        "providers": {
            name: {"kind": "openai", "base_url": str(server.make_url("/v1")), "api_key": UPSTREAM_KEY, **extra}
        }
    }


@pytest.fixture
def start_proxy(aiohttp_server: Any) -> Callable[..., Awaitable[TestServer]]:
    async def start(data: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> TestServer:
        config = build(data or {}, "<test>", env or {})
        server: TestServer = await aiohttp_server(create_app(config))
        return server

    return start


SSEHandler = Callable[[web.Request, web.StreamResponse, Recorder], Awaitable[None]]


@pytest.fixture
def sse_upstream(aiohttp_server: Any) -> Callable[..., Awaitable[tuple[TestServer, Recorder]]]:
    """A fake OpenAI upstream whose streaming body is written by ``handler``.

    The handler gets the prepared ``StreamResponse``; the recorder notes each request and sets
    ``disconnected`` when the proxy drops the connection while the handler still runs.
    """

    async def start(handler: SSEHandler, path: str = "/v1/chat/completions") -> tuple[TestServer, Recorder]:
        recorder = Recorder()

        async def endpoint(request: web.Request) -> web.StreamResponse:
            recorder.calls += 1
            recorder.requests.append({"headers": dict(request.headers), "body": await request.json()})
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            try:
                await handler(request, response, recorder)
            except (asyncio.CancelledError, ConnectionError):
                recorder.disconnected.set()
                raise
            return response

        app = web.Application()
        app.router.add_post(path, endpoint)
        server: TestServer = await aiohttp_server(app)
        return server, recorder

    return start


def frames(*chunks: dict[str, Any] | str) -> list[bytes]:
    """SSE frames for dicts (as JSON) and strings (``[DONE]``) in OpenAI's exact framing."""
    import orjson

    return [b"data: " + (c.encode() if isinstance(c, str) else orjson.dumps(c)) + b"\n\n" for c in chunks]


class BackgroundLoop:
    """An event loop in a thread, for servers that a synchronous client talks to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)  # type: ignore[arg-type]

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


@pytest.fixture
def background_loop() -> Iterator[BackgroundLoop]:
    bg = BackgroundLoop()
    servers: list[TestServer] = []
    bg.servers = servers  # type: ignore[attr-defined]
    yield bg
    for server in servers:
        bg.run(server.close())
    bg.stop()


async def serve_in(bg_servers: list[TestServer], app: web.Application) -> TestServer:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    bg_servers.append(server)
    return server


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]
