"""End to end: the openai SDK → the proxy → a fake Gemini server speaking the real wire format.

The fake server serves Gemini's own paths (``/v1beta/models/{model}:streamGenerateContent?alt=sse``
and ``:generateContent``), checks what the proxy sends (the configured key in ``x-goog-api-key``,
never the client's) and answers with the same recordings and cases the golden tests use, written in
small pieces so events are split across network reads.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import openai
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import BaseModel

from proxy.config import build
from proxy.server import create_app
from tests.test_gemini import load

MODEL = "gemini/gemini-2.5-flash"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
            "required": ["location"],
            "additionalProperties": False,
        },
    },
}


@dataclass
class FakeGemini:
    """What the fake server answers next, and every request it saw."""

    status: int = 200
    body: bytes = b""
    stream: bytes = b""
    piece: int = 7  # bytes per write, so events arrive split across reads
    requests: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["tail"].partition(":")
        self.requests.append(
            {
                "model": model,
                "method": method,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": await request.json(),
            }
        )
        if method not in ("generateContent", "streamGenerateContent"):
            return web.Response(status=404, text="unknown method")
        if self.status != 200 or method == "generateContent":
            return web.Response(status=self.status, body=self.body, content_type="application/json")
        assert request.query.get("alt") == "sse"  # without it Gemini streams one JSON array, not SSE
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(0, len(self.stream), self.piece):
            await response.write(self.stream[i : i + self.piece])
        await response.write_eof()
        return response

    @property
    def last(self) -> dict[str, Any]:
        """The last request, after checking its headers."""
        request = self.requests[-1]
        headers = request["headers"]
        assert headers["x-goog-api-key"] == "test-key"
        assert "client-key" not in json.dumps(headers)
        assert "Authorization" not in headers
        assert headers["Content-Type"].startswith("application/json")
        return request

    @property
    def sent(self) -> dict[str, Any]:
        body: dict[str, Any] = self.last["body"]
        return body


Setup = Callable[[], Awaitable[tuple[FakeGemini, openai.AsyncOpenAI]]]


@pytest.fixture
def setup(aiohttp_server: Any) -> Setup:
    async def start() -> tuple[FakeGemini, openai.AsyncOpenAI]:
        fake = FakeGemini()
        upstream = web.Application()
        upstream.router.add_post("/v1beta/models/{tail}", fake.handle)
        upstream_server: TestServer = await aiohttp_server(upstream)
        base_url = f"http://127.0.0.1:{upstream_server.port}"
        provider = {"base_url": base_url, "api_key": "test-key"}
        config = build({"providers": {"gemini": provider}}, "<test>", {})
        proxy: TestServer = await aiohttp_server(create_app(config))
        client = openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="client-key", max_retries=0)
        return fake, client

    return start


def generate_content(parts: list[dict[str, Any]], finish: str = "STOP") -> bytes:
    return orjson.dumps(
        {
            "candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": finish, "index": 0}],
            "usageMetadata": {
                "promptTokenCount": 40,
                "candidatesTokenCount": 12,
                "thoughtsTokenCount": 30,
                "totalTokenCount": 82,
            },
            "modelVersion": "gemini-2.5-flash",
            "responseId": "Xk6jaNzGIp7Uz7IPj5-QsAw",
        }
    )


async def test_streaming_text_and_thoughts(setup: Setup) -> None:
    fake, client = await setup()
    fake.stream = load("thinking-text")
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Be exact."}, {"role": "user", "content": "27 * 453?"}],
        stream=True,
        reasoning_effort="low",
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert {c.id for c in chunks} == {chunks[0].id} and {c.model for c in chunks} == {"gemini-2.5-flash"}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices)
    assert text == "27 \u00d7 453 = **12,231**."
    assert reasoning.startswith("**Multiplying the numbers**") and reasoning.endswith("= 12231.")
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)  # not asked for
    request = fake.last
    assert (request["model"], request["method"], request["query"]) == (
        "gemini-2.5-flash",
        "streamGenerateContent",
        {"alt": "sse"},
    )
    assert fake.sent == {
        "contents": [{"role": "user", "parts": [{"text": "27 * 453?"}]}],
        "systemInstruction": {"parts": [{"text": "Be exact."}]},
        "generationConfig": {"thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}},
    }


async def test_streaming_through_the_google_prefix(setup: Setup) -> None:
    fake, client = await setup()
    fake.stream = load("text-cached")
    stream = await client.chat.completions.create(
        model="google/gemini-2.5-pro",
        messages=[{"role": "user", "content": "A haiku, please."}],
        stream=True,
        temperature=0.7,
        max_completion_tokens=200,
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text.startswith("Here\u2019s a haiku \U0001f338") and text.endswith("spring wakes the kettle.")
    assert fake.last["model"] == "gemini-2.5-pro"
    assert fake.sent["generationConfig"] == {"temperature": 0.7, "maxOutputTokens": 200}


async def test_streaming_parallel_tool_calls_and_the_next_turn(setup: Setup) -> None:
    fake, client = await setup()
    fake.stream = load("parallel-calls")
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris and Tokyo?"}]
    stream = await client.chat.completions.create(
        model=MODEL, messages=messages, tools=[WEATHER_TOOL], tool_choice="required", stream=True
    )
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    text = ""
    async for chunk in stream:
        delta = chunk.choices[0].delta
        text += delta.content or ""
        for call in delta.tool_calls or []:
            entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": "", "extra": None})
            entry["id"] += call.id or ""
            assert call.function is not None
            entry["name"] += call.function.name or ""
            entry["arguments"] += call.function.arguments or ""
            entry["extra"] = entry["extra"] or (call.model_extra or {}).get("extra_content")
        finish = chunk.choices[0].finish_reason or finish
    assert text == "I'll check both cities at once." and finish == "tool_calls"
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == [
        ("get_weather", {"location": "Paris, France", "unit": "celsius"}),
        ("get_weather", {"location": "Tokyo, Japan", "unit": "celsius", "days": [1, 2], "note": 'say "hi" \u00e9'}),
    ]
    assert [c["id"] for c in calls.values()] == [calls[0]["id"], calls[1]["id"]] and calls[0]["id"] != calls[1]["id"]
    assert all(c["id"].startswith("call_") for c in calls.values())
    assert calls[0]["extra"]["google"]["thought_signature"].startswith("CiQBcsjaf")
    sent = fake.sent
    assert sent["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Current weather",
                    "parametersJsonSchema": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
                }
            ]
        }
    ]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}

    # The next turn: the client sends the calls back with their signature, and the results.
    tool_calls = [
        {
            "id": c["id"],
            "type": "function",
            "function": {"name": c["name"], "arguments": c["arguments"]},
            **({"extra_content": c["extra"]} if c["extra"] else {}),
        }
        for c in calls.values()
    ]
    messages += [
        {"role": "assistant", "content": text, "tool_calls": tool_calls},
        {"role": "tool", "tool_call_id": tool_calls[0]["id"], "content": '{"temp": 18}'},
        {"role": "tool", "tool_call_id": tool_calls[1]["id"], "content": "rain"},
    ]
    fake.stream = load("text-cached")
    stream = await client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL], stream=True)
    assert [c async for c in stream][-1].choices[0].finish_reason == "stop"
    contents = fake.sent["contents"]
    assert [p.get("thoughtSignature") for p in contents[1]["parts"]] == [
        None,
        calls[0]["extra"]["google"]["thought_signature"],
        None,
    ]
    assert contents[2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 18}}},
            {"functionResponse": {"name": "get_weather", "response": {"content": "rain"}}},
        ],
    }


async def test_stream_helper_accumulates_calls_with_signatures(setup: Setup) -> None:
    """openai-python's ``.stream()`` helper must accept the extra fields on a tool call."""
    fake, client = await setup()
    fake.stream = load("gemini-tool-call")
    async with client.chat.completions.stream(
        model=MODEL, messages=[{"role": "user", "content": "Weather in SF?"}], tools=[WEATHER_TOOL]
    ) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.function.name == "weather" and json.loads(call.function.arguments) == {"location": "San Francisco"}


