"""The OpenAI Responses front door's wire format: the event encoder and the request reader.

Golden streams: the recorded and hand-written upstream streams of ``tests/fixtures/anthropic``,
``tests/fixtures/gemini`` and the OpenAI-compatible recordings run through their own decoders
with ``ResponsesEncoder``; the Responses events that come out are stored in
``tests/fixtures/responses_door/`` (provenance in the README there; regenerate with
``REGEN_GOLDEN=1`` and review the diff). Every output is also read by the real ``openai`` SDK
(``client.responses.stream`` over an in-process transport, whose accumulator checks item
identities and refuses a completion with unfinished items) and checked as a client sees it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Any

import httpx2
import openai
import orjson
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from proxy.errors import BadRequest, ProxyError, StreamError
from proxy.protocols.anthropic.stream import AnthropicStream
from proxy.protocols.gemini.stream import GeminiStream
from proxy.protocols.openai_chat.decode import ChatChunkDecoder
from proxy.protocols.openai_responses.encode import (
    KEEPALIVE,
    ResponsesEncoder,
    encode_response,
    error_body,
    error_event,
)
from proxy.protocols.openai_responses.request import (
    ANTHROPIC_REDACTED_PREFIX,
    ANTHROPIC_SIGNATURE_PREFIX,
    GEMINI_SIGNATURE_PREFIX,
    ResponsesRequest,
    to_chat,
)
from proxy.protocols.stream import Completion, StreamContext, StreamDecoder, ToolCall, Usage
from proxy.wire.sse import SSEDecoder
from tests import test_anthropic as anthropic_cases
from tests import test_gemini as gemini_cases
from tests import test_openai_decode as chat_cases
from tests.support import FIXTURES, relayed_every_split

DIR = FIXTURES / "responses_door"
CTX = StreamContext(id="resp_test", created=1700000000, model="test-model", call_id_prefix="test")
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)

Factory = Callable[[], StreamDecoder]
# golden case "<upstream>-<fixture>" -> (decoder factory, upstream bytes, whether the stream fails)
SOURCES: dict[str, tuple[Factory, Callable[[], bytes], bool]] = {}
for _name in anthropic_cases.CASES:
    SOURCES[f"anthropic-{_name}"] = (
        lambda: AnthropicStream(ResponsesEncoder(CTX)),
        partial(anthropic_cases.load, _name),
        _name in anthropic_cases.FAILURES,
    )
for _name in gemini_cases.CASES:
    SOURCES[f"gemini-{_name}"] = (
        lambda: GeminiStream(ResponsesEncoder(CTX), CTX),
        partial(gemini_cases.load, _name),
        _name in gemini_cases.FAILURES,
    )
for _path in chat_cases.RECORDED:
    _case = _path.split("/")[1].removesuffix(".sse").removesuffix(".chunks.jsonl")
    SOURCES[f"chat-{_case}"] = (
        lambda: ChatChunkDecoder(ResponsesEncoder(CTX), CTX),
        partial(chat_cases.load, _path),
        False,
    )
FAILING = sorted(case for case, (_, _, fails) in SOURCES.items() if fails)
PASSING = sorted(case for case, (_, _, fails) in SOURCES.items() if not fails)


def relay_error(decoder: StreamDecoder, exc: StreamError) -> bytes:
    """The front door's error event, as the relay writes it: the encoder's, which continues its
    sequence numbers."""
    frame: bytes = decoder._enc.error_frame(exc)  # type: ignore[attr-defined]
    return frame


def golden(case: str) -> bytes:
    """The case's output, the same whether its input is fed whole, byte by byte or in random splits."""
    make, load, _ = SOURCES[case]
    return relayed_every_split(make, load(), relay_error)


# --------------------------------------------------------------------------------------------
# Reading the output: as events, and as the openai SDK does


def events(out: bytes) -> list[dict[str, Any]]:
    """The output's events: each named as its ``type``, valid for the SDK's event types, numbered 0, 1, 2..."""
    decoder = SSEDecoder()
    result = []
    for event in decoder.feed(out) + decoder.close():
        data = orjson.loads(event.data)
        assert event.event == data["type"]
        EVENTS.validate_python(data)
        result.append(data)
    assert [e["sequence_number"] for e in result] == list(range(len(result)))
    return result


