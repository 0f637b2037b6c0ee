"""A hypothesis fuzz of request bodies (issue 10): whatever a client sends to the three chat front
doors — wrong types, huge numbers and strings, any unicode (lone surrogates too), deep nesting,
random JSON at every known field, or no object at all — the proxy answers 2xx or 4xx, never 5xx.

The proxy runs in-process on 127.0.0.1 with the mock provider, so nothing leaves the machine; it
lives in a background loop so that hypothesis drives it from a plain synchronous test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.config import build
from proxy.server import create_app
from tests.conftest import BackgroundLoop, serve_in

MODEL = "mock/echo"

# A valid body per door, and the fields each door knows (at the top and inside one message).
DOORS: dict[str, tuple[dict[str, Any], list[str], list[str]]] = {
    "/v1/chat/completions": (
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        [
            "model",
            "messages",
            "stream",
            "stream_options",
            "temperature",
            "top_p",
            "max_tokens",
            "max_completion_tokens",
            "n",
            "stop",
            "tools",
            "tool_choice",
            "functions",
            "function_call",
            "response_format",
            "seed",
            "user",
            "presence_penalty",
            "frequency_penalty",
            "logit_bias",
            "logprobs",
            "top_logprobs",
            "parallel_tool_calls",
            "reasoning_effort",
            "metadata",
            "modalities",
        ],
        ["role", "content", "name", "tool_calls", "tool_call_id", "function_call", "refusal"],
    ),
    "/v1/messages": (
        {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]},
        [
            "model",
            "messages",
            "max_tokens",
            "system",
            "stream",
            "temperature",
            "top_p",
            "top_k",
            "stop_sequences",
            "tools",
            "tool_choice",
            "metadata",
            "thinking",
        ],
        ["role", "content"],
    ),
    "/v1/responses": (
        {"model": MODEL, "input": [{"role": "user", "content": "hi"}]},
        [
            "model",
            "input",
            "instructions",
            "stream",
            "tools",
            "tool_choice",
            "max_output_tokens",
            "temperature",
            "top_p",
            "previous_response_id",
            "text",
            "reasoning",
            "store",
            "metadata",
            "parallel_tool_calls",
            "truncation",
            "include",
        ],
        ["role", "content", "type", "call_id", "output", "name", "arguments"],
    ),
}

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63, max_value=2**200),  # past every fixed-width integer
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),  # any code point, lone surrogates included
    st.sampled_from(["", "user", "assistant", "system", "tool", "text", "image_url", "function", MODEL, "auto"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["type", "text", "role", "content", "x"]), inner)
    ),
    max_leaves=12,
)


@st.composite
def deep(draw: st.DrawFn) -> Any:
    """A value nested up to a few hundred levels, past the proxy's depth limit."""
    value: Any = draw(SCALARS)
    for _ in range(draw(st.integers(min_value=1, max_value=400))):
        value = [value] if draw(st.booleans()) else {"content": value}
    return value


@st.composite
def huge(draw: st.DrawFn) -> Any:
    size = draw(st.sampled_from([10_000, 300_000]))
    return draw(st.sampled_from(["é" * size, list(range(size // 10)), {str(i): i for i in range(size // 100)}]))


ANY = st.one_of(VALUES, deep(), huge())


@st.composite
def bodies(draw: st.DrawFn, door: str) -> bytes:
    valid, fields, message_fields = DOORS[door]
    shape = draw(st.sampled_from(["fields", "message", "anything"]))
    body: Any = json.loads(json.dumps(valid))
    if shape == "anything":
        body = draw(ANY)
    elif shape == "fields":
        body.update(draw(st.dictionaries(st.sampled_from(fields), ANY, min_size=1, max_size=4)))
    else:
        messages = "input" if door == "/v1/responses" else "messages"
        message = {**body[messages][0], **draw(st.dictionaries(st.sampled_from(message_fields), ANY, min_size=1))}
        body[messages] = [message]
    text = json.dumps(body, ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate is invalid UTF-8: a 400 too


@pytest.fixture
def proxy(background_loop: BackgroundLoop) -> Iterator[tuple[BackgroundLoop, TestServer]]:
    app = create_app(build({}, "<fuzz>", {}))
    server = background_loop.run(serve_in(background_loop.servers, app))  # type: ignore[attr-defined]
    yield background_loop, server


async def post(server: TestServer, door: str, body: bytes) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.make_url(door), data=body, headers={"Content-Type": "application/json"}) as response,
    ):
        return response.status, await response.read()


@pytest.mark.parametrize("door", sorted(DOORS))
def test_request_bodies_only_ever_get_2xx_or_4xx(door: str, proxy: tuple[BackgroundLoop, TestServer]) -> None:
    loop, server = proxy

    # derandomize: the same 150 bodies every run, so a failure is reproducible and a strict
    # xfail cannot pass by luck; change the seed by hand to explore further.
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
    @given(body=bodies(door))
    def check(body: bytes) -> None:
        status, answer = loop.run(post(server, door, body))
        assert status < 500, (status, answer[:500], body[:500])
        if status >= 400:
            assert b'"error"' in answer[:200] and b"Traceback" not in answer

    check()


@pytest.mark.parametrize("role", [["user"], {"x": 1}])  # found by the fuzz: a 500 before
def test_a_role_of_an_unhashable_type_is_a_400(role: Any, proxy: tuple[BackgroundLoop, TestServer]) -> None:
    loop, server = proxy
    body = {"model": MODEL, "messages": [{"role": role, "content": "hi"}]}
    status, answer = loop.run(post(server, "/v1/chat/completions", json.dumps(body).encode()))
    assert status == 400, answer
