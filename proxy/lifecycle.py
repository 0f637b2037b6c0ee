"""A server process's life: drain at SIGTERM, reload at SIGHUP, and the ``--workers`` supervisor.

SIGTERM (or SIGINT): stop accepting, answer ``/readyz`` with 503, let open requests finish for
``[server] drain_timeout_s``, then end the streams still open with the front door's error event,
give them a moment to leave, and cancel what is left (a client that stopped reading cannot hold
the process). A second SIGTERM/SIGINT exits at once.

SIGHUP: load the configuration file again; new requests use it, open ones keep theirs. A bad
file is refused with a log line saying why, and the old configuration stays.

Supervisor: a worker that dies is started again after a back-off that grows while workers keep
dying young; workers die with the supervisor (``PR_SET_PDEATHSIG`` on Linux, a parent-pid watch
elsewhere), so no orphan keeps the port from a new instance.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import wait as wait_sentinels
from multiprocessing.process import BaseProcess
from typing import Any

from aiohttp import web

from proxy.config import ConfigError, load
from proxy.observability.metrics import MULTIPROC_ENV
from proxy.pipeline import STATE
from proxy.server import reload_config

__all__ = [
    "CANCEL_GRACE_S",
    "HAS_PDEATHSIG",
    "Supervisor",
    "drain",
    "exit_with_parent",
    "install_signals",
    "reload",
    "watch_parent",
]

log = logging.getLogger("proxy")

CANCEL_GRACE_S = 1.0  # after the drain deadline: for error frames to leave, then for cancellations
_POLL_S = 0.05  # how often a draining process looks whether its connections are gone
_BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
_STABLE_S = 30.0  # a worker that lived this long was healthy: the back-off starts again
_PR_SET_PDEATHSIG = 1
HAS_PDEATHSIG: bool = sys.platform.startswith("linux")  # else ``watch_parent`` runs


async def drain(runner: web.AppRunner, app: web.Application, timeout: float) -> None:
    """Stop accepting, mark not ready, wait up to ``timeout`` for open requests, then end the
    streams still open with an error event. The caller's ``runner.cleanup()`` cancels the rest."""
    state = app[STATE]
    state.draining = True
    for site in list(runner.sites):
        await site.stop()
    server = runner.server
    if server is None:
        return
    server.pre_shutdown()  # idle keep-alive connections stop waiting for another request
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while state.in_flight and loop.time() < deadline:
        await asyncio.sleep(_POLL_S)
    if not state.in_flight:
        log.info("drained: no request open")
        return
    log.warning("drain deadline (%gs): ending %d open requests", timeout, state.in_flight)
    state.transport.watchdog.expire()
    deadline = loop.time() + CANCEL_GRACE_S
    while state.in_flight and loop.time() < deadline:
        await asyncio.sleep(_POLL_S)


def reload(app: web.Application, path: str | None) -> None:
    """SIGHUP: serve new requests with the configuration file as it is now, if it is valid."""
    if path is None:
        log.warning("SIGHUP: no --config file to reload; nothing changed")
        return
    try:
        config = load(path)
    except ConfigError as exc:
        log.error("SIGHUP: configuration refused, keeping the old one: %s", exc)
        return
    reload_config(app, config)
    log.info("SIGHUP: configuration reloaded from %s", path)


def _exit_now(signum: int) -> None:
    log.warning("second %s: exiting now", signal.Signals(signum).name)
    logging.shutdown()
    os._exit(1)


def install_signals(
    loop: asyncio.AbstractEventLoop, stop: asyncio.Event, app: web.Application, path: str | None
) -> None:
    """SIGTERM/SIGINT set ``stop`` (then exit at once the second time); SIGHUP reloads."""

    def first(signum: int) -> None:
        log.info("%s: draining (up to %gs)", signal.Signals(signum).name, app[STATE].config.server.drain_timeout_s)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _exit_now, sig)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, first, sig)
    loop.add_signal_handler(signal.SIGHUP, reload, app, path)


def exit_with_parent(parent: int) -> None:
    """In a worker: get SIGTERM (and so drain) when the supervisor dies."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)  # not the supervisor's handlers, inherited by fork
    if HAS_PDEATHSIG:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    if os.getppid() != parent:  # the supervisor died before prctl took effect
        os._exit(0)


async def watch_parent(parent: int, period: float = 1.0) -> None:
    """Where there is no PR_SET_PDEATHSIG: SIGTERM this worker once its supervisor is gone."""
    while os.getppid() == parent:
        await asyncio.sleep(period)
    os.kill(os.getpid(), signal.SIGTERM)


class Supervisor:
    """Keeps ``workers`` processes running until a signal, restarting the ones that die."""

    def __init__(self, spawn: Callable[[int], BaseProcess], workers: int) -> None:
        self._spawn = spawn  # slot -> a started process
        self._workers = workers
        self._procs: dict[int, BaseProcess] = {}
        self._started: dict[int, float] = {}
        self._failures: dict[int, int] = {}
        self._due: dict[int, float] = {}  # slot -> when to start it again
        self._stopping = False
        self._codes: list[int] = []

    def _start(self, slot: int) -> None:
        self._procs[slot] = self._spawn(slot)
        self._started[slot] = time.monotonic()

    def _forward(self, signum: int) -> None:
        for proc in self._procs.values():
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signum)

    def _on_stop(self, signum: int, _frame: Any) -> None:
        if self._stopping:  # the second signal: the workers exit at once, and so do we
            self._forward(signal.SIGTERM)
            os._exit(1)
        self._stopping = True
        self._due.clear()
        self._forward(signal.SIGTERM)

    def _on_hup(self, signum: int, _frame: Any) -> None:
        self._forward(signal.SIGHUP)

    def _reap(self, slot: int, proc: BaseProcess) -> None:
        del self._procs[slot]
        code = proc.exitcode if proc.exitcode is not None else 0
        self._codes.append(code)
        if os.environ.get(MULTIPROC_ENV) and proc.pid is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(proc.pid)  # type: ignore[no-untyped-call]  # its open-streams gauge no longer counts
        if self._stopping:
            return
        lived = time.monotonic() - self._started[slot]
        failures = 0 if lived >= _STABLE_S else self._failures.get(slot, 0) + 1
        self._failures[slot] = failures
        delay = _BACKOFF_S[min(failures, len(_BACKOFF_S)) - 1] if failures else _BACKOFF_S[0]
        log.error("worker %d (pid %s) exited with code %s; restarting in %gs", slot, proc.pid, code, delay)
        self._due[slot] = time.monotonic() + delay

    def run(self) -> int:
        """Start the workers and supervise them; the exit code once all have stopped."""
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        for slot in range(self._workers):
            self._start(slot)
        while self._procs or self._due:
            now = time.monotonic()
            timeout = max(0.0, min(self._due.values()) - now) if self._due else None
            wait_sentinels([p.sentinel for p in self._procs.values()], timeout)
            for slot, proc in list(self._procs.items()):
                if not proc.is_alive():
                    proc.join()
                    self._reap(slot, proc)
            now = time.monotonic()
            for slot, at in list(self._due.items()):
                if at <= now and not self._stopping:
                    del self._due[slot]
                    self._start(slot)
        return max(self._codes[-self._workers :], default=0) if self._stopping else 1
