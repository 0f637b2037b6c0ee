#!/usr/bin/env python3
"""The baseline a proxy is measured against: a bare aiohttp relay, bytes in, bytes out.

Every request is forwarded to ``--upstream`` with the same method, path, query and body; the
response is streamed back read by read (``iter_any``) with no parsing at all. It is what the
cheapest possible aiohttp proxy costs, so "within 1.2x of a bare relay" has a concrete meaning.

    python scripts/bare_relay.py --port 9002 --upstream http://127.0.0.1:9001
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

_FORWARD = ("content-type", "authorization", "x-api-key", "anthropic-version", "x-goog-api-key", "accept")


def make_app(upstream: str) -> web.Application:
    upstream = upstream.rstrip("/")
    app = web.Application(client_max_size=32 * 1024 * 1024)
    state: dict[str, ClientSession] = {}

    async def on_startup(_: web.Application) -> None:
        state["session"] = ClientSession(
            connector=TCPConnector(limit=0, ttl_dns_cache=None),
            timeout=ClientTimeout(total=None, sock_connect=10),
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )

    async def on_cleanup(_: web.Application) -> None:
        await state["session"].close()

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k in _FORWARD if (v := request.headers.get(k)) is not None}
        headers.update({k: v for k, v in request.headers.items() if k.lower().startswith("x-fake-")})
        async with state["session"].request(
            request.method, upstream + request.path_qs, data=body, headers=headers
        ) as up:
            resp = web.StreamResponse(status=up.status)
            resp.content_type = up.content_type
            await resp.prepare(request)
            async for data in up.content.iter_any():
                await resp.write(data)
            await resp.write_eof()
            return resp

    app.router.add_get("/healthz", healthz)
    app.router.add_route("*", "/{tail:.*}", relay)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="bare aiohttp relay (benchmark baseline)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9002)
    p.add_argument("--upstream", default="http://127.0.0.1:9001")
    p.add_argument("--no-uvloop", action="store_true")
    args = p.parse_args(argv)
    if not args.no_uvloop:
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:
            pass
    print(f"bare relay on http://{args.host}:{args.port} -> {args.upstream} pid={os.getpid()}", flush=True)
    web.run_app(make_app(args.upstream), host=args.host, port=args.port, print=None, access_log=None, backlog=4096)


if __name__ == "__main__":
    main(sys.argv[1:])
