"""Command line: ``sse-proxy`` / ``python -m proxy``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from dataclasses import replace
from typing import Any

from aiohttp import web

from proxy import __version__
from proxy.access.listen import is_loopback
from proxy.access.secrets import Scrubber, install_log_scrubber
from proxy.config import Config, ConfigError, load
from proxy.connections import ProxyRunner, raise_open_files_limit
from proxy.server import create_app

__all__ = ["main", "serve"]

log = logging.getLogger("proxy")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sse-proxy", description="A lean, very fast OpenAI-compatible LLM router.")
    parser.add_argument("--host", help="address to listen on (default: [server].host or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: [server].port or 8080)")
    parser.add_argument("--config", help="TOML configuration file (optional)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--workers", type=int, help="worker processes sharing the port with SO_REUSEPORT")
    parser.add_argument("--no-uvloop", action="store_true", help="use asyncio's default event loop")
    parser.add_argument(
        "--allow-open",
        action="store_true",
        help="listen on a non-loopback address without access keys (anyone who reaches it spends your keys)",
    )
    parser.add_argument("--version", action="version", version=f"sse-proxy {__version__}")
    return parser


def describe_providers(config: Config) -> str:
    usable = [p.name for p in config.providers.values() if p.usable]
    missing = [f"{p.name} ({' or '.join(p.api_key_envs)})" for p in config.providers.values() if not p.usable]
    text = f"providers usable: {', '.join(usable) or 'none'}"
    if missing:
        text += f"; without key: {', '.join(missing)}"
    return text


async def serve(config: Config, host: str, port: int, workers: int, announce: bool) -> None:
    """Run one server process until SIGINT/SIGTERM."""
    runner = ProxyRunner(create_app(config), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=workers > 1, backlog=2048)
    await site.start()
    if announce:
        addresses = ", ".join(f"http://{a[0]}:{a[1]}" for a in runner.addresses)
        loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]
        print(
            f"sse-proxy {__version__} listening on {addresses} (workers: {workers}, loop: {loop_name}); "
            f"{describe_providers(config)}",
            flush=True,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def _run(coro: Coroutine[Any, Any, None], use_uvloop: bool) -> None:
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(coro)
            return
    asyncio.run(coro)


def _worker(config: Config, host: str, port: int, workers: int, announce: bool, use_uvloop: bool) -> None:
    _run(serve(config, host, port, workers, announce), use_uvloop)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"sse-proxy: bad configuration: {exc}", file=sys.stderr)
        return 2
    host = args.host or config.server.host
    install_log_scrubber(Scrubber.from_config(config))
    refusal = open_listen_refusal(config, host, args.allow_open)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    config = replace(config, server=replace(config.server, host=host))  # the bind the Host check guards
    port = config.server.port if args.port is None else args.port
    workers = args.workers or config.server.workers
    if workers < 1:
        print("sse-proxy: --workers must be at least 1", file=sys.stderr)
        return 2
    use_uvloop = not args.no_uvloop
    raise_open_files_limit()  # before forking: workers inherit it
    try:
        if workers == 1:
            _worker(config, host, port, 1, True, use_uvloop)
            return 0
        return _supervise(config, host, port, workers, use_uvloop)
    except OSError as exc:
        print(f"sse-proxy: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1


def open_listen_refusal(config: Config, host: str, allow_open: bool) -> str | None:
    """Why the proxy must not listen on ``host`` (None: it may): a non-loopback address with no
    access keys lets anyone who reaches it spend the provider keys."""
    if config.access.keys or allow_open or is_loopback(host):
        return None
    return (
        f"sse-proxy: refusing to listen on {host!r} without access keys: anyone who can reach it could spend "
        "your provider keys. Set [server] api_keys_env or api_keys_file, listen on 127.0.0.1, "
        "or pass --allow-open if this network is trusted."
    )


def _supervise(config: Config, host: str, port: int, workers: int, use_uvloop: bool) -> int:
    """Start ``workers`` processes on one port (SO_REUSEPORT); stop them all on a signal."""
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(target=_worker, args=(config, host, port, workers, i == 0, use_uvloop), daemon=True)
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()

    def stop(signum: int, _frame: Any) -> None:
        for proc in procs:
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for proc in procs:
        proc.join()
    return max((proc.exitcode or 0) for proc in procs)
