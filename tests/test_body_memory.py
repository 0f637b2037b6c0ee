"""Thirty large request bodies at once: the proxy's RSS peak is bounded by the body budget and
falls back near its baseline afterwards (psutil on the CLI process)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import orjson
import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


def _body(size: int) -> bytes:
    """A chat request carrying an image-sized base64-like string, as coding agents send."""
    image = "A" * size
    url = "data:image/png;base64," + image
    content = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": url}}]
    return orjson.dumps({"model": "mock/echo", "messages": [{"role": "user", "content": content}]})


@pytest.mark.skipif(sys.platform != "linux", reason="RSS figures are Linux's")
def test_thirty_large_bodies_peak_bounded_and_memory_given_back(tmp_path: Path) -> None:
    config = tmp_path / "proxy.toml"
    config.write_text("[server]\nmax_body_bytes = 16777216\nmax_inflight_body_bytes = 67108864\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy", "--port", "0", "--no-uvloop", "--config", str(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split("listening on ")[1].split()[0].rstrip(",;") + "/v1/chat/completions"
        ps = psutil.Process(proc.pid)
        body = _body(12 * MB)
        statuses = asyncio.run(_post_all(url, body, 1))  # warm up: imports, first allocations
        baseline = ps.memory_info().rss
        peak = [baseline]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], ps.memory_info().rss)
                done.wait(0.002)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            statuses = asyncio.run(_post_all(url, body, 30))
        finally:
            done.set()
            sampler.join()
        # Memory goes back a moment after the burst (body.py trims the allocator 0.5 s after
        # large bodies): wait for it, up to 5 s.
        after = ps.memory_info().rss
        deadline = time.monotonic() + 5
        while after - baseline >= 40 * MB and time.monotonic() < deadline:
            time.sleep(0.1)
            after = ps.memory_info().rss
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert set(statuses) <= {200, 503} and 200 in statuses, statuses
    # 30 x 12 MB unbounded is 360 MB raw plus its parse; the budget admits about 64 MB at once.
    assert peak[0] - baseline < 250 * MB, (baseline // MB, peak[0] // MB, statuses)
    assert after - baseline < 40 * MB, (baseline // MB, peak[0] // MB, after // MB)


async def _post_all(url: str, body: bytes, n: int) -> list[int]:
    async with aiohttp.ClientSession() as session:

        async def one() -> int:
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                await r.read()
                return r.status

        return list(await asyncio.gather(*(one() for _ in range(n))))
