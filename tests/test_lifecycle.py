"""Lifecycle: the real CLI as a subprocess (``python -m proxy``), signals sent by PID, a fake
OpenAI upstream in the test's loop on 127.0.0.1. Every wait is bounded; every process started
here is killed at the end of its test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import UPSTREAM_KEY, frames

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = [{"role": "user", "content": "hi"}]


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


FIRST = frames(chunk({"role": "assistant", "content": "Hello"}))[0]
REST = b"".join(frames(chunk({"content": " world"}), chunk({}, "stop"), "[DONE]"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config_text(upstream: TestServer, drain_s: float = 30.0, extra: str = "") -> str:
    return (
        f"[server]\ndrain_timeout_s = {drain_s}\n\n"
        f'[providers.up]\nkind = "openai"\nbase_url = "{upstream.make_url("/v1")}"\n'
        f'api_key = "{UPSTREAM_KEY}"\nmodels = ["m"]\n{extra}'
    )


class Proxy:
    """One ``python -m proxy`` process on a port of its own; its stderr in a file."""

    def __init__(self, tmp: Path, config: str, *args: str) -> None:
        self.config = tmp / "proxy.toml"
        self.config.write_text(config)
        self.port = free_port()
        self.log = tmp / "proxy.log"
        self.tmp = tmp / "tmp"  # the process's TMPDIR: where a supervisor puts its metrics directory
        self.tmp.mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "proxy", "--config", str(self.config), "--port", str(self.port), *args],
            cwd=ROOT,
            env={**os.environ, "TMPDIR": str(self.tmp)},
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.proc.pid, sig)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    async def ready(self, timeout: float = 20.0) -> None:
        async with aiohttp.ClientSession() as session:
            for _ in range(int(timeout / 0.05)):
                assert self.proc.poll() is None, self.logs()
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(self.url("/readyz")) as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise AssertionError(f"the proxy did not become ready: {self.logs()}")

    async def exited(self, timeout: float) -> int:
        for _ in range(int(timeout / 0.05)):
            code = self.proc.poll()
            if code is not None:
                return code
            await asyncio.sleep(0.05)
        raise AssertionError(f"the proxy still runs after {timeout}s: {self.logs()}")

    def refuses(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) != 0

    def kill(self) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def run_proxy(tmp_path: Path) -> Iterator[Callable[..., Proxy]]:
    started: list[Proxy] = []

    def start(config: str, *args: str) -> Proxy:
        proxy = Proxy(tmp_path, config, "--no-uvloop", *args)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.kill()


async def open_stream(session: aiohttp.ClientSession, proxy: Proxy) -> aiohttp.ClientResponse:
    body = {"model": "up/m", "messages": MESSAGES, "stream": True}
    response = await session.post(proxy.url("/v1/chat/completions"), json=body)
    assert response.status == 200
    assert (await response.content.readline()).startswith(b"data: {")  # the first frame arrived
    await response.content.readline()
    return response


@pytest.fixture
async def held_upstream(sse_upstream: Any) -> AsyncIterator[tuple[TestServer, asyncio.Event, Any]]:
    """An upstream that sends one frame, then the rest when ``release`` is set."""
    release = asyncio.Event()

    async def held(request: web.Request, response: web.StreamResponse, _: Any) -> None:
        await response.write(FIRST)
        await release.wait()
        await response.write(REST)

    server, recorder = await sse_upstream(held)
    yield server, release, recorder
    release.set()


async def test_sigterm_stops_accepting_lets_open_streams_finish_and_exits_0(held_upstream, run_proxy) -> None:
    upstream, release, _ = held_upstream
    proxy = run_proxy(config_text(upstream))
    await proxy.ready()
    async with aiohttp.ClientSession() as session:
        response = await open_stream(session, proxy)
        proxy.signal(signal.SIGTERM)
        for _ in range(100):
            if proxy.refuses():
                break
            await asyncio.sleep(0.05)
        assert proxy.refuses(), "still accepting after SIGTERM"
        assert proxy.proc.poll() is None  # draining, not gone
        release.set()
        rest = await asyncio.wait_for(response.content.read(), 10)
    assert rest.endswith(b"data: [DONE]\n\n") and b"error" not in rest
    assert await proxy.exited(10) == 0


async def test_drain_deadline_ends_open_streams_with_an_error_frame(held_upstream, run_proxy) -> None:
    upstream, _, recorder = held_upstream
    proxy = run_proxy(config_text(upstream, drain_s=0.5))
    await proxy.ready()
    async with aiohttp.ClientSession() as session:
        response = await open_stream(session, proxy)
        proxy.signal(signal.SIGTERM)
        try:
            rest = await asyncio.wait_for(response.content.read(), 10)
        except aiohttp.ClientPayloadError as exc:
            await proxy.exited(10)
            raise AssertionError(f"the stream was cut: {proxy.logs()}") from exc
    assert b'"error"' in rest and b"shutting down" in rest
    assert b"[DONE]" not in rest
    assert await proxy.exited(10) == 0
    await asyncio.wait_for(recorder.disconnected.wait(), 5)


async def test_a_client_that_stopped_reading_cannot_hold_the_process_past_the_deadline(sse_upstream, run_proxy) -> None:
    big = frames(chunk({"content": "x" * 60_000}))[0]

    async def flood(request: web.Request, response: web.StreamResponse, _: Any) -> None:
        await response.write(FIRST)
        for _ in range(2_000):  # far more than socket buffers hold: the proxy's writes block
            await response.write(big)

    upstream, _ = await sse_upstream(flood)
    proxy = run_proxy(config_text(upstream, drain_s=0.5))
    await proxy.ready()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", proxy.port))
    body = b'{"model": "up/m", "messages": [{"role": "user", "content": "hi"}], "stream": true}'
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    try:
        await asyncio.sleep(1.0)  # the client reads nothing: the proxy's buffers fill up
        proxy.signal(signal.SIGTERM)
        assert await proxy.exited(8) == 0
    finally:
        sock.close()


async def test_a_second_sigterm_exits_at_once(held_upstream, run_proxy) -> None:
    upstream, _, _ = held_upstream
    proxy = run_proxy(config_text(upstream, drain_s=60))
    await proxy.ready()
    async with aiohttp.ClientSession() as session:
        await open_stream(session, proxy)
        proxy.signal(signal.SIGTERM)
        for _ in range(100):
            if proxy.refuses():
                break
            await asyncio.sleep(0.05)
        proxy.signal(signal.SIGTERM)
        assert await proxy.exited(3) != 0
    assert "exiting now" in proxy.logs()


async def test_sighup_reloads_the_config_and_keeps_open_streams(held_upstream, run_proxy) -> None:
    upstream, release, _ = held_upstream
    proxy = run_proxy(config_text(upstream))
    await proxy.ready()
    async with aiohttp.ClientSession() as session:
        response = await open_stream(session, proxy)
        proxy.config.write_text(config_text(upstream, extra='\n[aliases]\nfast = "up/m"\n'))
        proxy.signal(signal.SIGHUP)
        for _ in range(100):
            if "configuration reloaded" in proxy.logs():
                break
            await asyncio.sleep(0.05)
        async with session.get(proxy.url("/v1/models/fast")) as models:
            assert models.status == 200  # new requests see the new configuration
        proxy.config.write_text("[server]\nno_such_key = 1\n")
        proxy.signal(signal.SIGHUP)
        for _ in range(100):
            if "configuration refused" in proxy.logs():
                break
            await asyncio.sleep(0.05)
        assert "no_such_key" in proxy.logs()
        async with session.get(proxy.url("/v1/models/fast")) as models:
            assert models.status == 200  # the old (good) configuration stays
        release.set()
        rest = await asyncio.wait_for(response.content.read(), 10)
        assert rest.endswith(b"data: [DONE]\n\n")  # the stream open across both reloads finished
    assert proxy.proc.poll() is None


def workers_of(proxy: Proxy, count: int, timeout: float = 20.0) -> list[psutil.Process]:
    for _ in range(int(timeout / 0.05)):
        children = psutil.Process(proxy.proc.pid).children()
        if len(children) == count:
            return children
        psutil.wait_procs([], timeout=0.05)
    raise AssertionError(f"expected {count} workers: {proxy.logs()}")


async def test_workers_are_restarted_share_metrics_and_die_with_the_supervisor(held_upstream, run_proxy) -> None:
    upstream, release, _ = held_upstream
    release.set()
    proxy = run_proxy(config_text(upstream), "--workers", "2")
    await proxy.ready()
    first, second = workers_of(proxy, 2)
    (metrics_dir,) = proxy.tmp.glob("sse-proxy-metrics-*")
    connector = aiohttp.TCPConnector(force_close=True)  # a connection per request: both workers answer
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(20):
            body = {"model": "up/m", "messages": MESSAGES, "stream": True}
            async with session.post(proxy.url("/v1/chat/completions"), json=body) as response:
                await response.read()
        async with session.get(proxy.url("/metrics")) as response:
            text = await response.text()
    writers = {f.stem.rsplit("_", 1)[1] for f in metrics_dir.glob("counter_*.db")}
    assert writers == {str(first.pid), str(second.pid)}  # both workers served requests
    line = next(li for li in text.splitlines() if li.startswith("sse_proxy_requests_total{"))
    assert line.endswith(" 20.0")  # every worker's requests, whichever worker answered the scrape

    first.kill()
    first.wait(5)
    for _ in range(200):
        pids = {p.pid for p in psutil.Process(proxy.proc.pid).children()}
        if len(pids) == 2 and first.pid not in pids:
            break
        await asyncio.sleep(0.05)
    assert len(pids) == 2 and first.pid not in pids, proxy.logs()
    assert "restarting in" in proxy.logs()
    await proxy.ready()

    workers = psutil.Process(proxy.proc.pid).children()
    proxy.proc.kill()  # the supervisor dies without a word: its workers must not linger
    proxy.proc.wait(5)
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"orphaned workers: {alive}"
    assert proxy.refuses()


async def test_workers_stop_on_sigterm_and_the_metrics_dir_is_removed(held_upstream, run_proxy) -> None:
    upstream, release, _ = held_upstream
    release.set()
    proxy = run_proxy(config_text(upstream), "--workers", "2")
    await proxy.ready()
    workers_of(proxy, 2)
    (metrics_dir,) = proxy.tmp.glob("sse-proxy-metrics-*")
    proxy.signal(signal.SIGTERM)
    assert await proxy.exited(10) == 0
    assert not metrics_dir.exists()


async def test_log_format_json_writes_one_json_object_per_line(held_upstream, run_proxy) -> None:
    upstream, release, _ = held_upstream
    release.set()
    proxy = run_proxy(config_text(upstream), "--log-format", "json")
    await proxy.ready()
    # A model id with a newline is refused (400) before routing; its access line must stay one line.
    forged = 'nosuch/m\n{"logger": "proxy.access", "status": 200}'
    async with aiohttp.ClientSession() as session:
        body = {"model": forged, "messages": MESSAGES, "stream": True}
        async with session.post(proxy.url("/v1/chat/completions"), json=body) as response:
            assert response.status == 400
    proxy.signal(signal.SIGTERM)
    assert await proxy.exited(10) == 0
    lines = [orjson.loads(line) for line in proxy.logs().splitlines()]  # every line is JSON
    (access,) = [line for line in lines if line["logger"] == "proxy.access"]
    assert access["model"] == forged and access["outcome"] == "rejected"
    assert {"request_id", "key_name", "frontdoor", "status", "outcome", "ttfb_ms", "duration_ms"} <= access.keys()
