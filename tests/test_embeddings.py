"""``POST /v1/embeddings`` end to end: the real ``openai`` SDK -> the proxy -> fake upstreams on
127.0.0.1 speaking OpenAI's and Gemini's exact wire formats, and the built-in mock."""

from __future__ import annotations

import array
import base64
import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.errors import UnsupportedByProvider
from proxy.observability.record import RequestRecord
from proxy.pipeline import STATE
from proxy.protocols.gemini.embeddings import batch_body, batch_url, decode_batch
from proxy.protocols.openai_embeddings import read_request, relay_body
from proxy.protocols.stream import Usage
from proxy.transport.mock_embeddings import mock_vector
from tests.conftest import UPSTREAM_KEY, openai_provider
from tests.support import refusing_port

# An OpenAI answer as OpenAI writes it (spacing, key order, an unknown field): relayed untouched.
OPENAI_FLOAT = (
    b'{\n  "object": "list",\n  "data": [\n    {\n      "object": "embedding",\n      "index": 0,\n'
    b'      "embedding": [\n        0.0023064255,\n        -0.009327292,\n        0.015797347\n      ]\n'
    b'    }\n  ],\n  "model": "text-embedding-3-small",\n  "usage": {\n    "prompt_tokens": 5,\n'
    b'    "total_tokens": 5\n  },\n  "service_tier": "default"\n}\n'
)
VALUES = [0.0023064255, -0.009327292, 0.015797347]


