"""OpenAI-compatible upstreams (OpenAI, Mistral, Groq, DeepSeek, OpenRouter, vLLM, Ollama, ...).

The stream passes through byte for byte: ``feed`` finds complete frames with ``bytes.rfind`` and
returns them untouched, with no JSON parse. Only frames that deviate from OpenAI's shape are
parsed and rewritten, and they are found by a byte search on the read before any parse:

- tool-call deltas without ``index``/``type`` (Mistral) get a per-stream index and ``"function"``;
- ``finish_reason: "model_length"`` (Mistral) becomes ``length``;
- usage under ``x_groq.usage`` (Groq) is lifted to the top level;
- usage riding on a chunk that still has choices (Mistral, DeepSeek) is split off into the
  OpenAI final usage chunk (``choices: []``);
- ``delta.content`` as a list of ``thinking``/``text`` parts (Magistral) becomes
  ``reasoning_content`` + ``content``; ``delta.reasoning`` (Groq, OpenRouter) is mirrored into
  ``reasoning_content``;
- an error object mid-stream (``{"error": ...}``, vLLM's ``{"object": "error"}``) ends the
  stream as a ``StreamError``.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.config import ProviderConfig
from proxy.errors import ProxyError, StreamError, UpstreamError, error_type
from proxy.protocols.stream import StreamContext, Usage
from proxy.providers.base import JSONBody
from proxy.wire.sse import SSEDecoder, SSEError

__all__ = ["PassthroughTranslator", "translate_error", "translate_response"]

MAX_EVENT_BYTES = 16 * 1024 * 1024

# Byte patterns that mark a frame needing a look. A read matching none of them passes untouched.
_TRIGGERS = (
    b'"tool_calls"',
    b'"usage":{',
    b'"usage": {',
    b"model_length",
    b'"x_groq"',
    b'"error"',
    b'"content":[',
    b'"content": [',
    b'"reasoning":',
)
# Token logprobs hold a "content" list too; only a delta's content list needs a rewrite.
_CONTENT_LISTS = ((b'"content":[', b'"logprobs":{"content":['), (b'"content": [', b'"logprobs": {"content": ['))
# The triggers that always need a parse; usage, tool_calls and content lists are decided by
# ``_needs_parse``.
_PARSE_TRIGGERS = tuple(
    t for t in _TRIGGERS if t not in (b'"tool_calls"', b'"usage":{', b'"usage": {', *(p for p, _ in _CONTENT_LISTS))
)
_DONE = b"data: [DONE]"
_FRAME_DONE = b"\n\n" + _DONE  # at a frame start, never inside a content string
# OpenAI's padding: a random-length string closing every chunk (see ``_learn``).
_PADDING_KEY = b',"obfuscation":"'
_PADDED_END = b'"}\n\n'
# Where a content frame's text starts: OpenAI's shape, and the one that repeats the role in
# every delta (OpenRouter). A frame with empty content (OpenAI's role frame) teaches nothing.
_CONTENT_KEYS = (b'"delta":{"content":"', b'"delta":{"role":"assistant","content":"')


class PassthroughTranslator:
    """OpenAI frames in, the same frames out; see the module docstring for the exceptions.

    With the provider option ``normalise = false`` (the ``openai`` preset's), the upstream is
    taken at its word that it speaks OpenAI's exact shape: the whole frames of a read are only
    searched for ``"error"`` and ``[DONE]``, and pass untouched otherwise. A read holding
    ``"error"`` goes the normalising way, so a mid-stream error still ends the stream.
    """

    __slots__ = ("_buf", "_decoder", "_end", "_exact", "_next_tool", "_prefix", "_quotes", "_suffix", "done", "usage")

    def __init__(self, ctx: StreamContext | None = None, provider: ProviderConfig | None = None) -> None:
        self._exact = provider is not None and provider.options.get("normalise") is False
        self._buf = b""
        self._decoder: SSEDecoder | None = None  # only for upstreams that frame with CR/CRLF
        self._next_tool = 0
        # The stream's frame template, learnt from its first plain content frame: every text
        # before the content string, and every text after it (up to and with the blank line).
        # A later frame with the same two ends and only escaped quotes between them holds
        # nothing but content, so it needs no trigger search (see ``_plain``). OpenAI pads each
        # chunk with a string of random length at its end (``"obfuscation":"..."}``): then the
        # suffix stops after that key, ``_end`` is the frame's last text, and the padding
        # between them is a second free string, like the content.
        self._prefix: bytes | None = None
        self._suffix = b""
        self._end = b""
        self._quotes = 0  # quotes in prefix + suffix + end
        self.done = False
        self.usage: Usage | None = None

    def feed(self, data: bytes) -> bytes:
        # Fast path: a read made only of whole content frames shaped like the stream's earlier
        # ones needs no trigger search. Nothing is buffered, and the frames are whole.
        if self._prefix is not None and not self._buf and self._plain(data):
            return data
        return self._feed(data)

    def _plain(self, frames: bytes) -> bool:
        """Whether ``frames`` (whole frames) are all template + content (see ``_learn``).

        Only C-speed byte counts, no loop over frames: a read may hold a whole stream.
        """
        prefix, suffix, end = self._prefix, self._suffix, self._end
        last = end or suffix
        if prefix is None or not (frames.startswith(prefix) and frames.endswith(last)):
            return False
        if not end and frames.find(b'"', len(prefix), len(frames) - len(suffix)) < 0:
            return True  # one frame, quote-free content
        # The frame's last text holds its only two newlines (JSON strings escape theirs), so
        # twice as many newlines as those means one per frame, at its end. The prefix can
        # stand only at a frame start (its quotes would be escaped inside a string): as many
        # as there are frames means one per frame. A padded template's suffix, quotes and all,
        # can stand only outside strings too: one per frame. Then every quote beyond the
        # template's must be escaped, inside the content (or the padding).
        newlines = frames.count(b"\n")
        count = frames.count(last)
        if newlines != 2 * count or frames.count(prefix) != count or (end and frames.count(suffix) != count):
            return False
        extra = frames.count(b'"') - count * self._quotes
        if extra <= 0 or b"\\" not in frames:
            return extra == 0
        return _escaped_quotes(frames) == extra

    def _feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        if self._decoder is not None:
            return self._feed_decoded(data)
        if self._buf:
            data = self._buf + data
        end = data.rfind(b"\n\n")
        if end < 0:
            if b"\r" in data:  # CR/CRLF framing never contains a bare LF LF
                self._buf = b""
                return self._feed_decoded(data)
            if len(data) > MAX_EVENT_BYTES:
                raise StreamError(f"an upstream event exceeds {MAX_EVENT_BYTES} bytes")
            self._buf = data
            return b""
        end += 2
        if end == len(data):
            out, self._buf = data, b""
        else:
            out, self._buf = data[:end], data[end:]
        if self._exact:
            if b'"error"' not in out:
                done_at = _done_index(out)
                if done_at < 0:
                    return out
                self.done = True
                return out[:done_at] + b"data: [DONE]\n\n"
        elif self._prefix is not None and self._plain(out):
            return out
        if out[:1] == b":" or b"\n:" in out:
            # Upstream keep-alive comments (": OPENROUTER PROCESSING") are not forwarded: before the
            # first frame they would start the client response and rule out a fallback; the
            # proxy's own keep-alive (server.keepalive_s) covers silence towards the client.
            out = _strip_comments(out)
            if not out:
                return b""
        done_at = _done_index(out)
        if done_at >= 0:
            out = out[:done_at] + b"data: [DONE]\n\n"
        if self._prefix is None:
            self._learn(out)
        out = self._scan(out)
        if done_at >= 0:
            self.done = True
            self._prefix = None  # nothing passes after [DONE]
        return out

    def _scan(self, out: bytes) -> bytes:
        """``out`` (whole frames) with the frames that hold a trigger normalised.

        A big read (a whole stream arriving at once) is mostly a run of template frames between
        a few others (the role frame first; finish, usage and [DONE] last): only those few are
        searched.
        """
        prefix = self._prefix
        if prefix is not None:
            start = out.find(prefix)
            if self._end:  # the run ends with the frame of the last padded suffix
                at = out.rfind(self._suffix)
                end = out.find(b"\n\n", at) + 2 if at >= 0 else -1
            else:
                end = out.rfind(self._suffix) + len(self._suffix)
            if 0 <= start < end and (start == 0 or out[start - 2 : start] == b"\n\n") and self._plain(out[start:end]):
                head = self._search(out[:start]) if start else b""
                if end == len(out):
                    return head + out[start:end]
                try:
                    return head + out[start:end] + self._search(out[end:])
                except StreamError as exc:
                    exc.output = head + out[start:end] + exc.output
                    raise
        return self._search(out)

    def _search(self, out: bytes) -> bytes:
        """``out`` (whole frames), normalised from the first frame that holds a trigger on."""
        first = _first_trigger(out)
        if first < 0:
            return out
        # Frames before that one pass as they are; from it on, each is looked at alone.
        boundary = out.rfind(b"\n\n", 0, first)
        return self._normalise(out, boundary + 2 if boundary >= 0 else 0)

    def _learn(self, out: bytes) -> None:
        """Remember the text before and after the content string of the first content frame
        in ``out`` (whole frames), when that frame holds no trigger (see ``_plain``)."""
        for key in _CONTENT_KEYS:
            at = out.find(key)
            while at >= 0 and out[at + len(key) : at + len(key) + 1] == b'"':  # empty content
                at = out.find(key, at + len(key))
            if at >= 0:
                break
        else:
            return
        boundary = out.rfind(b"\n\n", 0, at)
        begin = boundary + 2 if boundary >= 0 else 0  # where the frame starts
        frame = out[begin : out.find(b"\n\n", at) + 2]
        start = at - begin + len(key)
        end = start
        while True:  # the closing quote: one not preceded by an odd run of backslashes
            end = frame.find(b'"', end)
            if end < 0:
                return
            backslashes = len(frame[start:end]) - len(frame[start:end].rstrip(b"\\"))
            if backslashes % 2 == 0:
                break
            end += 1
        if b"\\" in frame[:start] or b"\\" in frame[end:] or _first_trigger(frame) >= 0:
            # Backslashes in the ends would spoil ``_plain``'s count of escaped quotes, and a
            # trigger in them would pass unnoticed in every later frame.
            return
        prefix, suffix, last = frame[:start], frame[end:], b""
        pad = suffix.find(_PADDING_KEY)
        if pad >= 0 and suffix.endswith(_PADDED_END):
            suffix, last = suffix[: pad + len(_PADDING_KEY)], _PADDED_END
        self._prefix, self._suffix, self._end = prefix, suffix, last
        self._quotes = prefix.count(b'"') + suffix.count(b'"') + last.count(b'"')

    def finish(self) -> bytes:
        if self._decoder is not None and not self.done:
            try:
                tail = self._frames(self._decoder.close())
            except SSEError:
                tail = b""
            if tail.endswith(b"data: [DONE]\n\n"):
                return tail
        if not self.done:
            raise StreamError("the upstream stream ended before [DONE]: the response is truncated")
        return b""

    def _feed_decoded(self, data: bytes) -> bytes:
        """Slow path for CR/CRLF-framed upstreams: decode events, re-frame them with LF."""
        if self._decoder is None:
            self._decoder = SSEDecoder(MAX_EVENT_BYTES)
            data, self._buf = self._buf + data, b""
        try:
            events = self._decoder.feed(data)
        except SSEError as exc:
            raise StreamError(f"malformed upstream stream: {exc}") from None
        return self._frames(events)

    def _frames(self, events: list[Any]) -> bytes:
        out = []
        for event in events:
            if event.data == b"[DONE]":
                out.append(b"data: [DONE]\n\n")
                self.done = True
                break
            out.append(b"data: " + event.data + b"\n\n")
        return self._normalise(b"".join(out)) if out else b""

    def _normalise(self, out: bytes, start: int = 0) -> bytes:
        """``out`` with each frame from ``start`` on rewritten if it deviates from OpenAI's shape."""
        frames = out[start:].split(b"\n\n") if start else out.split(b"\n\n")
        result: list[bytes] = [out[:start]] if start else []
        for frame in frames:
            if not frame:
                continue
            if frame.startswith(b"data: {") and _needs_parse(frame):
                try:
                    result.append(self._rewrite(orjson.loads(frame[6:])))
                except StreamError as exc:
                    exc.output = b"".join(result)
                    raise
                except orjson.JSONDecodeError:
                    raise StreamError("malformed JSON in the upstream stream", output=b"".join(result)) from None
                continue
            result.append(frame + b"\n\n")
        return b"".join(result)

    def _rewrite(self, chunk: Any) -> bytes:
        if not isinstance(chunk, dict):
            return b"data: " + orjson.dumps(chunk) + b"\n\n"
        if chunk.get("error") or chunk.get("object") == "error":
            raise _stream_error(chunk)
        groq = chunk.get("x_groq")
        if isinstance(groq, dict) and groq.get("usage") and not chunk.get("usage"):
            chunk["usage"] = groq["usage"]
        for choice in chunk.get("choices") or ():
            if choice.get("finish_reason") == "model_length":
                choice["finish_reason"] = "length"
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._fix_delta(delta)
        usage = chunk.get("usage")
        if usage and chunk.get("choices"):
            # OpenAI's shape: usage rides alone on a last chunk with no choices.
            head = {k: v for k, v in chunk.items() if k != "usage"}
            tail = {**{k: v for k, v in chunk.items() if k not in ("choices", "usage")}, "choices": [], "usage": usage}
            return b"data: " + orjson.dumps(head) + b"\n\ndata: " + orjson.dumps(tail) + b"\n\n"
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def _fix_delta(self, delta: JSONBody) -> None:
        for call in delta.get("tool_calls") or ():
            if not isinstance(call, dict):
                continue
            if "index" not in call:
                call["index"] = self._next_tool
            self._next_tool = max(self._next_tool, int(call["index"]) + 1)
            if "id" in call and "type" not in call:
                call["type"] = "function"
        _fix_content_parts(delta)


def _done_index(out: bytes) -> int:
    """Where a ``data: [DONE]`` frame starts in ``out`` (never inside a content string), or -1."""
    if out.startswith(_DONE):
        return 0
    at = out.find(_FRAME_DONE)
    return at + 2 if at >= 0 else -1


def _strip_comments(out: bytes) -> bytes:
    """``out`` without its comment-only frames (a JSON frame never holds a raw newline)."""
    return b"".join(frame + b"\n\n" for frame in out.split(b"\n\n") if frame and frame[:1] != b":")


def _escaped_quotes(data: bytes) -> int:
    """How many quotes in ``data`` follow an odd run of backslashes (escaped ones).

    Inclusion-exclusion over run lengths: quotes after at least 1 backslash, less those after
    at least 2, plus those after at least 3... Each count ends at a distinct quote, so the
    counts are exact, and they stop at the first zero (usually the second).
    """
    total, sign, needle = 0, 1, b'\\"'
    while (found := data.count(needle)) > 0:
        total += sign * found
        sign, needle = -sign, b"\\" + needle
    return total


def _first_trigger(out: bytes) -> int:
    """Where the first trigger of any kind starts in ``out``, or -1 (one byte search per trigger)."""
    first = -1
    for trigger in _TRIGGERS:
        at = out.find(trigger)
        if at >= 0 and (first < 0 or at < first):
            first = at
    return first


def _needs_parse(frame: bytes) -> bool:
    """Cheap checks that keep ordinary OpenAI frames (tool-argument fragments, the final usage
    chunk) unparsed."""
    # Every complete tool call has its own "index" besides the choice's: fewer means missing.
    if b'"tool_calls"' in frame and frame.count(b'"index"') <= frame.count(b'"function"'):
        return True
    for trigger in _PARSE_TRIGGERS:
        if trigger in frame:
            return True
    for parts, logprobs in _CONTENT_LISTS:
        if parts in frame and frame.count(parts) > frame.count(logprobs):
            return True
    # Usage is OpenAI's own shape on a chunk with no choices (Groq's x_groq is caught above).
    return (b'"usage":{' in frame or b'"usage": {' in frame) and b'"choices":[]' not in frame


def _fix_content_parts(delta: JSONBody) -> None:
    """Magistral content parts → content/reasoning_content; ``reasoning`` → ``reasoning_content``."""
    content = delta.get("content")
    if isinstance(content, list):
        text, thinking = [], []
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "thinking":
                inner = part.get("thinking")
                if isinstance(inner, list):
                    thinking += [p.get("text", "") for p in inner if isinstance(p, dict)]
                elif isinstance(inner, str):
                    thinking.append(inner)
            elif part.get("type") == "text":
                text.append(str(part.get("text", "")))
        delta["content"] = "".join(text) if text else None
        if thinking:
            delta["reasoning_content"] = "".join(thinking)
    reasoning = delta.get("reasoning")
    if isinstance(reasoning, str) and delta.get("reasoning_content") is None:
        delta["reasoning_content"] = reasoning


def _stream_error(chunk: JSONBody) -> StreamError:
    err = chunk.get("error", chunk)
    if not isinstance(err, dict):
        return StreamError(f"upstream error: {err}")
    message = str(err.get("message") or "the upstream reported an error mid-stream")
    code = err.get("code")
    return StreamError(message, type=str(err.get("type") or "upstream_error"), code=code if code is not None else None)


def translate_response(body: bytes, ctx: StreamContext) -> bytes:
    """A non-stream body, passed through unless it deviates from OpenAI's shape."""
    if not any(t in body for t in (b"model_length", b'"x_groq"', b'"tool_calls"', b'"content":[', b'"reasoning":')):
        return body
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if not isinstance(data, dict):
        return body
    groq = data.get("x_groq")
    if isinstance(groq, dict) and groq.get("usage") and not data.get("usage"):
        data["usage"] = groq["usage"]
    for choice in data.get("choices") or ():
        if choice.get("finish_reason") == "model_length":
            choice["finish_reason"] = "length"
        message = choice.get("message")
        if isinstance(message, dict):
            for call in message.get("tool_calls") or ():
                if isinstance(call, dict) and "type" not in call:
                    call["type"] = "function"
            _fix_content_parts(message)
    return orjson.dumps(data)


def translate_error(status: int, body: bytes) -> ProxyError:
    """An upstream error status as the OpenAI error shape, keeping the upstream's message."""
    default_type = error_type(status)
    message, etype, param, code = f"upstream returned HTTP {status}", default_type, None, None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:300].decode("utf-8", "replace").strip()
        if text:
            message = f"upstream returned HTTP {status}: {text}"
        return UpstreamError(message, status=status, type=etype)
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            message = str(err.get("message") or err.get("detail") or message)
            etype = str(err.get("type") or etype)
            param = err.get("param")
            code = err.get("code")
        elif isinstance(err, str):
            message = err
        if isinstance(data.get("detail"), str):
            message = data["detail"]
    return UpstreamError(message, status=status, type=etype, param=param, code=code)
