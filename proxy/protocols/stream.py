"""The neutral stream vocabulary: what every upstream decoder says, and every front door encodes.

A provider's stream decoder reads its wire format (Anthropic events, Gemini chunks, OpenAI
chunks) and calls a ``StreamEncoder`` that the front door passed in; the encoder writes the
client's wire format (OpenAI ``chat.completion.chunk`` frames today, Anthropic events or
Responses events next). Neither side knows the other. Every call returns the bytes to send
now (``b""`` when there is nothing yet), so a decoder concatenates and returns them per read.

A provider whose wire format equals the front door's keeps a byte pass-through instead (no
decode, no encode): ``Provider.passthrough``.

Sans-IO: no aiohttp, no asyncio, no clock; ``StreamContext`` carries the ids and the time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from proxy.errors import StreamError

__all__ = [
    "Completion",
    "FinishReason",
    "StreamContext",
    "StreamDecoder",
    "StreamEncoder",
    "ToolCall",
    "Usage",
    "translate_events",
]

E = TypeVar("E")

# Why a choice ended, in the neutral vocabulary. A front door maps these to its own names
# (OpenAI: the same words, ``function_call`` for legacy functions; Anthropic: end_turn,
# max_tokens, tool_use, refusal).
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


@dataclass(frozen=True, slots=True)
class StreamContext:
    """What a decoder or encoder needs from outside, so its output is deterministic.

    ``id``/``created``/``model`` name the answer (one of each for the whole stream);
    ``call_id_prefix`` seeds generated tool-call ids (``call_<prefix>_<n>``) for providers that
    send none. ``include_usage`` and ``legacy_functions`` are the OpenAI chat client's wishes
    (``stream_options.include_usage``; ``functions`` instead of ``tools``): only the OpenAI
    chat encoder reads them.
    """

    id: str
    created: int
    model: str
    include_usage: bool = False
    legacy_functions: bool = False
    call_id_prefix: str = ""


@dataclass(slots=True)
class Usage:
    """Token counts of one answer.

    ``input_tokens`` counts every prompt token, cached ones included; ``output_tokens`` every
    generated token, reasoning included. The details are parts of those totals (``None`` when
    the provider did not say).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int | None = None  # read from a prompt cache (part of input_tokens)
    cache_creation_tokens: int | None = None  # written to a prompt cache (part of input_tokens)
    reasoning_tokens: int | None = None  # part of output_tokens

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class ToolCall:
    """One whole tool call of a non-stream answer. ``signature`` is a provider's opaque token
    that must ride along when the call is sent back (Gemini's thought signature)."""

    id: str
    name: str
    arguments: str  # JSON text
    signature: str | None = None


@dataclass(slots=True)
class Completion:
    """A whole (non-stream) answer in the neutral vocabulary."""

    text: str | None = None
    reasoning: str | None = None
    # Signed or redacted reasoning blocks to send back on the next turn (Anthropic's shape:
    # {"type": "thinking", "thinking", "signature"} or {"type": "redacted_thinking", "data"}).
    thinking_blocks: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    refusal: str | None = None
    finish: FinishReason = "stop"
    usage: Usage | None = None
    text_signature: str | None = None  # a provider signature on the answer's text (Gemini)


class StreamEncoder(Protocol):
    """The client's side of a stream: neutral events in, the front door's wire bytes out.

    The encoder keeps the stream's state: whether the role or the message start was written,
    the tool-call counter (indexes 0, 1, 2... of this stream, never the provider's numbering),
    open blocks. ``finish`` after a tool call maps ``stop`` to the front door's tool-call reason.
    Usage is written only where the client asked for it (or the wire format always has it).
    """

    @property
    def tool_calls(self) -> int:
        """How many tool calls were started so far."""
        ...

    def text(self, text: str, signature: str | None = None) -> bytes: ...

    def reasoning(self, text: str, signature: str | None = None) -> bytes: ...

    def signature(self, signature: str) -> bytes:
        """A provider signature that arrived alone (Gemini: an empty part carrying one)."""
        ...

    def thinking_block(self, thinking: str, signature: str) -> bytes:
        """A reasoning block ended with its signature (Anthropic's signed thinking)."""
        ...

    def redacted_thinking(self, data: str) -> bytes: ...

    def refusal(self, text: str) -> bytes: ...

    def tool_call_start(self, call_id: str, name: str, arguments: str = "", signature: str | None = None) -> bytes:
        """Open tool call number ``tool_calls`` (its index), with the arguments known so far."""
        ...

    def tool_call_arguments(self, index: int, fragment: str) -> bytes: ...

    def finish(self, reason: FinishReason) -> bytes: ...

    def usage(self, usage: Usage) -> bytes: ...

    def end(self) -> bytes:
        """The stream's terminator (OpenAI's ``[DONE]``)."""
        ...


class StreamDecoder(Protocol):
    """Sans-IO: upstream bytes in, the front door's bytes out (through an encoder, or untouched).

    ``feed`` returns the bytes completed by this read (``b""`` when none); it never waits for
    more input than it needs to complete an event. ``done`` turns true once the upstream's
    terminator was translated. ``finish`` is called at upstream end-of-stream and returns any
    last bytes; a stream that ended before its terminator raises ``StreamError``. ``feed``
    raises ``StreamError`` for an upstream error event or malformed data, with the bytes
    produced before the failure in ``StreamError.output``. ``usage`` is the answer's final
    usage once the upstream reported it (whether or not the client asked to see it).
    """

    done: bool
    usage: Usage | None

    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


def translate_events(events: Iterable[E], translate: Callable[[E], bytes], stop: Callable[[], bool]) -> bytes:
    """The bytes ``translate`` makes of each event, in order, until ``stop()`` says the answer is
    whole. A ``StreamError`` from one event carries the bytes made before it in its ``output``,
    so the relay still writes them ahead of the error event."""
    out: list[bytes] = []
    for event in events:
        if stop():
            break
        try:
            frame = translate(event)
        except StreamError as exc:
            exc.output = b"".join(out) + exc.output
            raise
        if frame:
            out.append(frame)
    return b"".join(out)
