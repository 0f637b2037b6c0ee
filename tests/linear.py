"""A property of incremental parsers: the cost of a read is linear in its size, not in the
size of the unfinished event it extends.

Measured as a ratio inside one run, never as an absolute time: feeding one 16 MiB event in
16 KiB reads must cost within a small factor of a reference that does the least any parser
must, appending each read to a ``bytearray`` and taking the whole out once. A parser that
re-copies or re-scans its unfinished event on every read costs hundreds of times as much.

Why not compare with a 1 MiB event fed the same way: the allocator serves 1 MiB buffers from
warm, reused memory and 16 MiB ones from fresh pages, ten times slower per byte, so a linear
parser measured 20x to 400x the 1 MiB time from one run to the next. The reference at the same
size meets the same memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable

MiB = 1024 * 1024
READ = 16 * 1024
EVENT = 16 * MiB - 4096  # under the 16 MiB cap, framing included
FACTOR = 64


class Reference:
    """The least work: each read appended once, the whole copied out once at the end."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> None:
        self.buf += data
        if data.endswith(b"\n\n"):
            bytes(self.buf)


def feed_seconds(make: Callable[[], Callable[[bytes], object]], reads: list[bytes]) -> float:
    feed = make()
    start = time.perf_counter()
    for read in reads:
        feed(read)
    return time.perf_counter() - start


def assert_linear(make: Callable[[], Callable[[bytes], object]], event: Callable[[int], bytes]) -> None:
    """``event(n)`` builds one event of about ``n`` bytes; fed in 16 KiB reads to ``make()``'s
    feed, it must cost less than ``FACTOR`` times the reference (best of five, interleaved)."""
    data = event(EVENT)
    reads = [data[i : i + READ] for i in range(0, len(data), READ)]
    parser, reference = float("inf"), float("inf")
    for _ in range(5):
        parser = min(parser, feed_seconds(make, reads))
        reference = min(reference, feed_seconds(lambda: Reference().feed, reads))
    assert parser < FACTOR * reference, f"{parser / reference:.0f}x the reference (linear: a few times)"
