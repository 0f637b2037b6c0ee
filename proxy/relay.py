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
time-based work: the upstream idle/first-byte timeout and the keep-alive. It reads progress from
byte counters, so the hot loop does no timekeeping at all.
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

__all__ = ["FAILED_AFTER_START", "SSE_HEADERS", "ClientDisconnected", "Framing", "relay_stream"]

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

    def sent(self) -> int:
        """Bytes written to the client so far."""
        return self._request.writer.output_size if self.response is not None else 0

    def client_gone(self) -> bool:
        transport = self._request.transport
        return transport is None or transport.is_closing()


class _Clock:
    """A stream's watch (see ``proxy.watchdog``): upstream timeouts, and keep-alives to the client.

    Progress is read from byte counters at each sweep, so the relay loop does no timekeeping.
    """

    __slots__ = (
        "_keepalive_s",
        "_loop",
        "_ping",
        "_sink",
        "_task",
        "_upstream",
        "_watchdog",
        "fired",
        "first_byte_s",
        "idle_s",
        "in_at",
        "out_at",
        "received",
        "sent",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        upstream: UpstreamResponse,
        provider: ProviderConfig,
        sink: _Sink,
        keepalive_s: float | None,
        watchdog: Watchdog,
        keepalive: bytes = b": keep-alive\n\n",
    ) -> None:
        self._loop = loop
        self._ping = keepalive
        self._upstream = upstream
        self._sink = sink
        self._keepalive_s = keepalive_s
        self._watchdog = watchdog
        self._task: asyncio.Task[None] | None = None
        self.first_byte_s = provider.first_byte_timeout_s
        self.idle_s = provider.idle_timeout_s
        self.in_at = self.out_at = loop.time()
        self.received = upstream.received
        self.sent = 0
        self.fired = False
        watchdog.add(self)

    @property
    def seen(self) -> bool:
        return self.received > 0

    def check(self, now: float) -> None:
        received = self._upstream.received
        if received != self.received:
            self.received, self.in_at = received, now
        if now - self.in_at >= (self.idle_s if received else self.first_byte_s):
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
        self._upstream.close()

    async def _keepalive(self) -> None:
        try:
            response = await self._sink.start()
            await response.write(self._ping)
        except (ConnectionError, RuntimeError):
            self._upstream.close()  # the client is gone: stop the provider generating
        finally:
            self._task = None

    def cancel(self) -> None:
        self._watchdog.discard(self)
        if self._task is not None:
            self._task.cancel()


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
) -> web.StreamResponse:
    """Relay ``upstream`` to the client through ``decoder``.

    Raises ``ProxyError`` if the attempt failed before anything reached the client (the caller
    answers with an HTTP error or tries another model); after that, failures become the front
    door's error event and the stream ends, never with a fake end of stream.
    """
    loop = watchdog.loop()
    sink = _Sink(request, headers, loop, record)
    clock = _Clock(loop, upstream, provider, sink, keepalive_s, watchdog, framing.keepalive)
    try:
        await _pump(upstream, decoder, sink, clock, provider)
    except ProxyError as err:
        if sink.response is None:
            raise
        log.warning("stream from %s failed after start: %s", provider.name, err.message)
        sink.response[FAILED_AFTER_START] = err
        try:
            await sink.response.write(framing.error_frame(err))
            await sink.response.write_eof()
        except (ClientError, ConnectionError):
            raise ClientDisconnected(sink.response) from None
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
