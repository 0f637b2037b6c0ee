"""The one relay loop: upstream reads in, the front door's frames out, for every provider.

Per upstream read: one ``decoder.feed`` (a byte search for pass-through providers) and at
most one ``write`` carrying every frame the read completed. Nothing waits for more data. The
loop knows neither the provider nor the front door: the decoder turns upstream bytes into the
client's bytes, and the door (``Framing``) says how a keep-alive and an error event look.

The client's response starts (headers sent) at the first frame, so an attempt that fails
before producing anything is still free to answer with an HTTP error, or to fall back to
another model. With ``keepalive_s`` set, a silent upstream commits the response after that
long and gets keep-alives (an SSE comment for OpenAI clients) every ``keepalive_s`` of client-side silence, so load
balancers with idle timeouts keep the connection; the price is that a failure after the first
keep-alive can only be reported as an error frame, no longer retried elsewhere.

A watch per stream (``_Clock``, checked by the process's one ``Watchdog`` timer) does the
time-based work: the upstream idle/first-byte timeout and the keep-alive. It reads progress
(what the decoder produced, not upstream bytes) from the client writer's byte counter at each
sweep, so the hot loop does no timekeeping at all. ``ClientStream`` holds the client's side
from before the upstream request, so keep-alives also cover the wait for the response head.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Protocol

from aiohttp import ClientError, web

from proxy.config import ProviderConfig
from proxy.errors import ProxyError, StreamError, UpstreamTimeout
from proxy.observability.record import RequestRecord
from proxy.protocols.stream import StreamDecoder
from proxy.transport.base import UpstreamResponse
from proxy.transport.http import describe
from proxy.watchdog import Watchdog

__all__ = ["FAILED_AFTER_START", "SSE_HEADERS", "ClientDisconnected", "ClientStream", "Framing", "relay_stream"]

log = logging.getLogger("proxy.relay")

SSE_HEADERS: Mapping[str, str] = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
# Set on a response whose stream failed after it started: too late to fall back, yet a failure.
FAILED_AFTER_START = web.ResponseKey("failed_after_start", ProxyError)
_DRAIN_AFTER_DONE_S = 5.0  # how long to keep reading after [DONE] so the connection can be reused


class Framing(Protocol):
    """What the relay needs of a front door: its keep-alive bytes and its error event."""

    @property
    def keepalive(self) -> bytes: ...

    def error_frame(self, err: ProxyError) -> bytes: ...


class ClientDisconnected(Exception):
    """The client went away mid-stream; the upstream has been closed. Nothing to report."""

    def __init__(self, response: web.StreamResponse | None = None) -> None:
        super().__init__("client disconnected")
        self.response = response


class _Sink:
    """The client response, started once, by whichever comes first: a frame or a keep-alive."""

    __slots__ = ("_headers", "_loop", "_record", "_request", "_starting", "response")

    def __init__(
        self,
        request: web.Request,
        headers: Mapping[str, str],
        loop: asyncio.AbstractEventLoop,
        record: RequestRecord | None = None,
    ) -> None:
        self._loop = loop
        self._request = request
        self._headers = headers
        self._record = record
        self._starting: asyncio.Future[web.StreamResponse] | None = None
        self.response: web.StreamResponse | None = None

    async def start(self) -> web.StreamResponse:
        if self.response is not None:
            return self.response
        if self._starting is not None:  # the other caller is starting it: wait for that
            return await asyncio.shield(self._starting)
        starting = self._starting = self._loop.create_future()
        response = web.StreamResponse(status=200, headers=self._headers)
        try:
            await response.prepare(self._request)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                starting.cancel()
            else:
                starting.set_exception(exc)
                starting.exception()  # retrieved here, so an unawaited failure is not logged
            raise
        self.response = response
        if self._record is not None:
            self._record.first_byte_at = self._loop.time()
        starting.set_result(response)
        return response

    @property
    def begun(self) -> bool:
        """Whether the response was started, or is being started (too late for an HTTP error)."""
        return self._starting is not None

    def sent(self) -> int:
        """Bytes written to the client so far."""
        return self._request.writer.output_size if self.response is not None else 0

    def paused(self) -> bool:
        """Whether the client's socket buffer is full: it reads slower than the stream comes."""
        return self.response is not None and self._request.protocol.writing_paused

    def client_gone(self) -> bool:
        transport = self._request.transport
        return transport is None or transport.is_closing()


