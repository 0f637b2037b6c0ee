"""Helpers shared by the tests: feeding a sans-IO translator its input every way."""

from __future__ import annotations

import random
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from proxy.errors import StreamError
from proxy.protocols.stream import StreamContext, StreamDecoder

FIXTURES = Path(__file__).parent / "fixtures"
_REFUSING: list[socket.socket] = []


def refusing_port() -> int:
    """A port on 127.0.0.1 that refuses connections: bound, never listening, and held until the
    test run ends. A port bound and closed again may be handed to the next server a test
    starts, which then answers where a refusal was expected."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _REFUSING.append(sock)
    return int(sock.getsockname()[1])


# The context every golden test uses, so expected outputs are byte-exact.
CTX = StreamContext(id="chatcmpl-test", created=1700000000, model="test-model", call_id_prefix="test")


def splits(data: bytes, seed: int = 0) -> Iterator[tuple[str, list[bytes]]]:
    """The same input cut three ways: whole, byte by byte, and at random points (a few seeds)."""
    yield "whole", [data]
    yield "bytewise", [data[i : i + 1] for i in range(len(data))]
    for s in range(seed, seed + 5):
        rng = random.Random(s)
        parts, i = [], 0
        while i < len(data):
            n = rng.randint(1, 64)
            parts.append(data[i : i + n])
            i += n
        yield f"random{s}", parts


def run_translator(translator: StreamDecoder, parts: list[bytes]) -> bytes:
    """Feed every part, then finish; return all output (errors propagate)."""
    out = [translator.feed(p) for p in parts]
    out.append(translator.finish())
    return b"".join(out)


def assert_same_every_split(make: Callable[[], StreamDecoder], data: bytes) -> bytes:
    """Run ``data`` through fresh translators cut every way; all outputs must be identical."""
    results = {name: run_translator(make(), parts) for name, parts in splits(data)}
    whole = results["whole"]
    for name, out in results.items():
        assert out == whole, f"output differs when the input is fed {name}"
    return whole


ErrorFrame = Callable[[StreamDecoder, StreamError], bytes]


def run_relayed(decoder: StreamDecoder, parts: list[bytes], error_frame: ErrorFrame) -> bytes:
    """What the relay writes: the output, and after a failure the output made before it and the
    front door's error event (``error_frame(decoder, exc)``)."""
    out: list[bytes] = []
    try:
        for part in parts:
            out.append(decoder.feed(part))
        out.append(decoder.finish())
    except StreamError as exc:
        out.append(exc.output + error_frame(decoder, exc))
    return b"".join(out)


def relayed_every_split(make: Callable[[], StreamDecoder], data: bytes, error_frame: ErrorFrame) -> bytes:
    """``run_relayed`` on ``data`` cut every way (``splits``); all outputs must be identical."""
    results = {name: run_relayed(make(), parts, error_frame) for name, parts in splits(data)}
    for name, out in results.items():
        assert out == results["whole"], f"output differs when the input is fed {name}"
    return results["whole"]
