"""The process's one timer (``proxy.watchdog``), alone; the relay's use of it is in test_relay."""

from __future__ import annotations

import asyncio
import logging

import pytest

from proxy.watchdog import Watchdog


async def test_within_returns_the_result_in_time() -> None:
    watchdog = Watchdog(0.01)
    assert await watchdog.within(5, asyncio.sleep(0.02, result="ok")) == "ok"
    assert watchdog.watching == 0  # the deadline is gone once the await is over
    watchdog.close()


async def test_within_raises_timeout_error_and_the_task_goes_on() -> None:
    watchdog = Watchdog(0.01)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await watchdog.within(0.05, asyncio.sleep(10))
    waited = loop.time() - started
    assert 0.05 <= waited < 5
    # The cancellation was the deadline's and is spent: the task can await again.
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    await asyncio.sleep(0)
    assert watchdog.watching == 0
    watchdog.close()


async def test_an_outside_cancellation_is_not_turned_into_a_timeout() -> None:
    watchdog = Watchdog(0.01)
    task = asyncio.create_task(watchdog.within(10, asyncio.sleep(10)))
    await asyncio.sleep(0.03)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert watchdog.watching == 0
    watchdog.close()


async def test_a_cancellation_arriving_with_the_deadline_stays_a_cancellation() -> None:
    watchdog = Watchdog(3600)  # no sweep of its own: the test fires the deadline
    task = asyncio.create_task(watchdog.within(10, asyncio.sleep(10)))
    await asyncio.sleep(0)
    (deadline,) = watchdog._watches
    deadline.check(asyncio.get_running_loop().time() + 11)  # the deadline cancels the task...
    task.cancel()  # ...and so does its owner, before the task runs again
    with pytest.raises(asyncio.CancelledError):
        await task
    assert watchdog.watching == 0
    watchdog.close()


class _Counting:
    def __init__(self) -> None:
        self.times: list[float] = []

    def check(self, now: float) -> None:
        self.times.append(now)


async def test_one_timer_checks_every_watch_and_stops_when_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("proxy.watchdog._IDLE_SWEEPS", 2)
    watchdog = Watchdog(0.01)
    a, b = _Counting(), _Counting()
    watchdog.add(a)
    watchdog.add(b)
    handle = watchdog._handle
    await asyncio.sleep(0.08)
    assert len(a.times) >= 2 and len(b.times) >= 2
    assert a.times == sorted(a.times)
    watchdog.discard(a)
    watchdog.discard(b)
    seen = len(a.times)
    await asyncio.sleep(0.08)
    assert len(a.times) == seen  # discarded watches are no longer checked
    assert watchdog._handle is None  # and with nothing to watch the timer stopped
    watchdog.add(a)
    assert watchdog._handle is not None and watchdog._handle is not handle
    await asyncio.sleep(0.05)
    assert len(a.times) > seen
    watchdog.close()
    assert watchdog._handle is None and watchdog.watching == 0


async def test_a_failing_watch_is_logged_and_dropped_not_the_sweep(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def check(self, now: float) -> None:
            raise RuntimeError("boom")

    watchdog = Watchdog(0.01)
    good = _Counting()
    watchdog.add(Broken())
    watchdog.add(good)
    with caplog.at_level(logging.ERROR, logger="proxy.watchdog"):
        await asyncio.sleep(0.06)
    assert "boom" in caplog.text
    assert watchdog.watching == 1 and len(good.times) >= 2
    watchdog.close()


def test_resolution_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Watchdog(0)
