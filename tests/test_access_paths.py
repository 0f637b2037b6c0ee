"""Hostile model ids never steer an upstream URL, and never give a 500 or a forged log line;
the command line refuses to listen openly on a non-loopback address."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web

from proxy.cli import open_listen_refusal
from proxy.config import build
from proxy.errors import BadRequest
from proxy.protocols.gemini.request import url

ROOT = Path(__file__).resolve().parent.parent
HELLO = [{"role": "user", "content": "hi"}]
HOSTILE = [
    "gemini/../../v1beta/files",
    "gemini/..",
    "gemini/./x",
    "gemini/x?key=stolen",
    "gemini/x#frag",
    "gemini/x%2F..%2Fy",
    "gemini/x\\..\\y",
    "gemini/x y",
    "gemini/x\ny",
    "gemini/x\r\nX-Forged: 1",
    "gemini/x\x00",
    "gemini/x\x7f",
    "gemini/x\u2028y",
    "up/x\nINFO forged line",
]


@pytest.fixture
async def paths_seen(aiohttp_server: Any) -> tuple[Any, list[str]]:
    seen: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        return web.json_response({"error": {"message": "no"}}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    return await aiohttp_server(app), seen


@pytest.mark.parametrize("model", HOSTILE)
async def test_a_hostile_model_id_is_400_before_any_upstream(
    start_proxy: Any, paths_seen: tuple[Any, list[str]], model: str, caplog: pytest.LogCaptureFixture
) -> None:
    upstream, seen = paths_seen
    base = str(upstream.make_url(""))
    proxy = await start_proxy(
        {
            "providers": {
                "gemini": {"base_url": base, "api_key": "gk-0123456789"},
                "up": {"kind": "openai", "base_url": base + "/v1", "api_key": "sk-0123456789"},
            }
        }
    )
    sdk = openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="x", max_retries=0)
    caplog.set_level(logging.INFO)
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as info:
            await sdk.chat.completions.create(model=model, messages=HELLO, stream=stream)
        assert info.value.body["param"] == "model"  # type: ignore[index]
    assert seen == []
    await sdk.close()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("proxy")]
    assert any(repr(model) in line for line in lines)
    for line in lines:  # the access line quotes the model: no line of its own
        assert "\n" not in line and "\r" not in line


def test_the_gemini_url_encodes_each_segment_and_refuses_dot_segments() -> None:
    base = "https://generativelanguage.googleapis.com"
    assert url(base, "gemini-2.5-flash", True) == f"{base}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert url(base, "tunedModels/my-model", False) == f"{base}/v1beta/tunedModels/my-model:generateContent"
    assert url(base, "x?key=1#f%2e", False) == f"{base}/v1beta/models/x%3Fkey%3D1%23f%252e:generateContent"
    for model in ("../files", "models/..", "a//b", "./x"):
        with pytest.raises(BadRequest):
            url(base, model, False)


def test_listening_openly_is_refused_off_loopback_only() -> None:
    open_cfg = build({}, "t", {})
    keyed = build({"server": {"api_keys_env": "K"}}, "t", {"K": "a:sk-0123456789"})
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.5"):
        assert open_listen_refusal(open_cfg, host, False) is None
    for host in ("0.0.0.0", "::", "192.168.1.2", "myhost"):
        message = open_listen_refusal(open_cfg, host, False)
        assert message is not None and "--allow-open" in message and "access keys" in message
        assert open_listen_refusal(open_cfg, host, True) is None
        assert open_listen_refusal(keyed, host, False) is None


def test_the_command_line_exits_non_zero_without_a_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "proxy", "--host", "0.0.0.0", "--port", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "refusing to listen on '0.0.0.0' without access keys" in done.stderr
    assert "Traceback" not in done.stderr
