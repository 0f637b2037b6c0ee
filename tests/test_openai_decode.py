"""The OpenAI chat decoder: OpenAI-compatible streams and bodies in, neutral events out.

Two kinds of check. The recorded streams (``tests/fixtures/{openai,mistral,groq,deepseek}``)
go through ``ChatChunkDecoder(ChatEncoder(ctx), ctx)``, and openai-python's own stream
accumulator must end with the same answer from that output as from the input. Hand-made
streams go through a recording encoder whose output is the event log itself, so the exact
neutral event sequence is asserted, fed whole, byte by byte and in random splits.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import orjson
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from proxy.errors import StreamError, UpstreamError
from proxy.protocols.openai_chat.decode import ChatChunkDecoder, decode_response
from proxy.protocols.openai_chat.encode import ChatEncoder
from proxy.protocols.stream import Completion, FinishReason, ToolCall, Usage
from tests.support import CTX, FIXTURES, assert_same_every_split, run_translator, splits

USAGE = replace(CTX, include_usage=True)
DONE = b"data: [DONE]\n\n"

# --------------------------------------------------------------------------------------------
# Recorded streams, accumulated by openai-python


RECORDED = [
    "openai/chat-text-stream.sse",
    "openai/chat-parallel-tool-calls.sse",
    "openai/chat-logprobs.sse",
    "openai/chat-refusal.sse",
    "openai/chat-refusal-logprobs.sse",
    "openai/chat-finish-length.sse",
    "deepseek/deepseek-reasoning-content-tool-call.chunks.jsonl",
    "groq/groq-tool-call-x-groq-usage.chunks.jsonl",
    "mistral/mistral-tool-call.chunks.jsonl",
    "mistral/magistral-reasoning.chunks.jsonl",
]
# Mistral's shapes fail openai-python's validation (a call without ``index``, a content list):
# their reference is what the OpenAI door gives a client today, the pass-through's golden
# output next to them (``<case>.expected.sse``).
NOT_OPENAI_SHAPED = {"mistral/mistral-tool-call.chunks.jsonl", "mistral/magistral-reasoning.chunks.jsonl"}


def load(name: str) -> bytes:
    """A recording as the upstream sends it: SSE frames ending with ``[DONE]`` and a blank line."""
    raw = (FIXTURES / name).read_bytes()
    if name.endswith(".chunks.jsonl"):
        return b"".join(b"data: " + line + b"\n\n" for line in raw.splitlines() if line.strip()) + DONE
    return raw if raw.endswith(b"\n\n") else raw.rstrip(b"\n") + b"\n\n"


def test_every_recording_is_listed() -> None:
    found = {
        f"{d}/{p.name}"
        for d in ("openai", "mistral", "groq", "deepseek")
        for p in (FIXTURES / d).iterdir()
        if p.name.endswith((".sse", ".chunks.jsonl")) and not p.name.endswith(".expected.sse")
    }
    assert found == set(RECORDED)


@dataclass
class Answer:
    """What an OpenAI client ends up with, in the fields the decoder must keep."""

    content: str | None
    reasoning: str | None
    refusal: str | None
    calls: list[tuple[str, str, str]]  # id, name, arguments
    finish: str | None
    usage: tuple[int, int, int, int | None, int | None] | None


def accumulate(stream: bytes) -> Answer:
    """openai-python's ``ChatCompletionStreamState`` over every ``data:`` frame of ``stream``."""
    state = ChatCompletionStreamState()
    for frame in stream.split(b"\n\n"):
        if not frame or frame == b"data: [DONE]":
            continue
        assert frame.startswith(b"data: "), frame
        list(state.handle_chunk(ChatCompletionChunk.model_validate(orjson.loads(frame[6:]))))
    snapshot = state.current_completion_snapshot
    (choice,) = snapshot.choices
    message = choice.message
    u = snapshot.usage
    usage = None
    if u is not None:
        cached = u.prompt_tokens_details.cached_tokens if u.prompt_tokens_details else None
        reasoning = u.completion_tokens_details.reasoning_tokens if u.completion_tokens_details else None
        usage = (u.prompt_tokens, u.completion_tokens, u.total_tokens, cached, reasoning)
    return Answer(
        content=message.content or None,
        reasoning=getattr(message, "reasoning_content", None) or None,
        refusal=message.refusal or None,
        calls=[(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []],
        finish=choice.finish_reason,
        usage=usage,
    )


def reference(name: str, data: bytes) -> bytes:
    if name in NOT_OPENAI_SHAPED:
        return (FIXTURES / name.replace(".chunks.jsonl", ".expected.sse")).read_bytes()
    return data


@pytest.mark.parametrize("name", RECORDED)
def test_recording_accumulates_to_the_same_answer(name: str) -> None:
    data = load(name)
    out = assert_same_every_split(lambda: ChatChunkDecoder(ChatEncoder(USAGE), USAGE), data)
    got, want = accumulate(out), accumulate(reference(name, data))
    assert got == want
    assert want.finish is not None and want.usage is not None  # the comparison covers them


def test_recording_with_crlf_framing() -> None:
    data = load("openai/chat-parallel-tool-calls.sse")
    out = assert_same_every_split(lambda: ChatChunkDecoder(ChatEncoder(USAGE), USAGE), data.replace(b"\n", b"\r\n"))
    assert accumulate(out) == accumulate(data)


def test_recordings_keep_their_vendor_specifics() -> None:
    """Spot checks independent of the reference accumulation."""
    magistral = accumulate(decode_all("mistral/magistral-reasoning.chunks.jsonl"))
    assert magistral.content == "2 + 2 = 4"
    assert magistral.reasoning == "The user is asking for 2+2. This is basic arithmetic. 2+2=4."
    mistral = accumulate(decode_all("mistral/mistral-tool-call.chunks.jsonl"))
    assert mistral.calls == [("gSIMJiOkT", "weather", '{"location": "San Francisco"}')]
    assert mistral.usage == (124, 22, 146, None, None)
    groq = accumulate(decode_all("groq/groq-tool-call-x-groq-usage.chunks.jsonl"))
    assert groq.usage == (210, 15, 225, None, None)
    deepseek = accumulate(decode_all("deepseek/deepseek-reasoning-content-tool-call.chunks.jsonl"))
    assert deepseek.usage == (374, 61, 435, 256, 17)


def decode_all(name: str) -> bytes:
    decoder = ChatChunkDecoder(ChatEncoder(USAGE), USAGE)
    return run_translator(decoder, [load(name)])


# --------------------------------------------------------------------------------------------
# Hand-made streams through a recording encoder


class RecordingEncoder:
    """A ``StreamEncoder`` whose output is one JSON line per call: the event log is the output."""

    def __init__(self) -> None:
        self.tool_calls = 0

    @staticmethod
    def _log(*event: Any) -> bytes:
        return orjson.dumps(list(event)) + b"\n"

    def text(self, text: str, signature: str | None = None) -> bytes:
        return self._log("text", text, signature)

    def reasoning(self, text: str, signature: str | None = None) -> bytes:
        return self._log("reasoning", text, signature)

    def signature(self, signature: str) -> bytes:
        return self._log("signature", signature)

    def thinking_block(self, thinking: str, signature: str) -> bytes:
        return self._log("thinking_block", thinking, signature)

    def redacted_thinking(self, data: str) -> bytes:
        return self._log("redacted_thinking", data)

    def refusal(self, text: str) -> bytes:
        return self._log("refusal", text)

    def tool_call_start(self, call_id: str, name: str, arguments: str = "", signature: str | None = None) -> bytes:
        index = self.tool_calls
        self.tool_calls += 1
        return self._log("tool_call_start", index, call_id, name, arguments, signature)

    def tool_call_arguments(self, index: int, fragment: str) -> bytes:
        return self._log("tool_call_arguments", index, fragment)

    def finish(self, reason: FinishReason) -> bytes:
        return self._log("finish", reason)

    def usage(self, usage: Usage) -> bytes:
        u = usage
        return self._log("usage", u.input_tokens, u.output_tokens, u.cached_tokens, u.reasoning_tokens)

    def end(self) -> bytes:
        return self._log("end")


def parse(out: bytes) -> list[list[Any]]:
    return [orjson.loads(line) for line in out.splitlines()]


def recorder() -> ChatChunkDecoder:
    return ChatChunkDecoder(RecordingEncoder(), CTX)


def events(data: bytes) -> list[list[Any]]:
    """The event sequence of ``data``, the same whichever way the input is cut."""
    return parse(assert_same_every_split(recorder, data))


def failure(data: bytes) -> tuple[list[list[Any]], StreamError]:
    """The events before a failure and the failure, the same whichever way the input is cut."""
    results: dict[str, tuple[bytes, StreamError]] = {}
    for name, parts in splits(data):
        decoder, out = recorder(), []
        with pytest.raises(StreamError) as info:
            for part in parts:
                out.append(decoder.feed(part))
            decoder.finish()
        results[name] = (b"".join(out) + info.value.output, info.value)
    whole, err = results["whole"]
    for name, (out, exc) in results.items():
        assert (out, exc.message, exc.type, exc.code) == (whole, err.message, err.type, err.code), name
    return parse(whole), err


HEAD = {"id": "up-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def frame(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    """One chunk frame with one choice (OpenAI's exact shape)."""
    choice = {"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}
    return frame(
        {"id": "up-1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [choice]} | extra
    )


def usage_chunk(usage: dict[str, Any]) -> bytes:
    return frame(
        {"id": "up-1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [], "usage": usage}
    )


def call(index: int | None, fragment: str, call_id: str | None = None, name: str | None = None) -> dict[str, Any]:
    """A tool-call delta entry: the first one of a call has ``id``/``type``/``name``."""
    entry: dict[str, Any] = {"function": {"arguments": fragment}}
    if index is not None:
        entry["index"] = index
    if call_id is not None:
        entry |= {"id": call_id, "type": "function"}
        entry["function"]["name"] = name
    return entry


ROLE = chunk({"role": "assistant", "content": ""})
USAGE_3_2 = usage_chunk({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})
END = [["usage", 3, 2, None, None], ["end"]]


def test_text() -> None:
    data = ROLE + chunk({"content": "Hel"}) + chunk({"content": "lo"}) + chunk(finish="stop") + USAGE_3_2 + DONE
    assert events(data) == [["text", "Hel", None], ["text", "lo", None], ["finish", "stop"], *END]


def test_the_decoder_reports_done_and_usage() -> None:
    decoder = recorder()
    decoder.feed(ROLE + chunk(finish="stop") + USAGE_3_2)
    assert not decoder.done
    assert decoder.usage == Usage(3, 2)
    decoder.feed(DONE + b"data: {not json\n\ndata: {half")  # nothing after [DONE] is read
    assert decoder.done
    assert decoder.finish() == b""


def test_reasoning_then_text() -> None:
    data = (
        chunk({"role": "assistant", "content": None, "reasoning_content": ""})
        + chunk({"content": None, "reasoning_content": "Think"})
        + chunk({"content": None, "reasoning_content": "ing."})
        + chunk({"content": "Answer", "reasoning_content": None})
        + chunk(finish="stop")
        + USAGE_3_2
        + DONE
    )
    assert events(data) == [
        ["reasoning", "Think", None],
        ["reasoning", "ing.", None],
        ["text", "Answer", None],
        ["finish", "stop"],
        *END,
    ]


def test_reasoning_field_of_groq_and_openrouter() -> None:
    data = chunk({"role": "assistant", "reasoning": "hmm"}) + chunk({"content": "ok"}) + chunk(finish="stop") + DONE
    assert events(data)[:2] == [["reasoning", "hmm", None], ["text", "ok", None]]


def test_magistral_content_parts() -> None:
    parts = [
        {"type": "thinking", "thinking": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"type": "text", "text": "c"},
    ]
    data = chunk({"content": parts}) + chunk({"content": ""}, finish="stop") + DONE
    assert events(data)[:3] == [["reasoning", "a", None], ["reasoning", "b", None], ["text", "c", None]]


def test_refusal() -> None:
    data = (
        chunk({"role": "assistant", "content": None, "refusal": ""}) + chunk({"refusal": "No."}) + chunk(finish="stop")
    )
    assert events(data + DONE)[:2] == [["refusal", "No."], ["finish", "stop"]]


def test_several_tool_calls_after_text() -> None:
    """Upstream indexes 3 and 5 are the encoder's calls 0 and 1; fragments follow their call."""
    data = (
        ROLE
        + chunk({"content": "Let me look."})
        + chunk({"tool_calls": [call(3, "", "call_a", "weather")]})
        + chunk({"tool_calls": [call(3, '{"city":')]})
        + chunk({"tool_calls": [call(5, '{"q"', "call_b", "search")]})
        + chunk({"tool_calls": [call(3, '"Paris"}')]})
        + chunk({"tool_calls": [call(5, ':"x"}')]})
        + chunk(finish="tool_calls")
        + USAGE_3_2
        + DONE
    )
    assert events(data) == [
        ["text", "Let me look.", None],
        ["tool_call_start", 0, "call_a", "weather", "", None],
        ["tool_call_arguments", 0, '{"city":'],
        ["tool_call_start", 1, "call_b", "search", '{"q"', None],
        ["tool_call_arguments", 0, '"Paris"}'],
        ["tool_call_arguments", 1, ':"x"}'],
        ["finish", "tool_calls"],
        *END,
    ]


def test_a_tool_without_arguments_ends_as_an_empty_object() -> None:
    data = ROLE + chunk({"tool_calls": [call(0, "", "call_a", "now")]}) + chunk(finish="tool_calls") + DONE
    assert events(data)[:3] == [
        ["tool_call_start", 0, "call_a", "now", "", None],
        ["tool_call_arguments", 0, "{}"],
        ["finish", "tool_calls"],
    ]


def test_a_tool_without_arguments_and_no_finish_reason() -> None:
    data = ROLE + chunk({"tool_calls": [call(0, "", "call_a", "now")]}) + DONE
    assert events(data) == [
        ["tool_call_start", 0, "call_a", "now", "", None],
        ["tool_call_arguments", 0, "{}"],
        ["finish", "stop"],
        ["usage", 0, 0, None, None],
        ["end"],
    ]


def test_mistral_calls_without_index_are_whole_and_counted() -> None:
    first = {"id": "m1", "function": {"name": "a", "arguments": '{"x": 1}'}}
    second = {"id": "m2", "function": {"name": "b", "arguments": "{}"}}
    usage = {"prompt_tokens": 7, "total_tokens": 9, "completion_tokens": 2}
    data = chunk({"content": None, "tool_calls": [first, second]}, finish="tool_calls", usage=usage) + DONE
    assert events(data) == [
        ["tool_call_start", 0, "m1", "a", '{"x": 1}', None],
        ["tool_call_start", 1, "m2", "b", "{}", None],
        ["finish", "tool_calls"],
        ["usage", 7, 2, None, None],
        ["end"],
    ]


def test_a_call_without_id_gets_one() -> None:
    data = chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{}"}}]}) + DONE
    assert events(data)[0] == ["tool_call_start", 0, "call_test_0", "f", "{}", None]


def test_legacy_function_call_is_one_tool_call() -> None:
    data = (
        chunk({"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": ""}})
        + chunk({"function_call": {"arguments": '{"a":'}})
        + chunk({"function_call": {"arguments": "1}"}})
        + chunk(finish="function_call")
        + DONE
    )
    assert events(data)[:4] == [
        ["tool_call_start", 0, "call_test_0", "f", "", None],
        ["tool_call_arguments", 0, '{"a":'],
        ["tool_call_arguments", 0, "1}"],
        ["finish", "tool_calls"],
    ]


def test_gemini_thought_signatures() -> None:
    signed = {"extra_content": {"google": {"thought_signature": "sig1"}}}
    data = (
        chunk({"content": "hi", **signed})
        + chunk({"tool_calls": [call(0, "{}", "c", "f") | signed]})
        + chunk({"content": "", **signed})
        + chunk(finish="stop")
        + DONE
    )
    assert events(data)[:3] == [
        ["text", "hi", "sig1"],
        ["tool_call_start", 0, "c", "f", "{}", "sig1"],
        ["signature", "sig1"],
    ]


@pytest.mark.parametrize(
    ("upstream", "neutral"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("model_length", "length"),
        ("content_filter", "content_filter"),
        ("tool_calls", "tool_calls"),
        ("function_call", "tool_calls"),
        ("eos", "stop"),
    ],
)
def test_finish_reasons(upstream: str, neutral: str) -> None:
    data = ROLE + chunk({"content": "x"}) + chunk(finish=upstream) + USAGE_3_2 + DONE
    assert events(data) == [["text", "x", None], ["finish", neutral], *END]


def test_the_finish_is_given_once_and_nothing_after_it() -> None:
    data = chunk({"content": "x"}, finish="length") + chunk({"content": "late"}, finish="stop") + DONE
    assert events(data) == [["text", "x", None], ["finish", "length"], ["usage", 0, 0, None, None], ["end"]]


def test_only_the_first_choice_is_read() -> None:
    other = {"index": 1, "delta": {"content": "other"}, "finish_reason": "length"}
    key = b'"choices":['
    data = chunk({"content": "mine"}, finish="stop").replace(key, key + orjson.dumps(other) + b",")
    assert events(data + DONE)[:2] == [["text", "mine", None], ["finish", "stop"]]


def test_usage_shapes() -> None:
    details = {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    assert events(chunk(finish="stop") + usage_chunk(details) + DONE)[-2] == ["usage", 10, 5, 4, 2]
    groq = {"x_groq": {"id": "req", "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9}}}
    assert events(chunk(finish="stop", **groq) + DONE)[-2] == ["usage", 8, 1, None, None]
    deepseek = {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9, "prompt_cache_hit_tokens": 6}
    assert events(chunk(finish="stop", usage=deepseek) + DONE)[-2] == ["usage", 8, 1, 6, None]
    assert events(chunk(finish="stop", usage=None) + DONE)[-2] == ["usage", 0, 0, None, None]


def test_comments_crlf_and_empty_data() -> None:
    data = (
        b": keep-alive\r\n\r\n"
        + chunk({"content": "x"}).replace(b"\n", b"\r\n")
        + b": OPENROUTER PROCESSING\n\ndata:\n\n"
        + DONE
    )
    assert events(data) == [["text", "x", None], ["finish", "stop"], ["usage", 0, 0, None, None], ["end"]]


def test_midstream_error() -> None:
    error = {"error": {"message": "Overloaded", "type": "server_error", "code": "overloaded"}}
    before, err = failure(ROLE + chunk({"content": "par"}) + frame(error) + chunk({"content": "never"}) + DONE)
    assert before == [["text", "par", None]]
    assert (err.message, err.type, err.code, err.status) == ("Overloaded", "server_error", "overloaded", 502)


def test_vllm_error_object() -> None:
    error = {"object": "error", "message": "bad things", "type": "BadRequestError", "param": None, "code": 400}
    before, err = failure(chunk({"content": "a"}) + frame(error))
    assert before == [["text", "a", None]]
    assert (err.message, err.type, err.code) == ("bad things", "BadRequestError", 400)


def test_truncated_before_done() -> None:
    before, err = failure(ROLE + chunk({"content": "a"}) + chunk(finish="stop"))
    assert before == [["text", "a", None], ["finish", "stop"]]
    assert "truncated" in err.message and "[DONE]" in err.message


def test_truncated_mid_event() -> None:
    data = chunk({"content": "a"}) + b'data: {"choices":[{"delta":{"content":"b'
    before, err = failure(data)
    assert before == [["text", "a", None]]
    assert "truncated" in err.message


def test_malformed_json() -> None:
    before, err = failure(chunk({"content": "a"}) + b"data: {nope}\n\n" + DONE)
    assert before == [["text", "a", None]]
    assert err.message == "the upstream stream sent malformed JSON"


def test_a_frame_that_is_not_an_object() -> None:
    before, err = failure(chunk({"content": "a"}) + b"data: [1, 2]\n\n" + DONE)
    assert before == [["text", "a", None]]
    assert "not a JSON object" in err.message


# --------------------------------------------------------------------------------------------
# Whole answers


def body(message: dict[str, Any], finish: str | None = "stop", **extra: Any) -> bytes:
    choice = {"index": 0, "message": {"role": "assistant", **message}, "logprobs": None, "finish_reason": finish}
    return orjson.dumps(
        {"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": [choice]} | extra
    )


def test_response_text_and_usage() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    got = decode_response(body({"content": "hi", "refusal": None}, usage=usage), CTX)
    assert got == Completion(text="hi", finish="stop", usage=Usage(10, 5, cached_tokens=4, reasoning_tokens=2))


def test_response_reasoning_fields() -> None:
    assert decode_response(body({"content": "a", "reasoning_content": "r"}), CTX).reasoning == "r"
    assert decode_response(body({"content": "a", "reasoning": "g"}), CTX).reasoning == "g"
    parts = [{"type": "thinking", "thinking": [{"type": "text", "text": "t"}]}, {"type": "text", "text": "x"}]
    got = decode_response(body({"content": parts}), CTX)
    assert (got.text, got.reasoning) == ("x", "t")


def test_response_tool_calls() -> None:
    calls = [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}},
        {"function": {"name": "g"}, "extra_content": {"google": {"thought_signature": "s"}}},
    ]
    got = decode_response(body({"content": None, "tool_calls": calls}, finish="tool_calls"), CTX)
    assert got.text is None and got.finish == "tool_calls"
    assert got.tool_calls == [ToolCall("c1", "f", '{"a":1}'), ToolCall("call_test_1", "g", "{}", "s")]


def test_response_legacy_function_call() -> None:
    got = decode_response(
        body({"content": None, "function_call": {"name": "f", "arguments": "{}"}}, "function_call"), CTX
    )
    assert got.tool_calls == [ToolCall("call_test_0", "f", "{}")]
    assert got.finish == "tool_calls"


def test_response_refusal_signature_and_groq_usage() -> None:
    signed = {"extra_content": {"google": {"thought_signature": "s"}}}
    groq = {"x_groq": {"usage": {"prompt_tokens": 2, "completion_tokens": 1}}}
    got = decode_response(body({"content": "t", "refusal": "no", **signed}, "content_filter", **groq), CTX)
    assert (got.refusal, got.text_signature, got.finish, got.usage) == ("no", "s", "content_filter", Usage(2, 1))


@pytest.mark.parametrize(("upstream", "neutral"), [("model_length", "length"), ("length", "length"), ("eos", "stop")])
def test_response_finish(upstream: str, neutral: str) -> None:
    assert decode_response(body({"content": "x"}, upstream), CTX).finish == neutral


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{nope", "not valid JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"choices": []}', "no choices"),
        (b'{"choices": [{"index": 0}]}', "no choices"),
    ],
)
def test_response_malformed(raw: bytes, message: str) -> None:
    with pytest.raises(UpstreamError) as info:
        decode_response(raw, CTX)
    assert info.value.status == 502 and message in info.value.message


def test_response_error_object() -> None:
    raw = orjson.dumps({"error": {"message": "quota", "type": "insufficient_quota", "code": "q"}})
    with pytest.raises(UpstreamError) as info:
        decode_response(raw, CTX)
    err = info.value
    assert (err.status, err.message, err.type, err.code) == (502, "quota", "insufficient_quota", "q")
