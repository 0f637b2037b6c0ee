"""The pipeline shared by every front door: the request record, the checks made when a response
opens, legacy function calls, and the model endpoints. Real upstreams on 127.0.0.1, the real
openai SDK as the client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.config import build
from proxy.observability.record import RequestRecord
from proxy.pipeline import STATE
from proxy.server import create_app
from tests.conftest import UPSTREAM_KEY
from tests.test_e2e_gemini import FakeGemini

GEMINI_KEY = "test-key"
TWO_CALLS = (
    b"data: "
    + orjson.dumps(
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}},
                            {"functionCall": {"name": "get_time", "args": {"zone": "CET"}}},
                        ],
                    },
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 9, "totalTokenCount": 29},
        }
    )
    + b"\r\n\r\n"
)
FUNCTIONS = [
    {"name": "get_weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}},
    {"name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}}},
]


class Proxy:
    """The proxy on a real socket with a fake Gemini upstream, and the records it emitted."""

    def __init__(self, server: TestServer, fake: FakeGemini) -> None:
        self.server = server
        self.fake = fake
        self.records: list[RequestRecord] = []
        server.app[STATE].records.sinks.append(self.records.append)
        self.client = openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="client-key", max_retries=0)


Start = Callable[..., Awaitable[Proxy]]


@pytest.fixture
def start(aiohttp_server: Any) -> Start:
    async def go(extra: dict[str, Any] | None = None) -> Proxy:
        fake = FakeGemini()
        upstream = web.Application()
        upstream.router.add_post("/v1beta/models/{tail}", fake.handle)
        upstream_server: TestServer = await aiohttp_server(upstream)
        data: dict[str, Any] = {
            "providers": {"gemini": {"base_url": f"http://127.0.0.1:{upstream_server.port}", "api_key": GEMINI_KEY}}
        }
        for name, table in (extra or {}).items():
            data["providers"][name] = table
        server: TestServer = await aiohttp_server(create_app(build(data, "<test>", {})))
        return Proxy(server, fake)

    return go


async def test_legacy_functions_keep_the_first_of_several_calls_streaming(start: Start) -> None:
    proxy = await start()
    proxy.fake.stream = TWO_CALLS
    stream = await proxy.client.chat.completions.create(
        model="gemini/gemini-2.5-flash",
        messages=[{"role": "user", "content": "weather and time in Paris?"}],
        functions=FUNCTIONS,
        stream=True,
    )
    calls = [c.choices[0].delta.function_call async for c in stream if c.choices and c.choices[0].delta.function_call]
    assert [c.name for c in calls if c.name] == ["get_weather"]
    assert "".join(c.arguments or "" for c in calls) == '{"location":"Paris"}'


async def test_legacy_functions_keep_the_first_of_several_calls_whole(start: Start) -> None:
    proxy = await start()
    proxy.fake.body = TWO_CALLS[len(b"data: ") : -4]
    answer = await proxy.client.chat.completions.create(
        model="gemini/gemini-2.5-flash", messages=[{"role": "user", "content": "weather?"}], functions=FUNCTIONS
    )
    message = answer.choices[0].message
    assert message.function_call is not None and message.function_call.name == "get_weather"
    assert message.function_call.arguments == '{"location":"Paris"}'
    assert answer.choices[0].finish_reason == "function_call"


async def test_one_record_per_request_with_usage_even_when_the_client_did_not_ask(start: Start) -> None:
    proxy = await start()
    proxy.fake.stream = TWO_CALLS
    stream = await proxy.client.chat.completions.create(
        model="gemini/gemini-2.5-flash",
        messages=[{"role": "user", "content": "hi"}],
        tools=[{"type": "function", "function": f} for f in FUNCTIONS],
        stream=True,
    )
    chunks = [c async for c in stream]
    assert all(c.choices for c in chunks)  # no usage chunk: the client did not ask
    (record,) = proxy.records
    assert record.frontdoor == "chat_completions" and record.model == "gemini/gemini-2.5-flash"
    assert (record.target, record.provider, record.attempts) == ("gemini/gemini-2.5-flash", "gemini", 1)
    assert (record.status, record.outcome, record.stream) == (200, "ok", True)
    assert record.usage is not None and (record.usage.input_tokens, record.usage.output_tokens) == (20, 9)
    assert record.bytes_out > 0 and record.ttfb_s is not None and record.duration_s is not None
    assert record.duration_s >= record.ttfb_s >= 0


async def test_records_of_rejected_and_failed_requests(start: Start) -> None:
    proxy = await start()
    with pytest.raises(openai.NotFoundError):
        await proxy.client.chat.completions.create(model="nope/x", messages=[{"role": "user", "content": "hi"}])
    proxy.fake.status, proxy.fake.body = 429, orjson.dumps({"error": {"code": 429, "message": "slow down"}})
    with pytest.raises(openai.RateLimitError):
        await proxy.client.chat.completions.create(
            model="gemini/gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}]
        )
    rejected, failed = proxy.records
    assert (rejected.status, rejected.outcome, rejected.target) == (404, "rejected", None)
    assert (failed.status, failed.outcome, failed.error) == (429, "upstream_error", "slow down")


async def test_record_of_a_client_that_left_mid_stream(start: Start, sse_upstream: Any) -> None:
    async def slow(request: web.Request, response: web.StreamResponse, recorder: Any) -> None:
        await response.write(b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n')
        await asyncio.sleep(30)

    upstream, recorder = await sse_upstream(slow)
    provider = {"kind": "openai", "base_url": str(upstream.make_url("/v1")), "api_key": UPSTREAM_KEY}
    proxy = await start({"up": provider})
    async with aiohttp.ClientSession() as session:
        body = {"model": "up/m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        async with session.post(proxy.server.make_url("/v1/chat/completions"), json=body) as response:
            await response.content.readany()
    await asyncio.wait_for(recorder.disconnected.wait(), 5)
    for _ in range(100):
        if proxy.records:
            break
        await asyncio.sleep(0.02)
    (record,) = proxy.records
    assert record.outcome == "client_disconnect"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"id": "chatcmpl-1", "choices": [], "note": "sk-upstream-secret-0123456789"}'),
        ("text/html", b"<html><body>Welcome to nginx! sk-upstream-secret-0123456789</body></html>"),
    ],
)
async def test_a_2xx_answer_that_is_not_an_event_stream_is_reported_as_such(
    start: Start, aiohttp_server: Any, content_type: str, body: bytes
) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", answer)
    upstream = await aiohttp_server(app)
    provider = {"kind": "openai", "base_url": str(upstream.make_url("/v1")), "api_key": UPSTREAM_KEY}
    proxy = await start({"up": provider})
    with pytest.raises(openai.APIStatusError) as caught:
        await proxy.client.chat.completions.create(
            model="up/m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    assert caught.value.status_code == 502
    assert isinstance(caught.value.body, dict)
    message = caught.value.body["message"]
    assert f"Content-Type '{content_type}" in message and "not an event stream" in message
    assert body[:12].decode() in message  # the start of what arrived
    assert UPSTREAM_KEY not in message and "[redacted]" in message
    assert "truncated" not in message


async def test_one_model_endpoint(start: Start) -> None:
    proxy = await start()
    listed = await proxy.client.models.retrieve("gemini/gemini-2.5-flash")
    assert (listed.id, listed.owned_by) == ("gemini/gemini-2.5-flash", "gemini")
    routable = await proxy.client.models.retrieve("mock/anything-goes")
    assert (routable.id, routable.owned_by) == ("mock/anything-goes", "mock")
    for missing in ("nope/x", "openai/gpt-4o", "no-slash"):  # unknown provider; no key; malformed
        with pytest.raises(openai.NotFoundError) as caught:
            await proxy.client.models.retrieve(missing)
        assert caught.value.body is not None and caught.value.code == "model_not_found"


async def test_record_of_a_whole_answer_passed_through(start: Start) -> None:
    proxy = await start()
    answer = await proxy.client.chat.completions.create(
        model="mock/echo", messages=[{"role": "user", "content": "three little words"}]
    )
    assert answer.usage is not None
    (record,) = proxy.records
    assert (record.status, record.outcome, record.stream, record.target) == (200, "ok", False, "mock/echo")
    assert record.usage is not None
    assert (record.usage.input_tokens, record.usage.output_tokens) == (
        answer.usage.prompt_tokens,
        answer.usage.completion_tokens,
    )
    assert record.bytes_out > 0
