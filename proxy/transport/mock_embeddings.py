"""The mock model's embeddings: ``mock://<model>/embeddings``, answered in-process like OpenAI.

Each vector is made from a hash of its input (a text, or its token ids), so the same input
always gets the same vector, on every machine: ``dimensions`` values (default
``DEFAULT_DIMENSIONS``), unit length, each already a float32 so that the ``float`` and
``base64`` encodings carry the very same numbers. Usage counts the words of the texts (or the
token ids). ``embeddings_body`` is sans-IO; ``EmbeddingsResponse`` puts it behind the transport
interface.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import AsyncIterator, Mapping
from typing import Any

from proxy.protocols.openai_embeddings import EmbeddingsRequest, Item, list_body, read_request
from proxy.protocols.stream import Usage

__all__ = ["DEFAULT_DIMENSIONS", "SUFFIX", "EmbeddingsResponse", "embeddings_body", "mock_vector"]

DEFAULT_DIMENSIONS = 8
SUFFIX = "/embeddings"  # mock://<model>/embeddings, as {base_url}/embeddings on a server


def mock_vector(item: Item, dimensions: int) -> list[float]:
    """A unit vector of float32 values from the SHAKE-256 stream of ``item``."""
    seed = item.encode() if isinstance(item, str) else ",".join(map(str, item)).encode()
    raw = struct.unpack(f"<{dimensions}I", hashlib.shake_256(seed).digest(4 * dimensions))
    values = [n / 2**31 - 1.0 for n in raw]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *(v / norm for v in values))))


def _tokens(item: Item) -> int:
    return len(item.split()) if isinstance(item, str) else len(item)


def embeddings_body(body: dict[str, Any], model: str) -> bytes:
    """The mock's OpenAI embeddings answer to ``body`` (raises ``BadRequest`` if malformed)."""
    request: EmbeddingsRequest = read_request(body)
    dimensions = request.dimensions or DEFAULT_DIMENSIONS
    vectors = [mock_vector(item, dimensions) for item in request.items]
    usage = Usage(input_tokens=sum(_tokens(item) for item in request.items))
    return list_body(vectors, request, model, usage)


class EmbeddingsResponse:
    """A whole JSON body behind the ``UpstreamResponse`` interface."""

    def __init__(self, data: bytes) -> None:
        self.status = 200
        self.headers: Mapping[str, str] = {"Content-Type": "application/json"}
        self.received = 0
        self._data = data

    async def read(self) -> bytes:
        self.received = len(self._data)
        return self._data

    async def chunks(self) -> AsyncIterator[bytes]:
        yield await self.read()

    def close(self) -> None:
        pass