class _Clock:
    """A stream's watch (see ``proxy.watchdog``): upstream timeouts, and keep-alives to the client.

    Progress is what the decoder produced: the bytes written to the client, less the clock's
    own keep-alives (and the response head a keep-alive sent). Upstream bytes that complete no
    event (comment lines, one byte at a time) are no progress, so such an upstream still meets
    its idle and first-byte timeouts. While the client's side is paused (its socket buffer is
    full: it reads slowly, the relay waits in a write and aiohttp stops reading the upstream),
    the upstream is not to blame: the idle time starts again. Everything is read at each sweep,
    so the relay loop does no timekeeping.

    Before the upstream's response head is in (``upstream`` None), the clock only keeps the
    client's connection alive; ``attach`` starts the timeouts.
    """

    __slots__ = (
        "_keepalive_s",
        "_loop",
        "_ping",
        "_pinged",
        "_sink",
        "_task",
        "_upstream",
        "_watchdog",
        "fired",
        "first_byte_s",
        "idle_s",
        "in_at",
        "out_at",
        "produced",
        "sent",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sink: _Sink,
        keepalive_s: float | None,
        watchdog: Watchdog,
        keepalive: bytes = b": keep-alive\n\n",
    ) -> None:
        self._loop = loop
        self._ping = keepalive
        self._upstream: UpstreamResponse | None = None
        self._sink = sink
        self._keepalive_s = keepalive_s
        self._watchdog = watchdog
        self._task: asyncio.Task[None] | None = None
        self._pinged = 0  # bytes the clock wrote itself (keep-alives, a head they started)
        self.first_byte_s = self.idle_s = 0.0
        self.in_at = self.out_at = loop.time()
        self.produced = 0  # bytes the decoder produced, at the last sweep
        self.sent = 0
        self.fired = False
        if keepalive_s:
            watchdog.add(self)

    def attach(self, upstream: UpstreamResponse, provider: ProviderConfig) -> None:
        """The upstream's response head is in: time its body from now."""
        self._upstream = upstream
        self.first_byte_s = provider.first_byte_timeout_s
        self.idle_s = provider.idle_timeout_s
        self.in_at = self._loop.time()
        self.produced = self._sink.sent() - self._pinged
        self._watchdog.add(self)

    @property
    def seen(self) -> bool:
        return self.produced > 0

    def check(self, now: float) -> None:
        if self._upstream is not None:
            produced = self._sink.sent() - self._pinged
            if produced != self.produced or self._sink.paused():
                self.produced, self.in_at = produced, now
            if now - self.in_at >= (self.idle_s if produced else self.first_byte_s):
                self.fired = True
                self._watchdog.discard(self)
                self._upstream.close()  # the read in the relay loop ends or raises; it reports the timeout
                return
        if self._keepalive_s:
            sent = self._sink.sent()
            if sent != self.sent:
                self.sent, self.out_at = sent, now
            elif now - self.out_at >= self._keepalive_s and self._task is None:
                self.out_at = now
                self._task = self._loop.create_task(self._keepalive())

    def expire(self) -> None:
        """Fire now, whatever the progress (``Watchdog.expire``, the drain deadline)."""
        self.fired = True
        self._watchdog.discard(self)
        if self._upstream is not None:
            self._upstream.close()

    async def _keepalive(self) -> None:
        # The clock's own bytes are counted around each await: a frame the relay writes in the
        # same instant may be counted as the clock's, which only delays its progress to the next.
        sink = self._sink
        before = sink.sent()
        try:
            response = await sink.start()
            self._pinged += sink.sent() - before
            before = sink.sent()
            await response.write(self._ping)
        except (ConnectionError, RuntimeError):
            if self._upstream is not None:
                self._upstream.close()  # the client is gone: stop the provider generating
        finally:
            self._pinged += sink.sent() - before
            self._task = None

    def cancel(self) -> None:
        self._watchdog.discard(self)
        if self._task is not None:
            self._task.cancel()


