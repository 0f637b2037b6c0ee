"""Operator endpoints: ``GET /readyz`` (may this process take traffic?) and ``GET /metrics``.

``/healthz`` (in ``meta``) says the process is up; ``/readyz`` also says it has a configuration
and is not draining, so a load balancer stops sending requests the moment a SIGTERM arrives,
while the open streams finish.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from proxy.observability.metrics import CONTENT_TYPE, Metrics
from proxy.pipeline import STATE

__all__ = ["METRICS", "metrics", "readyz"]

METRICS = web.AppKey("metrics", Metrics)


async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.draining:
        body, status = {"status": "draining"}, 503
    else:
        body, status = {"status": "ready", "config": state.config.source}, 200
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
