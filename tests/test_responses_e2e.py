"""End to end: the real ``openai`` SDK -> ``POST /v1/responses`` on the proxy -> fake upstreams (issue 12).

Translated upstreams (Anthropic, Gemini, a chat-only OpenAI-compatible one) get one neutral
scenario each (``tests/responses_fakes.py`` renders it in their wire format), so each behaviour
is checked against all three with one expectation; an OpenAI upstream with ``responses = true``
passes through byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp.test_utils import TestServer

from proxy.config import build
from proxy.server import create_app
from tests.codex_cli import FakeResponses, FunctionCall, Message, Reasoning, _sse
from tests.responses_fakes import Answer, Call, Raw, Say, Think, Upstream, history, tool_names, tool_schema

KINDS = ("anthropic", "gemini", "chat")
MODELS = {
    "anthropic": "anthropic/claude-test",
    "gemini": "gemini/gemini-2.5-flash",
    "chat": "up/gpt-x",
    "responses": "oai/gpt-5",
}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
GRAMMAR = 'start: "*** Begin Patch" /(.|\\n)*/ "*** End Patch"'
APPLY_PATCH = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files",
    "format": {"type": "grammar", "syntax": "lark", "definition": GRAMMAR},
}
PATCH = '*** Begin Patch\n*** Add File: a.txt\n+hello "world"\n*** End Patch'


@dataclass
class Setup:
    upstream: Upstream
    proxy: TestServer
    client: openai.AsyncOpenAI

    @property
    def url(self) -> str:
        return str(self.proxy.make_url("/v1/responses"))


@pytest.fixture
async def setup(aiohttp_server: Any) -> AsyncIterator[Setup]:
    upstream = Upstream()
    server = await aiohttp_server(upstream.app())
    base = f"http://127.0.0.1:{server.port}"
    providers = {
        "anthropic": {"base_url": base, "api_key": "k-anthropic"},
        "gemini": {"base_url": base, "api_key": "k-gemini"},
        "up": {"kind": "openai", "base_url": f"{base}/v1", "api_key": "k-up"},
        "oai": {"kind": "openai", "base_url": f"{base}/v1", "api_key": "k-oai", "responses": True},
    }
    proxy = await aiohttp_server(create_app(build({"providers": providers}, "<test>", {})))
    client = openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="client-key", max_retries=0)
    yield Setup(upstream, proxy, client)
    await client.close()


# --- Helpers ---------------------------------------------------------------------------------


def check_events(events: list[Any]) -> None:
    """Sequence numbers count up by one from 0; every ``output_item.added`` gets its ``done``."""
    assert [e.sequence_number for e in events] == list(range(len(events)))
    added = [e.item.id for e in events if e.type == "response.output_item.added"]
    done = [e.item.id for e in events if e.type == "response.output_item.done"]
    if events[-1].type in ("response.completed", "response.incomplete"):
        assert added == done
    else:
        assert set(done) <= set(added)


async def stream_create(client: openai.AsyncOpenAI, **kw: Any) -> tuple[list[Any], Any]:
    """``responses.create(stream=True)``: every event, and the final response (None after a failure)."""
    stream = await client.responses.create(stream=True, **kw)
    events = [event async for event in stream]
    check_events(events)
    last = events[-1]
    final = last.response if last.type in ("response.completed", "response.incomplete") else None
    return events, final


async def stream_helper(client: openai.AsyncOpenAI, **kw: Any) -> tuple[list[Any], Any]:
    """``responses.stream(...)``: every event and ``get_final_response()``."""
    async with client.responses.stream(**kw) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    check_events(events)
    return events, final


def outline(response: Any) -> list[tuple[Any, ...]]:
    """A response's output items as tuples (for one-line assertions)."""
    out: list[tuple[Any, ...]] = []
    for item in response.output:
        if item.type == "message":
            out.append(("message", "".join(part.text for part in item.content if part.type == "output_text")))
        elif item.type == "reasoning":
            summary = "".join(part.text for part in item.summary)
            out.append(("reasoning", summary, item.encrypted_content))
        elif item.type == "function_call":
            out.append(("function_call", item.name, json.loads(item.arguments), item.call_id))
        elif item.type == "custom_tool_call":
            out.append(("custom_tool_call", item.name, item.input, item.call_id))
        else:
            out.append((item.type,))
    return out


def usage(response: Any) -> tuple[int, int, int, int]:
    u = response.usage
    return (
        u.input_tokens,
        u.input_tokens_details.cached_tokens,
        u.output_tokens,
        u.output_tokens_details.reasoning_tokens,
    )


