"""Command line: ``sse-proxy`` / ``python -m proxy``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
from collections.abc import Coroutine, Sequence
from dataclasses import replace
from typing import Any

from aiohttp import web

from proxy import __version__
from proxy.access.listen import is_loopback
from proxy.access.secrets import Scrubber, install_log_scrubber
from proxy.config import Config, ConfigError, load
from proxy.connections import ProxyRunner, raise_open_files_limit
from proxy.lifecycle import (
    CANCEL_GRACE_S,
    HAS_PDEATHSIG,
    Supervisor,
    drain,
    exit_with_parent,
    install_signals,
    watch_parent,
)
from proxy.observability.metrics import MULTIPROC_ENV
from proxy.observability.record import JsonFormatter
from proxy.pipeline import STATE
from proxy.server import create_app

__all__ = ["main", "serve"]

log = logging.getLogger("proxy")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sse-proxy", description="A lean, very fast OpenAI-compatible LLM router.")
    parser.add_argument("--host", help="address to listen on (default: [server].host or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: [server].port or 8080)")
    parser.add_argument("--config", help="TOML configuration file (optional)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument(
        "--log-format", default="text", choices=["text", "json"], help="log lines as text (default) or JSON"
    )
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


async def serve(
    config: Config, host: str, port: int, workers: int, announce: bool, config_path: str | None = None
) -> None:
    """Run one server process until SIGINT/SIGTERM, then drain (see ``proxy.lifecycle``)."""
    app = create_app(config)
    runner = ProxyRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=CANCEL_GRACE_S)
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
    install_signals(loop, stop, app, config_path)
    try:
        await stop.wait()
        await drain(runner, app, app[STATE].config.server.drain_timeout_s)
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


def _worker(
    config: Config,
    host: str,
    port: int,
    workers: int,
    announce: bool,
    use_uvloop: bool,
    config_path: str | None = None,
    parent: int | None = None,
) -> None:
    if parent is not None:
        exit_with_parent(parent)
    _run(_serve_worker(config, host, port, workers, announce, config_path, parent), use_uvloop)


async def _serve_worker(
    config: Config, host: str, port: int, workers: int, announce: bool, config_path: str | None, parent: int | None
) -> None:
    watcher = None
    if parent is not None and not HAS_PDEATHSIG:
        watcher = asyncio.create_task(watch_parent(parent))
    try:
        await serve(config, host, port, workers, announce, config_path)
    finally:
        if watcher is not None:
            watcher.cancel()


def _log_handler(log_format: str) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), handlers=[_log_handler(args.log_format)])
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
            _worker(config, host, port, 1, True, use_uvloop, args.config)
            return 0
        return _supervise(config, host, port, workers, use_uvloop, args.config)
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


def _supervise(config: Config, host: str, port: int, workers: int, use_uvloop: bool, config_path: str | None) -> int:
    """Start ``workers`` processes on one port (SO_REUSEPORT) and keep them running until a signal.

    Their metrics meet in a temporary ``PROMETHEUS_MULTIPROC_DIR`` made here and removed at the
    end (one the operator set is used as it is, and kept)."""
    metrics_dir = None
    if not os.environ.get(MULTIPROC_ENV):
        metrics_dir = os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="sse-proxy-metrics-")
    ctx = multiprocessing.get_context("fork")
    parent = os.getpid()

    announced: set[int] = set()

    def spawn(slot: int) -> multiprocessing.process.BaseProcess:
        announce = slot == 0 and slot not in announced  # a restarted worker does not announce again
        announced.add(slot)
        args = (config, host, port, workers, announce, use_uvloop, config_path, parent)
        proc = ctx.Process(target=_worker, args=args, daemon=True)
        proc.start()
        return proc

    try:
        return Supervisor(spawn, workers).run()
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
