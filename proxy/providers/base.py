"""The contract between the provider-agnostic core and one provider module.

A provider module exports one ``Adapter``. Everything in it is sans-IO: plain functions and
plain synchronous objects, bytes in and bytes out, no aiohttp, no asyncio, no clock and no
random source of their own (``StreamContext`` carries ``id``, ``created`` and ``model``).

Request path: ``build_request(body, model, provider, ctx)`` turns the client's OpenAI body into
an ``UpstreamRequest``. Stream path: ``stream_translator(ctx, provider)`` returns a ``StreamTranslator`` fed
the upstream's raw bytes read by read, returning OpenAI SSE frame bytes. Non-stream path:
``translate_response(body, ctx)`` turns a 2xx upstream body into the ``chat.completion`` JSON body. Error path:
``translate_error(status, body)`` returns the OpenAI-shaped ``ProxyError`` for an upstream error
status.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from proxy.config import ProviderConfig
from proxy.errors import ProxyError

__all__ = ["Adapter", "JSONBody", "StreamContext", "StreamTranslator", "UpstreamRequest"]

JSONBody = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StreamContext:
    """What a translator needs from outside, so its output is deterministic.

    ``id``/``created``/``model`` go into every chunk a translating adapter writes (one of each
    for the whole stream). ``include_usage`` is the client's ``stream_options.include_usage``;
    ``legacy_functions`` is true when the client used ``functions`` instead of ``tools``, so tool
    calls are written as ``delta.function_call``. ``call_id_prefix`` seeds generated tool-call
    ids (``call_<prefix>_<n>``) for providers that send none.
    """

    id: str
    created: int
    model: str
    include_usage: bool = False
    legacy_functions: bool = False
    call_id_prefix: str = ""


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """One HTTP request to a provider: always a POST with a JSON body."""

    url: str
    headers: Mapping[str, str]
    body: bytes
    # Request facts the response side needs (e.g. the client asked with legacy ``functions``).
    notes: Mapping[str, Any] = field(default_factory=dict)


class StreamTranslator(Protocol):
    """Sans-IO: upstream bytes in, OpenAI ``data:`` frame bytes out.

    ``feed`` returns the frames completed by this read (``b""`` when none); it never waits for
    more input than it needs to complete an event. ``done`` turns true once the upstream's
    terminator was translated (the output then ends with ``data: [DONE]``). ``finish`` is called
    at upstream end-of-stream and returns any last frames; a stream that ended before its
    terminator raises ``StreamError``. ``feed`` raises ``StreamError`` for an upstream error event
    or malformed data, with the frames produced before the failure in ``StreamError.output``.
    """

    done: bool

    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Adapter:
    """One wire protocol (``kind`` in the config)."""

    kind: str
    build_request: Callable[[JSONBody, str, ProviderConfig, StreamContext], UpstreamRequest]
    stream_translator: Callable[[StreamContext, ProviderConfig], StreamTranslator]
    translate_response: Callable[[bytes, StreamContext], bytes]
    translate_error: Callable[[int, bytes], ProxyError]
    # True when the adapter's stream output is the upstream's own OpenAI frames (ids kept).
    passthrough: bool = False
    # An in-process provider (the mock) opens its own response instead of an HTTP request; it
    # returns an object with the ``proxy.transport.http.UpstreamResponse`` interface.
    open_local: Callable[[UpstreamRequest, ProviderConfig], Awaitable[Any]] | None = None