def check_structure(out: bytes) -> None:
    """created, in_progress, items each added -> done (nothing of an item after its done), one final event."""
    evs = events(out)
    kinds = [e["type"] for e in evs]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in ("response.completed", "response.incomplete", "response.failed")
    assert sum(k in ("response.completed", "response.incomplete", "response.failed") for k in kinds) == 1
    added: dict[int, str] = {}
    done: dict[int, dict[str, Any]] = {}
    for e in evs[2:-1]:
        if e["type"] == "response.output_item.added":
            assert e["output_index"] == len(added)
            added[e["output_index"]] = e["item"]["id"]
        elif e["type"] == "response.output_item.done":
            assert e["output_index"] in added and e["output_index"] not in done
            assert e["item"]["id"] == added[e["output_index"]]
            done[e["output_index"]] = e["item"]
        else:
            index = e["output_index"]
            assert index in added and index not in done and e["item_id"] == added[index]
    final = evs[-1]["response"]
    Response.model_validate(final)
    assert final["output"] == [done[i] for i in sorted(done)]
    if final["status"] != "failed":  # a failure may leave the item it cut open
        assert set(done) == set(added)


def sdk_stream(out: bytes) -> Any:
    """The real openai client reading ``out`` as the answer to a ``responses.stream`` call."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=out, headers={"content-type": "text/event-stream"})

    http = httpx2.Client(transport=httpx2.MockTransport(answer))
    client = openai.OpenAI(api_key="test", base_url="http://door.test/v1", http_client=http, max_retries=0)
    return client.responses.stream(model="m", input="hi").__enter__()


def sdk_response(out: bytes) -> dict[str, Any]:
    """The final response as the SDK gives it (as a dict): accumulated when completed, else the
    ``response.incomplete`` event's (``get_final_response`` wants a completion)."""
    with sdk_stream(out) as stream:
        last = [event for event in stream][-1]
        if last.type == "response.completed":
            result: dict[str, Any] = stream.get_final_response().model_dump(mode="json")
            return result
    assert last.type == "response.incomplete"
    incomplete: dict[str, Any] = last.response.model_dump(mode="json")
    return incomplete


def items(response: dict[str, Any]) -> list[tuple[Any, ...]]:
    """A response's output as comparable tuples."""
    out: list[tuple[Any, ...]] = []
    for item in response["output"]:
        if item["type"] == "message":
            out += [
                ("text", p["text"]) if p["type"] == "output_text" else ("refusal", p["refusal"])
                for p in item["content"]
            ]
        elif item["type"] == "reasoning":
            summary = "".join(s["text"] for s in item["summary"])
            out.append(("reasoning", summary, item["encrypted_content"]))
        elif item["type"] == "function_call":
            out.append(("call", item["call_id"], item["name"], orjson.loads(item["arguments"])))
        else:
            out.append((item["type"],))
    return out


def usage_of(response: dict[str, Any]) -> tuple[int, int, int, int, int]:
    u = response["usage"]
    return (
        u["input_tokens"],
        u["input_tokens_details"]["cached_tokens"],
        u["output_tokens"],
        u["output_tokens_details"]["reasoning_tokens"],
        u["total_tokens"],
    )


# --------------------------------------------------------------------------------------------
# Golden streams


def test_every_case_has_its_expected_output() -> None:
    stored = {p.name.removesuffix(".sse") for p in DIR.iterdir() if p.name.endswith(".sse")}
    assert stored == set(SOURCES)


@pytest.mark.parametrize("case", sorted(SOURCES))
def test_golden_stream(case: str) -> None:
    out = golden(case)
    expected = DIR / f"{case}.sse"
    if os.environ.get("REGEN_GOLDEN"):
        expected.write_bytes(out)
    assert out == expected.read_bytes()


@pytest.mark.parametrize("case", PASSING)
def test_every_output_is_well_formed_and_read_by_the_sdk(case: str) -> None:
    out = golden(case)
    check_structure(out)
    response = sdk_response(out)
    assert response["id"] == "resp_test" and response["model"] == "test-model"
    assert response["status"] in ("completed", "incomplete")
    # Each call's argument deltas join to its arguments, which parse as JSON.
    evs = events(out)
    for item in response["output"]:
        if item["type"] == "function_call":
            index = next(e["output_index"] for e in evs if e.get("item", {}).get("id") == item["id"])
            deltas = [e["delta"] for e in evs if e["type"].endswith("arguments.delta") and e["output_index"] == index]
            assert "".join(deltas) == item["arguments"]
            orjson.loads(item["arguments"])


@pytest.mark.parametrize("case", FAILING)
def test_a_failing_stream_ends_with_response_failed(case: str) -> None:
    out = golden(case)
    check_structure(out)
    last = events(out)[-1]
    assert last["response"]["status"] == "failed"
    assert last["response"]["error"]["code"] == "server_error" and last["response"]["error"]["message"]
    with sdk_stream(out) as stream:
        kinds = [event.type for event in stream]
        assert kinds[-1] == "response.failed" and "response.completed" not in kinds
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            stream.get_final_response()


def test_anthropic_text() -> None:
    response = sdk_response(golden("anthropic-messages-basic-text"))
    assert [i[0] for i in items(response)] == ["text"]
    assert response["output"][0]["status"] == "completed" and response["status"] == "completed"


