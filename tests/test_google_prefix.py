"""``google/<model>`` is the gemini provider under another name: same table, same key, one listing.

Through the proxy with the openai SDK and a fake Gemini server (``tests.test_e2e_gemini``), the
config naming only ``[providers.gemini]``.
"""

from __future__ import annotations

from typing import Any

import openai
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.config import build
from proxy.server import create_app
from tests.test_e2e_gemini import FakeGemini
from tests.test_gemini import load


async def start(aiohttp_server: Any, env: dict[str, str], table: dict[str, Any]) -> tuple[FakeGemini, TestServer]:
    fake = FakeGemini()
    upstream = web.Application()
    upstream.router.add_post("/v1beta/models/{tail}", fake.handle)
    upstream_server: TestServer = await aiohttp_server(upstream)
    gemini = {"base_url": f"http://127.0.0.1:{upstream_server.port}", **table}
    config = build({"providers": {"gemini": gemini}}, "<test>", env)
    return fake, await aiohttp_server(create_app(config))


def client(proxy: TestServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="client-key", max_retries=0)


async def test_google_prefix_uses_the_gemini_table_and_key(aiohttp_server: Any) -> None:
    fake, proxy = await start(aiohttp_server, {}, {"api_key": "test-key"})
    fake.stream = load("text-cached")
    stream = await client(proxy).chat.completions.create(
        model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "A haiku, please."}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text.endswith("spring wakes the kettle.")
    assert fake.last["model"] == "gemini-2.5-flash"  # and fake.last checked x-goog-api-key == the gemini key


async def test_google_prefix_uses_the_gemini_key_variable(aiohttp_server: Any) -> None:
    fake, proxy = await start(aiohttp_server, {"GEMINI_API_KEY": "test-key"}, {})
    fake.stream = load("text-cached")
    response = await client(proxy).chat.completions.with_raw_response.create(
        model="google/gemini-2.5-pro", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert response.headers["X-Proxy-Model"] == "google/gemini-2.5-pro"  # the label the client wrote
    [chunk async for chunk in response.parse()]
    assert fake.last["model"] == "gemini-2.5-pro"


async def test_models_are_listed_once(aiohttp_server: Any) -> None:
    _, proxy = await start(aiohttp_server, {}, {"api_key": "test-key", "models": ["gemini-2.5-flash"]})
    ids = [model.id async for model in client(proxy).models.list()]
    assert ids.count("gemini/gemini-2.5-flash") == 1
    assert not [i for i in ids if i.startswith("google/")]
    assert len(ids) == len(set(ids))
