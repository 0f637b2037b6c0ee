"""Per-key rate limits over a sliding minute, in this process.

Requests per minute are counted when a request is admitted; tokens per minute when it ends
(from its ``RequestRecord`` usage), so a request is refused while the tokens of the last 60 s
reach the limit. With ``--workers N`` every worker keeps its own windows: the limits are per
worker (documented in docs/access.md).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["WINDOW_S", "Window"]

WINDOW_S = 60.0


@dataclass(slots=True)
class Window:
    """Amounts added over the last ``WINDOW_S`` seconds: ``wait(now, limit)`` is how long until
    the total is under ``limit`` again (0: it is). Memory is bounded by the events in one window."""

    events: deque[tuple[float, int]] = field(default_factory=deque)
    total: int = 0

    def _expire(self, now: float) -> None:
        events = self.events
        while events and events[0][0] <= now - WINDOW_S:
            self.total -= events.popleft()[1]

    def add(self, now: float, amount: int = 1) -> None:
        if amount > 0:
            self.events.append((now, amount))
            self.total += amount

    def wait(self, now: float, limit: int) -> float:
        self._expire(now)
        if self.total < limit:
            return 0.0
        excess = self.total - limit + 1  # this much must expire before one more fits
        for at, amount in self.events:
            excess -= amount
            if excess <= 0:
                return max(0.0, at + WINDOW_S - now)
        return WINDOW_S  # unreachable: the events sum to the total