def test_anthropic_thinking_then_text_keeps_the_signature() -> None:
    source = anthropic_cases.load("thinking-text")
    signature = orjson.loads(next(line for line in source.split(b"\n") if b"signature_delta" in line)[6:])["delta"]
    response = sdk_response(golden("anthropic-thinking-text"))
    (reasoning, text) = items(response)
    assert reasoning[0] == "reasoning" and reasoning[1].startswith("The user asks for 27 * 453.")
    assert reasoning[2] == ANTHROPIC_SIGNATURE_PREFIX + signature["signature"]
    assert text == ("text", "27 \u00d7 453 = **12,231**.")
    assert usage_of(response)[2] > 0


def test_anthropic_tool_use() -> None:
    response = sdk_response(golden("anthropic-messages-tool-use"))
    calls = [i for i in items(response) if i[0] == "call"]
    assert len(calls) == 1 and calls[0][1].startswith("toolu_") and isinstance(calls[0][3], dict)
    assert response["status"] == "completed"


def test_anthropic_parallel_tools_and_empty_input() -> None:
    calls = [i for i in items(sdk_response(golden("anthropic-parallel-tools"))) if i[0] == "call"]
    assert len(calls) >= 2 and len({c[1] for c in calls}) == len(calls)
    empty = [i for i in items(sdk_response(golden("anthropic-tool-empty-input"))) if i[0] == "call"]
    assert empty and all(c[3] == {} for c in empty)


def test_anthropic_redacted_thinking() -> None:
    reasoning = [i for i in items(sdk_response(golden("anthropic-redacted-thinking"))) if i[0] == "reasoning"]
    assert any(r[2].startswith(ANTHROPIC_REDACTED_PREFIX) for r in reasoning)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("anthropic-max-tokens", "max_output_tokens"),
        ("gemini-max-tokens", "max_output_tokens"),
        ("gemini-prompt-blocked", "content_filter"),
        ("gemini-safety-finish", "content_filter"),
        ("chat-chat-finish-length", "max_output_tokens"),
    ],
)
def test_cut_short_answers_are_incomplete_with_the_reason(case: str, reason: str) -> None:
    out = golden(case)
    last = events(out)[-1]
    assert last["type"] == "response.incomplete"
    assert last["response"]["status"] == "incomplete"
    assert last["response"]["incomplete_details"] == {"reason": reason}
    # the SDK yields the event; items closed at the end carry the incomplete status
    with sdk_stream(out) as stream:
        final = [event for event in stream][-1]
    assert final.type == "response.incomplete" and final.response.incomplete_details.reason == reason


def test_gemini_prompt_blocked_is_a_refusal_part() -> None:
    last = events(golden("gemini-prompt-blocked"))[-1]
    (message,) = last["response"]["output"]
    assert message["content"][0]["type"] == "refusal" and message["content"][0]["refusal"]


def test_gemini_tool_call_carries_its_signature_in_a_reasoning_item_before_the_call() -> None:
    response = sdk_response(golden("gemini-gemini-tool-call"))
    (marker, call) = items(response)
    assert marker[0] == "reasoning" and marker[1] == ""
    assert marker[2].startswith(GEMINI_SIGNATURE_PREFIX + "EqUCCqICAb4")
    assert call == ("call", "call_test_0", "weather", {"location": "San Francisco"})
    assert usage_of(response) == (29, 0, 60, 45, 89)


def test_gemini_signature_round_trips_to_the_tool_call() -> None:
    """The client sends the output back with the tool's result: to_chat puts the signature on the call."""
    response = sdk_response(golden("gemini-gemini-tool-call"))
    history: list[Any] = [{"role": "user", "content": "weather?"}]
    for item in response["output"]:
        history.append({k: v for k, v in item.items() if v is not None})
    history.append({"type": "function_call_output", "call_id": "call_test_0", "output": "sunny"})
    chat = to_chat({"model": "gemini/x", "input": history}).chat
    signature = response["output"][0]["encrypted_content"].removeprefix(GEMINI_SIGNATURE_PREFIX)
    assert chat["messages"] == [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_test_0",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"location":"San Francisco"}'},
                    "extra_content": {"google": {"thought_signature": signature}},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_test_0", "content": "sunny"},
    ]