async def test_streaming_usage(setup: Setup) -> None:
    fake, client = await setup()
    fake.stream = load("gemini-text")
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "How many r in strawberry?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1] and chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (9, 23 + 185, 217)
    assert usage.completion_tokens_details is not None and usage.completion_tokens_details.reasoning_tokens == 185
    assert "stream_options" not in json.dumps(fake.sent)


async def test_non_stream(setup: Setup) -> None:
    fake, client = await setup()
    fake.body = generate_content(
        [
            {"text": "Checking."},
            {"functionCall": {"name": "get_weather", "args": {"location": "Oslo"}}, "thoughtSignature": "CiIB"},
        ]
    )
    completion = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER_TOOL],
        max_completion_tokens=500,
        temperature=0.2,
        stop=["END"],
        seed=7,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Checking."
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"location": "Oslo"}
    assert (call.model_extra or {})["extra_content"] == {"google": {"thought_signature": "CiIB"}}
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (40, 42)
    assert (fake.last["method"], fake.last["query"]) == ("generateContent", {})
    assert fake.sent["generationConfig"] == {
        "temperature": 0.2,
        "seed": 7,
        "maxOutputTokens": 500,
        "stopSequences": ["END"],
    }


async def test_structured_output_through_parse(setup: Setup) -> None:
    class Person(BaseModel):
        name: str
        born: int

    fake, client = await setup()
    fake.body = generate_content([{"text": '{"name": "Ada Lovelace", "born": 1815}'}])
    completion = await client.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "Who wrote the first program?"}], response_format=Person
    )
    assert completion.choices[0].message.parsed == Person(name="Ada Lovelace", born=1815)
    config = fake.sent["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"]["properties"] == {
        "name": {"title": "Name", "type": "string"},
        "born": {"title": "Born", "type": "integer"},
    }