def without_ids(items: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Outline tuples without call ids and encrypted content (they differ per upstream)."""
    return [t[:3] if t[0] in ("function_call", "custom_tool_call") else t[:2] for t in items]


SIGNED = {"anthropic": "anthropic:", "gemini": "gemini:", "chat": None}
DRIVERS = {"create": stream_create, "stream": stream_helper}


# --- Streams, for each translated upstream -------------------------------------------------


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("kind", KINDS)
async def test_text(setup: Setup, kind: str, driver: str) -> None:
    setup.upstream.queue(Answer((Say("Hello there, world."),), usage=(120, 64, 7, 0)))

    events, final = await DRIVERS[driver](
        setup.client, model=MODELS[kind], input="Say hello.", instructions="Be brief."
    )

    assert final.status == "completed" and final.model
    assert outline(final) == [("message", "Hello there, world.")]
    assert usage(final) == (120, 64, 7, 0)
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Hello there, world."
    assert [e.type for e in events[:2]] == ["response.created", "response.in_progress"]
    (seen,) = setup.upstream.seen
    assert seen.kind == kind and seen.stream
    assert history(kind, seen.body) == [("system", "Be brief."), ("user", "Say hello.")]


@pytest.mark.parametrize("kind", KINDS)
async def test_reasoning_then_text(setup: Setup, kind: str) -> None:
    setup.upstream.queue(Answer((Think("Two and two", "SIG-1"), Say("Four.")), usage=(50, 0, 40, 30)))

    events, final = await stream_helper(setup.client, model=MODELS[kind], input="2+2?", reasoning={"effort": "high"})

    (reasoning, message) = outline(final)
    assert reasoning[:2] == ("reasoning", "Two and two") and message == ("message", "Four.")
    prefix = SIGNED[kind]
    assert reasoning[2] == (None if prefix is None else prefix + "SIG-1")
    assert usage(final) == (50, 0, 40, 30)
    summary = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert summary == "Two and two"


@pytest.mark.parametrize("kind", KINDS)
async def test_several_function_calls(setup: Setup, kind: str) -> None:
    calls = (Call("get_weather", {"city": "Paris"}), Call("get_weather", {"city": "Tokyo", "note": 'say "hi" é'}))
    setup.upstream.queue(Answer((Say("Checking both."), *calls), stop="tool"))

    events, final = await stream_create(setup.client, model=MODELS[kind], input="Weather?", tools=[WEATHER])

    assert without_ids(outline(final)) == [
        ("message", "Checking both."),
        ("function_call", "get_weather", {"city": "Paris"}),
        ("function_call", "get_weather", {"city": "Tokyo", "note": 'say "hi" é'}),
    ]
    ids = [t[3] for t in outline(final) if t[0] == "function_call"]
    assert len(set(ids)) == 2 and all(ids)
    for item in final.output[1:]:
        deltas = [
            e.delta for e in events if e.type == "response.function_call_arguments.delta" and e.item_id == item.id
        ]
        assert "".join(deltas) == item.arguments
    assert final.status == "completed"


@pytest.mark.parametrize("kind", KINDS)
async def test_custom_tool_comes_back_as_custom_tool_call(setup: Setup, kind: str) -> None:
    setup.upstream.queue(Answer((Call("apply_patch", {"input": PATCH}, call_id="c1"),), stop="tool"))

    events, final = await stream_helper(
        setup.client, model=MODELS[kind], input="Add a.txt", tools=[WEATHER, APPLY_PATCH]
    )

    (item,) = outline(final)
    assert item[:3] == ("custom_tool_call", "apply_patch", PATCH)
    done = next(e for e in events if e.type == "response.custom_tool_call_input.done")
    assert done.input == PATCH
    (seen,) = setup.upstream.seen
    assert tool_names(kind, seen.body) == ["get_weather", "apply_patch"]
    schema = tool_schema(kind, seen.body, "apply_patch")
    (param,) = schema["properties"].values()
    assert GRAMMAR in param["description"]


@pytest.mark.parametrize("kind", KINDS)
async def test_max_tokens_is_incomplete(setup: Setup, kind: str) -> None:
    setup.upstream.queue(Answer((Say("Once upon a time"),), stop="length"))

    events, final = await stream_create(setup.client, model=MODELS[kind], input="Story", max_output_tokens=5)

    assert events[-1].type == "response.incomplete"
    assert final.status == "incomplete" and final.incomplete_details.reason == "max_output_tokens"
    assert outline(final) == [("message", "Once upon a time")]
    assert final.output[0].status == "incomplete"
    body = setup.upstream.seen[0].body
    limit = {"anthropic": body.get("max_tokens"), "chat": body.get("max_tokens")}
    if kind == "gemini":
        limit["gemini"] = body["generationConfig"]["maxOutputTokens"]
    assert limit[kind] == 5


@pytest.mark.parametrize("cut", ["error", "truncate"])
@pytest.mark.parametrize("kind", KINDS)
async def test_a_stream_that_breaks_ends_with_response_failed(setup: Setup, kind: str, cut: str) -> None:
    setup.upstream.queue(Answer((Say("Let me think about that"),), cut=cut))

    stream = await setup.client.responses.create(stream=True, model=MODELS[kind], input="Hi")
    events = [event async for event in stream]

    check_events(events)
    types = [e.type for e in events]
    assert types[-1] == "response.failed" and "response.completed" not in types
    assert events[-1].response.status == "failed" and events[-1].response.error.message
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Let me think about that"

    setup.upstream.queue(Answer((Say("Let me think about that"),), cut=cut))
    with pytest.raises(RuntimeError, match=r"response\.completed"):
        await stream_helper(setup.client, model=MODELS[kind], input="Hi")


# --- Non-stream ------------------------------------------------------------------------------


def mixed_answer(kind: str) -> Answer:
    """Reasoning, text and a call; signed as each provider signs (Gemini: on the call)."""
    think = Think("hmm", "" if kind == "gemini" else "SIG-2")
    call = Call("get_weather", {"city": "Oslo"}, signature="SIG-2" if kind == "gemini" else "")
    return Answer((think, Say("Calling."), call), stop="tool")


@pytest.mark.parametrize("kind", KINDS)
async def test_non_stream_response(setup: Setup, kind: str) -> None:
    setup.upstream.queue(mixed_answer(kind), Answer((Say("Cut"),), stop="length"))

    response = await setup.client.responses.create(model=MODELS[kind], input="Weather?", tools=[WEATHER])

    assert response.object == "response" and response.status == "completed"
    items = outline(response)
    signed = {
        "anthropic": [("reasoning", "hmm", "anthropic:SIG-2"), ("message", "Calling.")],
        "gemini": [("reasoning", "hmm", None), ("message", "Calling."), ("reasoning", "", "gemini:SIG-2")],
        "chat": [("reasoning", "hmm", None), ("message", "Calling.")],
    }
    assert items[:-1] == signed[kind]
    assert items[-1][:3] == ("function_call", "get_weather", {"city": "Oslo"})
    assert usage(response) == (100, 40, 30, 10)
    assert not setup.upstream.seen[0].stream

    cut = await setup.client.responses.create(model=MODELS[kind], input="Story", max_output_tokens=3)
    assert cut.status == "incomplete" and cut.incomplete_details.reason == "max_output_tokens"
    assert outline(cut) == [("message", "Cut")] and cut.output[0].status == "incomplete"


@pytest.mark.parametrize("kind", KINDS)
async def test_non_stream_has_the_items_the_stream_has(setup: Setup, kind: str) -> None:
    setup.upstream.queue(mixed_answer(kind), mixed_answer(kind))

    whole = await setup.client.responses.create(model=MODELS[kind], input="Weather?", tools=[WEATHER])
    _, streamed = await stream_create(setup.client, model=MODELS[kind], input="Weather?", tools=[WEATHER])

    assert [t[:3] for t in outline(whole)] == [t[:3] for t in outline(streamed)]
    assert whole.usage == streamed.usage and whole.status == streamed.status


# --- Two-turn tool loops ---------------------------------------------------------------------


def as_input(response: Any) -> list[Any]:
    """A response's output items as the next request's input items (as Codex sends them back)."""
    return [item.model_dump(exclude_none=True) for item in response.output]


@pytest.mark.parametrize("mode", ["history", "previous_response_id"])
@pytest.mark.parametrize("kind", KINDS)
async def test_two_turn_tool_loop(setup: Setup, kind: str, mode: str) -> None:
    signature = {"anthropic": "SIG-A", "gemini": "", "chat": ""}[kind]
    thinking = (Think("I need the weather", signature),) if kind != "gemini" else ()
    call_signature = "SIG-G" if kind == "gemini" else ""
    first = Answer((*thinking, Call("get_weather", {"city": "Paris"}, signature=call_signature)), stop="tool")
    setup.upstream.queue(first, Answer((Say("It is sunny in Paris."),)))
    user = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]}
    store = mode != "history"

    _, turn1 = await stream_create(
        setup.client, model=MODELS[kind], input=[user], tools=[WEATHER], store=store, instructions="Use tools."
    )
    call = next(item for item in turn1.output if item.type == "function_call")
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"}
    if mode == "history":
        follow = {"input": [user, *as_input(turn1), output], "store": False}
    else:
        follow = {"input": [output], "previous_response_id": turn1.id}
    _, turn2 = await stream_create(
        setup.client, model=MODELS[kind], tools=[WEATHER], instructions="Use tools.", **follow
    )

    assert outline(turn2) == [("message", "It is sunny in Paris.")]
    sent = history(kind, setup.upstream.seen[1].body)
    assert sent[:2] == [("system", "Use tools."), ("user", "Weather in Paris?")]
    result_ref = "get_weather" if kind == "gemini" else call.call_id
    expected_call: tuple[Any, ...] = ("call", "get_weather", {"city": "Paris"})
    if kind == "anthropic":
        assert sent[2:] == [
            ("think", "I need the weather", "SIG-A"),
            (*expected_call, call.call_id),
            ("result", result_ref, "sunny, 21C"),
        ]
    elif kind == "gemini":
        assert sent[2] == (*expected_call, "SIG-G")
        assert sent[3][:2] == ("result", result_ref) and "sunny, 21C" in sent[3][2]
        assert len(sent) == 4
    else:
        assert sent[2:] == [(*expected_call, call.call_id), ("result", result_ref, "sunny, 21C")]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_custom_tool_output_goes_back_as_the_tool_result(setup: Setup, kind: str) -> None:
    setup.upstream.queue(
        Answer((Call("apply_patch", {"input": PATCH}, call_id="cp1"),), stop="tool"), Answer((Say("Done."),))
    )
    _, turn1 = await stream_create(setup.client, model=MODELS[kind], input="Patch it", tools=[APPLY_PATCH])
    (call,) = turn1.output
    output = {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Success. Updated a.txt"}

    _, turn2 = await stream_create(
        setup.client, model=MODELS[kind], tools=[APPLY_PATCH], input=[output], previous_response_id=turn1.id
    )

    assert outline(turn2) == [("message", "Done.")]
    sent = history(kind, setup.upstream.seen[1].body)
    assert sent[1][:3] == ("call", "apply_patch", {"input": PATCH})
    assert sent[2][0] == "result" and "Success. Updated a.txt" in sent[2][2]


async def test_an_unknown_previous_response_id_is_a_400(setup: Setup) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await setup.client.responses.create(model=MODELS["anthropic"], input="Hi", previous_response_id="resp_nope")

    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "previous_response_not_found" and error["param"] == "previous_response_id"
    assert setup.upstream.seen == []


async def test_store_false_is_not_kept_for_previous_response_id(setup: Setup) -> None:
    setup.upstream.queue(Answer((Say("One."),)))
    _, turn1 = await stream_create(setup.client, model=MODELS["chat"], input="Hi", store=False)

    with pytest.raises(openai.BadRequestError, match="previous"):
        await setup.client.responses.create(model=MODELS["chat"], input="Again", previous_response_id=turn1.id)


# --- Hosted tools ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_hosted_tools_are_left_out_for_translated_upstreams(setup: Setup, kind: str) -> None:
    setup.upstream.queue(Answer((Say("ok"),)))

    _, final = await stream_create(
        setup.client,
        model=MODELS[kind],
        input="Search",
        tools=[{"type": "web_search"}, WEATHER],
        tool_choice="auto",
    )

    assert final.status == "completed"
    assert tool_names(kind, setup.upstream.seen[0].body) == ["get_weather"]


# --- Pass-through to an OpenAI upstream with /v1/responses --------------------------------------


def responses_stream(body: dict[str, Any], outputs: list[Any]) -> bytes:
    fake = FakeResponses(lambda _: [])
    _, events = fake._respond(body, outputs)
    return b"".join(_sse(event) for event in events)


async def test_pass_through_is_byte_for_byte_and_the_body_is_forwarded(setup: Setup) -> None:
    body = {
        "model": MODELS["responses"],
        "stream": True,
        "store": False,
        "previous_response_id": "resp_upstream_123",
        "include": ["reasoning.encrypted_content"],
        "tools": [{"type": "web_search"}, WEATHER],
        "input": [
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAB-opaque=="},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        ],
    }
    served = responses_stream(
        body, [Reasoning("thinking"), Message("Hello!"), FunctionCall("get_weather", {"city": "X"})]
    )
    setup.upstream.queue(Raw(served))

    headers = {"Authorization": "Bearer client-key"}
    async with aiohttp.ClientSession() as session, session.post(setup.url, json=body, headers=headers) as response:
        assert response.status == 200
        got = await response.read()

    assert got == served
    (seen,) = setup.upstream.seen
    assert seen.kind == "responses" and seen.body == {**body, "model": "gpt-5"}
    assert seen.headers["Authorization"] == "Bearer k-oai"


async def test_pass_through_through_the_sdk(setup: Setup) -> None:
    body = {"model": "gpt-5", "input": "Hi", "stream": True}
    served = responses_stream(body, [Reasoning("hm", "gAAAAB-x"), Message("Hello!")])
    setup.upstream.queue(Raw(served))

    _, final = await stream_helper(setup.client, model=MODELS["responses"], input="Hi", tools=[{"type": "web_search"}])

    assert outline(final) == [("reasoning", "hm", "gAAAAB-x"), ("message", "Hello!")]
    assert usage(final) == (1200, 300, 20, 0)
    assert setup.upstream.seen[0].body["tools"] == [{"type": "web_search"}]


async def test_pass_through_non_stream(setup: Setup) -> None:
    fake = FakeResponses(lambda _: [])
    response, _ = fake._respond({"model": "gpt-5"}, [Message("Whole.")])
    setup.upstream.queue(Raw(json.dumps(response).encode(), headers={"Content-Type": "application/json"}))

    got = await setup.client.responses.create(model=MODELS["responses"], input="Hi")

    assert outline(got) == [("message", "Whole.")]
    assert setup.upstream.seen[0].body == {"model": "gpt-5", "input": "Hi"}


# --- Errors before the stream --------------------------------------------------------------------


def assert_error_shape(body: Any) -> None:
    assert isinstance(body, dict) and set(body) >= {"message", "type", "param", "code"}


async def test_an_unknown_model_is_a_404(setup: Setup) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await setup.client.responses.create(model="nobody/model-x", input="Hi", stream=True)
    assert_error_shape(caught.value.body)
    assert setup.upstream.seen == []


@pytest.mark.parametrize("kind", [*KINDS, "responses"])
async def test_an_upstream_429_keeps_its_retry_after(setup: Setup, kind: str) -> None:
    error = json.dumps({"error": {"message": "slow down", "type": "rate_limit_error", "code": 429}}).encode()
    headers = {"Content-Type": "application/json", "Retry-After": "7"}
    setup.upstream.queue(Raw(error, status=429, headers=headers))

    with pytest.raises(openai.RateLimitError) as caught:
        await setup.client.responses.create(model=MODELS[kind], input="Hi", stream=True)

    assert caught.value.response.headers.get("retry-after") == "7"
    if kind != "responses":
        assert_error_shape(caught.value.body)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"max_output_tokens": -1}, "max_output_tokens"),
        (
            {"input": [{"type": "message", "role": "user", "content": [{"type": "input_text"}]}]},
            "input[0].content[0].text",
        ),
        ({"tools": [{"type": "function"}]}, "tools[0].name"),
        ({"input": 42}, "input"),
    ],
)
@pytest.mark.parametrize("kind", KINDS)
async def test_a_malformed_body_is_a_400_naming_the_field(
    setup: Setup, kind: str, fields: dict[str, Any], param: str
) -> None:
    body = {"model": MODELS[kind], "input": "Hi", "stream": True, **fields}
    async with aiohttp.ClientSession() as session, session.post(setup.url, json=body) as response:
        status, data = response.status, await response.json()

    assert status == 400
    assert_error_shape(data["error"])
    assert data["error"]["param"] == param and data["error"]["type"] == "invalid_request_error"
    assert setup.upstream.seen == []


# --- Reasoning signatures round trip ---------------------------------------------------------


def codex_echo(response: Any) -> list[Any]:
    """A response's items as Codex sends them back: reasoning with ``content: null``, ids kept."""
    items = as_input(response)
    for item in items:
        if item["type"] == "reasoning":
            item["content"] = None
    return items


@pytest.mark.parametrize("kind", ["anthropic", "gemini"])
async def test_a_signed_thought_before_text_reaches_the_upstream_in_its_own_form(setup: Setup, kind: str) -> None:
    setup.upstream.queue(Answer((Think("Pondering", "SIG-T"), Say("Hello."))), Answer((Say("Again."),)))
    user = {"type": "message", "id": "msg_u1", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}
    _, turn1 = await stream_create(setup.client, model=MODELS[kind], input=[user], store=False)
    reasoning = turn1.output[0]
    assert reasoning.type == "reasoning" and reasoning.encrypted_content == f"{kind}:SIG-T"
    follow = {"type": "message", "id": "msg_u2", "role": "user", "content": [{"type": "input_text", "text": "More"}]}

    await stream_create(setup.client, model=MODELS[kind], input=[user, *codex_echo(turn1), follow], store=False)

    sent = setup.upstream.seen[1].body
    if kind == "anthropic":
        assert history(kind, sent) == [
            ("user", "Hi"),
            ("think", "Pondering", "SIG-T"),
            ("assistant", "Hello."),
            ("user", "More"),
        ]
    else:
        (model_turn,) = [c for c in sent["contents"] if c["role"] == "model"]
        assert [p.get("thoughtSignature") for p in model_turn["parts"]] == ["SIG-T"]
        assert model_turn["parts"][0]["text"] == "Hello."


async def test_openai_encrypted_reasoning_is_not_sent_to_a_translated_upstream(setup: Setup) -> None:
    setup.upstream.queue(Answer((Say("ok"),)))
    items = [
        {"type": "reasoning", "id": "rs_x", "summary": [], "content": None, "encrypted_content": "gAAAAB-openai"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
    ]

    await stream_create(setup.client, model=MODELS["anthropic"], input=items, store=False)

    assert history("anthropic", setup.upstream.seen[0].body) == [("user", "Hi")]
    assert "gAAAAB-openai" not in json.dumps(setup.upstream.seen[0].body)


async def test_pass_through_response_failed_reaches_the_sdk_as_sent(setup: Setup) -> None:
    from tests.codex_cli import Failure

    served = responses_stream({"model": "gpt-5"}, [Message("Partial"), Failure("upstream broke")])
    setup.upstream.queue(Raw(served))

    stream = await setup.client.responses.create(model=MODELS["responses"], input="Hi", stream=True)
    events = [event async for event in stream]

    assert events[-1].type == "response.failed" and events[-1].response.error.message == "upstream broke"
    assert "response.completed" not in [e.type for e in events]


async def test_pass_through_cut_mid_stream_ends_with_an_error_never_a_completion(setup: Setup) -> None:
    served = responses_stream({"model": "gpt-5"}, [Message("Hello there!")])
    cut = served[: served.index(b"event: response.output_text.done")]
    setup.upstream.queue(Raw(cut))

    headers = {"Authorization": "Bearer client-key"}
    body = {"model": MODELS["responses"], "input": "Hi", "stream": True}
    async with aiohttp.ClientSession() as session, session.post(setup.url, json=body, headers=headers) as response:
        got = await response.read()

    assert got.startswith(cut)
    tail = got[len(cut) :]
    assert tail.startswith(b"event: error\n") and b"event: response.completed" not in got
    error = json.loads(tail.split(b"data: ", 1)[1])
    assert error["type"] == "error" and error["code"] == "server_error" and "truncated" in error["message"]
    setup.upstream.queue(Raw(cut))
    with pytest.raises(RuntimeError, match=r"response\.completed"):
        await stream_helper(setup.client, model=MODELS["responses"], input="Hi")


async def test_pass_through_error_event_continues_the_sequence_numbers(setup: Setup) -> None:
    served = responses_stream({"model": "gpt-5"}, [Message("Hello there!")])
    cut = served[: served.index(b"event: response.output_text.done")]
    setup.upstream.queue(Raw(cut))

    stream = await setup.client.responses.create(model=MODELS["responses"], input="Hi", stream=True)
    events = [event async for event in stream]

    assert events[-1].type == "error"
    assert [e.sequence_number for e in events] == list(range(len(events)))


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]"])
async def test_a_body_that_is_not_a_json_object_is_a_400(setup: Setup, raw: bytes) -> None:
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session, session.post(setup.url, data=raw, headers=headers) as response:
        status, data = response.status, await response.json()

    assert status == 400
    assert_error_shape(data["error"])
    assert data["error"]["type"] == "invalid_request_error"