def test_anthropic_signature_round_trips_to_thinking_blocks() -> None:
    response = sdk_response(golden("anthropic-thinking-text"))
    history: list[Any] = [{"role": "user", "content": "27*453?"}]
    history += [{k: v for k, v in item.items() if v is not None} for item in response["output"]]
    history.append({"role": "user", "content": "thanks"})
    chat = to_chat({"model": "anthropic/x", "input": history}).chat
    reasoning, message = response["output"]
    assistant = chat["messages"][1]
    assert assistant["content"] == message["content"][0]["text"]
    assert assistant["thinking_blocks"] == [
        {
            "type": "thinking",
            "thinking": reasoning["summary"][0]["text"],
            "signature": reasoning["encrypted_content"].removeprefix(ANTHROPIC_SIGNATURE_PREFIX),
        }
    ]


def test_chat_parallel_calls_and_usage() -> None:
    response = sdk_response(golden("chat-chat-parallel-tool-calls"))
    calls = [i for i in items(response) if i[0] == "call"]
    assert len(calls) == 2 and all(isinstance(c[3], dict) for c in calls)
    assert usage_of(response)[4] == usage_of(response)[0] + usage_of(response)[2]


def test_chat_refusal_is_a_refusal_part() -> None:
    response = sdk_response(golden("chat-chat-refusal"))
    assert [i[0] for i in items(response)] == ["refusal"]


# --------------------------------------------------------------------------------------------
# The encoder, call by call


def run(calls: Callable[[ResponsesEncoder], list[bytes]], enc: ResponsesEncoder | None = None) -> bytes:
    return b"".join(calls(enc or ResponsesEncoder(CTX)))


def kinds(out: bytes) -> list[str]:
    return [e["type"].removeprefix("response.") for e in events(out)]


def test_text_event_sequence_has_the_api_shape() -> None:
    out = run(lambda e: [e.text("Hel"), e.text("lo"), e.finish("stop"), e.usage(Usage(5, 2)), e.end()])
    check_structure(out)
    assert kinds(out) == [
        *("created", "in_progress", "output_item.added", "content_part.added"),
        *("output_text.delta", "output_text.delta", "output_text.done", "content_part.done"),
        *("output_item.done", "completed"),
    ]
    evs = events(out)
    assert evs[4] == {
        "type": "response.output_text.delta",
        "sequence_number": 4,
        "item_id": "msg_test_0",
        "output_index": 0,
        "content_index": 0,
        "delta": "Hel",
        "logprobs": [],
    }
    final = evs[-1]["response"]
    assert final["output"] == [
        {
            "id": "msg_test_0",
            "type": "message",
            "status": "completed",
            "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": "Hello"}],
            "role": "assistant",
        }
    ]
    assert final["usage"] == {
        "input_tokens": 5,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 2,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 7,
    }
    assert sdk_response(out)["output"][0]["content"][0]["text"] == "Hello"


def test_text_after_a_call_is_a_new_message_and_calls_close_before_it() -> None:
    out = run(
        lambda e: [
            e.text("a"),
            e.tool_call_start("c1", "f", '{"x":'),
            e.tool_call_start("c2", "g"),
            e.tool_call_arguments(0, "1}"),
            e.text("b"),
            e.tool_call_arguments(1, "{}"),  # late: c2 closed with {} when the text began
            e.finish("stop"),
            e.end(),
        ]
    )
    check_structure(out)
    response = sdk_response(out)
    assert items(response) == [("text", "a"), ("call", "c1", "f", {"x": 1}), ("call", "c2", "g", {}), ("text", "b")]
    done = [e["output_index"] for e in events(out) if e["type"] == "response.output_item.done"]
    assert done == [0, 1, 2, 3]


def test_a_stream_without_items_or_usage_still_starts_and_completes() -> None:
    out = run(lambda e: [e.finish("stop"), e.end()])
    assert kinds(out) == ["created", "in_progress", "completed"]
    response = sdk_response(out)
    assert response["output"] == [] and response["usage"] is None


def test_reasoning_signed_by_gemini_then_text_with_signature() -> None:
    out = run(lambda e: [e.reasoning("r", "s1"), e.text("t", "s2"), e.signature("s3"), e.end()])
    check_structure(out)
    g = GEMINI_SIGNATURE_PREFIX
    assert items(sdk_response(out)) == [
        ("reasoning", "r", g + "s1"),
        ("text", "t"),
        ("reasoning", "", g + "s2"),
        ("reasoning", "", g + "s3"),
    ]


def test_thinking_text_that_came_only_with_its_signature() -> None:
    out = run(lambda e: [e.thinking_block("why", "sig"), e.text("ok"), e.end()])
    assert items(sdk_response(out)) == [("reasoning", "why", ANTHROPIC_SIGNATURE_PREFIX + "sig"), ("text", "ok")]


def test_streamed_thinking_closed_by_its_signature_is_not_repeated() -> None:
    out = run(lambda e: [e.reasoning("a"), e.reasoning("b"), e.thinking_block("ab", "sig"), e.end()])
    assert items(sdk_response(out)) == [("reasoning", "ab", ANTHROPIC_SIGNATURE_PREFIX + "sig")]
    assert kinds(out).count("reasoning_summary_text.delta") == 2


