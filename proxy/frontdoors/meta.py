"""``GET /v1/models``, ``GET /v1/models/{id}`` and ``GET /healthz``."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from proxy.errors import NotFound, ProxyError
from proxy.pipeline import STATE

__all__ = ["healthz", "list_models", "one_model", "root"]


def _json(data: Any) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


def _model(model_id: str, owner: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": owner}


async def list_models(request: web.Request) -> web.Response:
    """The OpenAI list shape: the usable providers' models, policies and aliases."""
    models = request.app[STATE].router.models()
    return _json({"object": "list", "data": [_model(model_id, owner) for model_id, owner in models]})


async def one_model(request: web.Request) -> web.Response:
    """One model of the list, or any ``provider/model`` the proxy can route (OpenAI's 404 else)."""
    model_id = request.match_info["model"]
    router = request.app[STATE].router
    for listed, owner in router.models():
        if listed == model_id:
            return _json(_model(listed, owner))
    try:
        target = router.target(model_id)
    except ProxyError:  # malformed, or no such provider
        target = None
    if target is None or not target.provider.usable:
        raise NotFound(f"the model {model_id!r} does not exist", param="model", code="model_not_found")
    return _json(_model(model_id, target.provider.name))


async def root(request: web.Request) -> web.Response:
    """``/``: a quick answer for clients that probe the base URL before their first request."""
    return _json({"name": "sse-proxy", "endpoints": ["/v1/chat/completions", "/v1/messages", "/v1/models"]})


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})
