"""The OpenAI-compatible pass-through translator, alone (sans-IO)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import proxy.protocols.openai_chat.passthrough as openai_module
import proxy.protocols.openai_chat.template as template_module
from proxy.config import ProviderConfig, build
from proxy.errors import StreamError, UpstreamError
from proxy.protocols.openai_chat.encode import error_body
from proxy.protocols.openai_chat.passthrough import (
    PassthroughTranslator,
    translate_error,
    translate_response,
    usage_of,
)
from proxy.protocols.stream import StreamContext, Usage
from proxy.providers.openai import build_request
from tests.support import CTX, FIXTURES, assert_same_every_split, run_translator

# The goldens are what a client that asked for usage sees (stream_options.include_usage).
USAGE_CTX = replace(CTX, include_usage=True)


def new_translator() -> PassthroughTranslator:
    return PassthroughTranslator(USAGE_CTX)


OPENAI_RECORDINGS = sorted((FIXTURES / "openai").glob("*.sse"))
NORMALISED = sorted(p for d in ("mistral", "groq", "deepseek") for p in (FIXTURES / d).glob("*.chunks.jsonl"))


def framed(path: Path) -> bytes:
    """A ``.chunks.jsonl`` recording with its SSE framing restored, as the provider sent it."""
    lines = [line for line in path.read_bytes().split(b"\n") if line.strip()]
    return b"".join(b"data: " + line + b"\n\n" for line in lines) + b"data: [DONE]\n\n"


def accumulate(output: bytes) -> dict[str, object]:
    """What an OpenAI SDK client would assemble from the frames."""
    content, reasoning, calls, finish, usage = [], [], {}, None, None
    for frame in output.split(b"\n\n"):
        if not frame or frame == b"data: [DONE]":
            continue
        chunk = orjson.loads(frame.removeprefix(b"data: "))
        usage = chunk.get("usage") or usage
        for choice in chunk["choices"]:
            delta = choice["delta"]
            content.append(delta.get("content") or "")
            reasoning.append(delta.get("reasoning_content") or "")
            for call in delta.get("tool_calls") or ():
                slot = calls.setdefault(call["index"], {"id": None, "name": "", "arguments": ""})
                slot["id"] = call.get("id") or slot["id"]
                slot["name"] += call.get("function", {}).get("name") or ""
                slot["arguments"] += call.get("function", {}).get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    return {
        "content": "".join(content),
        "reasoning": "".join(reasoning),
        "calls": calls,
        "finish": finish,
        "usage": usage,
    }


@pytest.mark.parametrize("path", OPENAI_RECORDINGS, ids=lambda p: p.name)
def test_openai_recordings_pass_through_byte_for_byte(path: Path) -> None:
    data = path.read_bytes()
    out = assert_same_every_split(new_translator, data)
    assert out == data


@pytest.mark.parametrize("path", NORMALISED, ids=lambda p: p.name)
def test_deviating_providers_are_normalised_to_golden_output(path: Path) -> None:
    out = assert_same_every_split(new_translator, framed(path))
    expected = path.with_name(path.name.replace(".chunks.jsonl", ".expected.sse")).read_bytes()
    assert out == expected


def test_mistral_tool_call_gets_index_type_and_separate_usage_chunk() -> None:
    out = run_translator(new_translator(), [framed(FIXTURES / "mistral" / "mistral-tool-call.chunks.jsonl")])
    frames = [orjson.loads(f[6:]) for f in out.split(b"\n\n") if f.startswith(b"data: {")]
    call = frames[1]["choices"][0]["delta"]["tool_calls"][0]
    assert (call["index"], call["type"], call["id"]) == (0, "function", "gSIMJiOkT")
    assert "usage" not in frames[1]
    assert frames[-1]["choices"] == [] and frames[-1]["usage"]["completion_tokens"] == 22
    assert orjson.loads(accumulate(out)["calls"][0]["arguments"]) == {"location": "San Francisco"}


def test_groq_usage_is_lifted_from_x_groq() -> None:
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "x_groq": {"id": "req", "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}},
    }
    data = b"data: " + orjson.dumps(chunk) + b"\n\ndata: [DONE]\n\n"
    out = run_translator(new_translator(), [data])
    assert accumulate(out)["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    last = orjson.loads(out.split(b"\n\n")[1][6:])
    assert last["choices"] == []


def test_model_length_becomes_length_and_reasoning_is_mirrored() -> None:
    chunks = [
        {"id": "c", "choices": [{"index": 0, "delta": {"reasoning": "hmm"}, "finish_reason": None}]},
        {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "model_length"}]},
    ]
    data = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    result = accumulate(run_translator(new_translator(), [data]))
    assert result["finish"] == "length"
    assert result["reasoning"] == "hmm"


def test_crlf_framed_upstream_is_reframed_with_lf() -> None:
    data = (FIXTURES / "openai" / "chat-text-stream.sse").read_bytes()
    crlf = data.replace(b"\n", b"\r\n")
    out = assert_same_every_split(new_translator, crlf)
    assert out == data


def test_upstream_comments_are_not_forwarded_and_do_not_break_framing() -> None:
    data = (FIXTURES / "openai" / "chat-text-stream.sse").read_bytes()
    with_comments = b": OPENROUTER PROCESSING\n\n" + data.replace(b"\n\ndata: ", b"\n\n: ping\n\ndata: ", 3)
    assert assert_same_every_split(new_translator, with_comments) == data


def test_stream_without_done_is_truncated() -> None:
    data = (FIXTURES / "openai" / "chat-text-stream.sse").read_bytes()
    cut = data[: data.index(b"data: [DONE]")]
    usage = cut[cut.rindex(b"data: {") :]
    translator = new_translator()
    assert translator.feed(cut) == cut.removesuffix(usage)  # usage waits for [DONE]
    with pytest.raises(StreamError, match="truncated"):
        translator.finish()


def test_stream_cut_mid_event_is_truncated() -> None:
    data = (FIXTURES / "openai" / "chat-text-stream.sse").read_bytes()
    translator = new_translator()
    out = translator.feed(data[:500])
    assert data.startswith(out) and len(out) < 500
    with pytest.raises(StreamError):
        translator.finish()


def test_error_frame_mid_stream_raises_with_frames_before_it() -> None:
    good = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n'
    bad = b'data: {"error":{"message":"model overloaded","type":"server_error","code":"overloaded"}}\n\n'
    translator = new_translator()
    with pytest.raises(StreamError) as info:
        translator.feed(good + bad)
    assert info.value.output == good
    assert info.value.message == "model overloaded"
    assert info.value.code == "overloaded"


def test_vllm_error_object_raises() -> None:
    with pytest.raises(StreamError, match="boom"):
        new_translator().feed(b'data: {"object":"error","message":"boom","type":"BadRequestError"}\n\n')


def test_malformed_json_in_a_frame_that_needs_a_look_raises() -> None:
    with pytest.raises(StreamError, match="malformed"):
        new_translator().feed(b'data: {"x_groq": nope}\n\n')


def test_content_mentioning_error_in_quotes_passes_untouched() -> None:
    frame = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"\\"error\\" said"},"finish_reason":null}]}\n\n'
    assert new_translator().feed(frame) == frame


def test_nothing_after_done_is_forwarded() -> None:
    translator = new_translator()
    assert translator.feed(b"data: [DONE]\n\ndata: {}\n\n") == b"data: [DONE]\n\n"
    assert translator.done
    assert translator.feed(b"data: {}\n\n") == b""
    assert translator.finish() == b""


def test_oversized_event_is_an_error_not_unbounded_growth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("proxy.protocols.openai_chat.passthrough.MAX_EVENT_BYTES", 1000)
    translator = new_translator()
    with pytest.raises(StreamError, match="exceeds"):
        for _ in range(20):
            translator.feed(b"data: " + b"x" * 100)


def test_build_request_rewrites_only_model_and_uses_provider_key() -> None:
    config = build(
        {
            "providers": {
                "up": {"kind": "openai", "base_url": "http://h/v1/", "api_key": "sk-up", "headers": {"X-Extra": "1"}}
            }
        },
        "<t>",
        {},
    )
    body = {"model": "up/org/model", "messages": [{"role": "user", "content": "hi"}], "stream": True, "seed": 3}
    req = build_request(body, "org/model", config.providers["up"], CTX)
    assert req.url == "http://h/v1/chat/completions"
    assert req.headers["Authorization"] == "Bearer sk-up"
    assert req.headers["X-Extra"] == "1"
    sent = {**body, "model": "org/model", "stream_options": {"include_usage": True}}  # usage always asked
    assert orjson.loads(req.body) == sent
    assert body["model"] == "up/org/model" and "stream_options" not in body  # the client's body is not mutated


def test_build_request_asks_a_stream_for_usage_keeping_the_client_stream_options() -> None:
    provider = build({"providers": {"up": {"kind": "openai", "base_url": "http://h/v1"}}}, "<t>", {}).providers["up"]
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    own = {**chat, "stream": True, "stream_options": {"include_obfuscation": False, "include_usage": False}}
    sent = orjson.loads(build_request(own, "m", provider, CTX).body)
    assert sent["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert own["stream_options"] == {"include_obfuscation": False, "include_usage": False}
    assert "stream_options" not in orjson.loads(build_request(chat, "m", provider, CTX).body)  # not a stream
    # stream_usage = false: servers that reject stream_options get the client's body as it was.
    quiet = replace(provider, options={**provider.options, "stream_usage": False})
    assert orjson.loads(build_request(own, "m", quiet, CTX).body) == own
    assert "stream_options" not in orjson.loads(build_request({**chat, "stream": True}, "m", quiet, CTX).body)


# -- usage: always read, sent only to clients that asked ---------------------------------------


def _usage_reads(data: bytes, ctx: StreamContext, provider: ProviderConfig | None = None) -> tuple[bytes, Usage | None]:
    """The output (the same for every split of ``data``) and the usage read."""
    translators: list[PassthroughTranslator] = []

    def make() -> PassthroughTranslator:
        translators.append(PassthroughTranslator(ctx, provider))
        return translators[-1]

    out = assert_same_every_split(make, data)
    assert all(t.usage == translators[0].usage for t in translators)
    return out, translators[0].usage


@pytest.mark.parametrize(
    ("path", "usage"),
    [
        (FIXTURES / "mistral" / "mistral-tool-call.chunks.jsonl", Usage(124, 22)),
        (FIXTURES / "groq" / "groq-tool-call-x-groq-usage.chunks.jsonl", Usage(210, 15)),
        (FIXTURES / "deepseek" / "deepseek-reasoning-content-tool-call.chunks.jsonl", Usage(374, 61, 256, None, 17)),
    ],
    ids=lambda v: getattr(v, "name", ""),
)
def test_usage_is_read_and_reaches_only_clients_that_asked(path: Path, usage: Usage) -> None:
    data = framed(path)
    golden = path.with_name(path.name.replace(".chunks.jsonl", ".expected.sse")).read_bytes()
    asked, read = _usage_reads(data, USAGE_CTX)
    assert asked == golden and read == usage
    frames = [orjson.loads(f[6:]) for f in asked.split(b"\n\n") if f.startswith(b"data: {")]
    assert [f["choices"] == [] for f in frames].count(True) == 1 and frames[-1]["choices"] == []
    plain, read = _usage_reads(data, CTX)
    assert read == usage
    frames = [orjson.loads(f[6:]) for f in plain.split(b"\n\n") if f.startswith(b"data: {")]
    assert all(f["choices"] and f.get("usage") is None for f in frames)  # removed, not split off
    assert accumulate(plain) == {**accumulate(asked), "usage": None}


@pytest.mark.parametrize("normalise", [True, False])
def test_openai_usage_chunk_is_read_and_dropped_for_clients_that_did_not_ask(normalise: bool) -> None:
    data = (FIXTURES / "openai" / "chat-text-stream.sse").read_bytes()
    provider = EXACT if not normalise else PRESETS.providers["openrouter"]
    usage_frame = data[data.rindex(b"data: {") : data.rindex(b"data: [DONE]")]
    assert b'"choices":[]' in usage_frame
    asked, read = _usage_reads(data, USAGE_CTX, provider)
    assert asked == data and read == Usage(14, 47)
    plain, read = _usage_reads(data, CTX, provider)
    assert plain == data.replace(usage_frame, b"") and read == Usage(14, 47)


def test_usage_details_map_to_cached_and_reasoning_tokens() -> None:
    usage = {
        "prompt_tokens": 9,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    assert usage_of(usage) == Usage(9, 5, cached_tokens=4, reasoning_tokens=2)
    assert usage_of({"total_tokens": 3, "prompt_tokens": "x"}) == Usage(0, 0)


def test_exact_mode_parses_only_the_usage_frame_never_usage_null(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[object] = []
    real = PassthroughTranslator._rewrite
    monkeypatch.setattr(
        PassthroughTranslator, "_rewrite", lambda self, chunk, frame: parsed.append(chunk) or real(self, chunk, frame)
    )
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    frames = [_obfuscated({"content": t}, i) for i, t in enumerate(("Hel", "lo", "!"))]
    last = b'data: {"id":"c","choices":[],"usage":' + orjson.dumps(usage) + b',"obfuscation":"z"}\n\n'
    data = b"".join(frames) + last + b"data: [DONE]\n\n"
    assert b'"usage":null' in frames[0]
    translator = PassthroughTranslator(CTX, EXACT)
    assert run_translator(translator, [data]) == b"".join(frames) + b"data: [DONE]\n\n"
    assert parsed == [orjson.loads(last[6:])] and translator.usage == Usage(3, 2)


def test_non_stream_body_passes_through_or_is_normalised() -> None:
    plain = (
        b'{"id":"x","object":"chat.completion","choices":[{"index":0,'
        b'"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}'
    )
    assert translate_response(plain, CTX) is plain
    mistral = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "model_length",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "abcdefghi", "function": {"name": "f", "arguments": "{}"}}],
                },
            }
        ]
    }
    fixed = orjson.loads(translate_response(orjson.dumps(mistral), CTX))
    assert fixed["choices"][0]["finish_reason"] == "length"
    assert fixed["choices"][0]["message"]["tool_calls"][0]["type"] == "function"


@pytest.mark.parametrize(
    ("status", "body", "message", "etype"),
    [
        (
            429,
            b'{"error":{"message":"Rate limit","type":"requests","code":"rate_limit_exceeded"}}',
            "Rate limit",
            "requests",
        ),
        (400, b'{"object":"error","message":"bad field","type":"BadRequestError"}', "bad field", "BadRequestError"),
        (422, b'{"detail":"unprocessable"}', "unprocessable", "invalid_request_error"),
        (502, b"<html>Bad Gateway</html>", "upstream returned HTTP 502: <html>Bad Gateway</html>", "api_error"),
        (500, b"", "upstream returned HTTP 500", "api_error"),
    ],
)
def test_upstream_errors_become_openai_errors(status: int, body: bytes, message: str, etype: str) -> None:
    err = translate_error(status, body)
    assert isinstance(err, UpstreamError)
    assert (err.status, err.message, err.type) == (status, message, etype)
    assert set(orjson.loads(error_body(err))["error"]) == {"message", "type", "param", "code"}


def test_frames_after_the_learnt_template_are_still_checked() -> None:
    """The content-frame fast path must never let a deviating frame through untouched."""
    head = b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
    plain = head + b'"delta":{"content":"hi"},"finish_reason":null}]}\n\n'
    quoted = head + b'"delta":{"content":"say \\"hi\\""},"finish_reason":null}]}\n\n'
    reasoning = head + b'"delta":{"content":"x","reasoning":"why"},"finish_reason":null}]}\n\n'
    sneaky = head + b'"delta":{"content":"a"},"finish_reason":"model_length"}]}\n\n'
    translator = new_translator()
    assert translator.feed(plain) == plain  # learns the template
    assert translator.feed(plain) == plain  # fast path
    assert translator.feed(quoted) == quoted
    assert orjson.loads(translator.feed(reasoning)[6:])["choices"][0]["delta"]["reasoning_content"] == "why"
    assert orjson.loads(translator.feed(sneaky)[6:])["choices"][0]["finish_reason"] == "length"


def test_done_inside_content_does_not_end_the_stream() -> None:
    frame = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"data: [DONE] is the end marker"}}]}\n\n'
    translator = new_translator()
    assert translator.feed(frame + frame) == frame + frame
    assert not translator.done


def test_frames_that_need_no_rewrite_keep_their_exact_bytes_in_a_read_with_one_that_does() -> None:
    # Spacing no serialiser of ours would produce: any JSON round-trip would show in the output.
    plain = b'data: {"id": "c", "choices": [{"index": 0, "delta": {"content": "hi"}}]}\n\n'
    usage = b'data: {"id": "c", "choices":[], "usage":{"prompt_tokens": 3, "completion_tokens": 2}}\n\n'
    mistral = {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "model_length"}]}
    deviating = b"data: " + orjson.dumps(mistral) + b"\n\n"
    data = plain + plain + deviating + plain + usage + b"data: [DONE]\n\n"
    out = assert_same_every_split(new_translator, data)
    rewritten = b'data: {"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"length"}]}\n\n'
    assert out == plain + plain + rewritten + plain + usage + b"data: [DONE]\n\n"


def test_usage_riding_on_a_chunk_with_choices_is_split_off_and_only_the_last_usage_is_sent() -> None:
    chunk = {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"total_tokens": 5}}
    data = b'data: {"id":"c","choices":[],"usage":{"total_tokens":1}}\n\n'  # a first, OpenAI-shaped one
    data += b"data: " + orjson.dumps(chunk) + b"\n\ndata: [DONE]\n\n"
    out = assert_same_every_split(new_translator, data)
    frames = [orjson.loads(f[6:]) for f in out.split(b"\n\n") if f.startswith(b"data: {")]
    assert [f["choices"] == [] for f in frames] == [False, True]
    assert "usage" not in frames[0] and frames[1]["usage"] == {"total_tokens": 5}


_PLAIN_TEXT = st.lists(
    st.one_of(
        st.text(max_size=8),
        st.sampled_from(['"', "\\", '\\"', "\\\\", '\\\\"', "model_length", '"error":', '"usage":{', "\n\n"]),
    ),
    max_size=4,
).map("".join)


def _chunk_frame(delta: dict[str, object], finish: str | None = None, **extra: object) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [choice], **extra}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


_DEVIATING = st.sampled_from(
    [
        _chunk_frame({}, "model_length"),
        _chunk_frame({"tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{}"}}]}),
        _chunk_frame({"content": "x"}, usage={"total_tokens": 3}),
        _chunk_frame({"reasoning": "r"}),
        # Shaped like a content frame at both ends, with a trigger between them.
        _chunk_frame({"content": "a\\", "reasoning": "b"}),
        _chunk_frame({"content": 'q"', "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{}"}}]}),
        # The same with OpenAI's padding, and padding hiding a trigger (escaped: harmless).
        _chunk_frame({"content": "a", "reasoning": "b"}, usage=None, obfuscation="xyz"),
        _chunk_frame({}, "model_length", usage=None, obfuscation="q"),
        _chunk_frame({"content": "a"}, usage=None, obfuscation='p"usage":{'),
        _chunk_frame({"content": "a"}, usage={"total_tokens": 3}, obfuscation="abc"),
    ]
)


def assert_whole_frame_reads_match_byte_by_byte(data: bytes, sizes: list[int]) -> None:
    """``data`` read as groups of whole frames (``sizes`` frames per read, cycled) gives the
    output of the same bytes fed one at a time, where no fast path can apply."""
    frame_list = [f + b"\n\n" for f in data.split(b"\n\n") if f]
    reads, i = [], 0
    for n in sizes * len(frame_list):
        if i >= len(frame_list):
            break
        reads.append(b"".join(frame_list[i : i + n]))
        i += n
    reference = run_translator(new_translator(), [data[k : k + 1] for k in range(len(data))])
    assert run_translator(new_translator(), reads) == reference


@settings(max_examples=200, deadline=None)
@given(
    frames=st.lists(
        st.one_of(
            _PLAIN_TEXT.map(lambda t: _chunk_frame({"content": t})),
            _PLAIN_TEXT.map(lambda t: _chunk_frame({"role": "assistant", "content": t})),
            st.tuples(_PLAIN_TEXT, _PLAIN_TEXT).map(
                lambda tp: _chunk_frame({"content": tp[0]}, usage=None, obfuscation=tp[1] or "p")
            ),
            _DEVIATING,
        ),
        max_size=12,
    ),
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=12),
)
def test_reads_of_whole_frames_give_the_same_output_as_byte_by_byte(frames: list[bytes], sizes: list[int]) -> None:
    # Upstreams usually send whole frames, one or several per read: that is where the template
    # fast path applies. Byte by byte it never does, so that is the reference.
    data = _chunk_frame({"role": "assistant", "content": ""}) + b"".join(frames) + b"data: [DONE]\n\n"
    assert_whole_frame_reads_match_byte_by_byte(data, sizes)


_PADS = st.one_of(st.text("aZ09", min_size=1, max_size=16), _PLAIN_TEXT)


@settings(max_examples=200, deadline=None)
@given(
    first=_PADS,
    frames=st.lists(
        st.one_of(
            st.tuples(_PLAIN_TEXT, _PADS).map(
                lambda tp: _chunk_frame({"content": tp[0]}, usage=None, obfuscation=tp[1])
            ),
            _DEVIATING,
        ),
        max_size=12,
    ),
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=12),
)
def test_padded_reads_of_whole_frames_give_the_same_output_as_byte_by_byte(
    first: str, frames: list[bytes], sizes: list[int]
) -> None:
    # OpenAI's shape, which a normalising provider may forward: every chunk padded.
    head = _chunk_frame({"role": "assistant", "content": ""}, usage=None, obfuscation=first)
    learn = _chunk_frame({"content": "Hi"}, usage=None, obfuscation="abc")
    data = head + learn + b"".join(frames) + b"data: [DONE]\n\n"
    assert_whole_frame_reads_match_byte_by_byte(data, sizes)


def test_padded_reads_of_plain_content_frames_skip_the_trigger_search(monkeypatch: pytest.MonkeyPatch) -> None:
    searched: list[bytes] = []
    real = openai_module._first_trigger
    monkeypatch.setattr(openai_module, "_first_trigger", lambda out: searched.append(out) or real(out))
    texts = ("The ", 'a "quote" ', "back\\slash\\", "fox ")
    pads = ("Qx", "a", "0123456789abcdef", "zz")
    f0, f1, f2, f3 = (_chunk_frame({"content": t}, usage=None, obfuscation=p) for t, p in zip(texts, pads, strict=True))
    sneaky = _chunk_frame({"content": "x", "reasoning": "r"}, usage=None, obfuscation="pad")
    done = b"data: [DONE]\n\n"
    reads = [f0, f1 + f2, f3[:30], f3[30:], sneaky, done]
    out = run_translator(new_translator(), reads)
    mirrored = _chunk_frame({"content": "x", "reasoning": "r", "reasoning_content": "r"}, usage=None, obfuscation="pad")
    assert out == f0 + f1 + f2 + f3 + mirrored + done
    # f0 teaches the padded template; then only the reasoning frame is searched.
    assert searched == [f0, sneaky]


def test_a_padded_frame_must_hold_the_whole_suffix_not_only_as_many_quotes() -> None:
    learn = _chunk_frame({"content": "Hi"}, usage=None, obfuscation="abc")
    # Valid JSON with the template's start, end and quote count, but a trigger where part of
    # the suffix should be: "reasoning":"r" (4 quotes) instead of logprobs and usage (4 too).
    odd = learn.replace(b'"Hi"},"logprobs":null,', b'"x","reasoning":"r"},').replace(b'"usage":null,', b"")
    assert odd.count(b'"') == learn.count(b'"') and orjson.loads(odd[6:])
    translator = new_translator()
    assert translator.feed(learn) == learn
    delta = orjson.loads(translator.feed(odd)[6:])["choices"][0]["delta"]
    assert delta["reasoning_content"] == "r"


@given(texts=st.lists(_PLAIN_TEXT, min_size=1, max_size=20), size=st.integers(1, 6))
def test_plain_content_frames_pass_byte_for_byte_in_reads_of_several_frames(texts: list[str], size: int) -> None:
    frames = [_chunk_frame({"content": t}) for t in texts]
    data = b"".join(frames) + b"data: [DONE]\n\n"
    reads = [b"".join(frames[i : i + size]) for i in range(0, len(frames), size)] + [b"data: [DONE]\n\n"]
    assert run_translator(new_translator(), reads) == data


def test_reads_of_plain_content_frames_skip_the_trigger_search(monkeypatch: pytest.MonkeyPatch) -> None:
    searched: list[bytes] = []
    real = openai_module._first_trigger
    monkeypatch.setattr(openai_module, "_first_trigger", lambda out: searched.append(out) or real(out))
    texts = ("The ", "quick ", 'a "quote" ', "back\\slash\\", "fox ", "jumps ")
    f0, f1, f2, f3, f4, f5 = (_chunk_frame({"content": t}) for t in texts)
    f6 = _chunk_frame({"content": "x", "reasoning": "r"})  # both template ends, a trigger between
    done = b"data: [DONE]\n\n"
    # Reads cut mid-frame too (the usual case under load): the frames they complete are checked.
    reads = [f0, f1 + f2, f3[:25], f3[25:] + f4 + f5[:7], f5[7:], f6, done]
    out = run_translator(new_translator(), reads)
    mirrored = _chunk_frame({"content": "x", "reasoning": "r", "reasoning_content": "r"})
    assert out == f0 + f1 + f2 + f3 + f4 + f5 + mirrored + done
    # The first read teaches the template; only the reasoning frame needs the search.
    assert searched == [f0, f6]


@given(st.lists(st.sampled_from([b"\\", b'"', b"a"]), max_size=40).map(b"".join))
def test_escaped_quotes_are_those_after_an_odd_run_of_backslashes(data: bytes) -> None:
    reference = sum(len(m.group(1)) % 2 for m in re.finditer(rb'(\\*)"', data))
    assert template_module.escaped_quotes(data) == reference


def test_a_stream_repeating_the_role_in_every_delta_also_skips_the_search(monkeypatch: pytest.MonkeyPatch) -> None:
    # OpenRouter's shape: {"delta":{"role":"assistant","content":...}} on every chunk.
    searched: list[bytes] = []
    real = openai_module._first_trigger
    monkeypatch.setattr(openai_module, "_first_trigger", lambda out: searched.append(out) or real(out))
    frames = [_chunk_frame({"role": "assistant", "content": t}) for t in ("", "Hel", "lo", ' "wo', 'rld"', "!")]
    done = b"data: [DONE]\n\n"
    reads = [frames[0] + frames[1], frames[2], frames[3] + frames[4], frames[5], done]
    assert run_translator(new_translator(), reads) == b"".join(reads)
    # The template is learnt from "Hel" (the empty-content frame teaches nothing, but fits it);
    # every read then passes on the template, and [DONE] needs no search.
    assert searched == [frames[1]]


# -- normalise = false: the upstream is OpenAI itself (the ``openai`` preset) ------------------

PRESETS = build({}, "<t>", {})
EXACT = PRESETS.providers["openai"]


def exact() -> PassthroughTranslator:
    return PassthroughTranslator(USAGE_CTX, EXACT)


def test_only_the_openai_preset_is_taken_as_exact() -> None:
    assert EXACT.options["normalise"] is False
    for name in ("mistral", "groq", "deepseek", "openrouter", "together", "xai", "fireworks", "ollama", "vllm"):
        assert "normalise" not in PRESETS.providers[name].options, name
    config = build({"providers": {"azure": {"kind": "openai", "base_url": "http://h", "normalise": False}}}, "<t>", {})
    assert config.providers["azure"].options["normalise"] is False
    # A Mistral shape through an exact translator passes as it came: the option is what decides.
    data = _chunk_frame({}, "model_length") + b"data: [DONE]\n\n"
    assert run_translator(PassthroughTranslator(CTX, config.providers["azure"]), [data]) == data
    assert run_translator(PassthroughTranslator(CTX, config.providers["mistral"]), [data]) != data


def test_normalise_must_be_a_boolean() -> None:
    from proxy.config import ConfigError

    with pytest.raises(ConfigError, match="'normalise' must be of type bool"):
        build({"providers": {"openai": {"normalise": "no"}}}, "<t>", {})


@pytest.mark.parametrize("path", OPENAI_RECORDINGS, ids=lambda p: p.name)
def test_openai_recordings_pass_an_exact_translator_byte_for_byte(path: Path) -> None:
    data = path.read_bytes()
    assert assert_same_every_split(exact, data) == data


def _obfuscated(delta: dict[str, object], i: int, finish: str | None = None) -> bytes:
    # OpenAI's frames today: usage null on every chunk, then a random-length padding string.
    pad = "aZ9q_-xY"[: 1 + i % 8] * (1 + i % 3)
    return _chunk_frame(delta, finish, usage=None, obfuscation=pad)


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(_PLAIN_TEXT, max_size=12), cuts=st.lists(st.integers(1, 400), min_size=1, max_size=12))
def test_exact_mode_passes_openai_frames_cut_anywhere(texts: list[str], cuts: list[int]) -> None:
    frames = [_obfuscated({"role": "assistant", "content": ""}, 0)]
    frames += [_obfuscated({"content": t}, i) for i, t in enumerate(texts, 1)]
    frames += [_obfuscated({}, 99, "stop"), b'data: {"id":"c","choices":[],"usage":{"total_tokens":3}}\n\n']
    data = b"".join(frames) + b"data: [DONE]\n\n"
    reads, i = [], 0
    for n in cuts * len(data):
        if i >= len(data):
            break
        reads.append(data[i : i + n])
        i += n
    # Content mentioning "error" or [DONE] takes the normalising way for that read: same bytes.
    translator = exact()
    assert run_translator(translator, reads) == data
    assert translator.done


def test_exact_mode_still_ends_the_stream_on_an_upstream_error() -> None:
    good = _obfuscated({"content": "Hel"}, 1)
    bad = b'data: {"error":{"message":"model overloaded","type":"server_error","code":"overloaded"}}\n\n'
    translator = exact()
    assert translator.feed(good) == good
    with pytest.raises(StreamError) as info:
        translator.feed(good + bad)
    assert info.value.output == good
    assert info.value.message == "model overloaded"


def test_exact_mode_forwards_nothing_after_done() -> None:
    translator = exact()
    frame = _obfuscated({"content": "x"}, 1)
    assert translator.feed(frame + b"data: [DONE]\n\n" + frame) == frame + b"data: [DONE]\n\n"
    assert translator.done
    assert translator.feed(frame) == b""
    assert translator.finish() == b""


def test_exact_mode_reports_a_stream_cut_before_done() -> None:
    translator = exact()
    translator.feed(_obfuscated({"content": "x"}, 1))
    with pytest.raises(StreamError, match="before \\[DONE\\]"):
        translator.finish()


def test_token_logprobs_are_not_taken_for_content_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    # "logprobs":{"content":[...]} holds the "content":[ of Magistral's content parts; such
    # frames are searched but pass unparsed, byte for byte.
    parsed: list[object] = []
    real = PassthroughTranslator._rewrite
    monkeypatch.setattr(
        PassthroughTranslator, "_rewrite", lambda self, chunk, frame: parsed.append(chunk) or real(self, chunk, frame)
    )
    data = (FIXTURES / "openai" / "chat-logprobs.sse").read_bytes()
    assert b'"logprobs":{"content":[{' in data
    assert run_translator(new_translator(), [data]) == data
    assert [set(chunk) >= {"usage"} for chunk in parsed] == [True]  # only the usage chunk
    # A delta's own content list in a frame with logprobs is still rewritten.
    both = _chunk_frame({"content": [{"type": "text", "text": "hi"}]})
    both = both.replace(b'"logprobs":null', b'"logprobs":{"content":[]}')
    delta = orjson.loads(new_translator().feed(both)[6:])["choices"][0]["delta"]
    assert delta["content"] == "hi" and len(parsed) == 2


def test_a_long_event_costs_time_linear_in_its_size() -> None:
    from tests.linear import assert_linear

    def make() -> Callable[[bytes], object]:
        return new_translator().feed

    # One content frame growing over a thousand reads: the unfinished frame must not be
    # re-copied or re-scanned by every read.
    head = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"'
    assert_linear(make, lambda n: head + b"x" * n + b'"}}]}\n\n')


def test_a_whole_body_that_is_an_error_object_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="boom") as info:
        translate_response(b'{"object":"error","message":"boom","type":"BadRequestError"}', CTX)
    assert info.value.status == 502 and info.value.type == "BadRequestError"
