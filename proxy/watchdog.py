"""One timer for the whole process: every open request's deadlines, checked in one sweep.

A timer per request (``asyncio.timeout``, ``loop.call_at``) is a timer handle created and
cancelled on every request, plus its Python bookkeeping; at thousands of requests a second
that is a visible share of the proxy's CPU (docs/benchmarks.md). The deadlines here are
seconds long, so one sweep every ``resolution`` seconds, while anything is watched, does the
same work with nothing per request but a set insertion. A watch fires at most about two
resolutions late.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

__all__ = ["Deadline", "Watch", "Watchdog"]

log = logging.getLogger("proxy.watchdog")

T = TypeVar("T")
_IDLE_SWEEPS = 5  # sweeps with nothing watched before the timer stops


class Watch(Protocol):
    def check(self, now: float) -> None:
        """Act on the time ``now`` (loop time); may ``discard`` itself from the watchdog."""
        ...


class Watchdog:
    """The watches of one event loop, and the one periodic timer that checks them."""

    __slots__ = ("_handle", "_idle", "_loop", "_watches", "closing", "resolution")

    def __init__(self, resolution: float = 1.0) -> None:
        if resolution <= 0:
            raise ValueError("resolution must be positive")
        self.resolution = resolution
        self._watches: set[Watch] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._idle = 0
        self.closing = False  # set by ``expire``: watches that fire now fire for the shutdown

    def add(self, watch: Watch) -> None:
        self._watches.add(watch)
        if self._handle is None:
            self._loop = asyncio.get_running_loop()
            self._handle = self._loop.call_later(self.resolution, self._sweep)

    def discard(self, watch: Watch) -> None:
        self._watches.discard(watch)

    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop; while the sweep is armed, without asking asyncio (which on
        Python 3.11 costs a ``getpid`` system call each time)."""
        if self._handle is not None and self._loop is not None:
            return self._loop
        return asyncio.get_running_loop()

    async def within(self, seconds: float, awaitable: Awaitable[T]) -> T:
        """``await awaitable``, raising ``TimeoutError`` if it takes longer than ``seconds``."""
        loop = self.loop()
        task = asyncio.current_task(loop)
        assert task is not None
        deadline = Deadline(task, loop.time() + seconds)
        self.add(deadline)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if deadline.fired and task.uncancel() == 0:
                raise TimeoutError from None
            raise
        finally:
            self._watches.discard(deadline)

    @property
    def watching(self) -> int:
        """How many watches are open (not ``__len__``: an idle watchdog must not be falsy)."""
        return len(self._watches)

    def expire(self) -> None:
        """Fire every watch now, as if its time had come: the drain deadline at shutdown. The
        relay then ends each open stream with the door's error event (see ``closing``)."""
        self.closing = True
        for watch in list(self._watches):
            expire = getattr(watch, "expire", None)  # a watch that counts progress has its own
            if expire is not None:
                expire()
            else:
                watch.check(math.inf)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._watches.clear()

    def _sweep(self) -> None:
        assert self._loop is not None
        if self._watches:
            self._idle = 0
            now = self._loop.time()
            for watch in list(self._watches):  # a check may discard its watch
                try:
                    watch.check(now)
                except Exception:
                    log.exception("watch %r failed", watch)
                    self._watches.discard(watch)
        else:
            # Stay armed for a while: a request arriving just after the last one ended then
            # costs no new timer.
            self._idle += 1
            if self._idle >= _IDLE_SWEEPS:
                self._handle = None
                return
        self._handle = self._loop.call_later(self.resolution, self._sweep)


class Deadline:
    """Cancels ``task`` once the loop time passes ``at``; ``fired`` tells the task why.

    The task that awaits something under a deadline catches the ``CancelledError``, and when
    ``fired`` is set (and ``task.uncancel()`` leaves no other cancellation pending) reports a
    timeout instead, as ``asyncio.timeout`` does.
    """

    __slots__ = ("at", "fired", "task")

    def __init__(self, task: asyncio.Task[Any], at: float) -> None:
        self.task = task
        self.at = at
        self.fired = False

    def check(self, now: float) -> None:
        if now >= self.at and not self.fired:
            self.fired = True
            self.task.cancel()
