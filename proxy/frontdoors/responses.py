"""``POST /v1/responses``: the OpenAI Responses API, for any model (Codex, the Agents SDK).

A provider that has OpenAI's own ``/v1/responses`` (the ``responses`` option, on for the
``openai`` preset) gets the client's body as it came and its events pass byte for byte: it also
handles ``previous_response_id`` itself. Every other provider gets the body read into the OpenAI
chat pivot (``to_chat``, made only when such a target is tried) and its answer encoded as
Responses events. Hosted tools those providers cannot run (``web_search``, ``file_search``...)
are left out, with one log line. A translated answer is kept in a bounded per-process store
(``ResponseStore``) unless the client sent ``store: false``, so that a follow-up turn with
``previous_response_id`` works within one proxy process; an unknown id is a 400.

The door is made per request: its encoder knows the request's custom tools, and its error event
continues the stream's sequence numbers.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from proxy.errors import BadRequest, ProxyError
from proxy.pipeline import Call, endpoint, run
from proxy.protocols.openai_chat.validate import validate_chat_request
from proxy.protocols.openai_responses.encode import (
    KEEPALIVE,
    ResponsesEncoder,
    encode_response,
    error_body,
    error_event,
    response_id,
)
from proxy.protocols.openai_responses.request import ResponsesRequest, to_chat
from proxy.protocols.stream import Completion, StreamContext

from .base import read_json

__all__ = ["ResponseStore", "ResponsesDoor", "handle"]

log = logging.getLogger("proxy")
JSONBody = dict[str, Any]
_ECHO = ("instructions", "tools", "tool_choice", "parallel_tool_calls", "previous_response_id", "text", "reasoning")


class ResponseStore:
    """Translated responses by id: the conversation so far as Responses input items.

    Bounded in count (oldest out first) and in age; per process (a follow-up must reach the
    same process: with ``--workers`` that is not guaranteed, see the README).
    """

    def __init__(self, size: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._size, self._ttl, self._clock = size, ttl_s, clock
        self._items: OrderedDict[str, tuple[float, list[Any]]] = OrderedDict()

    def put(self, rid: str, items: list[Any]) -> None:
        if self._size <= 0:
            return
        self._items[rid] = (self._clock() + self._ttl, items)
        self._items.move_to_end(rid)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def get(self, rid: str) -> list[Any] | None:
        entry = self._items.get(rid)
        if entry is None:
            return None
        if entry[0] < self._clock():
            del self._items[rid]
            return None
        return entry[1]


STORE = web.AppKey("responses_store", ResponseStore)


class ResponsesDoor:
    """The Responses door of one request (see the module docstring)."""

    name = "responses"
    protocol = "openai_responses"
    keepalive = KEEPALIVE

    def __init__(self) -> None:
        self.parsed: ResponsesRequest | None = None
        self.echo: JSONBody = {}
        self.stream_encoder: ResponsesEncoder | None = None

    @property
    def _custom(self) -> frozenset[str]:
        return self.parsed.custom_tools if self.parsed is not None else frozenset()

    def encoder(self, ctx: StreamContext) -> ResponsesEncoder:
        self.stream_encoder = ResponsesEncoder(ctx, self._custom, echo=self.echo)
        return self.stream_encoder

    def encode_completion(self, completion: Completion, ctx: StreamContext) -> bytes:
        return encode_response(completion, ctx, self._custom, echo=self.echo)

    def error_body(self, err: ProxyError) -> bytes:
        return error_body(err)

    def error_frame(self, err: ProxyError) -> bytes:
        if self.stream_encoder is not None:
            return self.stream_encoder.error_frame(err)
        return error_event(err)


def _history(native: JSONBody, store: ResponseStore) -> JSONBody:
    """``native`` with a stored ``previous_response_id`` expanded into its input items."""
    previous = native.get("previous_response_id")
    if previous is None:
        return native
    if not isinstance(previous, str):
        raise BadRequest("'previous_response_id' must be a string", param="previous_response_id")
    items = store.get(previous)
    if items is None:
        raise BadRequest(
            f"previous response {previous!r} is not known to this proxy (it keeps translated responses "
            "for a while, in each process, and only those sent with store not false)",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    return {**{k: v for k, v in native.items() if k != "previous_response_id"}, "input": items + _items(native)}


def _items(native: JSONBody) -> list[Any]:
    raw = native.get("input")
    if raw is None:
        return []
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": raw}]}]
    return list(raw) if isinstance(raw, list) else [raw]


async def _handle(request: web.Request, call: Call) -> web.StreamResponse:
    native = await read_json(request)
    model = native.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required and must be a non-empty string", param="model")
    store = request.app[STORE]
    door = ResponsesDoor()
    door.echo = {k: native[k] for k in _ECHO if k in native}
    call.door = door
    call.native = native

    def pivot() -> JSONBody:
        expanded = _history(native, store)
        door.parsed = parsed = to_chat(expanded)
        if parsed.dropped_tools:
            log.info("%s responses: left out hosted tools %s", call.record.id, ", ".join(parsed.dropped_tools))
        validate_chat_request(parsed.chat)
        return parsed.chat

    call.to_pivot = pivot
    call.ctx = StreamContext(
        id=f"resp_{call.record.id}", created=int(time.time()), model="", call_id_prefix=call.record.id[:16]
    )
    stream = native.get("stream") is True
    response = await run(request, call, native, stream)
    if door.parsed is not None and native.get("store") is not False and response.status == 200:
        _remember(store, door, call, response, native)
    return response


def _remember(
    store: ResponseStore, door: ResponsesDoor, call: Call, response: web.StreamResponse, native: JSONBody
) -> None:
    """Keep a translated answer for ``previous_response_id`` (input items + output items)."""
    if door.stream_encoder is not None:
        final = door.stream_encoder.final_response()
    elif isinstance(response, web.Response) and isinstance(response.body, bytes):
        final = orjson.loads(response.body)
    else:
        return
    if final.get("status") not in ("completed", "incomplete"):
        return
    expanded = _history(native, store)
    store.put(response_id(call.ctx), _items(expanded) + list(final.get("output") or ()))


handle = endpoint(ResponsesDoor(), _handle)