def b64(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def f32(values: list[float]) -> list[float]:
    """``values`` as the float32 numbers the SDK decodes from base64."""
    return array.array("f", values).tolist()


OPENAI_BASE64 = orjson.dumps(
    {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": b64(VALUES)}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 7, "total_tokens": 7},
    }
)


@dataclass
class Fake:
    """A fake upstream: answers ``status``/``body`` and notes each request."""

    status: int = 200
    body: bytes = OPENAI_FLOAT
    content_type: str = "application/json"
    requests: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append({"path": request.path, "headers": dict(request.headers), "raw": await request.read()})
        return web.Response(status=self.status, body=self.body, content_type=self.content_type)

    @property
    def sent(self) -> dict[str, Any]:
        body: dict[str, Any] = orjson.loads(self.requests[-1]["raw"])
        return body


async def fake_server(aiohttp_server: Any, fake: Fake, route: str) -> TestServer:
    app = web.Application()
    app.router.add_post(route, fake.handle)
    server: TestServer = await aiohttp_server(app)
    return server


def client_of(proxy: TestServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="client-key", max_retries=0)


async def post(proxy: TestServer, path: str, **kwargs: Any) -> tuple[int, Any]:
    """A raw POST to the proxy (no SDK checks in the way): status and JSON body."""
    kwargs.setdefault("headers", {"Content-Type": "application/json"})
    async with aiohttp.ClientSession() as session, session.post(proxy.make_url(path), **kwargs) as resp:
        return resp.status, await resp.json()


def records_of(proxy: TestServer) -> list[RequestRecord]:
    records: list[RequestRecord] = []
    proxy.app[STATE].records.sinks.append(records.append)
    return records


# --- OpenAI-compatible upstreams: relayed ----------------------------------------------------


async def test_openai_relay_is_byte_for_byte(aiohttp_server: Any, start_proxy: Any) -> None:
    fake = Fake()
    upstream = await fake_server(aiohttp_server, fake, "/v1/embeddings")
    proxy = await start_proxy(openai_provider(upstream))
    records = records_of(proxy)
    raw = await client_of(proxy).embeddings.with_raw_response.create(
        model="up/text-embedding-3-small", input=["hello", "world"], encoding_format="float", user="u1"
    )
    assert await raw.http_response.aread() == OPENAI_FLOAT
    assert raw.headers["X-Proxy-Model"] == "up/text-embedding-3-small"
    result = raw.parse()
    assert result.data[0].embedding == VALUES and result.usage.prompt_tokens == 5
    sent = fake.requests[-1]
    assert sent["path"] == "/v1/embeddings"
    assert sent["headers"]["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert "client-key" not in json.dumps(sent["headers"])
    assert fake.sent == {
        "model": "text-embedding-3-small",
        "input": ["hello", "world"],
        "user": "u1",
        "encoding_format": "float",
    }
    assert records[-1].usage == Usage(5) and records[-1].outcome == "ok" and records[-1].status == 200


async def test_openai_relay_base64_is_what_the_sdk_asks_for(aiohttp_server: Any, start_proxy: Any) -> None:
    fake = Fake(body=OPENAI_BASE64)
    upstream = await fake_server(aiohttp_server, fake, "/v1/embeddings")
    proxy = await start_proxy(openai_provider(upstream))
    result = await client_of(proxy).embeddings.create(model="up/text-embedding-3-small", input="hello", dimensions=3)
    assert fake.sent["encoding_format"] == "base64" and fake.sent["dimensions"] == 3
    assert result.data[0].embedding == f32(VALUES) and result.usage.prompt_tokens == 7


async def test_openai_token_input_is_relayed(aiohttp_server: Any, start_proxy: Any) -> None:
    fake = Fake()
    upstream = await fake_server(aiohttp_server, fake, "/v1/embeddings")
    proxy = await start_proxy(openai_provider(upstream))
    await client_of(proxy).embeddings.create(model="up/m", input=[[1, 2, 3], [4]], encoding_format="float")
    assert fake.sent["input"] == [[1, 2, 3], [4]]


async def test_openai_error_keeps_its_status_and_message(aiohttp_server: Any, start_proxy: Any) -> None:
    error = {"error": {"message": "This model does not exist", "type": "invalid_request_error", "param": None}}
    fake = Fake(status=404, body=orjson.dumps(error))
    upstream = await fake_server(aiohttp_server, fake, "/v1/embeddings")
    proxy = await start_proxy(openai_provider(upstream))
    with pytest.raises(openai.NotFoundError, match="This model does not exist"):
        await client_of(proxy).embeddings.create(model="up/m", input="x")


async def test_retry_after_reaches_the_client(aiohttp_server: Any, start_proxy: Any) -> None:
    fake = Fake(status=429, body=b'{"error": {"message": "slow down", "type": "rate_limit_error"}}')
    app = web.Application()

    async def limited(request: web.Request) -> web.Response:
        response = await fake.handle(request)
        response.headers["Retry-After"] = "7"
        return response

    app.router.add_post("/v1/embeddings", limited)
    upstream = await aiohttp_server(app)
    proxy = await start_proxy(openai_provider(upstream))
    with pytest.raises(openai.RateLimitError, match="slow down") as caught:
        await client_of(proxy).embeddings.create(model="up/m", input="x")
    assert caught.value.response.headers["Retry-After"] == "7"


async def test_a_2xx_html_page_is_a_502(aiohttp_server: Any, start_proxy: Any) -> None:
    fake = Fake(body=b"<html>login</html>", content_type="text/html")
    upstream = await fake_server(aiohttp_server, fake, "/v1/embeddings")
    proxy = await start_proxy(openai_provider(upstream))
    with pytest.raises(openai.APIStatusError, match="not JSON") as caught:
        await client_of(proxy).embeddings.create(model="up/m", input="x")
    assert caught.value.status_code == 502


def test_relay_body_reads_usage_without_parsing_the_vectors() -> None:
    request = read_request({"model": "m", "input": "x"})
    assert relay_body(OPENAI_FLOAT, request, "m") == (OPENAI_FLOAT, Usage(5))
    assert relay_body(b'{"data": []}', request, "m") == (b'{"data": []}', None)


# --- Gemini: translated ----------------------------------------------------------------------


GEMINI_VALUES = [[0.013168523, -0.008711934, -0.046782676], [0.25, -0.5, 0.125]]
GEMINI_ANSWER = orjson.dumps({"embeddings": [{"values": v} for v in GEMINI_VALUES]})


async def gemini_proxy(aiohttp_server: Any, start_proxy: Any, fake: Fake) -> TestServer:
    upstream = await fake_server(aiohttp_server, fake, "/v1beta/models/{tail}")
    base_url = f"http://127.0.0.1:{upstream.port}"
    proxy: TestServer = await start_proxy({"providers": {"gemini": {"base_url": base_url, "api_key": "g-key"}}})
    return proxy


async def test_gemini_batch_embed_contents(aiohttp_server: Any, start_proxy: Any) -> None:
    fake = Fake(body=GEMINI_ANSWER)
    proxy = await gemini_proxy(aiohttp_server, start_proxy, fake)
    records = records_of(proxy)
    result = await client_of(proxy).embeddings.create(
        model="gemini/gemini-embedding-001", input=["hello there", "hi"], encoding_format="float", dimensions=3
    )
    sent = fake.requests[-1]
    assert sent["path"] == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert sent["headers"]["x-goog-api-key"] == "g-key" and "Authorization" not in sent["headers"]
    assert fake.sent == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "hello there"}]},
                "outputDimensionality": 3,
            },
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "hi"}]}, "outputDimensionality": 3},
        ]
    }
    assert [(d.index, d.object, d.embedding) for d in result.data] == [
        (0, "embedding", GEMINI_VALUES[0]),
        (1, "embedding", GEMINI_VALUES[1]),
    ]
    assert result.model == "gemini-embedding-001" and result.object == "list"
    # Gemini counts nothing: 13 characters / 4, rounded up.
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (4, 4)
    assert records[-1].usage == Usage(4)