def test_text_then_refusal_are_two_parts_of_one_message() -> None:
    out = run(lambda e: [e.text("x"), e.refusal("no"), e.finish("content_filter"), e.end()])
    check_structure(out)
    assert "refusal.delta" in kinds(out) and "refusal.done" in kinds(out)
    final = events(out)[-1]["response"]
    assert [p["type"] for p in final["output"][0]["content"]] == ["output_text", "refusal"]
    assert final["output"][0]["status"] == "incomplete"


def test_custom_tool_call_is_unwrapped_from_its_arguments() -> None:
    enc = ResponsesEncoder(CTX, frozenset({"apply_patch"}))
    patch = "*** Begin Patch\n*** End Patch"
    args = orjson.dumps({"input": patch}).decode()
    out = run(
        lambda e: [e.tool_call_start("c1", "apply_patch", args[:7]), e.tool_call_arguments(0, args[7:]), e.end()],
        enc,
    )
    check_structure(out)
    assert kinds(out)[2:] == [
        *("output_item.added", "custom_tool_call_input.delta", "custom_tool_call_input.done"),
        *("output_item.done", "completed"),
    ]
    (item,) = sdk_response(out)["output"]
    assert {k: item[k] for k in ("id", "type", "call_id", "name", "input")} == {
        "id": "ctc_test_0",
        "type": "custom_tool_call",
        "call_id": "c1",
        "name": "apply_patch",
        "input": patch,
    }


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [('{"input": "x"}', "x"), ('{"patch": "y"}', "y"), ("not json", "not json"), ("", ""), ('"z"', "z")],
)
def test_custom_tool_input_from_any_arguments(arguments: str, expected: str) -> None:
    out = run(lambda e: [e.tool_call_start("c", "t", arguments), e.end()], ResponsesEncoder(CTX, frozenset({"t"})))
    assert events(out)[-1]["response"]["output"][0]["input"] == expected


def test_a_call_without_arguments_gets_an_empty_object() -> None:
    out = run(lambda e: [e.tool_call_start("c", "f"), e.end()])
    evs = events(out)
    assert [e["delta"] for e in evs if e["type"] == "response.function_call_arguments.delta"] == ["{}"]
    assert evs[-1]["response"]["output"][0]["arguments"] == "{}"


def test_signature_on_a_call_comes_as_a_reasoning_item_just_before_it() -> None:
    out = run(lambda e: [e.text("t"), e.tool_call_start("c", "f", "{}", signature="sig"), e.end()])
    assert items(sdk_response(out)) == [
        ("text", "t"),
        ("reasoning", "", GEMINI_SIGNATURE_PREFIX + "sig"),
        ("call", "c", "f", {}),
    ]


def test_nothing_after_the_end_and_fragments_for_unknown_calls_are_dropped() -> None:
    enc = ResponsesEncoder(CTX)
    assert enc.tool_call_arguments(3, "x") == b""
    enc.end()
    assert enc.text("late") == b"" and enc.end() == b"" and enc.error_frame(StreamError("x")) == b""


def test_error_frame_continues_the_sequence_and_keeps_the_items_so_far() -> None:
    enc = ResponsesEncoder(CTX)
    out = enc.text("partial") + enc.tool_call_start("c", "f", '{"a"') + enc.error_frame(StreamError("cut"))
    evs = events(out)
    assert evs[-1]["type"] == "response.failed"
    assert evs[-1]["response"]["error"] == {"code": "server_error", "message": "cut"}
    assert [i["type"] for i in evs[-1]["response"]["output"]] == ["message"]
    Response.model_validate(evs[-1]["response"])
    limited = events(ResponsesEncoder(CTX).error_frame(ProxyError("slow", status=429)))
    assert [e["type"] for e in limited] == ["response.created", "response.in_progress", "response.failed"]
    assert limited[-1]["response"]["error"]["code"] == "rate_limit_exceeded"


def test_echo_fields_are_in_every_response_object() -> None:
    enc = ResponsesEncoder(CTX, echo={"tools": [{"type": "function", "name": "f", "parameters": {}, "strict": True}]})
    evs = events(run(lambda e: [e.end()], enc))
    assert all(e["response"]["tools"][0]["name"] == "f" for e in evs)


def test_other_ids_get_the_resp_prefix() -> None:
    evs = events(run(lambda e: [e.text("x"), e.end()], ResponsesEncoder(StreamContext("abc", 0, "m"))))
    assert evs[0]["response"]["id"] == "resp_abc" and evs[2]["item"]["id"] == "msg_abc_0"


