"""The network side: opening a request to a provider and reading its response.

``UpstreamResponse`` is the one small interface the relay reads from; ``HTTPTransport`` is the
real one (one ``ClientSession`` for the app's life, one keep-alive pool), and the mock provider
implements the same interface in-process.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator, Mapping

import aiohttp

from proxy.config import ProviderConfig
from proxy.errors import UpstreamTimeout, UpstreamUnavailable
from proxy.transport.base import UpstreamRequest, UpstreamResponse
from proxy.watchdog import Watchdog

__all__ = ["HTTPTransport", "UpstreamResponse", "describe", "parse_retry_after", "read_body"]


class _HTTPResponse:
    __slots__ = ("_resp", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.headers: Mapping[str, str] = resp.headers

    @property
    def received(self) -> int:
        return self._resp.content.total_bytes

    def chunks(self) -> AsyncIterator[bytes]:
        return self._resp.content.iter_any()

    async def read(self) -> bytes:
        return await self._resp.read()

    def close(self) -> None:
        self._resp.close()


def describe(exc: BaseException) -> str:
    """A short, key-free description of a network error (no URLs, no headers)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"connection failed ({exc.os_error.strerror or type(exc.os_error).__name__})"
    text = str(exc) if isinstance(exc, OSError) and not isinstance(exc, aiohttp.ClientError) else ""
    return f"{type(exc).__name__}{': ' + text if text else ''}"


class HTTPTransport:
    """Opens provider requests over one keep-alive connection pool.

    The first-byte deadline is the ``watchdog``'s (no timer per request); aiohttp's own
    ``sock_connect`` timeout applies only when a new connection is made.
    """

    def __init__(self, watchdog: Watchdog | None = None) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._fresh: aiohttp.ClientSession | None = None  # new connections only: see ``_send``
        self.watchdog = watchdog if watchdog is not None else Watchdog()
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=75)
        self._session = _session(connector)
        self._fresh = _session(aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, force_close=True))

    async def close(self) -> None:
        for session in (self._session, self._fresh):
            if session is not None:
                await session.close()
        self._session = self._fresh = None
        self.watchdog.close()

    async def open(self, req: UpstreamRequest, provider: ProviderConfig) -> UpstreamResponse:
        """Send ``req``; return once the response headers are in.

        Raises ``UpstreamUnavailable`` (502) when the provider cannot be reached and
        ``UpstreamTimeout`` (504) when it does not answer within its first-byte timeout.
        """
        assert self._session is not None, "HTTPTransport.start() was not awaited"
        timeout = self._timeouts.get(provider.connect_timeout_s)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=provider.connect_timeout_s)
            self._timeouts[provider.connect_timeout_s] = timeout
        try:
            resp = await self.watchdog.within(provider.first_byte_timeout_s, self._send(req, timeout))
        except aiohttp.ConnectionTimeoutError:  # a TimeoutError too: caught first, reported as what it is
            raise UpstreamTimeout(
                f"provider '{provider.name}' could not be connected within {provider.connect_timeout_s:g} s",
                code="connect_timeout",
            ) from None
        except TimeoutError:
            raise UpstreamTimeout(
                f"provider '{provider.name}' sent no response within {provider.first_byte_timeout_s:g} s"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamUnavailable(f"provider '{provider.name}' is unreachable: {describe(exc)}") from None
        return _HTTPResponse(resp)

    # No redirects: a 3xx must not carry the provider's key (x-api-key, x-goog-api-key,
    # Authorization) to another host; it becomes an upstream error.
    async def _send(self, req: UpstreamRequest, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientResponse:
        """POST ``req``; once more, on a new connection, if the connection was closed or reset
        before any byte of the response.

        A pooled keep-alive connection may have been closed by the provider while it sat idle
        (its keep-alive timeout, a restart); the request then fails before the provider read
        it, and aiohttp retries only idempotent methods. Resending is safe: the body is bytes,
        and a provider that closes a connection before answering has not started an answer.
        A connect error is not retried here: a new connection would fail the same way.
        """
        assert self._session is not None and self._fresh is not None
        try:
            return await self._session.post(
                req.url, data=req.body, headers=req.headers, timeout=timeout, allow_redirects=False
            )
        except (aiohttp.ClientConnectorError, aiohttp.ServerTimeoutError):
            raise
        except aiohttp.ServerDisconnectedError as exc:
            if not isinstance(exc.message, str):  # part of the response head came: not resent
                raise
        except (aiohttp.ClientOSError, aiohttp.ClientConnectionResetError):
            pass
        return await self._fresh.post(
            req.url, data=req.body, headers=req.headers, timeout=timeout, allow_redirects=False
        )


def _session(connector: aiohttp.TCPConnector) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=connector,
        # No cookie state: one client's upstream cookies (Cloudflare's __cf_bm on OpenAI's
        # answers) must not ride on another client's requests.
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None),
        skip_auto_headers=("User-Agent",),
        trust_env=False,
    )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), else None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


async def read_body(resp: UpstreamResponse, provider: ProviderConfig) -> bytes:
    """The whole body of a non-stream response, within the provider's first-byte timeout."""
    try:
        async with asyncio.timeout(provider.first_byte_timeout_s):
            return await resp.read()
    except TimeoutError:
        raise UpstreamTimeout(
            f"provider '{provider.name}' did not finish its response within {provider.first_byte_timeout_s:g} s"
        ) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise UpstreamUnavailable(f"provider '{provider.name}' failed mid-response: {describe(exc)}") from None
