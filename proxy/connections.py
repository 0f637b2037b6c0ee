"""Client connections within bounds: how many are open, how long a request's headers may take,
and aiohttp's own HTTP-parser errors in OpenAI's error shape.

aiohttp's server has a keep-alive timeout (``keepalive_timeout_s``, passed through) but no
deadline on reading a request's headers: a client sending one byte a second holds a
connection, a socket and a file descriptor for as long as it likes, and 900 of them are cheap
to open. Here each connection gets a header deadline, checked by the process's one
``Watchdog`` sweep (no timer per connection): armed when the connection opens and when the
first byte of a later request arrives on an idle keep-alive connection, satisfied when
aiohttp's parser completes a request; a connection still without a complete request at its
deadline is closed. The body's own deadline is ``proxy.frontdoors.body``'s.

``max_connections`` caps the client connections a process holds: one more is answered with a
canned 503 (``Retry-After: 1``) and closed at once, before its request is read, so that the
process keeps file descriptors for the upstream connections its real clients need. Unset, it
is half the open-file limit, which ``raise_open_files_limit`` raises to the hard limit at start.

aiohttp has no hook for its connection class, so ``ProxyRunner`` (an ``AppRunner``) wraps the
stock ``web.Server`` it builds in a ``ClientServer`` making ``ClientConnection`` handlers.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_request import BaseRequest

from proxy.errors import BadRequest, ProxyError
from proxy.pipeline import STATE
from proxy.protocols.openai_chat.encode import error_body
from proxy.watchdog import Watchdog

__all__ = ["ClientConnection", "ClientServer", "ConnectionLimits", "ProxyRunner", "raise_open_files_limit"]

log = logging.getLogger("proxy.connections")

_FD_RESERVE = 64  # descriptors kept for the listening sockets, logs, DNS and the like


def _refusal() -> bytes:
    err = ProxyError("sse-proxy has too many open connections; retry shortly", status=503, code="too_many_connections")
    body = error_body(err)
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
        f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


_REFUSAL = _refusal()


def raise_open_files_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit (the soft default, often 1,024, is what
    idle connections exhausted); returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # e.g. macOS refuses RLIM_INFINITY
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, exc)
            return soft
    return hard


def default_max_connections() -> int:
    """Half the open files: each client connection may need an upstream connection beside it."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(1, (soft - _FD_RESERVE) // 2)


class ConnectionLimits:
    """The bounds of one process's client connections, and how many are open."""

    __slots__ = ("header_timeout_s", "max_connections", "open", "watchdog")

    def __init__(self, header_timeout_s: float, max_connections: int, watchdog: Watchdog) -> None:
        self.header_timeout_s = header_timeout_s
        self.max_connections = max_connections
        self.watchdog = watchdog
        self.open = 0


class _HeaderDeadline:
    """Closes ``conn`` at ``at`` unless aiohttp has parsed a request on it since the arming."""

    __slots__ = ("at", "conn", "count")

    def __init__(self, conn: ClientConnection, at: float, count: int) -> None:
        self.conn = conn
        self.at = at
        self.count = count

    def check(self, now: float) -> None:
        conn = self.conn
        if conn.requests_parsed != self.count:
            conn.disarm()
        elif now >= self.at:
            conn.disarm()
            log.debug("closing a connection whose request headers took over %gs", conn.limits.header_timeout_s)
            conn.force_close()


class ClientConnection(web.RequestHandler):
    """aiohttp's connection handler with a header deadline, a place in ``ConnectionLimits`` and
    JSON error responses."""

    __slots__ = ("_counted", "_header_watch", "_refused", "limits")

    def __init__(self, manager: web.Server, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.limits = limits
        self._header_watch: _HeaderDeadline | None = None
        self._counted = False
        self._refused = False

    @property
    def requests_parsed(self) -> int:
        """Requests (or parse errors) aiohttp has read off this connection."""
        return self._request_count

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        limits = self.limits
        limits.open += 1
        self._counted = True
        if limits.open > limits.max_connections:
            self._refused = True
            assert isinstance(transport, asyncio.Transport)
            transport.write(_REFUSAL)
            transport.close()
            return
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._counted:
            self._counted = False
            self.limits.open -= 1
        self.disarm()
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # The first bytes of a request on an idle keep-alive connection (aiohttp's ``_waiter`` is
        # set only while the connection waits for its next request): its headers' clock starts.
        if self._header_watch is None and self._waiter is not None:
            self._arm()
        super().data_received(data)

    def _arm(self) -> None:
        watchdog = self.limits.watchdog
        at = watchdog.loop().time() + self.limits.header_timeout_s
        self._header_watch = _HeaderDeadline(self, at, self._request_count)
        watchdog.add(self._header_watch)

    def disarm(self) -> None:
        if self._header_watch is not None:
            self.limits.watchdog.discard(self._header_watch)
            self._header_watch = None

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        """aiohttp's errors (a malformed request, a handler that failed outside the middleware)
        in OpenAI's error shape; client errors are logged at debug level (a hostile client must
        not fill the log with tracebacks)."""
        if status >= 500:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
        else:
            self.logger.debug("Error handling request from %s: %s", request.remote, message or exc)
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        err = _parser_error(status, message)
        response = web.Response(body=error_body(err), status=status, content_type="application/json")
        response.force_close()
        return response


def _parser_error(status: int, message: str | None) -> ProxyError:
    if status == 400:
        return BadRequest(f"malformed HTTP request: {message or 'bad request'}")
    if status >= 500:
        return ProxyError("internal error in sse-proxy (see its log)", status=status)
    return ProxyError(message or HTTPStatus(status).phrase, status=status)


class ClientServer(web.Server):
    """aiohttp's low-level server making ``ClientConnection`` handlers."""

    def __init__(self, handler: Any, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.limits = limits

    def __call__(self) -> ClientConnection:
        return ClientConnection(self, loop=self._loop, limits=self.limits, **self._kwargs)


class ProxyRunner(web.AppRunner):
    """The proxy's ``AppRunner``: ``keepalive_timeout_s`` and ``ClientConnection`` handlers."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        server = app[STATE].config.server
        kwargs.setdefault("keepalive_timeout", server.keepalive_timeout_s)
        super().__init__(app, **kwargs)
        cap = server.max_connections or default_max_connections()
        self.limits = ConnectionLimits(server.header_timeout_s, cap, app[STATE].transport.watchdog)

    async def _make_server(self) -> web.Server:
        stock = await super()._make_server()
        return ClientServer(
            stock.request_handler,
            request_factory=stock.request_factory,
            handler_cancellation=stock.handler_cancellation,
            loop=stock._loop,
            limits=self.limits,
            **stock._kwargs,
        )