def test_error_body_event_and_keepalive() -> None:
    assert orjson.loads(error_body(BadRequest("bad", param="input"))) == {
        "error": {"message": "bad", "type": "invalid_request_error", "param": "input", "code": None}
    }
    event = events(error_event(ProxyError("boom", status=500)))[0]
    assert event == {"type": "error", "sequence_number": 0, "code": "server_error", "message": "boom", "param": None}
    assert KEEPALIVE == b": keep-alive\n\n" and events(KEEPALIVE) == []


def test_encode_response() -> None:
    completion = Completion(
        text="hello",
        reasoning="hmm",
        thinking_blocks=[{"type": "thinking", "thinking": "hmm", "signature": "s", "index": 0}],
        tool_calls=[ToolCall("c1", "f", '{"a": [1]}'), ToolCall("c2", "patch", '{"input":"P"}', signature="gs")],
        finish="stop",
        usage=Usage(input_tokens=20, output_tokens=4, cached_tokens=5, reasoning_tokens=2),
    )
    body = orjson.loads(encode_response(completion, CTX, frozenset({"patch"})))
    Response.model_validate(body)
    assert body["id"] == "resp_test" and body["object"] == "response" and body["status"] == "completed"
    assert [(i["type"], i.get("encrypted_content")) for i in body["output"]] == [
        ("reasoning", ANTHROPIC_SIGNATURE_PREFIX + "s"),
        ("message", None),
        ("function_call", None),
        ("reasoning", GEMINI_SIGNATURE_PREFIX + "gs"),
        ("custom_tool_call", None),
    ]
    assert body["output"][4]["input"] == "P" and body["output"][2]["arguments"] == '{"a": [1]}'
    assert usage_of(body) == (20, 5, 4, 2, 24)
    cut = orjson.loads(encode_response(Completion(text="x", finish="length"), CTX))
    assert cut["status"] == "incomplete" and cut["incomplete_details"] == {"reason": "max_output_tokens"}
    assert cut["usage"] is None and cut["output"][0]["status"] == "incomplete"
    plain = orjson.loads(encode_response(Completion(reasoning="r", text="t", text_signature="ts"), CTX))
    assert [(i["type"], i.get("encrypted_content")) for i in plain["output"]] == [
        ("reasoning", None),
        ("message", None),
        ("reasoning", GEMINI_SIGNATURE_PREFIX + "ts"),
    ]


# --------------------------------------------------------------------------------------------
# The request reader: to_chat


def req(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "anthropic/sonnet", "input": "hi"}
    body.update(fields)
    return body


def chat(**fields: Any) -> dict[str, Any]:
    return to_chat(req(**fields)).chat


