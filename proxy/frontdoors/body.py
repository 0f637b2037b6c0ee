"""Reading a request body within bounds: its size, the process's body budget, and a deadline.

Thirty 30 MB bodies read at once once held 3.4 GB: each body is held raw, then joined, then
parsed into Python objects several times its size. The ``BodyBudget`` bounds the raw bytes of
bodies being read and parsed at once in this process; a body that does not fit is refused
with a 503 and ``Retry-After`` (the openai SDK retries those) before any of it is read. A body
with a ``Content-Length`` reserves it whole up front; a chunked one reserves as it arrives.
The budget never refuses the only body being read, so one body up to ``max_body_bytes`` is
always served whatever the two figures are.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from aiohttp import web

from proxy.config import ServerConfig
from proxy.errors import BadRequest, PayloadTooLarge, ProxyError
from proxy.watchdog import Watchdog

__all__ = ["BODY_LIMITS", "BodyBudget", "BodyLimits", "read_parsed"]

T = TypeVar("T")

_RETRY_AFTER_S = 1.0
# Memory back to the system after large bodies: once this many body bytes were read since the
# last trim, glibc's ``malloc_trim`` runs a moment later, when no body is being read. Python
# frees a parsed body's objects, but the allocator keeps the pages unless asked.
_TRIM_AFTER_BYTES = 32 * 1024 * 1024
_TRIM_DELAY_S = 0.5


def _load_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


_MALLOC_TRIM = _load_trim()


@dataclass(slots=True)
class BodyBudget:
    """Bytes of request bodies held by readers now, against ``capacity`` (one event loop)."""

    capacity: int
    used: int = 0
    since_trim: int = 0  # body bytes read since memory was last given back
    trim_pending: bool = field(default=False, repr=False)

    def take(self, size: int) -> bool:
        """Reserve ``size`` bytes; False when they do not fit beside the bodies already held."""
        if self.used and self.used + size > self.capacity:
            return False
        self.used += size
        return True

    def give(self, size: int) -> None:
        self.used -= size
        self.since_trim += size

    def trim(self) -> None:
        """Give freed memory back to the system, unless a body is being read (then later)."""
        self.trim_pending = False
        if self.used == 0 and _MALLOC_TRIM is not None:
            self.since_trim = 0
            _MALLOC_TRIM(0)


@dataclass(slots=True)
class BodyLimits:
    """The app's body bounds: per body, for all bodies at once, and in time."""

    max_body_bytes: int
    timeout_s: float
    budget: BodyBudget
    watchdog: Watchdog

    @classmethod
    def from_config(cls, server: ServerConfig, watchdog: Watchdog) -> BodyLimits:
        return cls(server.max_body_bytes, server.body_timeout_s, BodyBudget(server.max_inflight_body_bytes), watchdog)


BODY_LIMITS = web.AppKey("body_limits", BodyLimits)


def _too_large(limit: int, size: int | None = None) -> PayloadTooLarge:
    what = "request body" if size is None else f"request body of {size} bytes"
    return PayloadTooLarge(f"{what} exceeds the limit of {limit} bytes")


def _busy() -> ProxyError:
    err = ProxyError(
        "sse-proxy is reading too many request bodies at once; retry shortly",
        status=503,
        type="api_error",
        code="server_busy",
    )
    err.retry_after = _RETRY_AFTER_S
    return err


def _slow(seconds: float) -> ProxyError:
    message = f"the request body was not received within {seconds:g} s"
    return ProxyError(message, status=408, type="invalid_request_error", code="request_timeout")


async def read_parsed(request: web.Request, limits: BodyLimits, limit: int, parse: Callable[[bytes], T]) -> T:
    """``parse`` of the raw body, with the body's bytes held in the budget until it returns.

    413 over ``limit``, 503 when the budget is full, 408 when the body takes longer than
    ``limits.timeout_s`` to arrive. The raw bytes are dropped when this returns.
    """
    held = _Held(limits.budget)
    try:
        try:
            raw = await limits.watchdog.within(limits.timeout_s, _read(request, held, limit))
        except TimeoutError:
            raise _slow(limits.timeout_s) from None
        return parse(raw)
    finally:
        held.release()
        budget = limits.budget
        if budget.since_trim >= _TRIM_AFTER_BYTES and not budget.trim_pending:
            budget.trim_pending = True
            limits.watchdog.loop().call_later(_TRIM_DELAY_S, budget.trim)


class _Held:
    """Bytes reserved in the budget by one reader, given back once."""

    __slots__ = ("budget", "size")

    def __init__(self, budget: BodyBudget) -> None:
        self.budget = budget
        self.size = 0

    def take(self, size: int) -> None:
        if not self.budget.take(size):
            raise _busy()
        self.size += size

    def release(self) -> None:
        self.budget.give(self.size)
        self.size = 0


async def _read(request: web.Request, held: _Held, limit: int) -> bytes:
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit, declared)
    try:
        if declared is not None:
            held.take(declared)
        parts: list[bytes] = []
        total = 0
        content = request.content
        while chunk := await content.readany():
            total += len(chunk)
            if total > limit:
                raise _too_large(limit)
            if declared is None:
                held.take(len(chunk))
            parts.append(chunk)
        return b"".join(parts)
    except web.RequestPayloadError as exc:
        raise BadRequest(f"the request body could not be read: {exc}") from None