async def test_upstream_rate_limit_is_a_rate_limit_error(setup: Setup) -> None:
    fake, client = await setup()
    fake.status = 429
    fake.body = orjson.dumps(
        {
            "error": {
                "code": 429,
                "message": "You exceeded your current quota, please check your plan and billing details.",
                "status": "RESOURCE_EXHAUSTED",
                "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}],
            }
        }
    )
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True)
    assert "You exceeded your current quota" in info.value.message
    assert info.value.code == "RESOURCE_EXHAUSTED"
    assert len(fake.requests) == 1


async def test_upstream_invalid_argument_keeps_message(setup: Setup) -> None:
    fake, client = await setup()
    fake.status = 400
    message = "* GenerateContentRequest.contents: contents is not specified"
    fake.body = orjson.dumps([{"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}])
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    assert "contents is not specified" in info.value.message


async def test_bad_request_never_reaches_upstream(setup: Setup) -> None:
    fake, client = await setup()
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], n=2)
    assert "'n'" in info.value.message
    assert fake.requests == []


async def test_error_frame_mid_stream(setup: Setup) -> None:
    fake, client = await setup()
    fake.stream = load("error-midstream")
    stream = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    text = ""
    with pytest.raises(openai.APIError) as info:
        async for chunk in stream:
            text += chunk.choices[0].delta.content or ""
    assert "The model is overloaded" in info.value.message
    assert text == "Let me think"


async def test_raw_error_body_after_the_stream(setup: Setup) -> None:
    """Gemini appends its error as raw JSON outside SSE framing: the client must still see it."""
    fake, client = await setup()
    fake.stream = load("error-raw-body")
    stream = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    text = ""
    with pytest.raises(openai.APIError) as info:
        async for chunk in stream:
            text += chunk.choices[0].delta.content or ""
    assert "The model is overloaded" in info.value.message and text == "Okay"


async def test_error_frame_before_any_content_is_an_http_error(setup: Setup) -> None:
    """Nothing reached the client yet, so the attempt fails as a whole (and could be retried)."""
    fake, client = await setup()
    fake.stream = (
        b'data: {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}\r\n\r\n'
    )
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True)
    assert info.value.status_code == 503 and "The model is overloaded." in info.value.message


async def test_stream_helper_keeps_a_text_signature(setup: Setup) -> None:
    """A signature on a text part rides on the delta; the helper's final message carries it whole."""
    fake, client = await setup()
    fake.stream = load("gemini-text")
    async with client.chat.completions.stream(
        model=MODEL, messages=[{"role": "user", "content": "How many r in strawberry?"}]
    ) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == 'There are **3** "r"s in strawberry.\n\nst**r**awbe**rr**y'
    signature = (message.model_extra or {})["extra_content"]["google"]["thought_signature"]
    assert signature.startswith("EqsFCqgFAb4+9vvtAF5n") and signature.endswith("eeWcow=")