def test_minimal_request_and_instructions() -> None:
    assert to_chat(req()) == ResponsesRequest(
        {"model": "anthropic/sonnet", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert chat(instructions="be brief")["messages"][0] == {"role": "system", "content": "be brief"}


def test_what_codex_sends() -> None:
    """A recorded-shape Codex turn: developer prompt, user text, reasoning, calls and outputs, hosted tools."""
    body = {
        "model": "x/y",
        "instructions": None,
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "sys"}]},
            {"type": "message", "role": "user", "id": "m1", "content": [{"type": "input_text", "text": "ls"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAopenai-opaque"},
            {"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "shell", "arguments": '{"cmd":["ls"]}'},
            {"type": "function_call_output", "call_id": "c1", "output": "a.txt"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "one file"}]},
            {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        ],
        "tools": [
            {
                "type": "function",
                "name": "shell",
                "description": "run",
                "strict": False,
                "parameters": {"type": "object"},
            },
            {
                "type": "custom",
                "name": "apply_patch",
                "format": {"type": "grammar", "syntax": "lark", "definition": "start: x"},
            },
            {"type": "web_search"},
            {"type": "tool_search"},
            {"type": "namespace", "name": "mcp"},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "k",
        "client_metadata": {"a": "b"},
        "text": {"verbosity": "low"},
        "service_tier": "auto",
    }
    result = to_chat(body)
    assert result.custom_tools == frozenset({"apply_patch"})
    assert result.dropped_tools == ("web_search", "tool_search", "namespace")
    out = result.chat
    assert out["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "ls"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "shell", "arguments": '{"cmd":["ls"]}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "a.txt"},
        {"role": "assistant", "content": "one file"},
    ]
    assert [t["function"]["name"] for t in out["tools"]] == ["shell", "apply_patch"]
    assert out["tools"][0] == {
        "type": "function",
        "function": {"name": "shell", "description": "run", "parameters": {"type": "object"}, "strict": False},
    }
    param = out["tools"][1]["function"]["parameters"]
    assert param["required"] == ["input"] and "start: x" in param["properties"]["input"]["description"]
    assert out["tool_choice"] == "auto" and out["parallel_tool_calls"] is False
    assert out["reasoning_effort"] == "medium"
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}
    for dropped in ("store", "include", "prompt_cache_key", "client_metadata", "service_tier", "text", "metadata"):
        assert dropped not in out


def test_text_and_calls_of_one_turn_merge_into_one_assistant_message() -> None:
    messages = chat(
        input=[
            {"role": "user", "content": "go"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
            {"type": "function_call", "call_id": "a", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "b", "name": "g", "arguments": ""},
            {"type": "function_call_output", "call_id": "a", "output": [{"type": "input_text", "text": "1"}]},
            {"type": "function_call_output", "call_id": "b", "output": "2"},
        ]
    )["messages"]
    assert messages[1]["content"] == "ok"
    assert [c["id"] for c in messages[1]["tool_calls"]] == ["a", "b"]
    assert messages[1]["tool_calls"][1]["function"]["arguments"] == "{}"
    assert messages[2:] == [
        {"role": "tool", "tool_call_id": "a", "content": "1"},
        {"role": "tool", "tool_call_id": "b", "content": "2"},
    ]


def test_custom_tool_round_trip() -> None:
    """A custom call the encoder wrote comes back as the function call standing for it."""
    enc = ResponsesEncoder(CTX, frozenset({"apply_patch"}))
    args = orjson.dumps({"input": "diff"}).decode()
    out = enc.tool_call_start("c9", "apply_patch", args) + enc.end()
    item = events(out)[-1]["response"]["output"][0]
    messages = chat(
        input=[
            {"role": "user", "content": "patch it"},
            item,
            {"type": "custom_tool_call_output", "call_id": "c9", "output": "done"},
        ]
    )["messages"]
    call = messages[1]["tool_calls"][0]
    assert call["id"] == "c9" and call["function"]["name"] == "apply_patch"
    assert orjson.loads(call["function"]["arguments"]) == {"input": "diff"}
    assert messages[2] == {"role": "tool", "tool_call_id": "c9", "content": "done"}


def test_redacted_and_signed_reasoning_go_to_the_next_assistant_message() -> None:
    messages = chat(
        input=[
            {"role": "user", "content": "q"},
            {"type": "reasoning", "summary": [], "encrypted_content": ANTHROPIC_REDACTED_PREFIX + "xyz"},
            {
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": "hm"}],
                "encrypted_content": "anthropic:s",
            },
            {"type": "function_call", "call_id": "a", "name": "f", "arguments": "{}"},
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "late"}]},
        ]
    )["messages"]
    assert messages[1]["thinking_blocks"] == [
        {"type": "redacted_thinking", "data": "xyz"},
        {"type": "thinking", "thinking": "hm", "signature": "s"},
    ]
    assert len(messages) == 2  # unsigned reasoning is dropped


def test_gemini_signature_before_text_or_after_it() -> None:
    before = chat(
        input=[
            {"role": "user", "content": "q"},
            {"type": "reasoning", "summary": [], "encrypted_content": "gemini:s1"},
            {"role": "assistant", "content": "t"},
        ]
    )["messages"]
    assert before[1] == {"role": "assistant", "content": "t", "extra_content": {"google": {"thought_signature": "s1"}}}
    after = chat(
        input=[
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "t"},
            {"type": "reasoning", "summary": [], "encrypted_content": "gemini:s2"},
            {"role": "user", "content": "more"},
        ]
    )["messages"]
    assert after[1]["extra_content"] == {"google": {"thought_signature": "s2"}} and after[2]["role"] == "user"


