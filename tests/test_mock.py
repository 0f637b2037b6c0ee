"""The mock provider as a product: tool loops end, structured output parses, usage is counted,
bad bodies are a 400, all through the proxy with the real ``openai`` SDK."""

from __future__ import annotations

import json
import time
from datetime import datetime
from enum import StrEnum
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from pydantic import BaseModel, Field

from proxy.config import ProviderConfig
from proxy.errors import BadRequest
from proxy.transport.base import UpstreamRequest
from proxy.transport.mock import MockTransport, plan_answer

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


@pytest.fixture
async def client(start_proxy: Any) -> openai.AsyncOpenAI:
    server = await start_proxy({"providers": {"mock": {"chunk_delay_ms": 0}}})
    return openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="k", max_retries=0)


async def ask(client: openai.AsyncOpenAI, stream: bool, **kwargs: Any) -> dict[str, Any]:
    """One model call, streamed or not, as {"text", "calls", "finish", "usage"}."""
    kwargs.setdefault("model", "mock/echo")
    if not stream:
        completion = await client.chat.completions.create(**kwargs)
        message = completion.choices[0].message
        calls = [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
            for c in message.tool_calls or ()
            if c.type == "function"
        ]
        return {
            "text": message.content,
            "calls": calls,
            "finish": completion.choices[0].finish_reason,
            "usage": completion.usage,
        }
    text, calls, finish, usage = None, {}, None, None
    async for chunk in await client.chat.completions.create(stream=True, **kwargs):
        usage = chunk.usage or usage
        for choice in chunk.choices:
            if choice.delta.content is not None:
                text = (text or "") + choice.delta.content
            for call in choice.delta.tool_calls or ():
                slot = calls.setdefault(call.index, {"id": call.id, "name": "", "arguments": ""})
                slot["name"] += (call.function and call.function.name) or ""
                slot["arguments"] += (call.function and call.function.arguments) or ""
            finish = choice.finish_reason or finish
    return {"text": text, "calls": list(calls.values()), "finish": finish, "usage": usage}


# --- 1. tool loops end -------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_a_tool_loop_ends_after_two_model_calls(client: openai.AsyncOpenAI, stream: bool) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "What is the weather in Paris?"}]
    seen: list[dict[str, Any]] = []
    for _ in range(5):  # an agent's step limit
        answer = await ask(client, stream, messages=messages, tools=[WEATHER])
        seen.append(answer)
        if not answer["calls"]:
            break
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                    for c in answer["calls"]
                ],
            }
        )
        for call in answer["calls"]:
            arguments = json.loads(call["arguments"])
            assert arguments == {"city": "mock", "unit": "celsius"}  # fits the schema: required, enum
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c": 21}'})
    assert len(seen) == 2
    assert seen[0]["finish"] == "tool_calls" and seen[0]["calls"][0]["name"] == "get_weather"
    assert seen[0]["calls"][0]["id"].startswith("call_mock")
    assert seen[1]["finish"] == "stop"
    assert seen[1]["text"] == 'The get_weather tool returned: {"temp_c": 21}'


@pytest.mark.parametrize("stream", [False, True])
async def test_legacy_function_loop_ends(client: openai.AsyncOpenAI, stream: bool) -> None:
    messages = [
        {"role": "user", "content": "time?"},
        {"role": "assistant", "content": None, "function_call": {"name": "get_time", "arguments": "{}"}},
        {"role": "function", "name": "get_time", "content": "noon"},
    ]
    answer = await ask(client, stream, messages=messages, functions=[CLOCK["function"]])
    assert answer["text"] == "The get_time tool returned: noon" and answer["finish"] == "stop"


