"""Browser defences: a web page must not be able to spend the operator's keys.

- ``Host`` on a loopback bind must be a loopback name or address (any port): a DNS-rebinding
  page reaches 127.0.0.1 under its own host name, and is refused with 403.
- A request with an ``Origin`` not in ``[server] cors_origins`` is refused with 403 (``"*"``
  there allows any origin); a preflight (``OPTIONS``) from an allowed origin is answered.
- ``POST`` needs ``Content-Type: application/json`` (415): a page can send ``text/plain``
  without a preflight, never JSON.

Allowed cross-origin answers get ``Access-Control-Allow-Origin`` (the origin, never ``*``) and
``Vary: Origin`` in ``on_response_prepare``, so streams get them too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from proxy.access.listen import host_of, is_loopback
from proxy.access.middleware import error_response
from proxy.config import ServerConfig
from proxy.errors import ProxyError

__all__ = ["PREFLIGHT_MAX_AGE_S", "Browsers"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PREFLIGHT_MAX_AGE_S = 600
_METHODS = "GET, POST, OPTIONS"
_EXPOSE = "X-Request-Id, X-Proxy-Model, X-Proxy-Attempts, Retry-After"


def _forbidden(message: str) -> ProxyError:
    return ProxyError(message, status=403, type="permission_error", code="forbidden")


class Browsers:
    """The checks above for one server configuration: ``middleware`` and ``on_prepare``."""

    def __init__(self, server: ServerConfig) -> None:
        self.check_host = is_loopback(server.host)
        self.origins = frozenset(server.cors_origins)

    def allowed(self, origin: str) -> bool:
        return origin in self.origins or "*" in self.origins

    def refusal(self, request: web.Request) -> ProxyError | None:
        host = request.headers.get("Host")
        if self.check_host and host is not None and not is_loopback(host_of(host)):
            return _forbidden(f"the Host {host!r} is not a loopback name: this proxy listens on loopback only")
        origin = request.headers.get("Origin")
        if origin is not None and not self.allowed(origin):
            return _forbidden(f"cross-origin requests from {origin!r} are not allowed (see [server] cors_origins)")
        if request.method == "POST":
            media = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
            if media != "application/json":
                return ProxyError(
                    f"Content-Type must be application/json, got {media or 'none'!r}",
                    status=415,
                    type="invalid_request_error",
                    code="unsupported_media_type",
                )
        return None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        err = self.refusal(request)
        if err is not None:
            return error_response(err)
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS" and origin is not None:
            return self._preflight(request, origin)
        return await handler(request)

    def _preflight(self, request: web.Request, origin: str) -> web.Response:
        headers = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": _METHODS,
            "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
            "Vary": "Origin, Access-Control-Request-Headers",
        }
        wanted = request.headers.get("Access-Control-Request-Headers")
        if wanted:
            headers["Access-Control-Allow-Headers"] = wanted
        return web.Response(status=204, headers=headers)

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if origin is not None and self.allowed(origin) and request.method != "OPTIONS":
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = _EXPOSE
            response.headers.add("Vary", "Origin")
