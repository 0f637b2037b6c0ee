#!/usr/bin/env python3
"""Long fault-injection runs (issue 10), with a printed table: what the fast suite cannot afford.

Runs only on 127.0.0.1. Starts ``scripts/fake_upstream.py`` and the proxy (``python -m proxy
--config ...``) as subprocesses, then measures, from the proxy process (psutil):

1. **held streams**: N concurrent streams (default 1,000) held open by a paced upstream; RSS and
   open fds before, once all are open, and at peak; RSS per open stream; every stream must end
   with its full content and ``[DONE]``.
2. **soak**: M short streamed requests (default 100,000) from a pool of keep-alive connections;
   RSS and open fds sampled every M/10 requests (flat, or growing?).
3. **disconnect to upstream close**: a client drops a stream after its first content frame, K
   times (default 200); an upstream in this process (the same fake upstream code, its
   connections noting when they are lost) gives the time from the client's close to the
   proxy's closing of the upstream connection, on one clock. p50, p99, max.

Usage: ``scripts/faults.py`` (the full run, a few minutes) or ``scripts/faults.py --quick``
(a tenth of everything, seconds). Every phase has a deadline; the run stops its subprocesses on
any exit. The machine's load average is printed with the table: other work skews the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import fake_upstream  # noqa: E402

MiB = 1024 * 1024
CONFIG = """\
[providers.up]
kind = "openai"
base_url = "http://127.0.0.1:{fake}/v1"
api_key = "x"
normalise = false

[providers.noted]
kind = "openai"
base_url = "http://127.0.0.1:{noted}/v1"
api_key = "x"
normalise = false
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_nofile() -> None:
    """1,000 streams need 1,000 client sockets here; the proxy raises its own limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass
class Proxy:
    process: subprocess.Popen[bytes]
    url: str
    ps: psutil.Process

    def sample(self) -> tuple[float, int]:
        """RSS in MiB and open file descriptors of the proxy process."""
        return self.ps.memory_info().rss / MiB, self.ps.num_fds()


@contextlib.contextmanager
def services(noted_port: int, workdir: Path) -> Iterator[Proxy]:
    """The fake upstream and the proxy as subprocesses, stopped on any exit."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        fake = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "fake_upstream.py"), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=(workdir / "fake.log").open("wb"),
        )
        started.append(fake)
        assert fake.stdout is not None
        line = fake.stdout.readline().decode()  # "fake upstream listening on http://127.0.0.1:PORT pid=..."
        fake_port = int(line.split("http://127.0.0.1:")[1].split()[0])
        config = workdir / "proxy.toml"
        config.write_text(CONFIG.format(fake=fake_port, noted=noted_port))
        port = free_port()
        argv = [sys.executable, "-m", "proxy", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
        log = (workdir / "proxy.log").open("wb")
        proxy = subprocess.Popen([*argv, "--log-level", "warning"], cwd=ROOT, stdout=log, stderr=log)
        started.append(proxy)
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proxy)
        yield Proxy(proxy, url, psutil.Process(proxy.pid))
    finally:
        for process in reversed(started):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    import urllib.request

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the proxy exited with status {process.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url + "/healthz", timeout=1):
            return
        time.sleep(0.1)
    raise SystemExit("the proxy did not become healthy within 20 s")