def test_user_parts() -> None:
    content = [
        {"type": "input_text", "text": "look"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBOR", "detail": "high"},
        {"type": "input_image", "image_url": "https://x.test/a.png"},
        {"type": "input_file", "file_data": "data:application/pdf;base64,JVBER", "filename": "r.pdf"},
    ]
    assert chat(input=[{"role": "user", "content": content}])["messages"][0]["content"] == [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBER", "filename": "r.pdf"}},
    ]


def test_tool_choices() -> None:
    tools = [{"type": "function", "name": "f"}, {"type": "custom", "name": "p"}, {"type": "web_search"}]
    for choice, expected in [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ({"type": "function", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
        ({"type": "custom", "name": "p"}, {"type": "function", "function": {"name": "p"}}),
        ({"type": "web_search"}, "auto"),
        ({"type": "allowed_tools", "mode": "auto", "tools": []}, "auto"),
    ]:
        assert chat(tools=tools, tool_choice=choice)["tool_choice"] == expected
    only_hosted = to_chat(req(tools=[{"type": "web_search_preview"}, {"type": "mcp"}], tool_choice="required"))
    assert "tools" not in only_hosted.chat and "tool_choice" not in only_hosted.chat
    assert only_hosted.dropped_tools == ("web_search_preview", "mcp")


def test_parameters() -> None:
    out = chat(max_output_tokens=50, temperature=0.2, top_p=0.9, user="u", metadata={"a": "b"}, stream=False)
    assert {k: out[k] for k in ("max_tokens", "temperature", "top_p", "user")} == {
        "max_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "u",
    }
    assert "stream" not in out and "metadata" not in out
    assert "reasoning_effort" not in chat(reasoning={"effort": "none"})
    assert chat(reasoning={"effort": "xhigh"})["reasoning_effort"] == "high"
    assert chat(reasoning={"effort": "minimal"})["reasoning_effort"] == "minimal"


def test_text_formats() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    fmt = {"type": "json_schema", "name": "out", "schema": schema, "strict": True}
    assert chat(text={"format": fmt})["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": schema, "strict": True},
    }
    assert chat(text={"format": {"type": "json_object"}})["response_format"] == {"type": "json_object"}
    assert "response_format" not in chat(text={"format": {"type": "text"}, "verbosity": "high"})


def test_previous_response_id_without_input_is_the_doors_business() -> None:
    body = {"model": "m", "previous_response_id": "resp_1"}
    assert to_chat(body).chat["messages"] == []


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"model": ""}, "model"),
        ({"input": None}, "input"),
        ({"input": 3}, "input"),
        ({"instructions": 1}, "instructions"),
        ({"input": [1]}, "input[0]"),
        ({"input": [{"content": "x"}]}, "input[0].type"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        ({"input": [{"role": "user", "content": 5}]}, "input[0].content"),
        ({"input": [{"role": "user", "content": [{"type": "audio"}]}]}, "input[0].content[0].type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].file_id",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0].file_id",
        ),
        ({"input": [{"role": "user", "content": [{"type": "input_image"}]}]}, "input[0].content[0].image_url"),
        ({"input": [{"role": "assistant", "content": [{"type": "input_image"}]}]}, "input[0].content[0].type"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
        ({"input": [{"type": "function_call", "call_id": "c", "arguments": "{}"}]}, "input[0].name"),
        ({"input": [{"type": "function_call", "call_id": "c", "name": "f"}]}, "input[0].arguments"),
        ({"input": [{"type": "function_call_output", "call_id": "c", "output": 3}]}, "input[0].output"),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
        ({"input": [{"type": "custom_tool_call", "call_id": "c", "name": "p"}]}, "input[0].input"),
        ({"input": [{"type": "reasoning", "summary": "x"}]}, "input[0].summary"),
        ({"input": [{"type": "reasoning", "summary": [], "encrypted_content": 1}]}, "input[0].encrypted_content"),
        ({"input": [{"type": "mystery"}]}, "input[0].type"),
        ({"tools": {}}, "tools"),
        ({"tools": [{"name": "f"}]}, "tools[0].type"),
        ({"tools": [{"type": "function"}]}, "tools[0].name"),
        ({"tools": [{"type": "function", "name": "f", "parameters": []}]}, "tools[0].parameters"),
        ({"tools": [{"type": "function", "name": "f", "strict": "y"}]}, "tools[0].strict"),
        ({"tools": [{"type": "custom", "name": "p", "format": {"type": "regexish"}}]}, "tools[0].format.type"),
        ({"tools": [{"type": "custom", "name": "p", "format": {"type": "grammar"}}]}, "tools[0].format.syntax"),
        ({"tools": [{"type": "function", "name": "f"}], "tool_choice": "any"}, "tool_choice"),
        (
            {"tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "function", "name": "g"}},
            "tool_choice.name",
        ),
        ({"tools": [{"type": "function", "name": "f"}], "parallel_tool_calls": "no"}, "parallel_tool_calls"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"max_output_tokens": True}, "max_output_tokens"),
        ({"temperature": "hot"}, "temperature"),
        ({"user": 1}, "user"),
        ({"stream": "yes"}, "stream"),
        ({"reasoning": "high"}, "reasoning"),
        ({"reasoning": {"effort": "max"}}, "reasoning.effort"),
        ({"text": {"format": {"type": "xml"}}}, "text.format.type"),
        ({"text": {"format": {"type": "json_schema", "name": "n"}}}, "text.format.schema"),
        ({"text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name"),
        ({"text": {"format": {"type": "json_schema", "name": "n", "schema": {}, "strict": 1}}}, "text.format.strict"),
        ({"text": "json"}, "text"),
    ],
)
def test_malformed_requests_are_400_naming_the_field(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as info:
        to_chat(req(**fields))
    assert info.value.param == param and info.value.status == 400


def test_a_body_that_is_not_an_object() -> None:
    with pytest.raises(BadRequest):
        to_chat([])  # type: ignore[arg-type]
