"""Keys never leak: scrubbed from relayed errors and logs; provider auth never follows a redirect."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
from aiohttp import web

from proxy.access.secrets import REDACTED, Scrubber, install_log_scrubber
from tests.conftest import UPSTREAM_KEY, Recorder, frames, openai_provider

ALICE = "sk-alice-0123456789abcdef"
ENV = {"PROXY_API_KEYS": f"alice:{ALICE}"}
HELLO = [{"role": "user", "content": "hi"}]
ECHO = f"Incorrect API key provided: {UPSTREAM_KEY}. Your client key was {ALICE}."


def keyed(upstream: Any, **extra: Any) -> dict[str, Any]:
    return {**openai_provider(upstream, **extra), "server": {"api_keys_env": "PROXY_API_KEYS"}}


async def upstream_app(aiohttp_server: Any, handler: Any, path: str = "/v1/chat/completions") -> Any:
    app = web.Application()
    app.router.add_post(path, handler)
    return await aiohttp_server(app)


def test_the_scrubber_replaces_every_secret_longest_first() -> None:
    scrub = Scrubber(["sk-abcdefgh", "sk-abcdefgh-longer", "short"])
    assert scrub("a sk-abcdefgh-longer b sk-abcdefgh c short") == f"a {REDACTED} b {REDACTED} c short"
    assert Scrubber([])("sk-abcdefgh") == "sk-abcdefgh"
    assert Scrubber(["a.b*c+d?e[f]"])("x a.b*c+d?e[f] y") == f"x {REDACTED} y"


async def test_an_upstream_401_echoing_keys_reaches_the_client_scrubbed(aiohttp_server: Any, start_proxy: Any) -> None:
    async def deny(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": ECHO, "type": "invalid_request_error"}}, status=401)

    upstream = await upstream_app(aiohttp_server, deny)
    proxy = await start_proxy(keyed(upstream), ENV)
    sdk = openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key=ALICE, max_retries=0)
    for stream in (False, True):
        try:
            await sdk.chat.completions.create(model="up/m", messages=HELLO, stream=stream)
        except openai.AuthenticationError as exc:
            text = exc.response.text
        assert UPSTREAM_KEY not in text and ALICE not in text and REDACTED in text


async def test_a_mid_stream_error_echoing_a_key_is_scrubbed(sse_upstream: Any, start_proxy: Any) -> None:
    async def handler(request: web.Request, response: web.StreamResponse, rec: Recorder) -> None:
        for frame in frames(
            {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "x"}}]}
        ):
            await response.write(frame)
        await response.write(b"data: " + orjson.dumps({"error": {"message": ECHO}}) + b"\n\n")

    upstream, _ = await sse_upstream(handler)
    for extra in ({}, {"normalise": False}):
        proxy = await start_proxy(keyed(upstream, **extra), ENV)
        body = orjson.dumps({"model": "up/m", "messages": HELLO, "stream": True})
        headers = {"Authorization": f"Bearer {ALICE}", "Content-Type": "application/json"}
        async with (
            aiohttp.ClientSession() as s,
            s.post(proxy.make_url("/v1/chat/completions"), data=body, headers=headers) as r,
        ):
            text = (await r.read()).decode()
        assert '"error"' in text and REDACTED in text
        assert UPSTREAM_KEY not in text and ALICE not in text


async def test_a_non_event_stream_quote_is_scrubbed_of_access_keys_too(aiohttp_server: Any, start_proxy: Any) -> None:
    async def html(request: web.Request) -> web.Response:
        return web.Response(text=f"<html>{ECHO}</html>", content_type="text/html")

    upstream = await upstream_app(aiohttp_server, html)
    proxy = await start_proxy(keyed(upstream), ENV)
    sdk = openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key=ALICE, max_retries=0)
    try:
        await sdk.chat.completions.create(model="up/m", messages=HELLO, stream=True)
    except openai.APIStatusError as exc:
        assert exc.status_code == 502
        assert "Incorrect API key" in exc.response.text
        assert UPSTREAM_KEY not in exc.response.text and ALICE not in exc.response.text


def test_the_log_filter_scrubs_messages_arguments_and_tracebacks() -> None:
    out = io.StringIO()
    logger = logging.getLogger("test.scrub")
    logger.propagate = False
    handler = logging.StreamHandler(out)
    logger.addHandler(handler)
    try:
        install_log_scrubber(Scrubber([UPSTREAM_KEY]), logger)
        install_log_scrubber(Scrubber([UPSTREAM_KEY, ALICE]), logger)  # again: updated, not doubled
        assert len(handler.filters) == 1
        logger.warning("upstream said %s", ECHO)
        try:
            raise ValueError(ECHO)
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert "ValueError" in text and text.count(REDACTED) == 4
    assert UPSTREAM_KEY not in text and ALICE not in text


async def test_the_served_proxy_logs_no_key(aiohttp_server: Any, unused_tcp_port: int, tmp_path: Path) -> None:
    """``sse-proxy`` as run from the command line: the upstream's echo reaches its log scrubbed."""

    async def deny(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": ECHO}}, status=500)

    upstream = await upstream_app(aiohttp_server, deny)
    path = tmp_path / "proxy.toml"
    path.write_text(
        "[server]\n"
        'api_keys_env = "PROXY_API_KEYS"\n'
        "[providers.up]\n"
        'kind = "openai"\n'
        f'base_url = "{upstream.make_url("/v1")}"\n'
        f'api_key = "{UPSTREAM_KEY}"\n',
        encoding="utf-8",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy",
        "--config",
        str(path),
        "--port",
        str(unused_tcp_port),
        "--no-uvloop",
        env={**os.environ, **ENV},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert b"listening" in line
        body = orjson.dumps({"model": "up/m", "messages": HELLO})
        headers = {"Authorization": f"Bearer {ALICE}", "Content-Type": "application/json"}
        async with (
            aiohttp.ClientSession() as s,
            s.post(f"http://127.0.0.1:{unused_tcp_port}/v1/chat/completions", data=body, headers=headers) as r,
        ):
            assert r.status == 500
    finally:
        proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    log = err.decode()
    assert "Incorrect API key" in log and REDACTED in log
    assert UPSTREAM_KEY not in log and ALICE not in log


async def test_redirects_are_not_followed_with_provider_keys(aiohttp_server: Any, start_proxy: Any) -> None:
    elsewhere = Recorder()

    async def steal(request: web.Request) -> web.Response:
        elsewhere.calls += 1
        elsewhere.requests.append({"headers": dict(request.headers)})
        return web.json_response({"id": "x", "type": "message", "content": []})

    thief = await upstream_app(aiohttp_server, steal, "/stolen")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(str(thief.make_url("/stolen")))

    for kind, path in (("anthropic", "/v1/messages"), ("openai", "/v1/chat/completions")):
        upstream = await upstream_app(aiohttp_server, redirect, path)
        base = str(upstream.make_url("/v1" if kind == "openai" else ""))
        data = {"providers": {"up": {"kind": kind, "base_url": base, "api_key": UPSTREAM_KEY}}}
        proxy = await start_proxy(data)
        sdk = openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="x", max_retries=0)
        for stream in (False, True):
            try:
                await sdk.chat.completions.create(model="up/m", messages=HELLO, stream=stream, max_tokens=5)
            except openai.APIStatusError as exc:
                assert exc.status_code == 502 and "redirect" in exc.message
            else:
                raise AssertionError("a redirect was followed")
    assert elsewhere.calls == 0, elsewhere.requests
