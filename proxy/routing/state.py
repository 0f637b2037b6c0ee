"""Health of models and rotation of keys, behind a small interface.

``RoutingState`` is what the router asks; ``LocalState`` keeps it in this process. A shared store
(several workers, several hosts) can replace it by implementing the same five methods.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from proxy.config.model import HealthRule

__all__ = ["LocalState", "RoutingState"]


class RoutingState(Protocol):
    def healthy(self, labels: Iterable[str], rule: HealthRule) -> bool:
        """True while any of ``labels`` is not resting after ``rule.failure_threshold`` failures."""
        ...

    def record(self, label: str, failed: bool) -> None:
        """Count a failure of ``label`` (consecutive), or clear its count after a success."""
        ...

    def next_key(self, provider: str, count: int) -> int:
        """The index of the key to use next among ``count`` (rotating, skipping limited ones)."""
        ...

    def has_free_key(self, provider: str, count: int) -> bool:
        """Whether one of ``count`` keys is not resting after a 429."""
        ...

    def limit_key(self, provider: str, index: int, seconds: float) -> None:
        """Rest key ``index`` for ``seconds`` (its 429's Retry-After, or the cooldown)."""
        ...


@dataclass(slots=True)
class _Health:
    failures: int = 0
    last_failure: float = 0.0


@dataclass(slots=True)
class _Keys:
    cursor: int = 0
    limited_until: dict[int, float] = field(default_factory=dict)


class LocalState:
    """``RoutingState`` in this process's memory (each worker has its own)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._health: dict[str, _Health] = {}
        self._keys: dict[str, _Keys] = {}

    def healthy(self, labels: Iterable[str], rule: HealthRule) -> bool:
        if not self._health:
            return True
        now = self._clock()
        for label in labels:
            health = self._health.get(label)
            if health is None or health.failures < rule.failure_threshold:
                return True
            if now - health.last_failure >= rule.cooldown_s:
                return True
        return False

    def record(self, label: str, failed: bool) -> None:
        if not failed:
            self._health.pop(label, None)
            return
        health = self._health.setdefault(label, _Health())
        health.failures += 1
        health.last_failure = self._clock()

    def next_key(self, provider: str, count: int) -> int:
        state = self._keys.setdefault(provider, _Keys())
        now = self._clock()
        for offset in range(count):
            index = (state.cursor + offset) % count
            if state.limited_until.get(index, 0.0) <= now:
                break
        else:
            index = min(range(count), key=lambda i: state.limited_until.get(i, 0.0))
        state.cursor = index + 1
        return index

    def has_free_key(self, provider: str, count: int) -> bool:
        state = self._keys.get(provider)
        now = self._clock()
        return state is None or any(state.limited_until.get(i, 0.0) <= now for i in range(count))

    def limit_key(self, provider: str, index: int, seconds: float) -> None:
        state = self._keys.setdefault(provider, _Keys())
        state.limited_until[index] = self._clock() + seconds
