"""OpenAI-compatible upstreams (OpenAI, Mistral, Groq, DeepSeek, OpenRouter, vLLM, Ollama, ...).

The stream passes through byte for byte: ``feed`` finds complete frames with byte searches and
returns them untouched, with no JSON parse. Only frames that deviate from OpenAI's shape are
parsed and rewritten, found by a byte search on the read before any parse: the deviations are
the table in ``quirks``, and a stream's plain content frames skip even the search once their
shape is learnt (``template``).

Usage is read wherever the stream reports it (OpenAI's final ``choices: []`` chunk, usage
riding on a chunk with choices as Mistral and DeepSeek send it, Groq's ``x_groq.usage``) into
``PassthroughTranslator.usage``, and taken out of the stream. A client that asked for it
(``stream_options.include_usage``) gets it back as exactly one OpenAI usage chunk
(``choices: []``) just before ``[DONE]``; any other client gets no chunk without choices,
which OpenAI's SDKs and the code written on them do not expect.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.config import ProviderConfig
from proxy.errors import ProxyError, StreamError, UpstreamError, error_type
from proxy.protocols.openai_chat import quirks
from proxy.protocols.openai_chat.template import FrameTemplate
from proxy.protocols.stream import StreamContext, Usage
from proxy.wire.sse import Event, SSEDecoder, SSEError

JSONBody = dict[str, Any]

__all__ = [
    "MAX_EVENT_BYTES",
    "PassthroughTranslator",
    "passthrough_body",
    "translate_error",
    "translate_response",
    "usage_of",
]

MAX_EVENT_BYTES = 16 * 1024 * 1024

# Usage as an object (``"usage":null`` rides on every OpenAI chunk when usage is on: no trigger).
_USAGE_KEYS = (b'"usage":{', b'"usage": {')
# Byte patterns that mark a frame needing a look. A read matching none of them passes untouched.
_TRIGGERS = quirks.triggers() + _USAGE_KEYS
_DONE = b"data: [DONE]"
_DONE_FRAME = b"data: [DONE]\n\n"
_FRAME_DONE = b"\n\n" + _DONE  # at a frame start, never inside a content string
_OBJECT = b"data: {"
_NOT_A_CHUNK = "the upstream sent a frame that is not an OpenAI chunk (data: followed by a JSON object)"


class PassthroughTranslator:
    """OpenAI frames in, the same frames out; see the module docstring for the exceptions.

    With the provider option ``normalise = false`` (the ``openai`` preset's), the upstream is
    taken at its word that it speaks OpenAI's exact shape: the whole frames of a read are only
    searched for ``"error"``, the usage key and ``[DONE]``, and pass untouched otherwise. A
    read holding ``"error"`` goes the normalising way, so a mid-stream error still ends the
    stream; a frame holding the usage key is the one frame parsed.

    Reads cost time linear in their size: as in h11's ``ReceiveBuffer``, an unfinished frame
    waits in a ``bytearray`` and only each read's new bytes are searched for the frame end.
    """

    __slots__ = (
        "_buf",
        "_buf_cr",
        "_decoder",
        "_exact",
        "_fixing",
        "_include_usage",
        "_template",
        "_usage_frame",
        "done",
        "usage",
    )

    def __init__(self, ctx: StreamContext, provider: ProviderConfig | None = None) -> None:
        self._exact = provider is not None and provider.options.get("normalise") is False
        self._include_usage = ctx.include_usage
        self._buf = bytearray()  # an unfinished frame: no "\n\n" in it
        self._buf_cr = False  # whether it holds a CR (the upstream may frame with CR/CRLF)
        self._decoder: _Decoder | None = None  # only for upstreams that frame with CR/CRLF
        self._fixing = quirks.Fixing(stream=True)
        self._template: FrameTemplate | None = None
        self._usage_frame = b""  # the usage chunk to send before [DONE], when the client asked
        self.done = False
        self.usage: Usage | None = None

    def feed(self, data: bytes) -> bytes:
        # Fast path: a read made only of whole content frames shaped like the stream's earlier
        # ones needs no trigger search. Nothing is buffered, and the frames are whole.
        if self._template is not None and not self._buf and self._template.plain(data):
            return data
        return self._feed(data)

    def finish(self) -> bytes:
        if self._decoder is not None and not self.done:
            try:
                tail = self._events(self._decoder.close())
            except SSEError:
                tail = b""
            if tail.endswith(_DONE_FRAME):
                return tail
        if not self.done:
            raise StreamError("the upstream stream ended before [DONE]: the response is truncated")
        return b""

    def _feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        if self._decoder is not None:
            return self._feed_decoded(data)
        out = self._take_frames(data)
        if out is None:  # the upstream frames with CR/CRLF: every byte so far goes to a decoder
            whole = bytes(self._buf) + data
            self._buf.clear()
            self._decoder = _Decoder(MAX_EVENT_BYTES)
            return self._feed_decoded(whole)
        return self._frames(out) if out else b""

    def _take_frames(self, data: bytes) -> bytes | None:
        """The whole frames that ``data`` completes; the rest waits in ``_buf``. Only the new
        bytes are searched (plus the one before them, for a blank line cut in two). ``None``
        when an unfinished frame holds a CR: the upstream frames with CR/CRLF."""
        buf = self._buf
        end = data.rfind(b"\n\n")
        if end >= 0:
            end += 2
        elif buf.endswith(b"\n") and data.startswith(b"\n"):
            end = 1
        else:
            if self._buf_cr or b"\r" in data:  # CR/CRLF framing never contains a bare LF LF
                return None
            buf += data
            if len(buf) > MAX_EVENT_BYTES:
                raise StreamError(f"an upstream event exceeds {MAX_EVENT_BYTES} bytes")
            return b""
        if buf:
            buf += data[:end]
            out = bytes(buf)
        else:
            out = data if end == len(data) else data[:end]
        buf[:] = data[end:]
        self._buf_cr = b"\r" in buf
        return out

    def _frames(self, out: bytes) -> bytes:
        """``out`` (whole frames) as the client gets them."""
        if self._exact and b'"error"' not in out:
            return self._exact_frames(out)
        if not self._exact and self._template is not None and self._template.plain(out):
            return out
        done_at = _done_index(out)
        if done_at >= 0:
            out = out[:done_at]
        try:
            out = _checked(out)
        except StreamError as exc:
            exc.output = self._scan(exc.output) if exc.output else b""
            raise
        if not out and done_at < 0:
            return b""
        if self._template is None:
            self._template = FrameTemplate.learn(out, _first_trigger)
        if out:
            out = self._scan(out)
        return self._end(out) if done_at >= 0 else out

    def _exact_frames(self, out: bytes) -> bytes:
        """The exact way: one search for [DONE], one for the usage key, two counts for the
        frames' shape (``_checked``)."""
        done_at = _done_index(out)
        if done_at >= 0:
            out = out[:done_at]
        try:
            out = _checked(out)
        except StreamError as exc:
            exc.output = self._take_usage(exc.output) if _USAGE_KEYS[0] in exc.output else exc.output
            raise
        if _USAGE_KEYS[0] in out:
            out = self._take_usage(out)
        return self._end(out) if done_at >= 0 else out

    def _take_usage(self, out: bytes) -> bytes:
        """``out`` with each frame holding the usage key parsed (only those)."""
        parts: list[bytes] = []
        pos = 0
        while (at := out.find(_USAGE_KEYS[0], pos)) >= 0:
            start = out.rfind(b"\n\n", pos, at)
            start = start + 2 if start >= 0 else pos
            end = out.find(b"\n\n", at) + 2
            parts.append(out[pos:start])
            try:
                parts.append(self._parse(out[start : end - 2]))
            except StreamError as exc:
                exc.output = b"".join(parts)
                raise
            pos = end
        parts.append(out[pos:])
        return b"".join(parts)

    def _end(self, out: bytes) -> bytes:
        """``out`` followed by the usage chunk (if the client asked for it) and [DONE]."""
        self.done = True
        self._template = None  # nothing passes after [DONE]
        return out + (self._usage_frame if self._include_usage else b"") + _DONE_FRAME

    def _scan(self, out: bytes) -> bytes:
        """``out`` (whole frames) with the frames that hold a trigger normalised; a run of
        template frames in it is not searched (see ``FrameTemplate.run``)."""
        run = self._template.run(out) if self._template is not None else None
        if run is None:
            return self._search(out)
        start, end = run
        head = self._search(out[:start]) if start else b""
        if end == len(out):
            return head + out[start:end]
        try:
            return head + out[start:end] + self._search(out[end:])
        except StreamError as exc:
            exc.output = head + out[start:end] + exc.output
            raise

    def _search(self, out: bytes) -> bytes:
        """``out`` (whole frames), normalised from the first frame that holds a trigger on."""
        first = _first_trigger(out)
        if first < 0:
            return out
        # Frames before that one pass as they are; from it on, each is looked at alone.
        boundary = out.rfind(b"\n\n", 0, first)
        return self._normalise(out, boundary + 2 if boundary >= 0 else 0)

    def _feed_decoded(self, data: bytes) -> bytes:
        """Slow path for CR/CRLF-framed upstreams: decode events, re-frame them with LF."""
        assert self._decoder is not None
        try:
            events = self._decoder.feed(data)
        except SSEError as exc:
            raise StreamError(f"malformed upstream stream: {exc}") from None
        out = self._events(events)
        if self._decoder.junk and not self.done:
            raise StreamError(_NOT_A_CHUNK, output=out)
        return out

    def _events(self, events: list[Event]) -> bytes:
        out = []
        done = False
        bad = False
        for event in events:
            if event.data == b"[DONE]":
                done = True
                break
            if not (event.data.startswith(b"{") and event.data.rstrip().endswith(b"}")):
                bad = True
                break
            out.append(b"data: " + event.data + b"\n\n")
        frames = self._normalise(b"".join(out)) if out else b""
        if bad:
            raise StreamError(_NOT_A_CHUNK, output=frames)
        return self._end(frames) if done else frames

    def _normalise(self, out: bytes, start: int = 0) -> bytes:
        """``out`` with each frame from ``start`` on rewritten if it deviates from OpenAI's shape."""
        frames = out[start:].split(b"\n\n") if start else out.split(b"\n\n")
        result: list[bytes] = [out[:start]] if start else []
        for frame in frames:
            if not frame:
                continue
            if frame.startswith(b"data: {") and _needs_parse(frame):
                try:
                    result.append(self._parse(frame))
                except StreamError as exc:
                    exc.output = b"".join(result)
                    raise
                continue
            result.append(frame + b"\n\n")
        return b"".join(result)

    def _parse(self, frame: bytes) -> bytes:
        """One frame (without its blank line) parsed and rewritten."""
        if not frame.startswith(b"data: {"):
            return frame + b"\n\n"
        try:
            chunk = orjson.loads(frame[6:])
        except orjson.JSONDecodeError:
            raise StreamError("malformed JSON in the upstream stream") from None
        return self._rewrite(chunk, frame)

    def _rewrite(self, chunk: Any, frame: bytes) -> bytes:
        if not isinstance(chunk, dict):
            return b"data: " + orjson.dumps(chunk) + b"\n\n"
        had_usage = isinstance(chunk.get("usage"), dict)
        quirks.fix(chunk, self._fixing)
        usage = chunk.get("usage")
        if not usage or not isinstance(usage, dict):
            return b"data: " + orjson.dumps(chunk) + b"\n\n"
        self.usage = usage_of(usage)
        choices = chunk.get("choices")
        if had_usage and choices == []:
            self._usage_frame = frame + b"\n\n"  # OpenAI's own usage chunk, kept byte for byte
            return b""
        # OpenAI's shape: usage rides alone on a last chunk with no choices.
        rest = {k: v for k, v in chunk.items() if k not in ("choices", "usage")}
        self._usage_frame = b"data: " + orjson.dumps({**rest, "choices": [], "usage": usage}) + b"\n\n"
        if not choices:
            return b""
        del chunk["usage"]
        return b"data: " + orjson.dumps(chunk) + b"\n\n"


def usage_of(usage: JSONBody) -> Usage:
    """OpenAI's usage object in the neutral vocabulary (counts that are no integers are unknown)."""
    prompt = usage.get("prompt_tokens_details")
    completion = usage.get("completion_tokens_details")
    return Usage(
        input_tokens=_count(usage.get("prompt_tokens")) or 0,
        output_tokens=_count(usage.get("completion_tokens")) or 0,
        cached_tokens=_count(prompt.get("cached_tokens")) if isinstance(prompt, dict) else None,
        reasoning_tokens=_count(completion.get("reasoning_tokens")) if isinstance(completion, dict) else None,
    )


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _done_index(out: bytes) -> int:
    """Where a ``data: [DONE]`` frame starts in ``out`` (never inside a content string), or -1."""
    if out.startswith(_DONE):
        return 0
    at = out.find(_FRAME_DONE)
    return at + 2 if at >= 0 else -1


def _checked(out: bytes) -> bytes:
    """``out`` (whole frames) if every frame is ``data: {...}``, else without its comments.

    Upstream keep-alive comments (": OPENROUTER PROCESSING") are not forwarded: before the
    first frame they would start the client response and rule out a fallback; the proxy's own
    keep-alive (server.keepalive_s) covers silence towards the client. Anything else that is
    no JSON object frame (random bytes, plain text, ``data: 42``, a cut-off object) raises
    ``StreamError``, with the good frames before it as its output: passed on, it would crash
    the client's SDK or lose content silently.

    The common case costs two byte counts, no loop over frames and no JSON parse: a frame
    start can only follow a frame end, so when every frame end is followed by ``data: {`` the
    frames are all shaped right. (A JSON object may still be invalid inside; the normalising
    path parses the frames that need a look.)
    """
    if not out:
        return out
    frames = out.count(b"\n\n")
    if out.startswith(_OBJECT) and out.endswith(b"}\n\n") and out.count(b"}\n\n" + _OBJECT) == frames - 1:
        return out
    kept: list[bytes] = []
    for frame in out.split(b"\n\n"):
        while frame[:1] == b":":  # comment lines, alone or before the frame's data
            cut = frame.find(b"\n")
            frame = frame[cut + 1 :] if cut >= 0 else b""
        if not frame:
            continue
        if not (frame.startswith((_OBJECT, b"data:{")) and frame.rstrip(b" \t").endswith(b"}")):
            raise StreamError(_NOT_A_CHUNK, output=b"".join(kept))
        kept.append(frame + b"\n\n")
    return b"".join(kept)


class _Decoder(SSEDecoder):
    """The SSE decoder for CR/CRLF-framed upstreams, which notes a line that is no SSE field
    (plain text, random bytes): the events before it still count, nothing after it does."""

    __slots__ = ("junk",)

    def __init__(self, max_event_bytes: int) -> None:
        super().__init__(max_event_bytes)
        self.junk = False

    def other_line(self, line: bytes) -> None:
        if not self.junk:
            self.junk = True
            self.stop_events()


def _first_trigger(out: bytes) -> int:
    """Where the first trigger of any kind starts in ``out``, or -1 (one byte search per trigger)."""
    first = -1
    for trigger in _TRIGGERS:
        at = out.find(trigger)
        if at >= 0 and (first < 0 or at < first):
            first = at
    return first


def _needs_parse(frame: bytes) -> bool:
    """Whether a frame holding a trigger must be parsed: it shows a quirk, or reports usage.
    Byte checks only, so ordinary OpenAI frames (tool-argument fragments) stay unparsed."""
    return quirks.needs_fix(frame) or _USAGE_KEYS[0] in frame or _USAGE_KEYS[1] in frame


def translate_response(body: bytes, ctx: StreamContext) -> bytes:
    """A non-stream body, passed through unless it deviates from OpenAI's shape (``quirks``)."""
    return quirks.fix_body(body)


def passthrough_body(body: bytes) -> tuple[bytes, Usage | None]:
    """A whole 2xx body for an OpenAI chat client (fixed where it deviates), and its usage."""
    out = quirks.fix_body(body)
    if b'"usage"' not in out:
        return out, None
    try:
        data = orjson.loads(out)
    except orjson.JSONDecodeError:
        return out, None
    usage = data.get("usage") if isinstance(data, dict) else None
    return out, usage_of(usage) if isinstance(usage, dict) else None


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
