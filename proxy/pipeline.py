"""The front-door-agnostic pipeline: route -> attempt -> relay (stream) or whole body.

Every endpoint that calls a model goes through here. ``endpoint(door, handler)`` wraps a front
door's handler: it opens the request's ``RequestRecord``, renders a ``ProxyError`` in the door's
error shape, and emits the record once at the end, whatever happened. ``run`` asks the router
for the attempts, and for each builds the provider request, opens it on the transport, and
hands the response to the relay with a decoder: the provider's pass-through when it speaks the
door's wire format, else its stream decoder feeding the door's encoder. An attempt that fails
before anything reached the client is recorded against the model's health and the next one is
tried; a failure after that is reported by the relay as the door's error event.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from proxy.access.gate import Grant
from proxy.access.middleware import admitted, door_endpoint
from proxy.access.secrets import Scrubber
from proxy.config import Config, ProviderConfig
from proxy.errors import ProxyError, StreamError, UpstreamError, UpstreamTimeout
from proxy.frontdoors.base import FrontDoor
from proxy.observability.record import Outcome, Records, RequestRecord
from proxy.protocols.stream import StreamContext
from proxy.providers import provider_kind
from proxy.providers.base import JSONBody, Native, Provider
from proxy.relay import FAILED_AFTER_START, SSE_HEADERS, ClientDisconnected, ClientStream, relay_stream
from proxy.routing import Router, Target
from proxy.transport import Transport
from proxy.transport.http import UpstreamResponse, parse_retry_after, read_body

__all__ = ["STATE", "Call", "State", "endpoint", "new_request_id", "run"]

log = logging.getLogger("proxy")

_BODY_HEAD = 300  # bytes of an unexpected body quoted in an error message


@dataclass(slots=True)
class State:
    config: Config
    router: Router
    transport: Transport
    records: Records = field(default_factory=Records)
    scrub: Scrubber = field(default_factory=lambda: Scrubber(()))  # configured secrets out of errors
    draining: bool = False  # set at SIGTERM: /readyz answers 503 while open requests finish
    in_flight: int = 0  # requests being handled (server.count_in_flight): what a drain waits for


STATE = web.AppKey("state", State)


def new_request_id() -> str:
    return f"{random.getrandbits(96):024x}"  # no system call; reseeded in forked workers


@dataclass(slots=True)
class Call:
    """One client request in the pipeline: its front door, record and stream context.

    ``native`` is the client's body in the door's own wire format when that differs from the
    pivot (an OpenAI chat body): a provider of the same protocol is sent it (only the model and
    the key change), with the client's ``native_headers``. ``to_pivot`` makes the pivot only when
    a target needs translating, once.
    """

    door: FrontDoor
    record: RequestRecord
    ctx: StreamContext = field(default_factory=lambda: StreamContext("", 0, ""))
    native: JSONBody | None = None
    native_headers: Mapping[str, str] = field(default_factory=dict)
    to_pivot: Callable[[], JSONBody] | None = None
    _pivot: JSONBody | None = None

    def pivot(self, body: JSONBody) -> JSONBody:
        if self.to_pivot is None:
            return body
        if self._pivot is None:
            self._pivot = self.to_pivot()
        return self._pivot

    grant: Grant | None = None  # what the client's access key may do (None: no keys configured)


Handler = Callable[[web.Request, Call], Awaitable[web.StreamResponse]]


def endpoint(door: FrontDoor, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp handler around a front door's ``handler``: record, error shape, emission."""

    async def serve(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        loop = state.transport.watchdog.loop()
        record = RequestRecord(new_request_id(), door.name, loop.time())
        try:
            grant = admitted(request)  # raises the gate's 401/429 here: in this door's shape
            record.key_name = grant.name if grant is not None else None
            response = await handler(request, Call(door, record, grant=grant))
        except ProxyError as err:
            err.message = state.scrub(err.message)  # an upstream may echo a key back
            _failed(record, err)
            headers = {"X-Request-Id": record.id}
            if err.retry_after is not None:
                headers["Retry-After"] = str(max(1, round(err.retry_after)))
            return web.Response(
                body=door.error_body(err), status=err.status, content_type="application/json", headers=headers
            )
        except (ClientDisconnected, asyncio.CancelledError):
            record.outcome, record.status = "client_disconnect", 499
            raise
        except BaseException:
            record.outcome, record.status = "upstream_error", 500
            raise
        else:
            record.status = response.status
            late = response.get(FAILED_AFTER_START)
            if late is not None:
                _failed(record, late, status=response.status)
            elif response.status == 499:
                record.outcome = "client_disconnect"
            return response
        finally:
            record.ended = loop.time()
            state.records.emit(record)

    return door_endpoint(serve)


def _failed(record: RequestRecord, err: ProxyError, status: int | None = None) -> None:
    record.status = err.status if status is None else status
    record.outcome = _outcome(err)
    record.error = err.message


def _outcome(err: ProxyError) -> Outcome:
    if isinstance(err, UpstreamTimeout) or err.type == "timeout_error":
        return "timeout"
    if isinstance(err, UpstreamError | StreamError) or err.status in (502, 503):
        return "upstream_error"
    return "rejected"


async def run(request: web.Request, call: Call, body: JSONBody, stream: bool) -> web.StreamResponse:
    """Try the models the router offers for ``body["model"]`` until one answers."""
    state = request.app[STATE]
    record = call.record
    record.model, record.stream = str(body.get("model", "")), stream
    if call.grant is not None:
        call.grant.admit(record.model, stream)  # 403 for a model the key may not use, 429 for streams
    attempts = state.router.attempts(body)
    while True:
        target = await attempts.next()  # raises the last error when no attempt is left
        record.target, record.provider, record.attempts = target.label, target.provider.name, attempts.count
        headers = {"X-Request-Id": record.id, "X-Proxy-Model": target.label, "X-Proxy-Attempts": str(attempts.count)}
        try:
            response = await _attempt(request, state, call, target, body, stream, headers)
        except ProxyError as err:
            log.info("%s %s attempt %d failed: %s", record.id, target.label, attempts.count, err.message)
            attempts.failed(target, err)  # raises at once for a client mistake
            continue
        except ClientDisconnected as gone:
            log.info("%s %s: client disconnected", record.id, target.label)
            return gone.response or web.Response(status=499)
        late = response.get(FAILED_AFTER_START)
        if late is None:
            attempts.succeeded(target)
        else:  # too late to fall back, but the model failed: it counts against its health
            state.router.record(target, late)
        return response


async def _attempt(
    request: web.Request,
    state: State,
    call: Call,
    target: Target,
    body: JSONBody,
    stream: bool,
    headers: Mapping[str, str],
) -> web.StreamResponse:
    """One try at one provider model; raises ProxyError if it failed before the first byte."""
    config = target.provider
    kind = provider_kind(config.kind)
    door = call.door
    ctx = call.ctx = _with_model(call.ctx, target.model)
    native = kind.native(door.protocol, config)
    if native is not None and native.build is not None and call.native is not None:
        upstream_request = native.build(call.native, target.model, config, call.native_headers)
    else:
        upstream_request = kind.build_request(call.pivot(body), target.model, config, ctx)
    # A stream's client side exists before the upstream request: its keep-alives (if any) cover
    # the wait for the upstream's response head too.
    client = None
    framing = _Scrubbed(call.door, state.scrub)
    if stream:
        watchdog, keepalive_s = state.transport.watchdog, state.config.server.keepalive_s
        client = ClientStream(request, {**SSE_HEADERS, **headers}, watchdog, keepalive_s, framing, call.record)
    try:
        upstream = await state.transport.open(upstream_request, config)
        try:
            return await _answer(request, state, call, kind, native, config, upstream, client, framing, headers)
        finally:
            upstream.close()
    except ProxyError as err:
        if client is None or not client.started:
            raise
        log.warning("stream from %s failed after a keep-alive: %s", config.name, err.message)
        return await client.fail(err)  # a keep-alive started the response: too late for a fallback
    finally:
        if client is not None:
            client.close()


async def _answer(
    request: web.Request,
    state: State,
    call: Call,
    kind: Provider,
    native: Native | None,
    config: ProviderConfig,
    upstream: UpstreamResponse,
    client: ClientStream | None,
    framing: _Scrubbed,
    headers: Mapping[str, str],
) -> web.StreamResponse:
    """The attempt's answer from the opened ``upstream``: relayed into ``client`` for a stream."""
    door, ctx = call.door, call.ctx
    if 300 <= upstream.status < 400:  # not followed (transport/http.py): the key stays home
        raise UpstreamError(
            f"provider '{config.name}' answered with a redirect (HTTP {upstream.status}), which is not followed",
            status=502,
            type="upstream_error",
        )
    if upstream.status >= 400:
        err = kind.translate_error(upstream.status, await read_body(upstream, config))
        retry_after = parse_retry_after(upstream.headers.get("Retry-After"))
        if retry_after is not None:  # else keep what the provider said in its error body
            err.retry_after = retry_after
        raise err
    if client is not None:
        await _check_stream(upstream, config)
        decoder = native.stream(ctx, config) if native else kind.stream_decoder(door.encoder(ctx), ctx, config)
        watchdog, keepalive_s = state.transport.watchdog, state.config.server.keepalive_s
        if native is not None:
            framing.pass_through(decoder)
        state.records.stream(call.record, 1)  # the open-streams gauge: once up, once down
        try:
            response = await relay_stream(
                request, upstream, decoder, config, {}, watchdog, keepalive_s, framing, call.record, client
            )
        finally:
            state.records.stream(call.record, -1)
        call.record.usage = decoder.usage
        return response
    data = await read_body(upstream, config)
    if native is not None:
        out, call.record.usage = native.response(data)
    else:
        completion = kind.decode_response(data, ctx)
        call.record.usage = completion.usage
        out = door.encode_completion(completion, ctx)
    call.record.first_byte_at = state.transport.watchdog.loop().time()
    call.record.bytes_out = len(out)
    return web.Response(body=out, content_type="application/json", headers=headers)


def _with_model(ctx: StreamContext, model: str) -> StreamContext:
    return StreamContext(ctx.id, ctx.created, model, ctx.include_usage, ctx.legacy_functions, ctx.call_id_prefix)


async def _check_stream(upstream: UpstreamResponse, config: ProviderConfig) -> None:
    """A 2xx answer to a stream request must be an event stream: an HTML page or a JSON body
    is reported as what it is, before anything is committed (so a fallback can still move on)."""
    content_type = upstream.headers.get("Content-Type", "")
    if content_type.split(";", 1)[0].strip().lower() == "text/event-stream":
        return
    head = b""
    try:
        async with asyncio.timeout(min(5.0, config.first_byte_timeout_s)):
            async for chunk in upstream.chunks():
                head += chunk
                if len(head) >= _BODY_HEAD:
                    break
    except (TimeoutError, OSError, ValueError):
        pass
    text = head[:_BODY_HEAD].decode("utf-8", "replace").strip()  # scrubbed in ``endpoint``
    raise UpstreamError(
        f"provider '{config.name}' answered a stream request with HTTP {upstream.status} and "
        f"Content-Type {content_type or 'none'!r}, not an event stream" + (f": {text}" if text else ""),
        status=502,
        type="upstream_error",
    )


class _Scrubbed:
    """A door's framing for the relay whose error event carries no configured secret (the
    message of a mid-stream error is the upstream's text). Only the error path pays.

    A pass-through decoder that writes its own error event (``error_frame``: it knows the
    upstream's stream, e.g. the Responses API's sequence numbers) is asked first."""

    __slots__ = ("_door", "_scrub", "_stream")

    def __init__(self, door: FrontDoor, scrub: Scrubber) -> None:
        self._door, self._scrub = door, scrub
        self._stream: Callable[[ProxyError], bytes] | None = None

    def pass_through(self, decoder: object) -> None:
        """The stream is ``decoder``'s pass-through: its own error event, if it has one, wins."""
        self._stream = getattr(decoder, "error_frame", None)

    @property
    def keepalive(self) -> bytes:
        return self._door.keepalive

    def error_frame(self, err: ProxyError) -> bytes:
        err.message = self._scrub(err.message)
        if self._stream is not None:
            return self._stream(err)
        return self._door.error_frame(err)
