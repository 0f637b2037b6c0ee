"""The attempts of one request: which step next, whether to retry it, how long to wait.

Errors are sorted in ``classify``: a client mistake ends the request at once; a provider's
limitation (``UnsupportedByProvider``) moves on to the next model without retrying or blaming
this one; provider trouble moves on; transient trouble is retried on the same model first.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Literal, Protocol

from proxy.errors import ProxyError, UnsupportedByProvider
from proxy.routing.graph import Step, Target

__all__ = ["Attempts", "Chooser", "classify"]


class Chooser(Protocol):
    """What attempts need of the router (``proxy.routing.router.Router``): keys, health, time."""

    clock: Callable[[], float]
    rng: random.Random

    def with_key(self, target: Target) -> Target: ...

    def has_free_key(self, target: Target) -> bool: ...

    def record(self, target: Target, err: ProxyError | None) -> None: ...

    def key_limited(self, target: Target, retry_after: float | None) -> None: ...


Verdict = Literal["final", "unsupported", "retry", "next"]


def classify(err: ProxyError) -> Verdict:
    """``final`` (client mistake: answer now), ``unsupported`` (this provider cannot: next model,
    no penalty), ``retry`` (same model again) or ``next`` (move on)."""
    if isinstance(err, UnsupportedByProvider):
        return "unsupported"
    if err.status in (400, 413, 422):
        return "final"
    if err.retryable:
        return "retry"
    return "next"


class Attempts:
    """The attempts of one request: ``await next()`` until one succeeds.

    ``next`` raises once every step is spent: the last error of a model that could have served
    the request, or, when none could (every one was unsupported), the provider's 400.
    ``failed`` raises at once for a client mistake. ``count`` is the number of attempts made so
    far (``X-Proxy-Attempts``).
    """

    def __init__(self, router: Chooser, steps: list[Step], budget_s: float) -> None:
        self._router = router
        self._steps = steps
        self._step = 0
        self._try = 0
        self._deadline = router.clock() + budget_s
        self._error: ProxyError | None = None  # the last error of a model that could serve
        self._unsupported: ProxyError | None = None
        self.count = 0

    async def next(self) -> Target:
        while self._step < len(self._steps):
            step = self._steps[self._step]
            if self._try:  # this step was tried and failed: again (after a pause), or move on
                delay = self._retry_delay(step)
                if delay is None:
                    self._step, self._try = self._step + 1, 0
                    continue
                if delay > 0:
                    await asyncio.sleep(delay)
            # The first try of a step never waits and is never skipped: the previous model's
            # error class, backoff and Retry-After say nothing about this one.
            self._try += 1
            try:
                target = self._router.with_key(step.target)
            except ProxyError as err:  # no key: not an attempt; the next step may have one
                self._error = err
                self._try = step.tries
                continue
            self.count += 1
            return target
        error = self._error or self._unsupported
        assert error is not None
        raise error

    def _retry_delay(self, step: Step) -> float | None:
        """Seconds to wait before trying ``step`` again, or None to move to the next step."""
        if self._error is None or self._try >= step.tries or classify(self._error) != "retry":
            return None
        if self._error.status == 429 and self._router.has_free_key(step.target):
            return 0.0  # the 429 binds the key that got it: another key of this provider goes at once
        base = step.backoff_ms[min(self._try - 1, len(step.backoff_ms) - 1)] / 1000 if step.backoff_ms else 0.0
        delay = base * self._router.rng.uniform(0.9, 1.1)
        if self._error.retry_after is not None:
            delay = max(delay, self._error.retry_after)
        if self._router.clock() + delay > self._deadline:
            return None
        return delay

    def failed(self, target: Target, err: ProxyError) -> None:
        verdict = classify(err)
        if verdict == "final":
            self._error = err
            raise err  # the client's mistake: no other model would do better, and this one is fine
        if verdict == "unsupported":  # the model is fine; it cannot do this: the next one may
            self._unsupported = err
            self._try = self._steps[self._step].tries
            return
        self._error = err
        self._router.record(target, err)
        if err.status == 429:
            self._router.key_limited(target, err.retry_after)
        if verdict == "next" and self._step < len(self._steps):
            self._try = self._steps[self._step].tries  # no retry of the same model

    def succeeded(self, target: Target) -> None:
        self._router.record(target, None)