@pytest.mark.parametrize("stream", [False, True])
async def test_parallel_results_are_all_reported(client: openai.AsyncOpenAI, stream: bool) -> None:
    calls = [
        {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
        {"id": "b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]
    messages = [
        {"role": "user", "content": "weather and time"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "b", "content": "noon"},
        {"role": "tool", "tool_call_id": "a", "content": [{"type": "text", "text": "sunny"}]},
    ]
    answer = await ask(client, stream, messages=messages, tools=[WEATHER, CLOCK])
    assert answer["text"] == "The get_time tool returned: noon\nThe get_weather tool returned: sunny"


@pytest.mark.parametrize("stream", [False, True])
async def test_required_and_named_choices_always_call(client: openai.AsyncOpenAI, stream: bool) -> None:
    after_results = [
        {"role": "user", "content": "time?"},
        {"role": "assistant", "tool_calls": [{"id": "x", "type": "function", "function": CLOCK["function"]}]},
        {"role": "tool", "tool_call_id": "x", "content": "noon"},
    ]
    required = await ask(client, stream, messages=after_results, tools=[WEATHER, CLOCK], tool_choice="required")
    assert [c["name"] for c in required["calls"]] == ["get_weather"] and required["finish"] == "tool_calls"
    named = {"type": "function", "function": {"name": "get_time"}}
    chosen = await ask(client, stream, messages=after_results, tools=[WEATHER, CLOCK], tool_choice=named)
    assert [(c["name"], c["arguments"]) for c in chosen["calls"]] == [("get_time", "{}")]
    question = [{"role": "user", "content": "just talk"}]
    silent = await ask(client, stream, messages=question, tools=[WEATHER], tool_choice="none")
    assert silent["calls"] == [] and silent["text"] == "just talk"


async def test_a_named_function_that_is_not_offered_is_a_400(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="mock/echo",
            messages=[{"role": "user", "content": "x"}],
            tools=[WEATHER],
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )
    assert info.value.body["param"] == "tool_choice.function.name"  # type: ignore[index]


# --- 2. structured output ----------------------------------------------------------------------


class Color(StrEnum):
    RED = "red"
    GREEN = "green"


class Address(BaseModel):
    street: str
    city: str


class Person(BaseModel):
    name: str
    age: int = Field(ge=18, le=120)
    height_m: float = Field(gt=0.5, lt=1.2)
    born: datetime
    favourite: Color
    nickname: str | None
    home: Address
    past_homes: list[Address]
    tags: list[str]


@pytest.mark.parametrize("stream", [False, True])
async def test_parse_returns_a_pydantic_object(client: openai.AsyncOpenAI, stream: bool) -> None:
    messages: Any = [{"role": "user", "content": "Invent a person."}]
    if stream:
        async with client.chat.completions.stream(model="mock/echo", messages=messages, response_format=Person) as s:
            async for _ in s:
                pass
            completion = await s.get_final_completion()
    else:
        completion = await client.chat.completions.parse(model="mock/echo", messages=messages, response_format=Person)
    person = completion.choices[0].message.parsed
    assert isinstance(person, Person)
    assert person.age == 18 and 0.5 < person.height_m < 1.2 and person.favourite is Color.RED
    assert person.born.year == 2024 and isinstance(person.home, Address) and person.past_homes[0].city == "mock"


@pytest.mark.parametrize("stream", [False, True])
async def test_json_object_is_one_json_object(client: openai.AsyncOpenAI, stream: bool) -> None:
    answer = await ask(
        client,
        stream,
        messages=[{"role": "user", "content": 'say "hi"'}],
        response_format={"type": "json_object"},
    )
    assert json.loads(answer["text"]) == {"echo": 'say "hi"'}


@pytest.mark.parametrize("stream", [False, True])
async def test_structured_answer_after_a_tool_loop(client: openai.AsyncOpenAI, stream: bool) -> None:
    messages = [
        {"role": "user", "content": "where do I live?"},
        {"role": "assistant", "tool_calls": [{"id": "x", "type": "function", "function": CLOCK["function"]}]},
        {"role": "tool", "tool_call_id": "x", "content": "Paris"},
    ]
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": Address.model_json_schema()}}
    answer = await ask(client, stream, messages=messages, tools=[CLOCK], response_format=fmt)
    assert answer["calls"] == [] and Address.model_validate_json(answer["text"]) == Address(street="mock", city="mock")


# --- 4. text and usage -------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_echo_and_usage(client: openai.AsyncOpenAI, stream: bool) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "the quick"}, {"type": "text", "text": "brown fox"}]},
    ]
    extra = {"stream_options": {"include_usage": True}} if stream else {}
    answer = await ask(client, stream, messages=messages, **extra)
    assert answer["text"] == "the quick brown fox" and answer["finish"] == "stop"
    usage = answer["usage"]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (6, 4, 10)


async def test_no_usage_chunk_unless_asked(client: openai.AsyncOpenAI) -> None:
    answer = await ask(client, True, messages=[{"role": "user", "content": "hi"}])
    assert answer["text"] == "hi" and answer["usage"] is None


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_call_usage_counts_the_arguments(client: openai.AsyncOpenAI, stream: bool) -> None:
    extra = {"stream_options": {"include_usage": True}} if stream else {}
    answer = await ask(client, stream, messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER], **extra)
    arguments = answer["calls"][0]["arguments"]
    assert answer["usage"].completion_tokens == 1 + -(-len(arguments) // 8)  # the name, then 8 characters a chunk
    assert answer["usage"].prompt_tokens == 1


# --- 3. malformed bodies -----------------------------------------------------------------------

BAD_BODIES = [
    ({"tools": [1]}, "tools[0]"),
    ({"tools": [{"type": "function", "function": {"parameters": {}}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function"}]}, "tools[0].function"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": [1]}}]}, "tools[0].function.parameters"),
    ({"functions": [{"name": ""}]}, "functions[0].name"),
    ({"messages": [{"role": "user", "content": ["hello"]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]}, "messages[0].content[0].text"),
    ({"messages": [{"role": "assistant", "tool_calls": {"id": 1}}]}, "messages[0].tool_calls"),
    ({"response_format": {"type": "json_schema", "json_schema": 1}}, "response_format.json_schema"),
    ({"response_format": {"type": "yaml"}}, "response_format.type"),
    (
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/$defs/X"}}}},
        "response_format.json_schema.schema",
    ),
    (
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#"}}}},
        "response_format.json_schema.schema",
    ),
    ({"tool_choice": "sometimes", "tools": [CLOCK]}, "tool_choice"),
]


@pytest.mark.parametrize(("patch", "param"), BAD_BODIES)
async def test_malformed_bodies_are_a_400(start_proxy: Any, patch: dict[str, Any], param: str) -> None:
    server = await start_proxy({"providers": {"mock": {"chunk_delay_ms": 0}}})
    body = {"model": "mock/echo", "messages": [{"role": "user", "content": "x"}], **patch}
    async with aiohttp.ClientSession() as session:
        for stream in (False, True):
            async with session.post(server.make_url("/v1/chat/completions"), json={**body, "stream": stream}) as resp:
                assert resp.status == 400, await resp.text()
                error = (await resp.json())["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param


# --- 5. the transport --------------------------------------------------------------------------

MOCK = ProviderConfig(name="mock", kind="mock", options={"chunk_delay_ms": 0})


def mock_request(model: str, **body: Any) -> UpstreamRequest:
    body.setdefault("messages", [{"role": "user", "content": "one two three"}])
    return UpstreamRequest(url=f"mock://{model}", headers={}, body=orjson.dumps({"model": model, **body}))


async def test_transport_names_its_own_answers() -> None:
    before = int(time.time())
    first = orjson.loads(await (await MockTransport().open(mock_request("echo"), MOCK)).read())
    second = orjson.loads(await (await MockTransport().open(mock_request("echo"), MOCK)).read())
    assert first["id"].startswith("chatcmpl-mock-") and first["id"] != second["id"]
    assert before <= first["created"] <= int(time.time())
    assert first["model"] == "echo" and first["choices"][0]["message"]["content"] == "one two three"


async def test_transport_streams_frames_and_counts_bytes() -> None:
    response = await MockTransport().open(mock_request("echo", stream=True), MOCK)
    frames = [frame async for frame in response.chunks()]
    assert response.status == 200 and response.received == sum(map(len, frames))
    assert frames[-1] == b"data: [DONE]\n\n" and len(frames) == 3 + 1 + 1  # words, finish, done
    response = await MockTransport().open(mock_request("echo", stream=True), MOCK)
    got = []
    async for frame in response.chunks():
        got.append(frame)
        response.close()
    assert len(got) == 1  # closing stops the stream


async def test_transport_failure_models() -> None:
    failed = await MockTransport().open(mock_request("fail-503"), MOCK)
    assert failed.status == 503 and b"mock failure with HTTP 503" in await failed.read()
    mid = [f async for f in (await MockTransport().open(mock_request("fail-mid", stream=True), MOCK)).chunks()]
    assert len(mid) == 3 and b"mock failure mid-stream" in mid[-1]
    cut = [f async for f in (await MockTransport().open(mock_request("truncate", stream=True), MOCK)).chunks()]
    assert b"[DONE]" not in b"".join(cut) and b'"finish_reason":"stop"' in cut[-1]


async def test_transport_refuses_a_body_it_cannot_read() -> None:
    with pytest.raises(BadRequest):
        await MockTransport().open(UpstreamRequest("mock://echo", {}, b"[1]"), MOCK)
    with pytest.raises(BadRequest):
        await MockTransport().open(UpstreamRequest("mock://echo", {}, b"{"), MOCK)


def test_option_text_answers_when_there_is_no_user_text() -> None:
    answer = plan_answer({"messages": [{"role": "system", "content": "sys"}]}, {"text": "fixed words"})
    assert answer.text == "fixed words" and answer.pieces == ("fixed", " words")