async def test_gemini_base64_decodes_to_the_same_floats(aiohttp_server: Any, start_proxy: Any) -> None:
    fake = Fake(body=GEMINI_ANSWER)
    proxy = await gemini_proxy(aiohttp_server, start_proxy, fake)
    client = client_of(proxy)
    default = await client.embeddings.create(model="gemini/gemini-embedding-001", input=["a", "b"])
    assert [d.embedding for d in default.data] == [f32(v) for v in GEMINI_VALUES]
    assert "outputDimensionality" not in fake.sent["requests"][0]
    raw = await client.embeddings.create(
        model="gemini/gemini-embedding-001", input=["a", "b"], encoding_format="base64"
    )
    strings: list[Any] = [d.embedding for d in raw.data]  # the SDK leaves an asked-for base64 alone
    assert strings == [b64(v) for v in GEMINI_VALUES]
    assert [array.array("f", base64.b64decode(s)).tolist() for s in strings] == [f32(v) for v in GEMINI_VALUES]


async def test_gemini_error_is_translated(aiohttp_server: Any, start_proxy: Any) -> None:
    error = {"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}
    fake = Fake(status=429, body=orjson.dumps(error))
    proxy = await gemini_proxy(aiohttp_server, start_proxy, fake)
    with pytest.raises(openai.RateLimitError, match="Quota exceeded"):
        await client_of(proxy).embeddings.create(model="gemini/gemini-embedding-001", input="x")


async def test_gemini_token_input_is_unsupported(aiohttp_server: Any, start_proxy: Any) -> None:
    fake = Fake(body=GEMINI_ANSWER)
    proxy = await gemini_proxy(aiohttp_server, start_proxy, fake)
    with pytest.raises(openai.BadRequestError, match="text only") as caught:
        await client_of(proxy).embeddings.create(model="gemini/gemini-embedding-001", input=[1, 2, 3])
    assert caught.value.code == "unsupported_by_provider" and not fake.requests


async def test_gemini_answer_with_too_few_embeddings_is_a_502(aiohttp_server: Any, start_proxy: Any) -> None:
    fake = Fake(body=orjson.dumps({"embeddings": [{"values": [0.5]}]}))
    proxy = await gemini_proxy(aiohttp_server, start_proxy, fake)
    with pytest.raises(openai.APIStatusError, match="unreadable batchEmbedContents") as caught:
        await client_of(proxy).embeddings.create(model="gemini/m", input=["a", "b"])
    assert caught.value.status_code == 502


def test_gemini_wire_pieces() -> None:
    request = read_request({"model": "gemini/x", "input": "hi"})
    assert batch_url("https://g.example/v1beta/", "tunedModels/t") == (
        "https://g.example/v1beta/tunedModels/t:batchEmbedContents"
    )
    assert orjson.loads(batch_body(request, "tunedModels/t")) == {
        "requests": [{"model": "tunedModels/t", "content": {"parts": [{"text": "hi"}]}}]
    }
    with pytest.raises(UnsupportedByProvider):
        batch_body(read_request({"model": "g", "input": [[1]]}), "m")
    body, usage = decode_batch(b'{"embeddings": [{"values": [1, 0.5]}]}', request, "x")
    assert orjson.loads(body)["data"][0]["embedding"] == [1.0, 0.5] and usage == Usage(1)


# --- the mock --------------------------------------------------------------------------------


async def test_mock_vectors_are_deterministic_unit_float32(start_proxy: Any) -> None:
    proxy = await start_proxy()
    client = client_of(proxy)
    first = await client.embeddings.create(model="mock/echo", input=["hello world", "other"], encoding_format="float")
    again = await client.embeddings.create(model="mock/echo", input=["hello world"])  # base64, decoded by the SDK
    assert [len(d.embedding) for d in first.data] == [8, 8]
    assert again.data[0].embedding == first.data[0].embedding != first.data[1].embedding
    assert math.isclose(math.fsum(v * v for v in first.data[0].embedding), 1.0, rel_tol=1e-6)
    assert first.usage.prompt_tokens == 3 and first.model == "echo"
    assert first.data[0].embedding == mock_vector("hello world", 8)


async def test_mock_honours_dimensions_and_tokens(start_proxy: Any) -> None:
    proxy = await start_proxy()
    client = client_of(proxy)
    result = await client.embeddings.create(model="mock/echo", input=[[5, 6], [7]], dimensions=3)
    assert [len(d.embedding) for d in result.data] == [3, 3] and result.usage.prompt_tokens == 3
    assert result.data[0].embedding == mock_vector((5, 6), 3)


async def test_embeddings_without_v1_prefix(start_proxy: Any) -> None:
    proxy = await start_proxy()
    status, body = await post(proxy, "/embeddings", json={"model": "mock/echo", "input": "x"})
    assert status == 200 and body["data"][0]["object"] == "embedding"


# --- routing: policies, aliases, unsupported providers ---------------------------------------


async def test_policy_falls_back_from_a_failing_provider(aiohttp_server: Any, start_proxy: Any) -> None:
    fake = Fake(status=503, body=b'{"error": {"message": "overloaded", "type": "server_error"}}')
    upstream = await fake_server(aiohttp_server, fake, "/v1/embeddings")
    data = {
        **openai_provider(upstream, name="bad"),
        "policies": {"p": {"type": "fallback", "models": ["bad/e", "mock/echo"], "retries": 1, "backoff_ms": [1]}},
        "aliases": {"embed": "policy/p"},
    }
    proxy = await start_proxy(data)
    records = records_of(proxy)
    raw = await client_of(proxy).embeddings.with_raw_response.create(model="embed", input="hi", encoding_format="float")
    assert raw.headers["X-Proxy-Model"] == "mock/echo" and raw.headers["X-Proxy-Attempts"] == "3"
    assert len(fake.requests) == 2  # tried twice (retries: 1), then the next model
    assert raw.parse().data[0].embedding == mock_vector("hi", 8)
    assert (records[-1].target, records[-1].attempts, records[-1].usage) == ("mock/echo", 3, Usage(1))


async def test_mock_failure_falls_back(start_proxy: Any) -> None:
    proxy = await start_proxy({"policies": {"p": {"type": "fallback", "models": ["mock/fail-500", "mock/echo"]}}})
    raw = await client_of(proxy).embeddings.with_raw_response.create(model="policy/p", input="hi")
    assert raw.headers["X-Proxy-Model"] == "mock/echo"


async def test_anthropic_is_unsupported_and_a_policy_moves_on(start_proxy: Any) -> None:
    anthropic = {"kind": "anthropic", "base_url": f"http://127.0.0.1:{refusing_port()}", "api_key": "a-key"}
    data = {
        "providers": {"anth": anthropic},
        "policies": {"p": {"type": "fallback", "models": ["anth/claude-x", "mock/echo"]}},
    }
    proxy = await start_proxy(data)
    client = client_of(proxy)
    raw = await client.embeddings.with_raw_response.create(model="policy/p", input="hi")
    assert raw.headers["X-Proxy-Model"] == "mock/echo" and raw.headers["X-Proxy-Attempts"] == "2"
    with pytest.raises(openai.BadRequestError, match="no embeddings API") as caught:
        await client.embeddings.create(model="anth/claude-x", input="hi")
    assert caught.value.code == "unsupported_by_provider"


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": 5, "input": "x"}, "model"),
        ({"model": "up/m"}, "input"),
        ({"model": "up/m", "input": ""}, "input[0]"),
        ({"model": "up/m", "input": []}, "input"),
        ({"model": "up/m", "input": ["a", ""]}, "input[1]"),
        ({"model": "up/m", "input": ["a", 1]}, "input"),
        ({"model": "up/m", "input": [1.5]}, "input"),
        ({"model": "up/m", "input": [True]}, "input"),
        ({"model": "up/m", "input": [-1]}, "input"),
        ({"model": "up/m", "input": [[1], []]}, "input[1]"),
        ({"model": "up/m", "input": [[1], ["a"]]}, "input[1]"),
        ({"model": "up/m", "input": {"text": "a"}}, "input"),
        ({"model": "up/m", "input": ["a"] * 2049}, "input"),
        ({"model": "up/m", "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"model": "up/m", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "up/m", "input": "x", "dimensions": "8"}, "dimensions"),
        ({"model": "up/m", "input": "x", "dimensions": True}, "dimensions"),
        ({"model": "up/m", "input": "x", "user": 5}, "user"),
    ],
)
async def test_validation(aiohttp_server: Any, start_proxy: Any, body: dict[str, Any], param: str) -> None:
    """Checked by the proxy: the (accepting) upstream never sees the request."""
    fake = Fake()
    proxy = await start_proxy(openai_provider(await fake_server(aiohttp_server, fake, "/v1/embeddings")))
    status, answer = await post(proxy, "/v1/embeddings", json=body)
    assert status == 400
    error = answer["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert not fake.requests


async def test_the_limit_is_2048_inputs(start_proxy: Any) -> None:
    proxy = await start_proxy()
    result = await client_of(proxy).embeddings.create(model="mock/echo", input=["a"] * 2048, dimensions=1)
    assert len(result.data) == 2048


async def test_a_body_that_is_not_an_object_is_a_400(start_proxy: Any) -> None:
    proxy = await start_proxy()
    status, answer = await post(proxy, "/v1/embeddings", data=b"[1]")
    assert status == 400 and answer["error"]["type"] == "invalid_request_error"
