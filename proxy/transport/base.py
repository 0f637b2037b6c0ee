"""The transport's two shapes: the request a provider builds, and the response the relay reads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = ["UpstreamRequest", "UpstreamResponse"]


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """One request to a provider: always a POST with a JSON body. The URL's scheme picks the
    transport (``mock://`` is served in-process)."""

    url: str
    headers: Mapping[str, str]
    body: bytes


class UpstreamResponse(Protocol):
    status: int
    headers: Mapping[str, str]

    @property
    def received(self) -> int:
        """Body bytes received so far (read or not). Not the watchdog's measure of progress: that
        is what the decoder made of them (comment lines and half frames are no progress)."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, one item per network read."""
        ...

    async def read(self) -> bytes: ...

    def close(self) -> None:
        """Drop the connection (a provider stops generating when its socket closes)."""
        ...
