#!/usr/bin/env python3
"""A fast fake LLM provider for benchmarks: OpenAI, Anthropic and Gemini streaming wire formats.

Routes (HTTP/1.1, keep-alive, chunked responses):

* ``POST .../chat/completions``                       OpenAI ``chat.completion.chunk`` frames
* ``POST .../v1/messages``                            Anthropic Messages events
* ``POST .../v1beta/models/{model}:streamGenerateContent?alt=sse``   Gemini frames
  (``:generateContent`` and ``stream: false`` answer one JSON body)
* ``GET /healthz``                                    200

Scenario knobs (flags give the defaults; each request may override them):

=========================  ==================  ===============  ===========================
what                       flag                header           token in the model name
=========================  ==================  ===============  ===========================
content chunks per stream  ``--chunks``        ``x-fake-chunks``          ``n200``
time to first token (ms)   ``--ttft-ms``       ``x-fake-ttft-ms``         ``ttft300``
inter-chunk delay (ms)     ``--gap-ms``        ``x-fake-gap-ms``          ``gap20``
tokens per chunk           ``--tokens-per-chunk`` ``x-fake-tokens-per-chunk`` ``tpc1``
=========================  ==================  ===============  ===========================

The model name carries the knobs through any proxy (proxies rarely forward unknown headers):
``bench-n100-ttft300-gap20`` is dash-separated tokens, read after the last ``/``. Headers win over
the model name, which wins over the flags.

Content is deterministic: token ``i`` of every stream is ``WORDS[i % len(WORDS)]``, so a client
checks a stream completely with :func:`expected_content` (``n * tpc`` tokens, ``n`` content
chunks). Words include JSON escapes and non-ASCII text so translators are exercised honestly.

Timing: headers and the stream's opening frame (OpenAI role chunk, Anthropic ``message_start``)
go out at once; content frame ``i`` is due at ``ttft + i * gap`` after the request (absolute
schedule, no drift). With ``gap 0`` the frames go back to back, yielding to the event loop after
each one so concurrent streams interleave as on a real server. Frames are precomputed per
scenario (already chunk-encoded) and written with one ``transport.write`` each.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

import orjson

__all__ = [
    "WORDS",
    "FakeUpstream",
    "Scenario",
    "anthropic_frames",
    "chunk_texts",
    "expected_content",
    "gemini_frames",
    "openai_frames",
    "start_server",
    "stream_frames",
]

# Token i of every stream. Some need JSON escaping, some are multi-byte UTF-8.
WORDS: tuple[str, ...] = (
    "The ",
    "quick ",
    "brown ",
    "fox ",
    "jumps ",
    "over ",
    "the ",
    "lazy ",
    "dog",
    ". ",
    "Caf\u00e9 ",
    "na\u00efve ",
    "\u65e5\u672c\u8a9e ",
    '"quoted" ',
    "back\\slash ",
    "tab\t",
    "line\n",
    "emoji \U0001f680 ",
    "<tag> ",
    "&amp; ",
    "x",
    "y",
    "z ",
    "0123456789 ",
)
PROMPT_TOKENS = 12
MODEL_DEFAULT = "fake-model"
_KNOB = re.compile(r"^(n|ttft|gap|tpc)(\d+(?:\.\d+)?)$")


@dataclass(frozen=True, slots=True)
class Scenario:
    chunks: int = 200
    ttft_ms: float = 0.0
    gap_ms: float = 0.0
    tokens_per_chunk: int = 1

    def override(self, model: str, headers: dict[bytes, bytes]) -> Scenario:
        n, ttft, gap, tpc = self.chunks, self.ttft_ms, self.gap_ms, self.tokens_per_chunk
        for tok in model.rsplit("/", 1)[-1].split("-"):
            m = _KNOB.match(tok)
            if m:
                key, val = m.group(1), float(m.group(2))
                if key == "n":
                    n = int(val)
                elif key == "ttft":
                    ttft = val
                elif key == "gap":
                    gap = val
                else:
                    tpc = max(1, int(val))
        if headers:
            n = int(headers.get(b"x-fake-chunks", n))
            ttft = float(headers.get(b"x-fake-ttft-ms", ttft))
            gap = float(headers.get(b"x-fake-gap-ms", gap))
            tpc = max(1, int(headers.get(b"x-fake-tokens-per-chunk", tpc)))
        return Scenario(max(1, min(n, 1_000_000)), max(0.0, ttft), max(0.0, gap), tpc)


def chunk_texts(chunks: int, tokens_per_chunk: int = 1) -> list[str]:
    """The text of each content chunk of a stream."""
    w, nw, k = WORDS, len(WORDS), tokens_per_chunk
    return ["".join(w[(j * k + t) % nw] for t in range(k)) for j in range(chunks)]


def expected_content(chunks: int, tokens_per_chunk: int = 1) -> str:
    """The whole assistant text of a stream: what a client must reassemble exactly."""
    return "".join(chunk_texts(chunks, tokens_per_chunk))


def _j(obj: object) -> bytes:
    return orjson.dumps(obj)


# Every generator returns (head, body, tail): frames sent at once, the n content frames (one per
# chunk, scheduled), and the closing frames sent right after the last content frame. Frames are
# plain SSE bytes here; the server chunk-encodes them.
Frames = tuple[list[bytes], list[bytes], list[bytes]]


def _padding(i: int) -> str:
    """OpenAI's ``obfuscation`` value for chunk ``i``: 1 to 16 characters, deterministic here."""
    return "".join(_PAD[(i * 7 + j * 13) % len(_PAD)] for j in range(1 + (i * 5) % 16))


_PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def openai_frames(
    chunks: int,
    tokens_per_chunk: int = 1,
    model: str = MODEL_DEFAULT,
    include_usage: bool = False,
    obfuscation: bool = True,
) -> Frames:
    """OpenAI's frames as its API sends them today: ``service_tier``, ``usage: null`` on every
    chunk when usage is asked for, and a random-length ``obfuscation`` string closing each delta
    chunk (on by default; ``stream_options.include_obfuscation: false`` turns it off)."""
    cid, created = "chatcmpl-fake0000000000000000000000", 1700000000
    extra = {"usage": None} if include_usage else {}
    count = iter(range(1 << 30))

    def chunk(delta: dict, finish: str | None = None) -> bytes:
        obj = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **extra,
        }
        if obfuscation:
            obj["obfuscation"] = _padding(next(count))
        return b"data: " + _j(obj) + b"\n\n"

    head = [chunk({"role": "assistant", "content": "", "refusal": None})]
    body = [chunk({"content": t}) for t in chunk_texts(chunks, tokens_per_chunk)]
    tail = [chunk({}, "stop")]
    if include_usage:
        done = chunks * tokens_per_chunk
        usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": done, "total_tokens": PROMPT_TOKENS + done}
        obj = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
            "choices": [],
            "usage": usage,
        }
        tail.append(b"data: " + _j(obj) + b"\n\n")
    tail.append(b"data: [DONE]\n\n")
    return head, body, tail


def anthropic_frames(chunks: int, tokens_per_chunk: int = 1, model: str = MODEL_DEFAULT, **_: object) -> Frames:
    def ev(name: str, obj: dict) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + _j(obj) + b"\n\n"

    start = {
        "type": "message_start",
        "message": {
            "id": "msg_fake000000000000000000",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": PROMPT_TOKENS,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 1,
            },
        },
    }
    head = [ev("message_start", start)]
    texts = chunk_texts(chunks, tokens_per_chunk)
    body = [
        ev(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}},
        )
        for t in texts
    ]
    # content_block_start travels with the first token, as the real API sends it.
    body[0] = (
        ev(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        )
        + body[0]
    )
    tail = [
        ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ev(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": chunks * tokens_per_chunk},
            },
        ),
        ev("message_stop", {"type": "message_stop"}),
    ]
    return head, body, tail


def gemini_frames(chunks: int, tokens_per_chunk: int = 1, model: str = MODEL_DEFAULT, **_: object) -> Frames:
    texts = chunk_texts(chunks, tokens_per_chunk)
    body = []
    for i, t in enumerate(texts):
        cand: dict = {"content": {"parts": [{"text": t}], "role": "model"}, "index": 0}
        usage: dict = {"promptTokenCount": PROMPT_TOKENS, "totalTokenCount": PROMPT_TOKENS}
        if i == len(texts) - 1:
            cand["finishReason"] = "STOP"
            done = chunks * tokens_per_chunk
            usage = {
                "promptTokenCount": PROMPT_TOKENS,
                "candidatesTokenCount": done,
                "totalTokenCount": PROMPT_TOKENS + done,
            }
        obj = {"candidates": [cand], "usageMetadata": usage, "modelVersion": model, "responseId": "fake-resp-0"}
        body.append(b"data: " + _j(obj) + b"\r\n\r\n")  # Google ends SSE events with CRLF CRLF
    return [], body, []


FORMATS: dict[str, Callable[..., Frames]] = {
    "openai": openai_frames,
    "anthropic": anthropic_frames,
    "gemini": gemini_frames,
}


