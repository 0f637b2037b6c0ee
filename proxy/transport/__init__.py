"""Sockets: how an ``UpstreamRequest`` reaches its provider.

``Transport`` picks by the request URL's scheme: ``mock://`` is the built-in mock model, served
in-process; everything else goes over HTTP through one keep-alive pool. Both return an
``UpstreamResponse``, the one small interface the relay reads from.
"""

from __future__ import annotations

from proxy.config import ProviderConfig
from proxy.transport.base import UpstreamRequest, UpstreamResponse
from proxy.transport.http import HTTPTransport
from proxy.transport.mock import MockTransport
from proxy.watchdog import Watchdog

__all__ = ["Transport", "UpstreamResponse"]

_MOCK = "mock://"


class Transport:
    def __init__(self, watchdog: Watchdog | None = None) -> None:
        self.http = HTTPTransport(watchdog)
        self.mock = MockTransport()
        self.watchdog = self.http.watchdog

    async def start(self) -> None:
        await self.http.start()

    async def close(self) -> None:
        await self.http.close()

    async def open(self, req: UpstreamRequest, provider: ProviderConfig) -> UpstreamResponse:
        if req.url.startswith(_MOCK):
            return await self.mock.open(req, provider)
        return await self.http.open(req, provider)