class ClientStream:
    """One streamed answer to the client, from before the upstream request is sent.

    With ``keepalive_s`` set, keep-alives start while the upstream has not even sent its
    response head (a slow TLS handshake, a provider queueing the request), and may start the
    client's response; a failure after that can only be reported as the door's error event
    (``fail``), no longer as an HTTP error or a fallback.
    """

    __slots__ = ("_framing", "clock", "sink")

    def __init__(
        self,
        request: web.Request,
        headers: Mapping[str, str],
        watchdog: Watchdog,
        keepalive_s: float | None,
        framing: Framing,
        record: RequestRecord | None = None,
    ) -> None:
        loop = watchdog.loop()
        self._framing = framing
        self.sink = _Sink(request, headers, loop, record)
        self.clock = _Clock(loop, self.sink, keepalive_s, watchdog, framing.keepalive)

    @property
    def started(self) -> bool:
        """Whether the client's response has begun: a failure now is an error event."""
        return self.sink.begun

    async def fail(self, err: ProxyError) -> web.StreamResponse:
        """End a started response with the door's error event for ``err``."""
        try:
            response = await self.sink.start()  # a keep-alive may still be starting it
        except (ClientError, ConnectionError, RuntimeError):
            raise ClientDisconnected(self.sink.response) from None
        finally:
            self.clock.cancel()
        response[FAILED_AFTER_START] = err
        try:
            await response.write(self._framing.error_frame(err))
            await response.write_eof()
        except (ClientError, ConnectionError):
            raise ClientDisconnected(response) from None
        return response

    def close(self) -> None:
        self.clock.cancel()


async def relay_stream(
    request: web.Request,
    upstream: UpstreamResponse,
    decoder: StreamDecoder,
    provider: ProviderConfig,
    headers: Mapping[str, str],
    watchdog: Watchdog,
    keepalive_s: float | None,
    framing: Framing,
    record: RequestRecord | None = None,
    stream: ClientStream | None = None,
) -> web.StreamResponse:
    """Relay ``upstream`` to the client through ``decoder`` (into ``stream``, when the caller
    opened it before the upstream request, else into a new one).

    Raises ``ProxyError`` if the attempt failed before anything reached the client (the caller
    answers with an HTTP error or tries another model); after that, failures become the front
    door's error event and the stream ends, never with a fake end of stream.
    """
    if stream is None:
        stream = ClientStream(request, headers, watchdog, keepalive_s, framing, record)
    sink, clock = stream.sink, stream.clock
    clock.attach(upstream, provider)
    try:
        await _pump(upstream, decoder, sink, clock, provider)
    except ProxyError as err:
        if not sink.begun:
            raise
        log.warning("stream from %s failed after start: %s", provider.name, err.message)
        await stream.fail(err)
    finally:
        clock.cancel()
        upstream.close()
        if record is not None:
            record.bytes_out = sink.sent()
    assert sink.response is not None
    return sink.response


async def _pump(
    upstream: UpstreamResponse,
    decoder: StreamDecoder,
    sink: _Sink,
    clock: _Clock,
    provider: ProviderConfig,
) -> None:
    feed = decoder.feed
    write = None
    chunks = upstream.chunks()
    try:
        async for chunk in chunks:
            try:
                out = feed(chunk)
            except StreamError as exc:
                if exc.output:
                    await (await sink.start()).write(exc.output)
                raise
            if out:
                if write is None:
                    write = (await sink.start()).write
                await write(out)
                if decoder.done:
                    await sink.response.write_eof()  # type: ignore[union-attr]
                    clock.idle_s = min(clock.idle_s, _DRAIN_AFTER_DONE_S)
                    try:
                        async for _ in chunks:  # read to the end, so the connection returns to the pool
                            pass
                    except (ClientError, OSError):
                        pass
                    return
    except (ClientError, OSError) as exc:
        if sink.client_gone():
            raise ClientDisconnected(sink.response) from None
        if clock.fired:
            raise _timeout(clock, provider) from None
        raise StreamError(f"the connection to provider '{provider.name}' failed mid-stream: {describe(exc)}") from None
    if clock.fired:
        raise _timeout(clock, provider)
    out = decoder.finish()
    if out:
        await (await sink.start()).write(out)
    if sink.response is not None:
        await sink.response.write_eof()
    else:
        raise StreamError(f"provider '{provider.name}' ended its stream without any content")


def _timeout(clock: _Clock, provider: ProviderConfig) -> ProxyError:
    if clock._watchdog.closing:  # the drain deadline at shutdown, not the provider's fault
        return StreamError("sse-proxy is shutting down: the stream was ended at its drain deadline", status=503)
    if clock.seen:
        return StreamError(f"provider '{provider.name}' sent nothing for {clock.idle_s:g} s", type="timeout_error")
    return UpstreamTimeout(f"provider '{provider.name}' sent no data within {clock.first_byte_s:g} s")