def stream_frames(
    fmt: str,
    chunks: int,
    tokens_per_chunk: int = 1,
    model: str = MODEL_DEFAULT,
    include_usage: bool = True,
    obfuscation: bool = True,
) -> list[bytes]:
    """Every SSE frame of one stream of ``fmt``, in order (for translator benchmarks and tests)."""
    head, body, tail = FORMATS[fmt](
        chunks, tokens_per_chunk, model=model, include_usage=include_usage, obfuscation=obfuscation
    )
    return [*head, *body, *tail]


def full_body(fmt: str, chunks: int, tokens_per_chunk: int, model: str) -> bytes:
    """A non-streaming response body of ``fmt``."""
    text = expected_content(chunks, tokens_per_chunk)
    done = chunks * tokens_per_chunk
    if fmt == "openai":
        return _j(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 1700000000,
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": PROMPT_TOKENS,
                    "completion_tokens": done,
                    "total_tokens": PROMPT_TOKENS + done,
                },
            }
        )
    if fmt == "anthropic":
        return _j(
            {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": done},
            }
        )
    return _j(
        {
            "candidates": [
                {"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {
                "promptTokenCount": PROMPT_TOKENS,
                "candidatesTokenCount": done,
                "totalTokenCount": PROMPT_TOKENS + done,
            },
            "modelVersion": model,
        }
    )


def _chunked(frame: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(frame), frame)


_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n"
)


class FakeUpstream:
    """Shared state of one server: defaults, the frame cache and counters."""

    def __init__(self, default: Scenario) -> None:
        self.default = default
        self._cache: dict[tuple, tuple[list[bytes], list[bytes], list[bytes]]] = {}
        self.requests = 0
        self.streams_done = 0
        self.active = 0

    def frames(self, fmt: str, sc: Scenario, model: str, include_usage: bool, obfuscation: bool = True) -> Frames:
        key = (fmt, sc.chunks, sc.tokens_per_chunk, model, include_usage, obfuscation)
        hit = self._cache.get(key)
        if hit is None:
            if len(self._cache) > 256:
                self._cache.clear()
            head, body, tail = FORMATS[fmt](
                sc.chunks, sc.tokens_per_chunk, model=model, include_usage=include_usage, obfuscation=obfuscation
            )
            # Closing frames go out in the same write as the last content frame (one write per
            # scheduled frame); the chunked terminator rides on the last write.
            last = b"".join(_chunked(f) for f in (body[-1], *tail)) + b"0\r\n\r\n"
            hit = ([_chunked(f) for f in head], [_chunked(f) for f in body[:-1]] + [last], [])
            self._cache[key] = hit
        return hit


