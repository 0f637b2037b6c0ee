"""The aiohttp application: one route per front door, shared state, and the error shape of
everything that is not a front door's own (unknown paths, wrong methods, internal errors).

A front door module exposes ``handle`` (its endpoint, see ``proxy.pipeline.endpoint``); adding
one is a module under ``proxy/frontdoors/`` and its routes here.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from proxy.access.browser import Browsers
from proxy.access.gate import Gate
from proxy.access.middleware import gate_middleware
from proxy.access.secrets import Scrubber, install_log_scrubber
from proxy.config import Config
from proxy.errors import ProxyError
from proxy.frontdoors import chat_completions, embeddings, messages, meta, ops, responses
from proxy.frontdoors.body import BODY_LIMITS, BodyLimits
from proxy.observability.metrics import Metrics
from proxy.observability.record import Records, access_line
from proxy.pipeline import STATE, State
from proxy.protocols.openai_chat.encode import error_body
from proxy.routing import Router
from proxy.transport import Transport
from proxy.watchdog import Watchdog

__all__ = ["STATE", "State", "create_app", "reload_config"]

log = logging.getLogger("proxy")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error_response(err: ProxyError) -> web.Response:
    return web.Response(body=error_body(err), status=err.status, content_type="application/json")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors outside a front door leave in OpenAI's ``{"error": {...}}`` shape with their status."""
    try:
        return await handler(request)
    except ProxyError as err:
        return _error_response(err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        etype = "not_found_error" if exc.status == 404 else "invalid_request_error"
        message = f"{request.method} {request.path}: {exc.reason}"
        return _error_response(ProxyError(message, status=exc.status, type=etype))
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        return _error_response(ProxyError("internal error in sse-proxy (see its log)", status=500, type="api_error"))


@web.middleware
async def count_in_flight(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count the requests being handled, so a draining process knows when it may exit."""
    state = request.app[STATE]
    state.in_flight += 1
    try:
        return await handler(request)
    finally:
        state.in_flight -= 1


async def _transport_ctx(app: web.Application) -> AsyncIterator[None]:
    transport = app[STATE].transport
    await transport.start()
    yield
    await transport.close()


def _resolution(config: Config) -> float:
    """How often the watchdog sweeps: an eighth of the shortest configured timeout or keep-alive
    interval, at most once a second. Each sweep is a wake-up of an otherwise idle process, and
    on slow streams those wake-ups are most of what the proxy adds (docs/benchmarks.md)."""
    times = [min(p.first_byte_timeout_s, p.idle_timeout_s) for p in config.providers.values()]
    if config.server.keepalive_s:
        times.append(config.server.keepalive_s)
    times += [config.server.header_timeout_s, config.server.body_timeout_s]  # proxy.connections, read_json
    return min([1.0, *(t / 8 for t in times)])


def create_app(config: Config) -> web.Application:
    """The proxy as an aiohttp application (run it with ``handler_cancellation=True``)."""
    browsers, gate = Browsers(config.server), Gate(config)
    app = web.Application(
        middlewares=[count_in_flight, error_middleware, browsers.middleware, gate_middleware(gate)],
        client_max_size=config.server.max_body_bytes,
    )
    app.on_response_prepare.append(browsers.on_prepare)
    transport = Transport(Watchdog(_resolution(config)))
    metrics = app[ops.METRICS] = Metrics(config)
    app[STATE] = State(
        config=config,
        router=Router(config),
        transport=transport,
        records=Records([access_line, gate.on_record, metrics.record], [metrics.stream]),
        scrub=Scrubber.from_config(config),
    )
    app[BODY_LIMITS] = BodyLimits.from_config(config.server, transport.watchdog)
    app[responses.STORE] = responses.ResponseStore(
        config.server.responses_store_size, config.server.responses_store_ttl_s
    )
    app.cleanup_ctx.append(_transport_ctx)
    for prefix in ("/v1", ""):
        app.router.add_post(f"{prefix}/chat/completions", chat_completions.handle)
        app.router.add_get(f"{prefix}/models", meta.list_models)
        app.router.add_get(f"{prefix}/models/{{model:.+}}", meta.one_model)
    for prefix in ("/v1", ""):
        app.router.add_post(f"{prefix}/messages", messages.handle)
        app.router.add_post(f"{prefix}/responses", responses.handle)
        app.router.add_post(f"{prefix}/messages/count_tokens", messages.count_tokens)
        app.router.add_post(f"{prefix}/embeddings", embeddings.handle)
    app.router.add_get("/healthz", meta.healthz)
    app.router.add_get("/", meta.root)  # Claude Code sends HEAD / first (aiohttp answers HEAD on GET routes)
    app.router.add_get("/readyz", ops.readyz)
    app.router.add_get("/metrics", ops.metrics)
    return app


def reload_config(app: web.Application, config: Config) -> None:
    """Serve new requests with ``config`` (SIGHUP). Requests already running keep the router
    they started with. ``[server]`` settings bound at start (host, port, workers, body cap,
    the watchdog's resolution) and the access keys keep their old values until a restart."""
    state = app[STATE]
    state.router = Router(config)
    state.config = config
    state.scrub = Scrubber.from_config(config)
    install_log_scrubber(state.scrub)
    app[ops.METRICS].set_config(config)