def body(model: str) -> bytes:
    return orjson.dumps({"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]})


HEADERS = {"Content-Type": "application/json"}


# --- 1. Held streams ----------------------------------------------------------------------------


@dataclass
class Held:
    streams: int
    opened: int = 0
    completed: int = 0
    failed: int = 0
    baseline: tuple[float, int] = (0.0, 0)
    all_open: tuple[float, int] = (0.0, 0)
    peak_rss: float = 0.0
    peak_fds: int = 0
    seconds_to_open: float = 0.0
    all_opened: asyncio.Event = field(default_factory=asyncio.Event)


async def held_streams(proxy: Proxy, streams: int, chunks: int, gap_ms: int, deadline_s: float) -> Held:
    result = Held(streams, baseline=proxy.sample())
    expected = fake_upstream.expected_content(chunks)
    model = f"up/bench-n{chunks}-gap{gap_ms}"
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=deadline_s)) as session:

        async def one() -> None:
            try:
                async with session.post(proxy.url + "/v1/chat/completions", data=body(model), headers=HEADERS) as r:
                    first = await r.content.readuntil(b"\n\n")
                    result.opened += 1
                    if result.opened == streams:
                        result.all_opened.set()
                    rest = await r.read()
                whole = first + rest
                text = "".join(
                    c["delta"].get("content") or ""
                    for frame in whole.split(b"\n\n")
                    if frame.startswith(b"data: {")
                    for c in orjson.loads(frame[6:]).get("choices", [])
                )
                if r.status == 200 and whole.rstrip().endswith(b"data: [DONE]") and text == expected:
                    result.completed += 1
                else:
                    result.failed += 1
            except (aiohttp.ClientError, TimeoutError, ValueError):
                result.failed += 1

        async def watch() -> None:
            while True:
                rss, fds = proxy.sample()
                result.peak_rss, result.peak_fds = max(result.peak_rss, rss), max(result.peak_fds, fds)
                await asyncio.sleep(0.2)

        started = time.perf_counter()
        watcher = asyncio.ensure_future(watch())
        tasks = [asyncio.ensure_future(one()) for _ in range(streams)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(result.all_opened.wait(), deadline_s)
            result.seconds_to_open = time.perf_counter() - started
            result.all_open = proxy.sample()
        await asyncio.wait(tasks, timeout=deadline_s)
        watcher.cancel()
    return result


# --- 2. Soak ------------------------------------------------------------------------------------


@dataclass
class Soak:
    requests: int
    samples: list[tuple[int, float, int, float]] = field(default_factory=list)  # done, rss, fds, seconds
    failed: int = 0


async def soak(proxy: Proxy, requests: int, concurrency: int, deadline_s: float) -> Soak:
    result = Soak(requests)
    every = max(1, requests // 10)
    done = 0
    data = body("up/bench-n3")
    started = time.perf_counter()
    rss, fds = proxy.sample()
    result.samples.append((0, rss, fds, 0.0))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal done
            while done < requests and time.perf_counter() - started < deadline_s:
                done += 1
                index = done
                try:
                    async with session.post(proxy.url + "/v1/chat/completions", data=data, headers=HEADERS) as r:
                        raw = await r.read()
                    if r.status != 200 or not raw.endswith(b"data: [DONE]\n\n"):
                        result.failed += 1
                except aiohttp.ClientError:
                    result.failed += 1
                if index % every == 0:
                    rss, fds = proxy.sample()
                    result.samples.append((done, rss, fds, time.perf_counter() - started))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return result


# --- 3. Disconnect to upstream close ------------------------------------------------------------


class NotingConn(fake_upstream._Conn):
    """The fake upstream's connection, noting when one that was streaming is lost."""

    lost: asyncio.Queue[float]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.busy:
            self.lost.put_nowait(time.perf_counter())
        super().connection_lost(exc)


async def start_noted() -> tuple[asyncio.Server, asyncio.Queue[float]]:
    lost: asyncio.Queue[float] = asyncio.Queue()
    NotingConn.lost = lost
    app = fake_upstream.FakeUpstream(fake_upstream.Scenario())
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: NotingConn(app), "127.0.0.1", 0)
    return server, lost


async def disconnects(proxy: Proxy, lost: asyncio.Queue[float], tries: int) -> tuple[list[float], int]:
    """Milliseconds from the client's close to the upstream's, per try; and tries that timed out."""
    times: list[float] = []
    missed = 0
    data = body("noted/bench-n1000-gap20")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        for _ in range(tries):
            async with session.post(proxy.url + "/v1/chat/completions", data=data, headers=HEADERS) as r:
                frames = 0
                while frames < 2:  # the opening frame and a content frame: the stream is flowing
                    frames += (await r.content.readuntil(b"\n\n")).startswith(b"data: {")
                closed_at = time.perf_counter()
                r.close()
            try:
                upstream_closed_at = await asyncio.wait_for(lost.get(), 5)
                times.append((upstream_closed_at - closed_at) * 1000)
            except TimeoutError:
                missed += 1
    return times, missed


# --- The run and its table ----------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def table(rows: list[tuple[str, str]]) -> str:
    width, vwidth = max(len(k) for k, _ in rows), max(len(v) for _, v in rows)
    line = f"+-{'-' * width}-+-{'-' * vwidth}-+"
    out = [line] + [f"| {k:<{width}} | {v:<{vwidth}} |" for k, v in rows] + [line]
    return "\n".join(out)


async def run(args: argparse.Namespace) -> int:
    scale = 10 if args.quick else 1
    streams, requests, tries = args.streams // scale, args.requests // scale, args.tries // scale
    noted, lost = await start_noted()
    load_before = os.getloadavg()
    rows: list[tuple[str, str]] = []
    ok = True
    with (
        tempfile.TemporaryDirectory(prefix="faults-") as tmp,
        services(noted.sockets[0].getsockname()[1], Path(tmp)) as proxy,
    ):
        idle_rss, idle_fds = proxy.sample()
        rows.append(("proxy idle", f"{idle_rss:.1f} MiB RSS, {idle_fds} fds"))

        print(f"held streams: {streams} ...", file=sys.stderr)
        held = await held_streams(proxy, streams, chunks=60, gap_ms=250, deadline_s=120)
        per_stream = (held.all_open[0] - held.baseline[0]) * 1024 / max(1, streams)
        rows += [
            ("held: streams open at once", f"{held.opened}/{streams} in {held.seconds_to_open:.1f} s"),
            ("held: completed whole / failed", f"{held.completed} / {held.failed}"),
            ("held: RSS all open (peak)", f"{held.all_open[0]:.1f} MiB ({held.peak_rss:.1f} MiB)"),
            ("held: RSS per open stream", f"{per_stream:.1f} KiB"),
            ("held: fds all open (peak)", f"{held.all_open[1]} ({held.peak_fds})"),
        ]
        ok &= held.completed == streams
        after_rss, after_fds = proxy.sample()
        rows.append(("after held streams", f"{after_rss:.1f} MiB RSS, {after_fds} fds"))

        print(f"soak: {requests} requests ...", file=sys.stderr)
        s = await soak(proxy, requests, concurrency=32, deadline_s=600)
        done, last_rss, last_fds, seconds = s.samples[-1]
        first_rss, first_fds = s.samples[min(1, len(s.samples) - 1)][1:3]
        rss_series = ", ".join(f"{r:.0f}" for _, r, _, _ in s.samples)
        fds_series = ", ".join(str(f) for _, _, f, _ in s.samples)
        rows += [
            ("soak: requests / failed", f"{done} / {s.failed} in {seconds:.0f} s ({done / max(seconds, 1e-9):.0f}/s)"),
            ("soak: RSS MiB every 10%", rss_series),
            ("soak: RSS growth after first 10%", f"{last_rss - first_rss:+.1f} MiB"),
            ("soak: fds every 10%", fds_series),
            ("soak: fds growth after first 10%", f"{last_fds - first_fds:+d}"),
        ]
        ok &= done == requests and s.failed == 0

        print(f"disconnects: {tries} ...", file=sys.stderr)
        times, missed = await disconnects(proxy, lost, tries)
        if times:
            rows += [
                ("disconnect→upstream close p50", f"{percentile(times, 50):.2f} ms"),
                ("disconnect→upstream close p99 (max)", f"{percentile(times, 99):.2f} ms ({max(times):.2f} ms)"),
                ("disconnect: tries / not closed in 5 s", f"{len(times) + missed} / {missed}"),
                ("disconnect: mean", f"{statistics.fmean(times):.2f} ms"),
            ]
        ok &= missed == 0 and bool(times)
    noted.close()
    load_after = os.getloadavg()
    rows.append(
        ("load average before / after (1 min)", f"{load_before[0]:.2f} / {load_after[0]:.2f} on {os.cpu_count()} cpus")
    )
    print(table(rows))
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of every count")
    parser.add_argument("--streams", type=int, default=1000, help="concurrent streams held open")
    parser.add_argument("--requests", type=int, default=100_000, help="short requests in the soak")
    parser.add_argument("--tries", type=int, default=200, help="client disconnects measured")
    args = parser.parse_args(argv)
    raise_nofile()
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
