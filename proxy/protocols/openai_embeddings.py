"""OpenAI's Embeddings API (``POST /v1/embeddings``): the request read and checked, and the
response written for providers that answer in another shape (Gemini, the mock).

Sans-IO. ``read_request`` gives the 400s OpenAI gives for a malformed body; ``list_body`` writes
OpenAI's ``{"object": "list", "data": [...], "model", "usage"}``, with each vector as a JSON
list of floats or, for ``encoding_format: "base64"``, as the base64 of its little-endian
float32 bytes (what the ``openai`` SDK decodes with ``numpy.frombuffer(..., "float32")`` or
``array.array("f", ...)``, and what the SDK asks for by default).
"""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from proxy.errors import BadRequest, UpstreamError
from proxy.protocols.stream import Usage

__all__ = [
    "MAX_INPUTS",
    "EmbeddingsRequest",
    "EncodingFormat",
    "list_body",
    "read_request",
    "relay_body",
    "vector_value",
]

JSONBody = dict[str, Any]
EncodingFormat = Literal["float", "base64"]
Item = str | tuple[int, ...]

MAX_INPUTS = 2048  # OpenAI's bound on the items of one request
_PROMPT_TOKENS = re.compile(rb'"prompt_tokens"\s*:\s*(\d+)')


@dataclass(frozen=True, slots=True)
class EmbeddingsRequest:
    """A checked embeddings request. ``body`` is the client's own (relayed to OpenAI-compatible
    upstreams with only ``model`` changed); ``items`` the inputs, each a text or, when
    ``tokens``, a tuple of token ids."""

    body: JSONBody
    model: str
    items: tuple[Item, ...]
    tokens: bool
    encoding_format: EncodingFormat
    dimensions: int | None

    @property
    def texts(self) -> tuple[str, ...]:
        """The inputs as texts (empty for token input)."""
        return tuple(item for item in self.items if isinstance(item, str))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _token_ids(value: list[Any], where: str) -> tuple[int, ...]:
    if not value:
        raise BadRequest(f"'{where}' must not be empty", param=where)
    if not all(_is_int(v) and v >= 0 for v in value):
        raise BadRequest(f"'{where}' must be a list of non-negative integer token ids", param=where)
    return tuple(value)


def _items(value: Any) -> tuple[tuple[Item, ...], bool]:
    """The inputs and whether they are tokens: a string, strings, token ids, or lists of them."""
    if isinstance(value, str):
        value = [value]
    elif not isinstance(value, list) or not value:
        raise BadRequest(
            "'input' must be a non-empty string, a list of strings, a list of token ids or a list of such lists",
            param="input",
        )
    if len(value) > MAX_INPUTS:
        raise BadRequest(f"'input' has {len(value)} items; at most {MAX_INPUTS} are allowed", param="input")
    if all(isinstance(v, str) for v in value):
        for i, text in enumerate(value):
            if not text:
                raise BadRequest(f"'input[{i}]' must not be an empty string", param=f"input[{i}]")
        return tuple(value), False
    if all(_is_int(v) for v in value):
        return (_token_ids(value, "input"),), True
    if all(isinstance(v, list) for v in value):
        return tuple(_token_ids(v, f"input[{i}]") for i, v in enumerate(value)), True
    raise BadRequest(
        "'input' must be a string, a list of strings, a list of token ids or a list of such lists, not a mixture",
        param="input",
    )


def read_request(body: JSONBody) -> EmbeddingsRequest:
    """``body`` checked as OpenAI checks it; raises ``BadRequest`` naming the field."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required and must be a non-empty string", param="model")
    if "input" not in body:
        raise BadRequest("'input' is required", param="input")
    items, tokens = _items(body["input"])
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise BadRequest("'encoding_format' must be 'float' or 'base64'", param="encoding_format")
    dimensions = body.get("dimensions")
    if dimensions is not None and not (_is_int(dimensions) and dimensions > 0):
        raise BadRequest("'dimensions' must be a positive integer", param="dimensions")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise BadRequest("'user' must be a string", param="user")
    return EmbeddingsRequest(body, model, items, tokens, encoding, dimensions)


def vector_value(vector: Sequence[float], encoding: EncodingFormat) -> list[float] | str:
    """One embedding as OpenAI writes it: the floats, or base64 of little-endian float32."""
    if encoding == "float":
        return list(vector)
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def list_body(vectors: Sequence[Sequence[float]], request: EmbeddingsRequest, model: str, usage: Usage) -> bytes:
    """OpenAI's embeddings response for ``vectors`` (one per input item, in order)."""
    data = [
        {"object": "embedding", "index": i, "embedding": vector_value(v, request.encoding_format)}
        for i, v in enumerate(vectors)
    ]
    usage_body = {"prompt_tokens": usage.input_tokens, "total_tokens": usage.input_tokens}
    return orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage_body})


def relay_body(body: bytes, request: EmbeddingsRequest, model: str) -> tuple[bytes, Usage | None]:
    """An OpenAI-compatible 2xx body, passed on untouched, and its ``usage.prompt_tokens``.

    The usage is found with a byte search from the last ``"usage"`` key (it follows the
    vectors), so megabytes of floats are never parsed. A body that is not a JSON object (an
    HTML page from a misrouted base URL) is an ``UpstreamError``, so a fallback moves on.
    """
    if not body.lstrip().startswith(b"{"):
        head = body[:200].decode("utf-8", "replace").strip()
        raise UpstreamError(f"the provider's embeddings answer is not JSON: {head}", status=502, type="upstream_error")
    at = body.rfind(b'"usage"')
    match = _PROMPT_TOKENS.search(body, at) if at >= 0 else None
    return body, Usage(input_tokens=int(match.group(1))) if match else None
