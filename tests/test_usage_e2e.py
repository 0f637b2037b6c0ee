"""Usage through the proxy with the real ``openai`` SDK: always asked of an OpenAI-compatible
upstream, always read by the pass-through (``PassthroughTranslator.usage``), and sent on only
to a client that asked (``stream_options.include_usage``): any other client never meets a
chunk without choices, so ``chunk.choices[0]`` on every chunk is safe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web

from proxy.protocols.openai_chat.passthrough import PassthroughTranslator
from proxy.protocols.stream import Usage
from tests.conftest import Recorder, openai_provider
from tests.support import FIXTURES

STREAMS = {
    "mistral": (FIXTURES / "mistral" / "mistral-tool-call.chunks.jsonl", Usage(124, 22)),
    "groq": (FIXTURES / "groq" / "groq-tool-call-x-groq-usage.chunks.jsonl", Usage(210, 15)),
    "deepseek": (
        FIXTURES / "deepseek" / "deepseek-reasoning-content-tool-call.chunks.jsonl",
        Usage(374, 61, 256, None, 17),
    ),
    "openai": (FIXTURES / "openai" / "chat-text-stream.sse", Usage(14, 47)),
}
MESSAGES = [{"role": "user", "content": "hi"}]


def framed(path: Path) -> bytes:
    """A recording as the provider sent it (``.chunks.jsonl``: one chunk a line, SSE framing restored)."""
    if path.suffix == ".sse":
        return path.read_bytes()
    lines = [line for line in path.read_bytes().split(b"\n") if line.strip()]
    return b"".join(b"data: " + line + b"\n\n" for line in lines) + b"data: [DONE]\n\n"


@pytest.fixture
def translators(monkeypatch: pytest.MonkeyPatch) -> list[PassthroughTranslator]:
    """Every pass-through translator the proxy makes, to read its ``usage`` afterwards."""
    made: list[PassthroughTranslator] = []
    real = PassthroughTranslator.__init__

    def init(self: PassthroughTranslator, *args: Any, **kwargs: Any) -> None:
        real(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(PassthroughTranslator, "__init__", init)
    return made


async def serve(
    sse_upstream: Any, start_proxy: Any, data: bytes, **provider: Any
) -> tuple[openai.AsyncOpenAI, Recorder]:
    async def handler(request: web.Request, response: web.StreamResponse, rec: Recorder) -> None:
        await response.write(data)

    upstream, recorder = await sse_upstream(handler)
    proxy = await start_proxy(openai_provider(upstream, **provider))
    client = openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="client-key", max_retries=0)
    return client, recorder


@pytest.mark.parametrize("name", sorted(STREAMS))
async def test_a_client_that_did_not_ask_sees_no_usage_chunk(name, sse_upstream, start_proxy, translators) -> None:
    path, usage = STREAMS[name]
    client, recorder = await serve(sse_upstream, start_proxy, framed(path))
    stream = await client.chat.completions.create(model="up/m", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks and all(chunk.choices[0].index == 0 for chunk in chunks)  # IndexError before
    assert all(chunk.usage is None for chunk in chunks)
    # The upstream was asked for usage all the same, and the proxy read it.
    assert recorder.requests[0]["body"]["stream_options"] == {"include_usage": True}
    assert [t.usage for t in translators] == [usage]


@pytest.mark.parametrize("name", sorted(STREAMS))
async def test_a_client_that_asked_gets_exactly_one_usage_chunk_last(
    name, sse_upstream, start_proxy, translators
) -> None:
    path, usage = STREAMS[name]
    client, _ = await serve(sse_upstream, start_proxy, framed(path))
    stream = await client.chat.completions.create(
        model="up/m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert [chunk.choices == [] for chunk in chunks].count(True) == 1 and chunks[-1].choices == []
    last = chunks[-1].usage
    assert last is not None and (last.prompt_tokens, last.completion_tokens) == (
        usage.input_tokens,
        usage.output_tokens,
    )
    assert all(chunk.choices[0].index == 0 for chunk in chunks[:-1])
    assert [t.usage for t in translators] == [usage]


async def test_stream_usage_false_leaves_the_upstream_body_alone(sse_upstream, start_proxy, translators) -> None:
    path, _ = STREAMS["openai"]
    data = framed(path)
    # Such an upstream sends no usage unless the client asks.
    without = data.replace(data[data.rindex(b"data: {") : data.rindex(b"data: [DONE]")], b"")
    client, recorder = await serve(sse_upstream, start_proxy, without, stream_usage=False)
    stream = await client.chat.completions.create(model="up/m", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(chunk.choices for chunk in chunks)
    assert "stream_options" not in recorder.requests[0]["body"]
    assert [t.usage for t in translators] == [None]
