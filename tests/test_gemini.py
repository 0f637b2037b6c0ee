"""The Gemini adapter: golden streams, request mapping, non-stream responses and errors.

Golden streams live in ``tests/fixtures/gemini/``: the recordings copied unchanged from the shared
fixtures (``*.chunks.jsonl``, one payload per line: the loader adds Gemini's ``data: ...\\r\\n\\r\\n``
framing back) and our own cases as the exact bytes Gemini sends (``*.sse``). Each input has its
expected OpenAI output next to it as ``<case>.expected``, byte for byte; a failing stream's
expected output ends with the error frame the relay writes (``error_frame``). Regenerate
after a deliberate change with ``REGEN_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.config import build
from proxy.errors import BadRequest, StreamError, UnsupportedByProvider, UpstreamError
from proxy.protocols.gemini.request import clean_schema
from proxy.protocols.gemini.response import decode_response
from proxy.protocols.gemini.stream import GeminiStream
from proxy.protocols.gemini.wire import SKIP_SIGNATURE, translate_error
from proxy.protocols.openai_chat.encode import ChatEncoder, encode_completion, error_frame
from proxy.protocols.stream import StreamContext
from proxy.providers import provider_kind
from proxy.providers.gemini import PROVIDER as KIND
from proxy.providers.gemini import build_request
from proxy.wire.sse import SSEDecoder
from tests.support import CTX, FIXTURES, assert_same_every_split, relayed_every_split


def translate_response(body: bytes, ctx: StreamContext) -> bytes:
    """The non-stream path as the chat front door runs it: decode, then encode."""
    return encode_completion(decode_response(body, ctx), ctx)


DIR = FIXTURES / "gemini"
USAGE = replace(CTX, include_usage=True)
LEGACY = replace(CTX, include_usage=True, legacy_functions=True)

# case → the context it runs with (every fixture input must be listed here)
CASES: dict[str, StreamContext] = {
    "gemini-text": USAGE,
    "gemini-tool-call": USAGE,
    "gemini-reasoning-signature": USAGE,
    "text-cached": USAGE,
    "text-lf": CTX,
    "thinking-text": USAGE,
    "parallel-calls": USAGE,
    "call-no-args": USAGE,
    "prompt-blocked": USAGE,
    "safety-finish": USAGE,
    "max-tokens": USAGE,
    "usage-after-finish": USAGE,
    "legacy-functions": LEGACY,
    "error-midstream": USAGE,
    "error-raw-body": USAGE,
    "truncated": USAGE,
    "truncated-mid-event": USAGE,
    "malformed-json": USAGE,
    "malformed-function-call": USAGE,
}
# copied unchanged from /work/shared/fixtures/google (provenance in the README here); SHA-256 as listed there
RECORDED = {
    "gemini-text": "9269d63d64c886e9eb99e7e63eb67ba917023821b41751c7b4b5410777710b36",
    "gemini-tool-call": "17782726d242f9e0b1cfb278e6d3a35bc13fc9eeae16daab495b8878e20a9578",
    "gemini-reasoning-signature": "9a2b294af4f6676cc20bfe2365f0f765fcbd29f5ef4687266ce9a05d3d8d85e5",
}
# failing cases → (status, type, start of the message) of the StreamError
FAILURES: dict[str, tuple[int, str, str]] = {
    "error-midstream": (503, "api_error", "The model is overloaded"),
    "error-raw-body": (503, "api_error", "The model is overloaded"),
    "truncated": (502, "upstream_error", "the Gemini stream was truncated"),
    "truncated-mid-event": (502, "upstream_error", "the Gemini stream was truncated"),
    "malformed-json": (502, "upstream_error", "the Gemini stream sent malformed JSON"),
    "malformed-function-call": (
        502,
        "upstream_error",
        "Gemini could not complete the answer (MALFORMED_FUNCTION_CALL)",
    ),
}


def _input_path(case: str) -> Path:
    for suffix in (".sse", ".chunks.jsonl"):
        path = DIR / f"{case}{suffix}"
        if path.exists():
            return path
    raise FileNotFoundError(case)


def load(case: str) -> bytes:
    """A fixture as Gemini sends it: ``data: {json}`` events separated by CRLF blank lines."""
    path = _input_path(case)
    raw = path.read_bytes()
    if path.name.endswith(".chunks.jsonl"):
        # vercel/ai stores one payload per line with the SSE framing stripped: put Gemini's back.
        return b"".join(b"data: " + line + b"\r\n\r\n" for line in raw.splitlines() if line.strip())
    return raw


def run_every_split(ctx: StreamContext, data: bytes) -> bytes:
    return relayed_every_split(lambda: GeminiStream(ChatEncoder(ctx), ctx), data, lambda _, exc: error_frame(exc))


def golden(case: str) -> bytes:
    ctx, data = CASES[case], load(case)
    if case in FAILURES:
        return run_every_split(ctx, data)
    return assert_same_every_split(lambda: GeminiStream(ChatEncoder(ctx), ctx), data)


def test_every_fixture_is_a_case() -> None:
    names = [p.name for p in DIR.iterdir() if p.name.endswith((".sse", ".chunks.jsonl"))]
    assert {n.removesuffix(".sse").removesuffix(".chunks.jsonl") for n in names} == set(CASES)
    assert all((DIR / f"{case}.expected").exists() for case in CASES)


@pytest.mark.parametrize("case", sorted(RECORDED))
def test_recordings_are_unchanged(case: str) -> None:
    data = (DIR / f"{case}.chunks.jsonl").read_bytes()
    assert hashlib.sha256(data).hexdigest() == RECORDED[case]
    assert case in (DIR / "README.md").read_text()


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_stream(case: str) -> None:
    out = golden(case)
    expected = DIR / f"{case}.expected"
    if os.environ.get("REGEN_GOLDEN"):
        expected.write_bytes(out)
    assert out == expected.read_bytes()


# --------------------------------------------------------------------------------------------
# A tiny OpenAI stream accumulator, to check what a client ends up with


def accumulate(out: bytes, ctx: StreamContext) -> dict[str, Any]:
    acc: dict[str, Any] = {
        "content": "",
        "reasoning": "",
        "refusal": None,
        "calls": {},
        "function_call": None,
        "signatures": [],
        "finish": None,
        "usage": None,
        "error": None,
        "done": False,
        "roles": 0,
    }
    for frame in out.split(b"\n\n"):
        if not frame:
            continue
        assert frame.startswith(b"data: "), frame
        assert not acc["done"], "nothing may follow [DONE]"
        payload = frame[6:]
        if payload == b"[DONE]":
            acc["done"] = True
            continue
        chunk = json.loads(payload)
        if "error" in chunk:
            acc["error"] = chunk["error"]
            continue
        assert acc["error"] is None
        assert (chunk["id"], chunk["created"], chunk["model"]) == (ctx.id, ctx.created, ctx.model)
        assert chunk["object"] == "chat.completion.chunk"
        if not chunk["choices"]:
            assert acc["usage"] is None, "exactly one usage chunk"
            acc["usage"] = chunk["usage"]
            continue
        assert acc["usage"] is None, "the usage chunk comes last"
        assert acc["finish"] is None, "no choice chunk after the finish chunk"
        (choice,) = chunk["choices"]
        delta = choice["delta"]
        acc["roles"] += "role" in delta
        if acc["roles"] == 0:
            raise AssertionError("the first chunk must carry the role")
        acc["content"] += delta.get("content") or ""
        acc["reasoning"] += delta.get("reasoning_content") or ""
        if delta.get("refusal"):
            acc["refusal"] = (acc["refusal"] or "") + delta["refusal"]
        if "extra_content" in delta:
            acc["signatures"].append(delta["extra_content"]["google"]["thought_signature"])
        for call in delta.get("tool_calls") or []:
            index = call["index"]
            if index not in acc["calls"]:
                assert index == len(acc["calls"]), "tool-call indexes count up from 0"
                assert call["type"] == "function" and call["id"] and call["function"]["name"]
                acc["calls"][index] = {
                    "id": call["id"],
                    "name": call["function"]["name"],
                    "arguments": "",
                    "extra_content": call.get("extra_content"),
                }
            else:
                assert "id" not in call and "type" not in call and "name" not in call["function"]
            acc["calls"][index]["arguments"] += call["function"].get("arguments") or ""
        if "function_call" in delta:
            fc = delta["function_call"]
            if acc["function_call"] is None:
                acc["function_call"] = {"name": fc["name"], "arguments": ""}
            acc["function_call"]["arguments"] += fc.get("arguments") or ""
        if choice["finish_reason"] is not None:
            acc["finish"] = choice["finish_reason"]
    assert acc["roles"] <= 1
    return acc


def source_calls(data: bytes) -> list[tuple[str, Any, str | None]]:
    """The (name, args, thoughtSignature) of every functionCall part in a Gemini stream."""
    calls = []
    for event in SSEDecoder().feed(data):
        body = json.loads(event.data)
        for candidate in body.get("candidates") or []:
            for part in (candidate.get("content") or {}).get("parts") or []:
                if "functionCall" in part:
                    fc = part["functionCall"]
                    calls.append((fc["name"], fc.get("args") or {}, part.get("thoughtSignature")))
    return calls


@pytest.mark.parametrize("case", sorted(set(CASES) - set(FAILURES)))
def test_client_accumulates_valid_tool_calls(case: str) -> None:
    ctx, data = CASES[case], load(case)
    acc = accumulate(golden(case), ctx)
    assert acc["done"] and acc["finish"] is not None and acc["error"] is None
    assert (acc["usage"] is not None) == ctx.include_usage
    expected = source_calls(data)
    if ctx.legacy_functions:
        assert not acc["calls"]
        got = [(acc["function_call"]["name"], json.loads(acc["function_call"]["arguments"]), expected[0][2])]
    else:
        got = [
            (
                c["name"],
                json.loads(c["arguments"]),
                (c["extra_content"] or {}).get("google", {}).get("thought_signature"),
            )
            for c in acc["calls"].values()
        ]
        assert [c["id"] for c in acc["calls"].values()] == [f"call_test_{i}" for i in range(len(expected))]
    assert got == expected
    if expected:
        assert acc["finish"] == ("function_call" if ctx.legacy_functions else "tool_calls")


def test_recorded_text_and_its_signature() -> None:
    acc = accumulate(golden("gemini-text"), USAGE)
    assert acc["content"] == 'There are **3** "r"s in strawberry.\n\nst**r**awbe**rr**y'
    assert acc["finish"] == "stop" and acc["reasoning"] == ""
    (signature,) = acc["signatures"]
    assert signature.startswith("EqsFCqgFAb4+9vvtAF5n") and signature.endswith("eeWcow=")
    assert acc["usage"] == {
        "prompt_tokens": 9,
        "completion_tokens": 23 + 185,
        "total_tokens": 9 + 23 + 185,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 185},
    }


def test_recorded_hidden_reasoning_counts_tokens_only() -> None:
    acc = accumulate(golden("gemini-reasoning-signature"), USAGE)
    assert acc["reasoning"] == "" and acc["content"].endswith("Here is the breakdown: st**r**awbe**rr**y.")
    assert acc["usage"]["completion_tokens_details"] == {"reasoning_tokens": 256}
    assert acc["usage"]["completion_tokens"] == 29 + 256
    (signature,) = acc["signatures"]
    assert signature.startswith("Eo0HCooHAb4+9vutXdtKMt") and signature.endswith("Aj/uUJKN")


def test_recorded_tool_call_keeps_its_signature() -> None:
    acc = accumulate(golden("gemini-tool-call"), USAGE)
    (call,) = acc["calls"].values()
    assert call["name"] == "weather" and json.loads(call["arguments"]) == {"location": "San Francisco"}
    assert call["extra_content"]["google"]["thought_signature"].startswith("EqUCCqICAb4+9vsh8Pd5")
    assert acc["finish"] == "tool_calls" and acc["content"] == "" and acc["signatures"] == []


def test_thoughts_then_text() -> None:
    acc = accumulate(golden("thinking-text"), USAGE)
    assert acc["reasoning"].startswith("**Multiplying the numbers**") and acc["reasoning"].endswith("= 12231.")
    assert acc["content"] == "27 \u00d7 453 = **12,231**."
    assert acc["usage"]["completion_tokens"] == 11 + 131
    assert acc["usage"]["completion_tokens_details"] == {"reasoning_tokens": 131}


def test_parallel_calls_after_text() -> None:
    acc = accumulate(golden("parallel-calls"), USAGE)
    assert acc["content"] == "I'll check both cities at once."
    first, second = acc["calls"].values()
    assert first["extra_content"] == {
        "google": {"thought_signature": "CiQBcsjafHZ0vlQhSwMMnfWqrVxnTSa1Ek9Nx2wqCcC0aMfkqGQKZgFyyNp8"}
    }
    assert second["extra_content"] is None  # Gemini signs only the first call of a parallel batch
    assert json.loads(second["arguments"])["note"] == 'say "hi" \u00e9'


def test_calls_without_arguments_accumulate_to_empty_objects() -> None:
    acc = accumulate(golden("call-no-args"), USAGE)
    assert [(c["name"], c["arguments"]) for c in acc["calls"].values()] == [("get_time", "{}"), ("list_files", "{}")]


def test_text_cached_usage_and_lf_framing() -> None:
    acc = accumulate(golden("text-cached"), USAGE)
    assert acc["content"] == (
        "Here\u2019s a haiku \U0001f338:\n\n  Petals drift\tslowly \u2014\ncaf\u00e9 steam rises, dawn hums,\n"
        "spring wakes the kettle."
    )
    assert acc["usage"]["prompt_tokens"] == 2060
    assert acc["usage"]["prompt_tokens_details"] == {"cached_tokens": 2048}
    lf = accumulate(golden("text-lf"), CTX)
    assert lf["content"] == acc["content"] and lf["usage"] is None and lf["done"]


def test_prompt_blocked() -> None:
    acc = accumulate(golden("prompt-blocked"), USAGE)
    assert acc["finish"] == "content_filter" and acc["content"] == ""
    assert acc["refusal"] == "Gemini blocked the prompt (blockReason: SAFETY)"
    assert acc["usage"]["prompt_tokens"] == 17 and acc["done"]


def test_finish_reasons_of_the_cases() -> None:
    assert accumulate(golden("safety-finish"), USAGE)["finish"] == "content_filter"
    assert accumulate(golden("safety-finish"), USAGE)["content"] == "Here is how the story begins: the"
    assert accumulate(golden("max-tokens"), USAGE)["finish"] == "length"


def test_usage_arriving_after_the_finish_chunk() -> None:
    out = golden("usage-after-finish")
    acc = accumulate(out, USAGE)
    assert acc["usage"]["completion_tokens"] == 2  # from the frame after finishReason
    translator = GeminiStream(ChatEncoder(USAGE), USAGE)
    data = load("usage-after-finish")
    cut = data.index(b"data:", 1)
    first = translator.feed(data[:cut])
    assert b'"finish_reason":"stop"' in first and b"[DONE]" not in first and not translator.done
    last = translator.feed(data[cut:])  # the event after the finish ends the stream, before EOF
    assert translator.done and last.endswith(b"data: [DONE]\n\n") and b'"completion_tokens":2' in last
    assert translator.finish() == b""


def test_legacy_functions() -> None:
    acc = accumulate(golden("legacy-functions"), LEGACY)
    assert acc["function_call"] == {"name": "get_weather", "arguments": '{"location":"Oslo"}'}
    assert acc["finish"] == "function_call" and acc["content"] == "Looking that up."


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_failures(case: str) -> None:
    status, etype, message = FAILURES[case]
    translator = GeminiStream(ChatEncoder(USAGE), USAGE)
    with pytest.raises(StreamError) as info:
        translator.feed(load(case))
        translator.finish()
    assert (info.value.status, info.value.type) == (status, etype)
    assert info.value.message.startswith(message)
    assert not translator.done
    acc = accumulate(golden(case), USAGE)
    assert acc["error"]["message"] == info.value.message
    assert not acc["done"] and acc["usage"] is None  # never a fake [DONE] after a failure


def test_error_frame_keeps_the_frames_before_it() -> None:
    translator = GeminiStream(ChatEncoder(USAGE), USAGE)
    with pytest.raises(StreamError) as info:
        translator.feed(load("error-midstream"))
    err = info.value
    assert (err.code, err.retryable) == ("UNAVAILABLE", True)
    assert accumulate(err.output, USAGE)["content"] == "Let me think"


def test_error_before_any_content_leaves_nothing_written() -> None:
    """An error as the first frame fails the attempt before the client saw a byte (it can be retried)."""
    error = {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}
    data = b"data: " + orjson.dumps({"error": error}) + b"\r\n\r\n"
    translator = GeminiStream(ChatEncoder(USAGE), USAGE)
    with pytest.raises(StreamError) as info:
        translator.feed(data)
    assert (info.value.output, info.value.status, info.value.type) == (b"", 429, "rate_limit_error")


def test_raw_error_body_is_seen_as_soon_as_it_is_complete() -> None:
    data = load("error-raw-body")
    translator = GeminiStream(ChatEncoder(USAGE), USAGE)
    cut = data.index(b"{\n")
    out = translator.feed(data[:cut])
    assert b'"finish_reason":"stop"' in out
    assert translator.feed(data[cut : cut + 20]) == b""  # an unfinished JSON body: wait
    with pytest.raises(StreamError) as info:
        translator.feed(data[cut + 20 :])
    assert info.value.message == "The model is overloaded. Please try again later." and info.value.status == 503


def test_raw_error_body_before_the_finish_and_without_final_newline() -> None:
    data = (
        load("truncated")
        + b'[{\n  "error": {\n    "code": 500,\n    "message": "Internal error",\n    "status": "INTERNAL"\n  }\n}]'
    )
    out = run_every_split(USAGE, data)
    acc = accumulate(out, USAGE)
    assert acc["content"] == "The first part arrived" and acc["finish"] is None
    assert acc["error"] == {"message": "Internal error", "type": "api_error", "param": None, "code": "INTERNAL"}


def test_non_sse_garbage_is_an_error() -> None:
    data = load("truncated") + b"<html><body>502 Bad Gateway</body></html>\n"
    acc = accumulate(run_every_split(USAGE, data), USAGE)
    assert acc["error"]["message"].startswith("the Gemini stream sent data outside SSE framing: '<html>")


def test_cut_in_a_trailing_update_after_the_finish_still_completes() -> None:
    data = load("usage-after-finish")
    data = data[: len(data) - 40]
    out = run_every_split(USAGE, data)
    acc = accumulate(out, USAGE)
    assert acc["done"] and acc["finish"] == "stop" and acc["usage"]["prompt_tokens"] == 7


def test_done_and_nothing_after_finish() -> None:
    translator = GeminiStream(ChatEncoder(CTX), CTX)
    out = translator.feed(load("max-tokens")) + translator.finish()
    assert translator.done and out.endswith(b"data: [DONE]\n\n")
    assert translator.feed(b"data: {broken\r\n\r\n") == b"" and translator.finish() == b""


def test_no_usage_chunk_unless_asked() -> None:
    out = assert_same_every_split(lambda: GeminiStream(ChatEncoder(CTX), CTX), load("gemini-text"))
    assert b'"usage"' not in out and accumulate(out, CTX)["usage"] is None


def test_usage_without_any_usage_metadata() -> None:
    data = b'data: {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "STOP"}]}\r\n\r\n'
    acc = accumulate(assert_same_every_split(lambda: GeminiStream(ChatEncoder(USAGE), USAGE), data), USAGE)
    assert acc["usage"] == {
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def test_gemini_call_ids_are_kept_when_given() -> None:
    data = (
        b'data: {"candidates": [{"content": {"parts": [{"functionCall": {"id": "fc-7", "name": "f",'
        b' "args": {"a": 1}}}]}, "finishReason": "STOP"}]}\r\n\r\n'
    )
    acc = accumulate(assert_same_every_split(lambda: GeminiStream(ChatEncoder(CTX), CTX), data), CTX)
    assert [(c["id"], c["arguments"]) for c in acc["calls"].values()] == [("fc-7", '{"a":1}')]


def stream_of(candidate: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps({"candidates": [candidate]}) + b"\r\n\r\n"


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("STOP", "stop"),
        ("FINISH_REASON_UNSPECIFIED", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("LANGUAGE", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("OTHER", "content_filter"),
        ("SOMETHING_NEW", "content_filter"),
    ],
)
def test_finish_reason_mapping(reason: str, finish: str) -> None:
    data = stream_of({"content": {"parts": [{"text": "x"}]}, "finishReason": reason})
    assert (
        accumulate(assert_same_every_split(lambda: GeminiStream(ChatEncoder(CTX), CTX), data), CTX)["finish"] == finish
    )
    body = orjson.dumps({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]})
    assert orjson.loads(translate_response(body, CTX))["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        ("MALFORMED_FUNCTION_CALL", 502),
        ("UNEXPECTED_TOOL_CALL", 502),
        ("TOO_MANY_TOOL_CALLS", 502),
        ("MALFORMED_RESPONSE", 502),
        ("MISSING_THOUGHT_SIGNATURE", 400),
    ],
)
def test_failed_finish_reasons(reason: str, status: int) -> None:
    data = stream_of({"content": {"parts": [{"text": "partial"}]}, "finishReason": reason})
    with pytest.raises(StreamError) as info:
        GeminiStream(ChatEncoder(CTX), CTX).feed(data)
    assert (info.value.status, info.value.code) == (status, reason)
    assert info.value.message == f"Gemini could not complete the answer ({reason})"
    assert accumulate(info.value.output, CTX)["content"] == "partial"  # the same event's text is kept
    with pytest.raises(UpstreamError) as up:
        translate_response(orjson.dumps({"candidates": [{"finishReason": reason}]}), CTX)
    assert (up.value.status, up.value.code) == (status, reason)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"data: [1, 2]\r\n\r\n", "the Gemini stream sent an event that is not a JSON object"),
        (
            b'data: {"candidates": [{"content": {"parts": [{"functionCall": {"args": {}}}]}}]}\r\n\r\n',
            "the Gemini stream sent a functionCall without a name",
        ),
    ],
)
def test_bad_events(data: bytes, message: str) -> None:
    with pytest.raises(StreamError) as info:
        GeminiStream(ChatEncoder(CTX), CTX).feed(data)
    assert info.value.message == message


def test_ignored_parts_and_frames() -> None:
    """Inline images, executable code, empty text without a signature and empty frames produce nothing."""
    data = (
        b'data: {"candidates": [{"content": {"parts": [{"text": ""},'
        b' {"inlineData": {"mimeType": "image/png", "data": "iV"}},'
        b' {"executableCode": {"language": "PYTHON", "code": "1"}}, "odd"]}}]}\r\n\r\n'
        b'data: {"modelVersion": "gemini-2.5-flash"}\r\n\r\n'
        b": comment\r\n\r\n"
        b'data: {"candidates": [{"content": {"parts": [{"text": "ok"}]}, "finishReason": "STOP"}]}\r\n\r\n'
    )
    acc = accumulate(assert_same_every_split(lambda: GeminiStream(ChatEncoder(CTX), CTX), data), CTX)
    assert acc["content"] == "ok" and acc["finish"] == "stop"


def test_registry_and_provider() -> None:
    assert provider_kind("gemini") is KIND
    assert KIND.kind == "gemini" and not KIND.natives
    assert isinstance(KIND.stream_decoder(ChatEncoder(CTX), CTX, PROVIDER), GeminiStream)
    config = build({}, "<test>", {"GEMINI_API_KEY": "k"})
    assert config.provider("google") is config.providers["gemini"] and config.providers["gemini"].kind == "gemini"


# --------------------------------------------------------------------------------------------
# Requests


def provider(**raw: Any) -> Any:
    data = {"providers": {"gemini": {"api_key": "AIza-test", **raw}}}
    return build(data, "<test>", {}).providers["gemini"]


PROVIDER = provider()


def request_body(body: dict[str, Any], model: str = "gemini-2.5-flash", **raw: Any) -> dict[str, Any]:
    prov = provider(**raw) if raw else PROVIDER
    result: dict[str, Any] = orjson.loads(build_request(body, model, prov, CTX).body)
    return result


def bad(body: dict[str, Any], model: str = "gemini-2.5-flash") -> BadRequest:
    with pytest.raises(BadRequest) as info:
        build_request(body, model, PROVIDER, CTX)
    assert info.value.status == 400 and info.value.type == "invalid_request_error"
    return info.value


def user(text: Any = "Hi") -> dict[str, Any]:
    return {"role": "user", "content": text}


HI = {"role": "user", "parts": [{"text": "Hi"}]}


def test_url_headers_and_minimal_body() -> None:
    prov = provider(headers={"x-goog-user-project": "p1"})
    req = build_request({"model": "gemini/x", "messages": [user()], "stream": True}, "gemini-2.5-flash", prov, CTX)
    assert req.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert dict(req.headers) == {
        "content-type": "application/json",
        "x-goog-api-key": "AIza-test",
        "x-goog-user-project": "p1",
    }
    assert orjson.loads(req.body) == {"contents": [HI]}
    plain = build_request({"messages": [user()]}, "gemini-2.5-flash", PROVIDER, CTX)
    assert plain.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"


@pytest.mark.parametrize(
    ("base_url", "model", "url"),
    [
        ("http://127.0.0.1:9", "gemini-3-pro-preview", "http://127.0.0.1:9/v1beta/models/gemini-3-pro-preview"),
        ("http://127.0.0.1:9/v1beta/", "gemini-2.5-pro", "http://127.0.0.1:9/v1beta/models/gemini-2.5-pro"),
        ("http://h/v1", "models/gemini-2.0-flash", "http://h/v1/models/gemini-2.0-flash"),
        ("http://h", "tunedModels/my-model-1", "http://h/v1beta/tunedModels/my-model-1"),
        ("http://h", "a b", "http://h/v1beta/models/a%20b"),
    ],
)
def test_url_forms(base_url: str, model: str, url: str) -> None:
    req = build_request({"messages": [user()]}, model, provider(base_url=base_url), CTX)
    assert req.url == url + ":generateContent"


def test_no_key_no_header() -> None:
    no_key = build({"providers": {"gemini": {"base_url": "http://h", "needs_key": False}}}, "<t>", {})
    assert "x-goog-api-key" not in build_request({"messages": [user()]}, "m", no_key.providers["gemini"], CTX).headers


def test_system_and_developer_messages_become_system_instruction() -> None:
    body = request_body(
        {
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                user(),
                {"role": "system", "content": "Late rule."},
            ]
        }
    )
    assert body["systemInstruction"] == {"parts": [{"text": "You are terse.\n\nAnswer in French.\n\nLate rule."}]}
    assert body["contents"] == [HI]


def test_content_parts() -> None:
    parts = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a/cat.JPG?size=large#top"}},
        {"type": "image_url", "image_url": "http://example.com/dog.webp"},
        {"type": "image_url", "image_url": {"url": "https://generativelanguage.googleapis.com/v1beta/files/abc-123"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}},
        {"type": "text", "text": ""},
    ]
    body = request_body({"messages": [user(parts)]})
    assert body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "What is in these?"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/a/cat.JPG?size=large#top"}},
                {"fileData": {"mimeType": "image/webp", "fileUri": "http://example.com/dog.webp"}},
                {"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc-123"}},
                {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
                {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0x"}},
            ],
        }
    ]


C0 = "messages[0].content[0]"


@pytest.mark.parametrize(
    ("part", "param"),
    [
        ({"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}}, f"{C0}.image_url.url"),
        ({"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}, f"{C0}.image_url.url"),
        ({"type": "image_url", "image_url": {"url": "data:;base64,aGk="}}, f"{C0}.image_url.url"),
        ({"type": "image_url", "image_url": {}}, f"{C0}.image_url.url"),
        ({"type": "input_audio", "input_audio": {"format": "wav"}}, f"{C0}.input_audio.data"),
        ({"type": "file", "file": {"file_data": "data:application/pdf,x"}}, f"{C0}.file.file_data"),
        ({"type": "text", "text": 3}, f"{C0}.text"),
        ({"type": 3}, f"{C0}.type"),
        ("just a string", C0),
    ],
)
def test_bad_content_parts(part: Any, param: str) -> None:
    err = bad({"messages": [user([part])]})
    assert err.param == param and not isinstance(err, UnsupportedByProvider)


@pytest.mark.parametrize(
    ("part", "param"),
    [
        ({"type": "image_url", "image_url": {"url": "https://example.com/anim.gif"}}, f"{C0}.image_url.url"),
        ({"type": "image_url", "image_url": {"url": "https://example.com/image"}}, f"{C0}.image_url.url"),
        ({"type": "image_url", "image_url": {"url": "https://example.com/v1.2/img"}}, f"{C0}.image_url.url"),
        ({"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "flac"}}, f"{C0}.input_audio.format"),
        ({"type": "file", "file": {"file_id": "file-abc"}}, f"{C0}.file"),
        ({"type": "refusal", "refusal": "no"}, C0),
        ({"type": "video_url", "video_url": {"url": "https://e.com/v.mp4"}}, C0),
    ],
)
def test_content_parts_gemini_cannot_take(part: Any, param: str) -> None:
    with pytest.raises(UnsupportedByProvider) as info:
        build_request({"messages": [user([part])]}, "gemini-2.5-flash", PROVIDER, CTX)
    assert info.value.param == param


def test_image_url_without_a_known_extension_says_what_to_do() -> None:
    err = bad({"messages": [user([{"type": "image_url", "image_url": {"url": "https://x.io/pic"}}])]})
    assert "png, jpg, jpeg, webp, heic, heif" in err.message and "data: URL" in err.message


def test_images_only_where_gemini_takes_them() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iV=="}}
    assert bad({"messages": [{"role": "system", "content": [image]}, user()]}).param == "messages[0].content[0]"
    assert bad({"messages": [user(), {"role": "assistant", "content": [image]}]}).param == "messages[1].content[0]"


SIG = "CiQBcsjafHZ0vlQhSwMMnfWqrVxnTSa1Ek9Nx2wqCcC0aMfkqGQKZgFyyNp8"


def tool_conversation() -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "sys"},
        user("Weather in Paris and Tokyo?"),
        {
            "role": "assistant",
            "content": "Checking both.",
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    "extra_content": {"google": {"thought_signature": SIG}},
                },
                {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": '{"temp": 21, "sky": "clear"}'},
        {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "10:42"}]},
        user("And in Oslo?"),
    ]


def test_tool_calls_results_and_merged_turns() -> None:
    body = request_body({"messages": tool_conversation()})
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris and Tokyo?"}]},
        {
            "role": "model",
            "parts": [
                {"text": "Checking both."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIG},
                {"functionCall": {"name": "get_time", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp": 21, "sky": "clear"}}},
                {"functionResponse": {"name": "get_time", "response": {"content": "10:42"}}},
                {"text": "And in Oslo?"},
            ],
        },
    ]


@pytest.mark.parametrize(
    ("content", "response"),
    [
        ('{"ok": true}', {"ok": True}),
        ("[1, 2]", {"content": "[1, 2]"}),
        ("42", {"content": "42"}),
        ("{not json", {"content": "{not json"}),
        ("", {"content": ""}),
        (None, {"content": ""}),
        ([{"type": "text", "text": '{"a":'}, {"type": "text", "text": " 1}"}], {"a": 1}),
    ],
)
def test_tool_result_response_object(content: Any, response: dict[str, Any]) -> None:
    messages = [
        user(),
        {
            "role": "assistant",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": content},
    ]
    assert request_body({"messages": messages})["contents"][2]["parts"] == [
        {"functionResponse": {"name": "f", "response": response}}
    ]


def test_tool_result_with_an_image_and_a_name_fallback() -> None:
    messages = [
        user(),
        {
            "role": "tool",
            "tool_call_id": "unknown",
            "name": "screenshot",
            "content": [
                {"type": "text", "text": "here"},
                {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklG"}},
            ],
        },
    ]
    assert request_body({"messages": messages})["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "Hi"},
                {"functionResponse": {"name": "screenshot", "response": {"content": "here"}}},
                {"inlineData": {"mimeType": "image/webp", "data": "UklG"}},
            ],
        }
    ]


def test_tool_result_for_an_unknown_call_is_a_400() -> None:
    err = bad({"messages": [user(), {"role": "tool", "tool_call_id": "call_zzz", "content": "x"}]})
    assert err.param == "messages[1].tool_call_id" and "call_zzz" in err.message


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ("{not json", "messages[1].tool_calls[0].function.arguments"),
        ("[1, 2]", "messages[1].tool_calls[0].function.arguments"),
        (42, "messages[1].tool_calls[0].function.arguments"),
        ({"a": 1}, "messages[1].tool_calls[0].function.arguments"),
    ],
)
def test_bad_tool_call_arguments(arguments: Any, param: str) -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
    assert bad({"messages": [user(), {"role": "assistant", "tool_calls": [call]}]}).param == param


@pytest.mark.parametrize(
    ("call", "param"),
    [
        ("nope", "messages[1].tool_calls[0]"),
        ({"id": "c", "type": "function", "function": {"arguments": "{}"}}, "messages[1].tool_calls[0].function.name"),
        ({"type": "function", "function": {"name": "f"}}, "messages[1].tool_calls[0].id"),
    ],
)
def test_bad_tool_calls(call: Any, param: str) -> None:
    err = bad({"messages": [user(), {"role": "assistant", "tool_calls": [call]}]})
    assert err.param == param and not isinstance(err, UnsupportedByProvider)


def test_whitespace_arguments_and_a_call_without_type_read_as_function_calls() -> None:
    call = {"id": "c", "function": {"name": "f", "arguments": " \n"}}
    body = request_body({"messages": [user(), {"role": "assistant", "tool_calls": [call]}]})
    assert body["contents"][1]["parts"] == [{"functionCall": {"name": "f", "args": {}}}]


def test_custom_tool_calls_are_beyond_gemini() -> None:
    call = {"id": "c", "type": "custom", "custom": {"name": "f", "input": "x"}}
    with pytest.raises(UnsupportedByProvider) as info:
        build_request({"messages": [user(), {"role": "assistant", "tool_calls": [call]}]}, "m", PROVIDER, CTX)
    assert info.value.param == "messages[1].tool_calls[0].type"


def calls_turn(*signatures: str | None) -> dict[str, Any]:
    calls = []
    for i, signature in enumerate(signatures):
        call: dict[str, Any] = {"id": f"c{i}", "type": "function", "function": {"name": f"f{i}", "arguments": "{}"}}
        if signature:
            call["extra_content"] = {"google": {"thought_signature": signature}}
        calls.append(call)
    return {"role": "assistant", "tool_calls": calls}


@pytest.mark.parametrize(
    ("model", "signatures", "sent"),
    [
        ("gemini-3-pro-preview", (None, None), (SKIP_SIGNATURE, SKIP_SIGNATURE)),
        ("gemini-3-pro-preview", ("real", None), ("real", None)),
        ("gemini-3-flash-preview", (None, "real"), (SKIP_SIGNATURE, "real")),
        ("gemini-2.5-flash", (None, None), (None, None)),
        ("gemini-2.5-flash", ("real", None), ("real", None)),
    ],
)
def test_thought_signatures_and_the_gemini3_sentinel(
    model: str, signatures: tuple[str | None, ...], sent: tuple[str | None, ...]
) -> None:
    body = request_body({"messages": [user(), calls_turn(*signatures)]}, model)
    assert tuple(p.get("thoughtSignature") for p in body["contents"][1]["parts"]) == sent


def test_message_level_signature_goes_on_the_last_text_part() -> None:
    assistant = {
        "role": "assistant",
        "content": [{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}],
        "extra_content": {"google": {"thought_signature": "Eo0H"}},
    }
    body = request_body({"messages": [user(), assistant, user("More")]})
    assert body["contents"][1]["parts"] == [{"text": "One."}, {"text": "Two.", "thoughtSignature": "Eo0H"}]


def test_stream_output_round_trips_into_the_next_request() -> None:
    """Signatures and arguments a client accumulated from our stream come back where Gemini wants them."""
    acc = accumulate(golden("parallel-calls"), USAGE)
    tool_calls = [
        {
            "id": c["id"],
            "type": "function",
            "function": {"name": c["name"], "arguments": c["arguments"]},
            **({"extra_content": c["extra_content"]} if c["extra_content"] else {}),
        }
        for c in acc["calls"].values()
    ]
    messages = [
        user("Weather?"),
        {"role": "assistant", "content": acc["content"], "tool_calls": tool_calls},
        *({"role": "tool", "tool_call_id": c["id"], "content": "sunny"} for c in tool_calls),
    ]
    body = request_body({"messages": messages}, "gemini-3-pro-preview")
    model_turn = body["contents"][1]["parts"]
    assert model_turn[0] == {"text": "I'll check both cities at once."}
    assert [(p["functionCall"]["name"], p.get("thoughtSignature")) for p in model_turn[1:]] == [
        ("get_weather", "CiQBcsjafHZ0vlQhSwMMnfWqrVxnTSa1Ek9Nx2wqCcC0aMfkqGQKZgFyyNp8"),
        ("get_weather", None),
    ]
    assert [(name, args) for name, args, _ in source_calls(load("parallel-calls"))] == [
        (p["functionCall"]["name"], p["functionCall"]["args"]) for p in model_turn[1:]
    ]
    assert [p["functionResponse"]["name"] for p in body["contents"][2]["parts"]] == ["get_weather", "get_weather"]
    text_acc = accumulate(golden("gemini-text"), USAGE)
    (signature,) = text_acc["signatures"]
    again = request_body(
        {
            "messages": [
                user(),
                {
                    "role": "assistant",
                    "content": text_acc["content"],
                    "extra_content": {"google": {"thought_signature": signature}},
                },
                user("Why?"),
            ]
        }
    )
    assert again["contents"][1]["parts"] == [{"text": text_acc["content"], "thoughtSignature": signature}]


def test_legacy_functions_request() -> None:
    body = request_body(
        {
            "messages": [
                user("Price of AAPL?"),
                {
                    "role": "assistant",
                    "content": None,
                    "function_call": {"name": "price", "arguments": '{"t": "AAPL"}'},
                },
                {"role": "function", "name": "price", "content": '{"usd": 190.1}'},
            ],
            "functions": [{"name": "price", "description": "Stock price", "parameters": {"type": "object"}}],
            "function_call": {"name": "price"},
        }
    )
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Price of AAPL?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "price", "args": {"t": "AAPL"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "price", "response": {"usd": 190.1}}}]},
    ]
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {"name": "price", "description": "Stock price", "parametersJsonSchema": {"type": "object"}}
            ]
        }
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["price"]}}


def test_legacy_function_message_needs_a_name() -> None:
    assert bad({"messages": [user(), {"role": "function", "content": "x"}]}).param == "messages[1].name"


def test_tools_and_functions_together_are_a_400() -> None:
    fn = {"name": "f"}
    assert (
        bad({"messages": [user()], "tools": [{"type": "function", "function": fn}], "functions": [fn]}).param
        == "functions"
    )


def test_tool_declarations_and_schema_cleaning() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "$schema": {"type": "string"},
            "mode": {"const": "fast"},
            "flag": {"const": True},
            "items": {"type": "array", "items": {"type": "object", "$schema": "x", "additionalProperties": False}},
            "either": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["mode"],
        "additionalProperties": False,
        "$defs": {"Thing": {"$schema": "x", "type": ["string", "null"]}},
    }
    body = request_body(
        {
            "messages": [user()],
            "tools": [
                {"type": "function", "function": {"name": "run", "description": "Run it", "parameters": schema}},
                {"type": "function", "function": {"name": "ping"}},
                {"type": "function", "function": {"name": "noop", "description": "", "parameters": {}}},
            ],
            "parallel_tool_calls": False,
        }
    )
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "run",
                    "description": "Run it",
                    "parametersJsonSchema": {
                        "type": "object",
                        "properties": {
                            "$schema": {"type": "string"},
                            "mode": {"enum": ["fast"]},
                            "flag": {"const": True},
                            "items": {"type": "array", "items": {"type": "object", "additionalProperties": False}},
                            "either": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                        },
                        "required": ["mode"],
                        "additionalProperties": False,
                        "$defs": {"Thing": {"type": ["string", "null"]}},
                    },
                },
                {"name": "ping"},
                {"name": "noop"},
            ]
        }
    ]
    assert "toolConfig" not in body and "parallel_tool_calls" not in json.dumps(body)
    assert clean_schema(True) is True and clean_schema({"const": 1, "enum": [1, 2]}) == {"const": 1, "enum": [1, 2]}


@pytest.mark.parametrize(
    ("tools", "param"),
    [
        ([{"function": {"name": "f"}}], "tools[0].type"),
        ([{"type": "function", "function": {"description": "x"}}], "tools[0].function.name"),
        ([{"type": "function", "function": {"name": "f", "parameters": "object"}}], "tools[0].function.parameters"),
        ("f", "tools"),
    ],
)
def test_bad_tools(tools: Any, param: str) -> None:
    err = bad({"messages": [user()], "tools": tools})
    assert err.param == param and not isinstance(err, UnsupportedByProvider)


def test_hosted_tools_are_beyond_gemini() -> None:
    with pytest.raises(UnsupportedByProvider) as info:
        build_request({"messages": [user()], "tools": [{"type": "web_search"}]}, "m", PROVIDER, CTX)
    assert info.value.param == "tools[0].type"


TOOLS = [{"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": "g"}}]


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("none", {"mode": "NONE"}),
        ("auto", {"mode": "AUTO"}),
        ("required", {"mode": "ANY"}),
        ({"type": "function", "function": {"name": "g"}}, {"mode": "ANY", "allowedFunctionNames": ["g"]}),
    ],
)
def test_tool_choice(choice: Any, config: dict[str, Any]) -> None:
    body = request_body({"messages": [user()], "tools": TOOLS, "tool_choice": choice})
    assert body["toolConfig"] == {"functionCallingConfig": config}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "zzz"}}},
            "tool_choice.function.name",
        ),
        ({"tools": TOOLS, "tool_choice": {"type": "custom", "custom": {"name": "f"}}}, "tool_choice.type"),
        ({"tools": TOOLS, "tool_choice": "any"}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"functions": [{"name": "f"}], "function_call": "required"}, "function_call"),
    ],
)
def test_bad_tool_choice(body: dict[str, Any], param: str) -> None:
    assert bad({"messages": [user()], **body}).param == param


def test_tool_choice_none_or_auto_without_tools_is_harmless() -> None:
    for choice in ("none", "auto"):
        assert request_body({"messages": [user()], "tool_choice": choice}) == {"contents": [HI]}


def test_generation_config() -> None:
    body = request_body(
        {
            "messages": [user()],
            "temperature": 0.2,
            "top_p": 0.9,
            "top_k": 40,
            "stop": ["END", "", "STOP"],
            "max_tokens": 100,
            "max_completion_tokens": 500,
            "seed": 7,
            "presence_penalty": 0.5,
            "frequency_penalty": 0,
            "n": 1,
            "logprobs": True,
            "top_logprobs": 3,
            "user": "u-1",
            "metadata": {"a": "b"},
            "store": False,
            "stream_options": {"include_usage": True},
            "logit_bias": {},
            "modalities": ["text"],
        },
        "gemini-3-flash-preview",
    )
    assert body == {
        "contents": [HI],
        "generationConfig": {
            "temperature": 0.2,
            "topP": 0.9,
            "topK": 40,
            "seed": 7,
            "maxOutputTokens": 500,
            "stopSequences": ["END", "STOP"],
            "presencePenalty": 0.5,
        },
    }
    assert request_body({"messages": [user()], "stop": "\n\n", "max_tokens": 9})["generationConfig"] == {
        "maxOutputTokens": 9,
        "stopSequences": ["\n\n"],
    }


def test_penalties_are_dropped_for_gemini_25() -> None:
    body = request_body({"messages": [user()], "presence_penalty": 0.5, "frequency_penalty": 0.3}, "gemini-2.5-pro")
    assert "generationConfig" not in body


@pytest.mark.parametrize(
    ("fmt", "config"),
    [
        ({"type": "text"}, None),
        ({"type": "json_object"}, {"responseMimeType": "application/json"}),
        ({"type": "json_schema", "json_schema": {"name": "x"}}, {"responseMimeType": "application/json"}),
        (
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "person",
                    "strict": True,
                    "schema": {
                        "$schema": "https://json-schema.org/draft/2020-12/schema",
                        "type": "object",
                        "properties": {"name": {"type": "string"}, "kind": {"const": "human"}},
                        "required": ["name", "kind"],
                        "additionalProperties": False,
                    },
                },
            },
            {
                "responseMimeType": "application/json",
                "responseJsonSchema": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "kind": {"enum": ["human"]}},
                    "required": ["name", "kind"],
                    "additionalProperties": False,
                },
            },
        ),
    ],
)
def test_response_format(fmt: dict[str, Any], config: dict[str, Any] | None) -> None:
    body = request_body({"messages": [user()], "response_format": fmt})
    assert body.get("generationConfig") == config


@pytest.mark.parametrize(
    ("extra", "thinking"),
    [
        ({"reasoning_effort": "none"}, {"thinkingBudget": 0}),
        ({"reasoning_effort": "minimal"}, {"thinkingBudget": 512, "includeThoughts": True}),
        ({"reasoning_effort": "low"}, {"thinkingBudget": 1024, "includeThoughts": True}),
        ({"reasoning_effort": "medium"}, {"thinkingBudget": 8192, "includeThoughts": True}),
        ({"reasoning_effort": "high"}, {"thinkingBudget": 24576, "includeThoughts": True}),
        ({"thinking_budget": -1}, {"thinkingBudget": -1, "includeThoughts": True}),
        ({"thinking_budget": 0, "reasoning_effort": "high"}, {"thinkingBudget": 0}),
        ({"thinking_budget": 3000, "reasoning_effort": "low"}, {"thinkingBudget": 3000, "includeThoughts": True}),
    ],
)
def test_thinking(extra: dict[str, Any], thinking: dict[str, Any]) -> None:
    body = request_body({"messages": [user()], **extra})
    assert body["generationConfig"] == {"thinkingConfig": thinking}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 0}, "n"),
        ({"thinking_budget": -2}, "thinking_budget"),
        ({"thinking_budget": True}, "thinking_budget"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": True}, "top_p"),
        ({"top_k": 1.5}, "top_k"),
        ({"seed": "7"}, "seed"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": 1.5}, "max_completion_tokens"),
        ({"stop": ["a", 1]}, "stop[1]"),
        ({"presence_penalty": "x"}, "presence_penalty"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": "x"}}},
            "response_format.json_schema.schema",
        ),
    ],
)
def test_bad_parameters(extra: dict[str, Any], param: str) -> None:
    err = bad({"messages": [user()], **extra})
    assert err.param == param and not isinstance(err, UnsupportedByProvider)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
    ],
)
def test_well_formed_but_not_for_gemini(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(UnsupportedByProvider) as info:
        build_request({"messages": [user()], **extra}, "m", PROVIDER, CTX)
    assert info.value.param == param


def test_n_message_says_why() -> None:
    assert "one choice" in bad({"messages": [user()], "n": 3}).message


def test_safety_settings_option() -> None:
    settings = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    assert request_body({"messages": [user()]}, safety_settings=settings)["safetySettings"] == settings


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ("hi", "messages"),
        ([{"role": "system", "content": "only rules"}], "messages"),
        ([{"role": "assistant", "content": ""}], "messages"),
        (["hi"], "messages[0]"),
        ([{"role": "robot", "content": "x"}], "messages[0].role"),
        ([{"role": "user", "content": 42}], "messages[0].content"),
        ([user(), {"role": "assistant", "tool_calls": "x"}], "messages[1].tool_calls"),
    ],
)
def test_bad_messages(messages: Any, param: str) -> None:
    assert bad({"messages": messages}).param == param


def test_empty_turns_are_skipped_and_the_body_is_never_changed() -> None:
    body = {
        "messages": [
            *tool_conversation(),
            {"role": "assistant", "content": None},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}]},
            user([{"type": "image_url", "image_url": {"url": "https://e.com/x.png"}}]),
        ],
        "tools": [
            {"type": "function", "function": {"name": "get_weather", "parameters": {"$schema": "x", "type": "object"}}}
        ],
        "response_format": {"type": "json_schema", "json_schema": {"schema": {"$schema": "x", "const": "a"}}},
        "stream": True,
    }
    before = copy.deepcopy(body)
    first = build_request(body, "gemini-3-pro-preview", PROVIDER, CTX)
    second = build_request(body, "gemini-3-pro-preview", PROVIDER, CTX)
    assert body == before and first.body == second.body
    contents = orjson.loads(first.body)["contents"]
    assert contents[-2] == {"role": "model", "parts": [{"text": "I can't."}]}


# --------------------------------------------------------------------------------------------
# Non-stream responses


def response(parts: list[dict[str, Any]], finish: str | None = "STOP", **extra: Any) -> bytes:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    body = {
        "candidates": [candidate],
        "usageMetadata": {
            "promptTokenCount": 120,
            "candidatesTokenCount": 20,
            "thoughtsTokenCount": 30,
            "cachedContentTokenCount": 100,
            "totalTokenCount": 170,
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "xyz",
        **extra,
    }
    return orjson.dumps(body)


def test_response_text_thoughts_and_usage() -> None:
    parts = [
        {"text": "Thinking about it.", "thought": True},
        {"text": "Hello"},
        {"text": " there!", "thoughtSignature": "Eo0H"},
    ]
    out = orjson.loads(translate_response(response(parts), CTX))
    assert out == {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "test-model",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello there!",
                    "refusal": None,
                    "reasoning_content": "Thinking about it.",
                    "extra_content": {"google": {"thought_signature": "Eo0H"}},
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 120,
            "completion_tokens": 50,
            "total_tokens": 170,
            "prompt_tokens_details": {"cached_tokens": 100},
            "completion_tokens_details": {"reasoning_tokens": 30},
        },
    }


def test_response_tool_calls() -> None:
    parts = [
        {"text": "Checking."},
        {"functionCall": {"name": "wx", "args": {"city": "Paris"}}, "thoughtSignature": "CiQB"},
        {"functionCall": {"name": "now"}},
    ]
    out = orjson.loads(translate_response(response(parts), CTX))
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": "Checking.",
        "refusal": None,
        "tool_calls": [
            {
                "id": "call_test_0",
                "type": "function",
                "function": {"name": "wx", "arguments": '{"city":"Paris"}'},
                "extra_content": {"google": {"thought_signature": "CiQB"}},
            },
            {"id": "call_test_1", "type": "function", "function": {"name": "now", "arguments": "{}"}},
        ],
    }


def test_response_legacy_function_call() -> None:
    parts = [{"functionCall": {"name": "price", "args": {"t": "AAPL"}}}]
    out = orjson.loads(translate_response(response(parts), LEGACY))
    choice = out["choices"][0]
    assert choice["finish_reason"] == "function_call"
    assert choice["message"]["function_call"] == {"name": "price", "arguments": '{"t":"AAPL"}'}
    assert choice["message"]["content"] is None and "tool_calls" not in choice["message"]


def test_response_max_tokens_and_missing_finish() -> None:
    assert (
        orjson.loads(translate_response(response([{"text": "x"}], "MAX_TOKENS"), CTX))["choices"][0]["finish_reason"]
        == "length"
    )
    assert (
        orjson.loads(translate_response(response([{"text": "x"}], None), CTX))["choices"][0]["finish_reason"] == "stop"
    )


def test_response_prompt_blocked() -> None:
    body = orjson.dumps(
        {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 5}}
    )
    out = orjson.loads(translate_response(body, CTX))
    choice = out["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "refusal": "Gemini blocked the prompt (blockReason: PROHIBITED_CONTENT)",
    }
    assert out["usage"]["prompt_tokens"] == 5


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b"",
        b'{"candidates": []}',
        b'{"promptFeedback": {"blockReason": "BLOCK_REASON_UNSPECIFIED"}}',
        b'{"candidates": [{"content": {"parts": [{"functionCall": {"args": {}}}]}}]}',
    ],
)
def test_response_malformed(body: bytes) -> None:
    with pytest.raises(UpstreamError) as info:
        translate_response(body, CTX)
    assert info.value.status == 502


def test_response_error_object_with_200() -> None:
    body = b'{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}'
    with pytest.raises(UpstreamError) as info:
        translate_response(body, CTX)
    assert (info.value.status, info.value.message, info.value.code) == (503, "The model is overloaded.", "UNAVAILABLE")


# --------------------------------------------------------------------------------------------
# Error statuses


@pytest.mark.parametrize(
    ("status", "google", "otype"),
    [
        (400, "INVALID_ARGUMENT", "invalid_request_error"),
        (401, "UNAUTHENTICATED", "authentication_error"),
        (403, "PERMISSION_DENIED", "permission_error"),
        (404, "NOT_FOUND", "not_found_error"),
        (429, "RESOURCE_EXHAUSTED", "rate_limit_error"),
        (500, "INTERNAL", "api_error"),
        (503, "UNAVAILABLE", "api_error"),
        (504, "DEADLINE_EXCEEDED", "timeout_error"),
        (409, "ABORTED", "api_error"),
        (400, "SOMETHING_NEW", "invalid_request_error"),
    ],
)
def test_translate_error(status: int, google: str, otype: str) -> None:
    body = orjson.dumps({"error": {"code": status, "message": f"upstream says {google}", "status": google}})
    err = translate_error(status, body)
    assert isinstance(err, UpstreamError)
    assert (err.status, err.type, err.code, err.message) == (status, otype, google, f"upstream says {google}")
    assert err.message == f"upstream says {google}"
    assert err.retry_after is None


def test_translate_error_list_wrapped_with_retry_info() -> None:
    body = orjson.dumps(
        [
            {
                "error": {
                    "code": 429,
                    "message": "You exceeded your current quota.",
                    "status": "RESOURCE_EXHAUSTED",
                    "details": [
                        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"},
                    ],
                }
            }
        ]
    )
    err = translate_error(429, body)
    assert (err.status, err.type, err.code, err.retry_after) == (429, "rate_limit_error", "RESOURCE_EXHAUSTED", 37.0)
    assert err.message == "You exceeded your current quota." and err.retryable


def test_invalid_key_and_failed_precondition_are_not_client_mistakes() -> None:
    key = {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
        }
    }
    err = translate_error(400, orjson.dumps(key))
    assert (err.status, err.type, err.code) == (401, "authentication_error", "INVALID_ARGUMENT")
    region = {"error": {"code": 400, "message": "User location is not supported.", "status": "FAILED_PRECONDITION"}}
    err = translate_error(400, orjson.dumps(region))
    assert (err.status, err.type, err.code) == (403, "permission_error", "FAILED_PRECONDITION")


@pytest.mark.parametrize(
    ("status", "body", "otype", "message"),
    [
        (502, b"<html>Bad Gateway</html>", "api_error", "Gemini returned HTTP 502"),
        (429, b'{"unexpected": true}', "rate_limit_error", "Gemini returned HTTP 429"),
        (400, b'{"error": "flat string"}', "invalid_request_error", "Gemini returned HTTP 400"),
        (404, b"", "not_found_error", "Gemini returned HTTP 404"),
        (500, b'{"error": {"code": 500}}', "api_error", "Gemini returned an error (500)"),
    ],
)
def test_translate_error_unparseable(status: int, body: bytes, otype: str, message: str) -> None:
    err = translate_error(status, body)
    assert (err.status, err.type, err.message) == (status, otype, message)
    assert err.retryable == (status >= 500 or status == 429)


def test_odd_inputs_are_handled() -> None:
    """Corners: functions not a list, a non-object part, a bad RetryInfo, and a stream past the decoder cap."""
    assert bad({"messages": [user()], "functions": {"name": "f"}}).param == "functions"
    body = orjson.dumps({"candidates": [{"content": {"parts": ["odd", {"text": "ok"}]}, "finishReason": "STOP"}]})
    assert orjson.loads(translate_response(body, CTX))["choices"][0]["message"]["content"] == "ok"
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "soons"}]
    err = translate_error(
        429, orjson.dumps({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": details}})
    )
    assert err.retry_after is None and err.message == "Gemini returned an error (RESOURCE_EXHAUSTED)"
    with pytest.raises(StreamError) as info:
        GeminiStream(ChatEncoder(CTX), CTX).feed(b"data: " + b"x" * (17 * 1024 * 1024))
    assert info.value.message.startswith("the Gemini stream could not be decoded")


def test_endless_non_sse_data_is_cut_off() -> None:
    translator = GeminiStream(ChatEncoder(CTX), CTX)
    line = b'{"not": "sse", "padding": "' + b"x" * 1000 + b'"\n'
    with pytest.raises(StreamError) as info:
        for _ in range(100):
            translator.feed(line)
    assert info.value.message.startswith("the Gemini stream sent data outside SSE framing")


def test_lines_after_a_raw_error_body_are_ignored() -> None:
    data = load("error-raw-body") + b"trailing junk\r\n{\n"
    acc = accumulate(run_every_split(USAGE, data), USAGE)
    assert acc["error"]["message"] == "The model is overloaded. Please try again later."
