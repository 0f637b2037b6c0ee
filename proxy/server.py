"""The aiohttp application: endpoints, the error contract, and one attempt at a provider.

``POST /v1/chat/completions`` validates the body, asks the router which models to try, and for
each attempt builds the provider request with that provider's adapter, opens it, and hands the
response to the relay (stream) or translates the whole body (non-stream).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from proxy.config import Config
from proxy.errors import BadRequest, PayloadTooLarge, ProxyError
from proxy.protocols.openai_chat.validate import validate_chat_request
from proxy.providers import adapter
from proxy.providers.base import JSONBody, StreamContext
from proxy.relay import FAILED_AFTER_START, SSE_HEADERS, ClientDisconnected, relay_stream
from proxy.routing import Router, Target
from proxy.transport.http import HTTPTransport, UpstreamResponse, parse_retry_after, read_body
from proxy.watchdog import Watchdog

__all__ = ["STATE", "State", "create_app"]

log = logging.getLogger("proxy")


@dataclass(slots=True)
class State:
    config: Config
    router: Router
    transport: HTTPTransport


STATE = web.AppKey("state", State)
REQUEST_ID = web.RequestKey("request_id", str)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json", headers=headers)


def _error_response(err: ProxyError, request_id: str | None) -> web.Response:
    headers = {"X-Request-Id": request_id} if request_id else None
    return web.Response(body=err.body(), status=err.status, content_type="application/json", headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as OpenAI's ``{"error": {...}}`` shape with its HTTP status."""
    try:
        return await handler(request)
    except ProxyError as err:
        return _error_response(err, request.get(REQUEST_ID))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        etype = "not_found_error" if exc.status == 404 else "invalid_request_error"
        message = f"{request.method} {request.path}: {exc.reason}"
        return _error_response(ProxyError(message, status=exc.status, type=etype), request.get(REQUEST_ID))
    except ClientDisconnected:
        raise
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        internal = ProxyError("internal error in sse-proxy (see its log)", status=500, type="api_error")
        return _error_response(internal, request.get(REQUEST_ID))


async def _read_json(request: web.Request, limit: int) -> JSONBody:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body of {request.content_length} bytes exceeds the limit of {limit} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes") from None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    request_id = f"{random.getrandbits(96):024x}"  # no system call; reseeded in forked workers
    request[REQUEST_ID] = request_id
    started = time.monotonic()
    body = await _read_json(request, state.config.server.max_body_bytes)
    validate_chat_request(body)
    stream = body.get("stream") is True
    options = body.get("stream_options")
    include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    legacy_functions = bool(body.get("functions")) and not body.get("tools")
    created = int(time.time())
    attempts = state.router.attempts(body)
    while True:
        target = await attempts.next()  # raises the last error when no attempt is left
        headers = {"X-Request-Id": request_id, "X-Proxy-Model": target.label, "X-Proxy-Attempts": str(attempts.count)}
        try:
            ctx = StreamContext(
                f"chatcmpl-{request_id}", created, target.model, include_usage, legacy_functions, request_id[:16]
            )
            response = await _attempt(request, state, target, body, ctx, stream, headers)
        except ProxyError as err:
            log.info("%s %s attempt %d failed: %s", request_id, target.label, attempts.count, err.message)
            attempts.failed(target, err)  # raises at once for a client mistake
            continue
        except ClientDisconnected as gone:
            log.info("%s %s: client disconnected", request_id, target.label)
            return gone.response or web.Response(status=499)
        late = response.get(FAILED_AFTER_START)
        if late is None:
            attempts.succeeded(target)
        else:  # too late to fall back, but the model failed: it counts against its health
            state.router.record(target, late)
        log.info(
            "%s %s %s attempts=%d %.0fms",
            request_id,
            target.label,
            "stream" if stream else "json",
            attempts.count,
            (time.monotonic() - started) * 1000,
        )
        return response


async def _attempt(
    request: web.Request,
    state: State,
    target: Target,
    body: JSONBody,
    ctx: StreamContext,
    stream: bool,
    headers: Mapping[str, str],
) -> web.StreamResponse:
    """One try at one provider model; raises ProxyError if it failed before the first byte."""
    provider = target.provider
    kind = adapter(provider.kind)
    upstream_request = kind.build_request(body, target.model, provider, ctx)
    upstream: UpstreamResponse
    if kind.open_local is not None:
        upstream = await kind.open_local(upstream_request, provider)
    else:
        upstream = await state.transport.open(upstream_request, provider)
    try:
        if upstream.status >= 400:
            err = kind.translate_error(upstream.status, await read_body(upstream, provider))
            retry_after = parse_retry_after(upstream.headers.get("Retry-After"))
            if retry_after is not None:  # else keep what the adapter read from the error body
                err.retry_after = retry_after
            raise err
        if stream:
            translator = kind.stream_translator(ctx, provider)
            return await relay_stream(
                request,
                upstream,
                translator,
                provider,
                {**SSE_HEADERS, **headers},
                state.transport.watchdog,
                state.config.server.keepalive_s,
            )
        data = kind.translate_response(await read_body(upstream, provider), ctx)
        return web.Response(body=data, content_type="application/json", headers=headers)
    finally:
        upstream.close()


async def list_models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = [
        {"id": model_id, "object": "model", "created": 0, "owned_by": owner}
        for model_id, owner in state.router.models()
    ]
    return _json({"object": "list", "data": data})


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def _transport_ctx(app: web.Application) -> Any:
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
    return min([1.0, *(t / 8 for t in times)])


def create_app(config: Config) -> web.Application:
    """The proxy as an aiohttp application (run it with ``handler_cancellation=True``)."""
    app = web.Application(middlewares=[error_middleware], client_max_size=config.server.max_body_bytes)
    watchdog = Watchdog(_resolution(config))
    app[STATE] = State(config=config, router=Router(config), transport=HTTPTransport(watchdog))
    app.cleanup_ctx.append(_transport_ctx)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/models", list_models)
    app.router.add_get("/healthz", healthz)
    return app