class _Conn(asyncio.Protocol):
    """One client connection: a minimal HTTP/1.1 server (Content-Length bodies, keep-alive)."""

    __slots__ = ("app", "buf", "busy", "closed", "drain", "task", "transport")

    def __init__(self, app: FakeUpstream) -> None:
        self.app = app
        self.buf = b""
        self.busy = False
        self.closed = False
        self.drain: asyncio.Future | None = None
        self.task: asyncio.Task | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport):  # type: ignore[override]
        self.transport = transport

    def connection_lost(self, exc):  # type: ignore[override]
        self.closed = True
        if self.drain is not None and not self.drain.done():
            self.drain.set_result(None)
        if self.task is not None:
            self.task.cancel()

    def pause_writing(self) -> None:
        self.drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.drain is not None and not self.drain.done():
            self.drain.set_result(None)
        self.drain = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._next()

    def _next(self) -> None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > 65536:
                self._reply(431, b"headers too large", close=True)
            return
        lines = buf[:end].split(b"\r\n")
        try:
            method, target, _version = lines[0].split(b" ", 2)
        except ValueError:
            self._reply(400, b"bad request line", close=True)
            return
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower()] = v.strip()
        length = int(headers.get(b"content-length", b"0"))
        if len(buf) < end + 4 + length:
            return  # wait for the rest of the body
        body = buf[end + 4 : end + 4 + length]
        self.buf = buf[end + 4 + length :]
        keep = headers.get(b"connection", b"").lower() != b"close"
        self.busy = True
        self.app.requests += 1
        self._dispatch(method, target.decode("latin-1"), headers, body, keep)

    def _done(self, keep: bool) -> None:
        self.busy = False
        self.task = None
        if not keep:
            if self.transport is not None:
                self.transport.close()
            return
        if self.buf and not self.closed:
            self._next()

    def _reply(
        self, status: int, body: bytes, ctype: bytes = b"text/plain", close: bool = False, keep: bool = True
    ) -> None:
        keep = keep and not close
        head = b"HTTP/1.1 %d X\r\nContent-Type: %b\r\nContent-Length: %d\r\n%b\r\n" % (
            status,
            ctype,
            len(body),
            b"" if keep else b"Connection: close\r\n",
        )
        assert self.transport is not None
        self.transport.write(head + body)
        self._done(keep)

    def _dispatch(self, method: bytes, target: str, headers: dict[bytes, bytes], body: bytes, keep: bool) -> None:
        path, _, query = target.partition("?")
        if method == b"GET":
            if path in ("/healthz", "/health"):
                self._reply(200, b'{"ok":true}', b"application/json", keep=keep)
            elif path.endswith("/models"):
                self._reply(
                    200,
                    b'{"object":"list","data":[{"id":"fake-model","object":"model"}]}',
                    b"application/json",
                    keep=keep,
                )
            elif path == "/stats":
                a = self.app
                self._reply(
                    200,
                    _j({"requests": a.requests, "streams_done": a.streams_done, "active": a.active}),
                    b"application/json",
                    keep=keep,
                )
            else:
                self._reply(404, b"not found", keep=keep)
            return
        if method != b"POST":
            self._reply(405, b"method not allowed", keep=keep)
            return
        try:
            req = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            self._reply(400, b'{"error":{"message":"invalid JSON body"}}', b"application/json", keep=keep)
            return
        obfuscation = False
        if path.endswith("/chat/completions"):
            fmt, model = "openai", str(req.get("model", MODEL_DEFAULT))
            stream = bool(req.get("stream"))
            options = req.get("stream_options") or {}
            include_usage = bool(options.get("include_usage"))
            obfuscation = options.get("include_obfuscation") is not False
        elif path.endswith("/messages"):
            fmt, model = "anthropic", str(req.get("model", MODEL_DEFAULT))
            stream, include_usage = bool(req.get("stream")), True
        elif ":streamGenerateContent" in path or ":generateContent" in path:
            fmt = "gemini"
            model = path.rsplit("/models/", 1)[-1].split(":", 1)[0]
            stream, include_usage = ":streamGenerateContent" in path, True
            if stream and "alt=sse" not in query:
                self._reply(400, b'{"error":{"message":"only alt=sse is supported"}}', b"application/json", keep=keep)
                return
        else:
            self._reply(404, b'{"error":{"message":"no such route"}}', b"application/json", keep=keep)
            return
        sc = self.app.default.override(model, headers)
        if not stream:
            self._reply(200, full_body(fmt, sc.chunks, sc.tokens_per_chunk, model), b"application/json", keep=keep)
            return
        frames = self.app.frames(fmt, sc, model, include_usage, obfuscation)
        self.task = asyncio.get_running_loop().create_task(self._stream(frames, sc, keep))

    async def _stream(self, frames: Frames, sc: Scenario, keep: bool) -> None:
        t = self.transport
        assert t is not None
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        head, body, _ = frames
        self.app.active += 1
        try:
            t.write(_SSE_HEAD + (b"\r\n" if keep else b"Connection: close\r\n\r\n") + b"".join(head))
            ttft, gap = sc.ttft_ms / 1000.0, sc.gap_ms / 1000.0
            for i, frame in enumerate(body):
                if ttft or gap:
                    delay = t0 + ttft + i * gap - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                elif i:
                    await asyncio.sleep(0)  # back to back, but let other streams interleave
                if self.closed:
                    return
                if self.drain is not None:
                    await self.drain
                    if self.closed:
                        return
                t.write(frame)
            self.app.streams_done += 1
        finally:
            self.app.active -= 1
        if not self.closed:
            self._done(keep)


async def start_server(
    host: str, port: int, default: Scenario | None = None, reuse_port: bool = False
) -> tuple[asyncio.Server, FakeUpstream]:
    app = FakeUpstream(default or Scenario())
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Conn(app), host, port, backlog=4096, reuse_port=reuse_port)
    return server, app


def install_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9001, help="0 picks a free port (printed on stdout)")
    p.add_argument("--chunks", type=int, default=200, help="content chunks per stream")
    p.add_argument("--ttft-ms", type=float, default=0.0, help="time to first token")
    p.add_argument("--gap-ms", type=float, default=0.0, help="delay between content chunks (0: back to back)")
    p.add_argument("--tokens-per-chunk", type=int, default=1)
    p.add_argument("--no-uvloop", action="store_true")
    args = p.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        p.error("the fake upstream listens on loopback only")
    if not args.no_uvloop:
        install_uvloop()

    async def run() -> None:
        default = Scenario(args.chunks, args.ttft_ms, args.gap_ms, max(1, args.tokens_per_chunk))
        server, _ = await start_server(args.host, args.port, default)
        port = server.sockets[0].getsockname()[1]
        print(f"fake upstream listening on http://{args.host}:{port} pid={os.getpid()}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.close()

    asyncio.run(run())


if __name__ == "__main__":
    main(sys.argv[1:])
