"""The gate as aiohttp middleware: every route but ``OPEN_PATHS`` needs an access key.

Default deny: a route added later is covered without a line of its own. A front door's
endpoint (registered with ``door_endpoint``) gets the refusal handed in and raises it itself,
so a 401/429 leaves in that door's error shape and with its request record; any other route
answers in OpenAI's shape here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from proxy.access.gate import Gate, Grant
from proxy.errors import ProxyError
from proxy.protocols.openai_chat.encode import error_body

__all__ = ["OPEN_PATHS", "admitted", "door_endpoint", "error_response", "gate_middleware"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Probes answer without a key (they say nothing about models or keys).
OPEN_PATHS = frozenset({"/healthz", "/readyz"})

_GRANT = web.RequestKey("grant", Grant)
_REFUSED = web.RequestKey("refused", ProxyError)
_DOORS: set[Handler] = set()


def door_endpoint(handler: Handler) -> Handler:
    """Mark ``handler`` as an endpoint that calls ``admitted`` itself (``pipeline.endpoint``)."""
    _DOORS.add(handler)
    return handler


def admitted(request: web.Request) -> Grant | None:
    """The request's grant (None when no gate ran); raises the gate's refusal, if any."""
    refused = request.get(_REFUSED)
    if refused is not None:
        raise refused
    return request.get(_GRANT)


def error_response(err: ProxyError) -> web.Response:
    """``err`` in OpenAI's error shape, with ``Retry-After`` when it has one."""
    headers = {} if err.retry_after is None else {"Retry-After": str(max(1, round(err.retry_after)))}
    return web.Response(body=error_body(err), status=err.status, content_type="application/json", headers=headers)


def gate_middleware(gate: Gate) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS or request.method == "OPTIONS" or not gate.enabled:
            return await handler(request)
        try:
            grant = gate.authenticate(request.headers)
        except ProxyError as err:
            if request.match_info.handler in _DOORS:
                request[_REFUSED] = err
                return await handler(request)
            return error_response(err)
        request[_GRANT] = grant
        try:
            return await handler(request)
        finally:
            grant.release()

    return middleware
