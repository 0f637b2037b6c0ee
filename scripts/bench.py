#!/usr/bin/env python3
"""Streaming benchmark for sse-proxy: load, translators, and a one-command suite.

Load mode (default) -- C concurrent streams against one or more OpenAI-compatible base URLs,
every stream verified completely (exact content, chunk count, finish_reason, usage, [DONE]),
targets compared in interleaved A/B rounds (ABBA order) within one run::

    python scripts/bench.py \\
        --target direct=http://127.0.0.1:9001/v1 \\
        --target "bare=http://127.0.0.1:9002/v1,pid=1234" \\
        --target "proxy=http://127.0.0.1:8080/v1,prefix=fake/,pid=5678" \\
        --streams 1,32,256 --chunks 200 --rounds 3 --json out.json --png out.png

A target is ``NAME=BASE_URL`` plus comma-separated options: ``prefix=`` (put before the model
name, e.g. ``fake/``; several joined by ``|`` rotate per request), ``pid=`` (the server's PID:
its CPU seconds per relayed chunk and peak RSS are measured, children included), ``rounds=``
(take part in only the first N rounds: for slow targets). The stream shape travels in the model
name (``bench-n200-ttft0-gap0-tpc1``) and in ``x-fake-*`` headers, which the fake upstream reads.

Translator mode (``--translators``): the sans-IO stream translators alone, no network: events/s
and us per event on tests/fixtures/<provider>/ files and on synthetic streams from the fake
upstream's generator, beside the bare SSE decoder.

Suite mode (``--suite``): starts the fake upstream, the bare relay and the proxy (workers 1 and
2, generated config), optionally LiteLLM (``--litellm /tmp/litellm-venv``), runs the scenarios of
docs/benchmarks.md and writes JSON, a PNG and a Markdown table. ``--quick`` shrinks it.

Metrics: TTFB = request start to first response body byte; TTFT = to first non-empty content
delta; gap = between consecutive content deltas as the client reads them; chunks = content
chunks verified (the upstream's token chunks: the denominator of "CPU per relayed chunk");
chunks/s = chunks / wall time of the run. "added TTFT" is a target's TTFT percentile minus the
baseline target's (``--baseline``, default the first) at the same point.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import gc
import math
import multiprocessing as mp
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(ROOT))

import fake_upstream  # noqa: E402

try:
    import psutil
except ImportError:  # pragma: no cover - psutil is in the test and bench extras
    psutil = None  # type: ignore[assignment]

LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")


# --------------------------------------------------------------------------------------------
# Specs


@dataclass
class Target:
    name: str
    url: str  # base URL, e.g. http://127.0.0.1:8080/v1
    prefixes: list[str] = field(default_factory=lambda: [""])
    pid: int | None = None
    rounds: int | None = None
    warmup_s: float | None = None
    key: str = "bench"

    @classmethod
    def parse(cls, spec: str) -> Target:
        name, _, rest = spec.partition("=")
        if not rest:
            raise ValueError(f"target {spec!r}: expected NAME=URL[,prefix=..][,pid=..]")
        url, *opts = rest.split(",")
        t = cls(name.strip(), url.strip().rstrip("/"))
        for opt in opts:
            k, _, v = opt.partition("=")
            k = k.strip()
            if k == "prefix":
                t.prefixes = v.split("|")
            elif k == "pid":
                t.pid = int(v)
            elif k == "rounds":
                t.rounds = int(v)
            elif k == "warmup":
                t.warmup_s = float(v)
            elif k == "key":
                t.key = v
            else:
                raise ValueError(f"target {spec!r}: unknown option {k!r}")
        check_loopback(t.url)
        return t


@dataclass(frozen=True)
class Shape:
    chunks: int = 200
    ttft_ms: float = 0.0
    gap_ms: float = 0.0
    tpc: int = 1

    @property
    def model(self) -> str:
        return f"bench-n{self.chunks}-ttft{self.ttft_ms:g}-gap{self.gap_ms:g}-tpc{self.tpc}"

    @property
    def label(self) -> str:
        if self.gap_ms or self.ttft_ms:
            return f"paced {self.chunks}x{self.gap_ms:g}ms, ttft {self.ttft_ms:g}ms"
        return f"chatty {self.chunks} chunks"


def check_loopback(url: str) -> None:
    host = url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
    if host not in LOOPBACK and not host.startswith("127."):
        raise SystemExit(f"refusing to load a non-loopback address: {url}")


# --------------------------------------------------------------------------------------------
# Client process: the load generator (raw aiohttp, iter_any, byte-level frame split, orjson)


def _client_proc(spec: dict[str, Any], conn: Any) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    gc.disable()  # the client allocates short-lived objects only; keep GC pauses out of gaps
    try:
        result = asyncio.run(_client_run(spec))
    except BaseException as e:  # report rather than hang the parent
        result = {"fatal": f"{type(e).__name__}: {e}"}
    conn.send(result)
    conn.close()


async def _client_run(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    perf = time.perf_counter
    shape = Shape(**spec["shape"])
    expected = fake_upstream.expected_content(shape.chunks, shape.tpc)
    want_n, want_tokens = shape.chunks, shape.chunks * shape.tpc
    url = spec["url"] + "/chat/completions"
    bodies = [
        orjson.dumps(
            {
                "model": p + shape.model,
                "messages": [{"role": "user", "content": "Say the benchmark words."}],
                "stream": True,
                "stream_options": {"include_usage": True},
                "max_tokens": want_tokens,
            }
        )
        for p in spec["prefixes"]
    ]
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {spec['key']}",
        "x-fake-chunks": str(shape.chunks),
        "x-fake-ttft-ms": f"{shape.ttft_ms:g}",
        "x-fake-gap-ms": f"{shape.gap_ms:g}",
        "x-fake-tokens-per-chunk": str(shape.tpc),
    }
    ttfb: list[float] = []
    ttft: list[float] = []
    gaps = array.array("d")
    errors: Counter[str] = Counter()
    counters = {"ok": 0, "chunks": 0, "frames": 0, "bytes": 0}
    loads = orjson.loads
    timeout = aiohttp.ClientTimeout(total=spec["request_timeout"], sock_connect=10)
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None, enable_cleanup_closed=False)
    t_end_wall = spec["measure_at"] + spec["duration"]
    warm_body = orjson.dumps(
        {
            "model": spec["prefixes"][0] + Shape(1).model,
            "stream": True,
            "messages": [{"role": "user", "content": "warm up"}],
            "stream_options": {"include_usage": True},
        }
    )
    warm_headers = {
        **headers,
        "x-fake-chunks": "1",
        "x-fake-ttft-ms": "0",
        "x-fake-gap-ms": "0",
        "x-fake-tokens-per-chunk": "1",
    }
    requests_per_stream = spec["requests_per_stream"]
    first_req_index = spec["first_stream"]

    async def warm(session: aiohttp.ClientSession) -> None:
        try:
            async with session.post(url, data=warm_body, headers=warm_headers) as resp:
                await resp.read()
                if resp.status != 200:
                    errors[f"warm-up: http {resp.status}"] += 1
        except Exception as e:
            errors[f"warm-up: {type(e).__name__}: {str(e)[:100]}"] += 1

    async def one(session: aiohttp.ClientSession, body: bytes) -> None:
        t0 = perf()
        texts: list[str] = []
        n = frames = nbytes = 0
        first_b = first_t = last = 0.0
        done = False
        finish = None
        usage = None
        async with session.post(url, data=body, headers=headers) as resp:
            if resp.status != 200:
                text = (await resp.read())[:200]
                errors[f"http {resp.status}: {text!r}"] += 1
                return
            buf = b""
            async for data in resp.content.iter_any():
                now = perf()
                if not first_b:
                    first_b = now
                nbytes += len(data)
                if b"\r" in data:
                    data = data.replace(b"\r\n", b"\n")
                buf = buf + data if buf else data
                if b"\n\n" not in buf:
                    continue
                parts = buf.split(b"\n\n")
                buf = parts.pop()
                for frame in parts:
                    if not frame:
                        continue
                    frames += 1
                    if frame.startswith(b"data: "):
                        payload = frame[6:]
                    else:
                        payload = b""
                        for line in frame.split(b"\n"):
                            if line.startswith(b"data:"):
                                payload = line[5:].lstrip(b" ")
                        if not payload:
                            continue  # comment / keep-alive / event-only frame
                    if payload == b"[DONE]":
                        done = True
                        continue
                    obj = loads(payload)
                    choices = obj.get("choices")
                    if choices:
                        c = choices[0]
                        delta = c.get("delta")
                        if delta:
                            t = delta.get("content")
                            if t:
                                texts.append(t)
                                if n:
                                    gaps.append(now - last)
                                else:
                                    first_t = now
                                last = now
                                n += 1
                        f = c.get("finish_reason")
                        if f:
                            finish = f
                    elif "error" in obj:
                        errors[f"error frame: {str(obj['error'])[:120]}"] += 1
                        return
                    if obj.get("usage"):
                        usage = obj["usage"]
        counters["frames"] += frames
        counters["bytes"] += nbytes
        if not done:
            errors["stream ended without [DONE]"] += 1
        elif n != want_n:
            errors[f"content chunks {n} != {want_n}"] += 1
        elif "".join(texts) != expected:
            errors["content mismatch"] += 1
        elif finish != "stop":
            errors[f"finish_reason {finish!r}"] += 1
        elif not usage or usage.get("completion_tokens") != want_tokens:
            errors[f"usage {usage!r}"] += 1
        else:
            counters["ok"] += 1
            counters["chunks"] += n
            ttfb.append(first_b - t0)
            ttft.append(first_t - t0)

    ramp, total_streams = spec["ramp_s"], spec["total_streams"]

    async def stream_worker(session: aiohttp.ClientSession, k: int) -> None:
        if ramp:
            await asyncio.sleep(ramp * k / total_streams)
        i = k
        for _ in range(requests_per_stream):
            if time.time() >= t_end_wall:
                break
            try:
                await one(session, bodies[i % len(bodies)])
            except asyncio.CancelledError:
                raise
            except TimeoutError:
                errors["timeout"] += 1
            except Exception as e:
                errors[f"{type(e).__name__}: {str(e)[:120]}"] += 1
            i += 1

    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=False, skip_auto_headers=("User-Agent",)
    ) as session:
        delay = spec["start_at"] - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        late = 0
        if spec["warmup"]:  # one small request per stream: connections exist before measuring
            await asyncio.wait_for(
                asyncio.gather(*(warm(session) for _ in range(spec["streams"]))), spec["request_timeout"]
            )
        delay = spec["measure_at"] - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif spec["warmup"]:
            late = 1
        ru = resource.getrusage(resource.RUSAGE_SELF)
        cpu_start = ru.ru_utime + ru.ru_stime
        t_start = time.time()
        tasks = [asyncio.create_task(stream_worker(session, first_req_index + k)) for k in range(spec["streams"])]
        _, pending = await asyncio.wait(tasks, timeout=spec["duration"] + spec["request_timeout"] + 5)
        for t in pending:
            t.cancel()
        if pending:
            errors["cancelled at the hard deadline"] += len(pending)
            await asyncio.gather(*pending, return_exceptions=True)
        t_stop = time.time()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu_s": ru.ru_utime + ru.ru_stime - cpu_start,
        "warmup_overran": late,
        "t_start": t_start,
        "t_stop": t_stop,
        "ttfb": ttfb,
        "ttft": ttft,
        "gaps": gaps.tobytes(),
        "errors": dict(errors),
        **counters,
    }


# --------------------------------------------------------------------------------------------
# Process metrics (psutil): CPU seconds and RSS of a process tree


def _tree(pid: int) -> list[Any]:
    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.Error:
        return []


def _proc_cpu(p: Any) -> float:
    """CPU seconds of one process: the sum of its threads' schedstat (ns resolution on Linux),
    else psutil's user+system (clock-tick resolution)."""
    try:
        total = 0
        for tid in os.listdir(f"/proc/{p.pid}/task"):
            with open(f"/proc/{p.pid}/task/{tid}/schedstat", "rb") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        c = p.cpu_times()
        return c.user + c.system


def tree_cpu(pid: int | None) -> dict[int, float]:
    if pid is None or psutil is None:
        return {}
    out = {}
    for p in _tree(pid):
        with contextlib.suppress(psutil.Error):
            out[p.pid] = _proc_cpu(p)
    return out


def tree_rss(pid: int | None) -> int:
    if pid is None or psutil is None:
        return 0
    total = 0
    for p in _tree(pid):
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


class RssSampler(threading.Thread):
    def __init__(self, pid: int | None, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.peak = pid, every, 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self._halt.wait(self.every)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        self.peak = max(self.peak, tree_rss(self.pid))
        return self.peak


# --------------------------------------------------------------------------------------------
# One run: one target, one shape, C streams, P client processes


def run_once(
    target: Target,
    shape: Shape,
    streams: int,
    requests_per_stream: int,
    duration: float,
    clients: int,
    request_timeout: float = 120.0,
    upstream_pid: int | None = None,
    warmup: bool = True,
    warmup_s: float | None = None,
    ramp_s: float = 0.0,
) -> dict[str, Any]:
    """Fork the client processes; each opens its streams' connections with one small warm-up
    request per stream, then all start measuring at one wall-clock instant (``measure_at``),
    when the servers' CPU counters are read too, so warm-up costs nothing in the numbers."""
    ctx = mp.get_context("fork")
    procs = max(1, min(clients, streams))
    start_at = time.time() + 0.2 + 0.05 * procs
    if warmup_s is None:
        warmup_s = target.warmup_s if target.warmup_s is not None else 0.4 + 0.004 * streams
    measure_at = start_at + (warmup_s if warmup else 0.0)
    rss0 = tree_rss(target.pid)
    sampler = RssSampler(target.pid)  # started after the fork: no thread is copied into a child
    children = []
    share, extra = divmod(streams, procs)
    first = 0
    for i in range(procs):
        n = share + (1 if i < extra else 0)
        spec = {
            "url": target.url,
            "prefixes": target.prefixes,
            "key": target.key,
            "shape": shape.__dict__,
            "streams": n,
            "first_stream": first,
            "requests_per_stream": requests_per_stream,
            "duration": duration,
            "request_timeout": request_timeout,
            "start_at": start_at,
            "measure_at": measure_at,
            "warmup": warmup,
            "ramp_s": ramp_s,
            "total_streams": streams,
        }
        first += n
        parent, child = ctx.Pipe(duplex=False)
        pr = ctx.Process(target=_client_proc, args=(spec, child), daemon=True)
        pr.start()
        child.close()
        children.append((pr, parent))
    sampler.start()
    time.sleep(max(0.0, measure_at - time.time()))
    cpu0, up0 = tree_cpu(target.pid), tree_cpu(upstream_pid)
    sys0, w0 = (psutil.cpu_times() if psutil else None), time.time()
    results = []
    hard = start_at + duration + request_timeout + 30
    for pr, conn in children:
        left = max(1.0, hard - time.time())
        if conn.poll(left):
            try:
                results.append(conn.recv())
            except EOFError:
                results.append({"fatal": "client process died without a report"})
        else:
            results.append({"fatal": "client process did not report in time"})
        pr.join(5)
        if pr.is_alive():
            pr.kill()
            pr.join()
    peak = sampler.stop()
    cpu1, up1 = tree_cpu(target.pid), tree_cpu(upstream_pid)
    sys1, w1 = (psutil.cpu_times() if psutil else None), time.time()
    ttfb, ttft, gaps = [], [], array.array("d")
    errors: Counter[str] = Counter()
    agg = {"ok": 0, "chunks": 0, "frames": 0, "bytes": 0, "client_cpu_s": 0.0, "warmup_late": 0}
    t_start, t_stop = math.inf, 0.0
    for r in results:
        if "fatal" in r:
            errors[f"client: {r['fatal']}"] += 1
            continue
        ttfb += r["ttfb"]
        ttft += r["ttft"]
        gaps.frombytes(r["gaps"])
        errors.update(r["errors"])
        for k in ("ok", "chunks", "frames", "bytes"):
            agg[k] += r[k]
        agg["client_cpu_s"] += r["cpu_s"]
        agg["warmup_late"] += r.get("warmup_overran", 0)
        t_start, t_stop = min(t_start, r["t_start"]), max(t_stop, r["t_stop"])
    wall = max(1e-9, t_stop - t_start) if t_stop else 0.0
    per_proc = {pid: cpu1[pid] - cpu0.get(pid, 0.0) for pid in cpu1}
    machine_busy = None
    if sys0 is not None and sys1 is not None:
        busy0 = sys0.user + sys0.system + getattr(sys0, "softirq", 0) + getattr(sys0, "irq", 0)
        busy1 = sys1.user + sys1.system + getattr(sys1, "softirq", 0) + getattr(sys1, "irq", 0)
        machine_busy = (busy1 - busy0) / max(1e-9, w1 - w0)  # cores busy, averaged over the run
    return {
        "target": target.name,
        "streams": streams,
        "ttfb": ttfb,
        "ttft": ttft,
        "gaps": gaps,
        "errors": dict(errors),
        "wall_s": wall,
        "cpu_s": sum(per_proc.values()) if target.pid else None,
        "cpu_per_proc": sorted(per_proc.values(), reverse=True) if target.pid else None,
        "upstream_cpu_s": sum(up1[p] - up0.get(p, 0.0) for p in up1) if upstream_pid else None,
        "rss_start": rss0,
        "rss_peak": peak,
        "rss_end": tree_rss(target.pid),
        "machine_cores_busy": machine_busy,
        **agg,
    }


# --------------------------------------------------------------------------------------------
# Aggregation and reporting


def pct(values: Any, q: float) -> float | None:
    if not len(values):
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ttfb, ttft, gaps = [], [], array.array("d")
    errors: Counter[str] = Counter()
    tot = Counter()
    cpu = up_cpu = 0.0
    has_cpu = has_up = False
    per_proc: list[float] = []
    busy = []
    for r in runs:
        ttfb += r["ttfb"]
        ttft += r["ttft"]
        gaps.extend(r["gaps"])
        errors.update(r["errors"])
        for k in ("ok", "chunks", "frames", "bytes", "wall_s", "client_cpu_s"):
            tot[k] += r[k]
        if r["cpu_s"] is not None:
            has_cpu = True
            cpu += r["cpu_s"]
            if not per_proc:
                per_proc = [0.0] * len(r["cpu_per_proc"])
            for i, v in enumerate(r["cpu_per_proc"][: len(per_proc)]):
                per_proc[i] += v
        if r["upstream_cpu_s"] is not None:
            has_up = True
            up_cpu += r["upstream_cpu_s"]
        if r["machine_cores_busy"] is not None:
            busy.append(r["machine_cores_busy"])
    chunks = tot["chunks"]
    ms = 1000.0

    def p3(v: Any, scale: float) -> dict[str, float | None]:
        return {f"p{q}": (x * scale if (x := pct(v, q / 100)) is not None else None) for q in (50, 90, 99)}

    return {
        "requests_ok": tot["ok"],
        "errors": sum(errors.values()),
        "error_kinds": dict(errors.most_common(5)),
        "chunks": chunks,
        "frames": tot["frames"],
        "bytes": tot["bytes"],
        "wall_s": tot["wall_s"],
        "chunks_per_s": chunks / tot["wall_s"] if tot["wall_s"] else None,
        "ttfb_ms": p3(ttfb, ms),
        "ttft_ms": p3(ttft, ms),
        "gap_ms": p3(gaps, ms),
        "cpu_us_per_chunk": cpu / chunks * 1e6 if has_cpu and chunks else None,
        "cpu_us_per_request": cpu / tot["ok"] * 1e6 if has_cpu and tot["ok"] else None,
        "cpu_share_per_proc": [v / cpu for v in per_proc] if has_cpu and cpu and len(per_proc) > 1 else None,
        "capacity_chunks_per_core_s": chunks / cpu if has_cpu and cpu else None,
        "upstream_us_per_chunk": up_cpu / chunks * 1e6 if has_up and chunks else None,
        "client_us_per_chunk": tot["client_cpu_s"] / chunks * 1e6 if chunks else None,
        "rss_peak_mib": max((r["rss_peak"] for r in runs), default=0) / 2**20 or None,
        "rss_end_mib": runs[-1]["rss_end"] / 2**20 if runs and runs[-1]["rss_end"] else None,
        "machine_cores_busy": sum(busy) / len(busy) if busy else None,
        "samples": len(ttft),
    }


def run_matrix(
    targets: list[Target],
    shape: Shape,
    streams_list: list[int],
    rounds: int,
    requests_per_stream: dict[int, int] | int,
    duration: float,
    clients: int | None,
    upstream_pid: int | None = None,
    scenario: str | None = None,
    log: Any = print,
    warmup: bool = True,
    warmup_s: float | None = None,
    ramp_s: float = 0.0,
) -> list[dict[str, Any]]:
    """Interleaved A/B rounds: round r runs every target once, order reversed on odd rounds."""
    rows = []
    for c in streams_list:
        k = requests_per_stream if isinstance(requests_per_stream, int) else requests_per_stream[c]
        nclients = clients if clients else (1 if c < 16 else 2)
        runs: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
        for r in range(rounds):
            order = targets if r % 2 == 0 else targets[::-1]
            for t in order:
                if t.rounds is not None and r >= t.rounds:
                    continue
                res = run_once(
                    t,
                    shape,
                    c,
                    k,
                    duration,
                    nclients,
                    upstream_pid=upstream_pid,
                    warmup=warmup,
                    warmup_s=warmup_s,
                    ramp_s=ramp_s,
                )
                runs[t.name].append(res)
                err = sum(res["errors"].values())
                log(
                    f"  [{scenario or shape.label}] {c:>3} streams, round {r + 1}/{rounds}, {t.name:<14}"
                    f" ok={res['ok']:<5} err={err:<3} {res['chunks'] / max(res['wall_s'], 1e-9):>9,.0f} chunks/s"
                    + (
                        f"  {res['cpu_s'] / max(res['chunks'], 1) * 1e6:6.2f} us/chunk"
                        if res["cpu_s"] is not None
                        else ""
                    )
                    + (f"  errors: {res['errors']}" if err else "")
                    + ("  (warm-up overran the measuring start: raise --warmup-s)" if res["warmup_late"] else "")
                )
                time.sleep(0.2)
        for t in targets:
            if runs[t.name]:
                row = {
                    "scenario": scenario or shape.label,
                    "shape": shape.__dict__,
                    "streams": c,
                    "target": t.name,
                    "rounds": len(runs[t.name]),
                    "requests_per_stream": k,
                    **summarize(runs[t.name]),
                }
                rows.append(row)
    return rows


def add_relative(rows: list[dict[str, Any]], baseline: str | None, relay: str | None) -> None:
    """Added TTFT vs ``baseline`` and CPU ratio vs ``relay``, per (scenario, streams)."""
    groups: dict[tuple, dict[str, dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["scenario"], r["streams"]), {})[r["target"]] = r
    for g in groups.values():
        base = g.get(baseline) if baseline else None
        rel = g.get(relay) if relay else None
        for r in g.values():
            if base is not None and r is not base:
                r["added_ttft_ms"] = {
                    q: (r["ttft_ms"][q] - base["ttft_ms"][q])
                    if r["ttft_ms"][q] is not None and base["ttft_ms"][q] is not None
                    else None
                    for q in ("p50", "p99")
                }
            if rel is not None and r.get("cpu_us_per_chunk") and rel.get("cpu_us_per_chunk"):
                r["cpu_vs_relay"] = r["cpu_us_per_chunk"] / rel["cpu_us_per_chunk"]


def _f(v: Any, fmt: str = "{:.2f}", none: str = "-") -> str:
    return none if v is None else fmt.format(v)


COLUMNS = [
    ("scenario", 26, lambda r: r["scenario"][:26]),
    ("C", 4, lambda r: str(r["streams"])),
    ("target", 14, lambda r: r["target"][:14]),
    ("ok/err", 11, lambda r: f"{r['requests_ok']}/{r['errors']}"),
    ("TTFB p50/p99 ms", 16, lambda r: f"{_f(r['ttfb_ms']['p50'], '{:.1f}')}/{_f(r['ttfb_ms']['p99'], '{:.1f}')}"),
    ("TTFT p50/p90/p99 ms", 21, lambda r: "/".join(_f(r["ttft_ms"][q], "{:.1f}") for q in ("p50", "p90", "p99"))),
    (
        "+TTFT p50/p99",
        15,
        lambda r: (
            "/".join(_f(r.get("added_ttft_ms", {}).get(q), "{:+.1f}") for q in ("p50", "p99"))
            if r.get("added_ttft_ms")
            else "-"
        ),
    ),
    ("gap p50/p99 ms", 15, lambda r: f"{_f(r['gap_ms']['p50'], '{:.2f}')}/{_f(r['gap_ms']['p99'], '{:.2f}')}"),
    ("chunks/s", 9, lambda r: _f(r["chunks_per_s"], "{:,.0f}")),
    ("us/chunk", 8, lambda r: _f(r["cpu_us_per_chunk"], "{:.2f}")),
    ("xrelay", 6, lambda r: _f(r.get("cpu_vs_relay"), "{:.2f}")),
    ("cap/core", 9, lambda r: _f(r["capacity_chunks_per_core_s"], "{:,.0f}")),
    ("RSS MiB", 7, lambda r: _f(r["rss_peak_mib"], "{:.1f}")),
]


def format_table(rows: list[dict[str, Any]], markdown: bool = False) -> str:
    if markdown:
        out = ["| " + " | ".join(c[0] for c in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        out += ["| " + " | ".join(c[2](r) for c in COLUMNS) + " |" for r in rows]
        return "\n".join(out)
    out = ["  ".join(c[0].ljust(c[1]) for c in COLUMNS)]
    out.append("  ".join("-" * c[1] for c in COLUMNS))
    out += ["  ".join(c[2](r).ljust(c[1]) for c in COLUMNS) for r in rows]
    return "\n".join(out)


def draw_png(rows: list[dict[str, Any]], path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install -e '.[bench]'): no chart", file=sys.stderr)
        return False
    keys = list(dict.fromkeys((r["scenario"], r["streams"]) for r in rows))
    targets = list(dict.fromkeys(r["target"] for r in rows))
    idx = {(r["scenario"], r["streams"], r["target"]): r for r in rows}
    panels = [
        ("CPU us per relayed chunk (log; lower is better)", lambda r: r.get("cpu_us_per_chunk"), "log"),
        ("added TTFT p50 vs direct, ms (symlog)", lambda r: (r.get("added_ttft_ms") or {}).get("p50"), "symlog"),
        ("added TTFT p99 vs direct, ms (symlog)", lambda r: (r.get("added_ttft_ms") or {}).get("p99"), "symlog"),
        ("peak RSS MiB", lambda r: r.get("rss_peak_mib"), "linear"),
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(10.0, 0.22 * len(keys) * len(targets) + 3), 15))
    width = 0.85 / max(1, len(targets))
    cmap = plt.get_cmap("tab10")
    for ax, (title, get, scale) in zip(axes, panels, strict=True):
        for i, t in enumerate(targets):
            xs, vals = [], []
            for k, (s, c) in enumerate(keys):
                r = idx.get((s, c, t))
                v = get(r) if r else None
                if v is not None:
                    xs.append(k + i * width)
                    vals.append(v)
            bars = ax.bar(xs, vals, width, label=t, color=cmap(i % 10))
            for bar, v in zip(bars, vals, strict=True):
                label = f"{v:.0f}" if abs(v) >= 10 else f"{v:.1f}"
                ax.annotate(
                    label,
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom" if v >= 0 else "top",
                    fontsize=5,
                    rotation=90,
                )
        ax.set_yscale(scale) if scale != "symlog" else ax.set_yscale("symlog", linthresh=1.0)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([k + width * (len(targets) - 1) / 2 for k in range(len(keys))])
        ax.set_xticklabels([f"{s}\nC={c}" for s, c in keys], fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7, ncol=min(6, len(targets)))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _json_default(o: Any) -> Any:
    if isinstance(o, array.array):
        return None
    raise TypeError(type(o))


def write_json(path: str, payload: dict[str, Any]) -> None:
    Path(path).write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2, default=_json_default))


def environment() -> dict[str, Any]:
    import aiohttp

    env = {
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    with contextlib.suppress(ImportError):
        import uvloop

        env["uvloop"] = uvloop.__version__
    if psutil:
        env["mem_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    with contextlib.suppress(Exception):
        env["git"] = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "proxy"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        env["proxy_tree"] = "with uncommitted changes in proxy/" if dirty else "clean"
    return env


# --------------------------------------------------------------------------------------------
# Translator micro-benchmark (sans-IO, no network)


_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


def _split_events(data: bytes) -> list[bytes]:
    """Cut a stream after each event's blank line (what one network read typically carries)."""
    out, pos = [], 0
    for m in _EVENT_END.finditer(data):
        out.append(data[pos : m.end()])
        pos = m.end()
    out.append(data[pos:])
    return [p for p in out if p.strip()]


def _fixture_streams(provider: str) -> list[tuple[str, bytes]]:
    """Upstream stream inputs in tests/fixtures/<provider>/, loaded as the golden tests load them:
    ``<case>.sse`` (a missing final blank line added) and ``<case>.chunks.jsonl`` (one payload a
    line; framing added back: ``event: <type>`` too for Anthropic). Expected outputs are skipped."""
    d = ROOT / "tests" / "fixtures" / provider
    if not d.is_dir():
        return []
    found = []
    for f in sorted(d.iterdir()):
        if "expected" in f.name or not f.is_file() or f.stat().st_size > 5_000_000:
            continue
        if f.name.endswith(".sse"):
            data = f.read_bytes()
            if not (data.endswith(b"\n\n") or data.endswith(b"\r\n\r\n")):
                data += b"\n" if data.endswith(b"\n") else (b"\r\n" if data.endswith(b"\r\n") else b"\n\n")
        elif f.name.endswith(".chunks.jsonl"):
            frames = []
            for line in f.read_bytes().splitlines():
                if not line.strip():
                    continue
                if provider == "anthropic":
                    kind = str(orjson.loads(line).get("type", "message")).encode()
                    frames.append(b"event: " + kind + b"\ndata: " + line + b"\n\n")
                else:
                    frames.append(b"data: " + line + b"\n\n")
            data = b"".join(frames)
        else:
            continue
        found.append((str(f.relative_to(ROOT)), data))
    return found


def _time_translator(make: Any, parts: list[bytes], min_time: float) -> tuple[float, int, bytes, str | None]:
    """Seconds per stream (best of repeats) and the output of one run."""
    try:
        t = make()
        out = b"".join(t.feed(p) for p in parts) + t.finish()
    except Exception as e:
        return math.nan, 0, b"", f"{type(e).__name__}: {e}"
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            t = make()
            for p in parts:
                t.feed(p)
            t.finish()
        el = time.perf_counter() - t0
        if el >= min_time / 5 or n > 1_000_000:
            break
        n *= 4
    best = el / n
    for _ in range(4):
        t0 = time.perf_counter()
        for _ in range(n):
            t = make()
            for p in parts:
                t.feed(p)
            t.finish()
        best = min(best, (time.perf_counter() - t0) / n)
    return best, n, out, None


def _verify_openai_output(out: bytes, chunks: int, tpc: int) -> str:
    texts, n, done, usage = [], 0, False, None
    for frame in out.replace(b"\r\n", b"\n").split(b"\n\n"):
        if not frame.startswith(b"data: "):
            continue
        payload = frame[6:]
        if payload == b"[DONE]":
            done = True
            continue
        obj = orjson.loads(payload)
        for c in obj.get("choices") or ():
            t = (c.get("delta") or {}).get("content")
            if t:
                texts.append(t)
                n += 1
        usage = obj.get("usage") or usage
    ok = done and n == chunks and "".join(texts) == fake_upstream.expected_content(chunks, tpc)
    ok = ok and bool(usage) and usage.get("completion_tokens") == chunks * tpc
    return "verified" if ok else f"MISMATCH (done={done}, chunks={n}, usage={usage})"


def translator_bench(min_time: float = 0.5, chunks: int = 200, log: Any = print) -> list[dict[str, Any]]:
    from proxy.config import ProviderConfig
    from proxy.protocols.openai_chat.encode import ChatEncoder
    from proxy.protocols.stream import StreamContext

    ctx = StreamContext(id="chatcmpl-bench", created=1700000000, model="bench-model", include_usage=True)
    rows = []
    try:
        from proxy.wire.sse import SSEDecoder
    except ImportError:
        SSEDecoder = None  # type: ignore[assignment]
    for provider in ("openai", "anthropic", "gemini"):
        try:
            import importlib

            kind = importlib.import_module(f"proxy.providers.{provider}").PROVIDER
        except Exception as e:
            log(f"  {provider}: translator not available ({type(e).__name__}: {e})")
            rows.append({"provider": provider, "input": "-", "error": f"not available: {e}"})
            continue
        config = ProviderConfig(name=provider, kind=provider)

        def make(kind: Any = kind, config: ProviderConfig = config) -> Any:
            # What the chat front door runs: the pass-through, else the decoder feeding its encoder.
            native = kind.native("openai_chat", config)
            if native is not None:
                return native.stream(ctx, config)
            return kind.stream_decoder(ChatEncoder(ctx), ctx, config)

        synth = b"".join(fake_upstream.stream_frames(provider, chunks, 1, model="bench-model", include_usage=True))
        parts = _split_events(synth)
        for mode, feed in (("per event", parts), ("whole", [synth])):
            sec, iters, out, err = _time_translator(make, feed, min_time)
            row = {
                "provider": provider,
                "input": f"synthetic {chunks} chunks",
                "feed": mode,
                "events": len(parts),
                "bytes": len(synth),
            }
            if err:
                row["error"] = err
            else:
                row |= {
                    "us_per_event": sec / len(parts) * 1e6,
                    "events_per_s": len(parts) / sec,
                    "us_per_stream": sec * 1e6,
                    "iterations": iters,
                    "check": _verify_openai_output(out, chunks, 1),
                }
                if SSEDecoder is not None:
                    dsec, _, _, derr = _time_translator(_DecoderOnly.factory(SSEDecoder), feed, min_time)
                    if not derr:
                        row["decoder_us_per_event"] = dsec / len(parts) * 1e6
            rows.append(row)
            log("  " + _fmt_translator_row(row))
        # Golden fixtures, each fed event by event; those that raise by design (truncated,
        # malformed, error events) are listed but not timed.
        files, skipped, tot_s, tot_ev, dec_s = [], [], 0.0, 0, 0.0
        for name, data in _fixture_streams(provider):
            parts = _split_events(data)
            sec, _, _, err = _time_translator(make, parts, min_time / 4)
            if err:
                skipped.append(f"{Path(name).name}: {err.split(':')[0]}")
                continue
            dsec = math.nan
            if SSEDecoder is not None:
                dsec, _, _, _ = _time_translator(_DecoderOnly.factory(SSEDecoder), parts, min_time / 4)
            files.append({"file": name, "events": len(parts), "us_per_event": sec / len(parts) * 1e6})
            tot_s, tot_ev, dec_s = tot_s + sec, tot_ev + len(parts), dec_s + dsec
        if files:
            row = {
                "provider": provider,
                "input": f"golden fixtures ({len(files)} files)",
                "feed": "per event",
                "events": tot_ev,
                "us_per_event": tot_s / tot_ev * 1e6,
                "events_per_s": tot_ev / tot_s,
                "check": f"{len(skipped)} error-path fixtures not timed" if skipped else "",
                "files": files,
                "skipped": skipped,
            }
            if not math.isnan(dec_s):
                row["decoder_us_per_event"] = dec_s / tot_ev * 1e6
            rows.append(row)
            log("  " + _fmt_translator_row(row))
    return rows


class _DecoderOnly:
    """Baseline: proxy.wire.sse.SSEDecoder alone, the floor under any translating adapter."""

    __slots__ = ("d",)

    def __init__(self, cls: Any) -> None:
        self.d = cls()

    @staticmethod
    def factory(cls: Any) -> Any:
        return lambda: _DecoderOnly(cls)

    def feed(self, data: bytes) -> bytes:
        self.d.feed(data)
        return b""

    def finish(self) -> bytes:
        self.d.close()
        return b""


def _fmt_translator_row(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['provider']:<9} {r['input'][:44]:<44} {r.get('feed', ''):<9} ERROR {r['error'][:100]}"
    return (
        f"{r['provider']:<9} {r['input'][:44]:<44} {r['feed']:<9} {r['events']:>5} ev "
        f"{r['us_per_event']:7.2f} us/ev {r['events_per_s']:>11,.0f} ev/s"
        + (f"  (SSE decoder alone {r['decoder_us_per_event']:.2f} us/ev)" if "decoder_us_per_event" in r else "")
        + (f"  {r['check']}" if "check" in r else "")
    )


def translator_table_md(rows: list[dict[str, Any]]) -> str:
    out = [
        "| provider | input | feed | events | us/event | events/s | SSE decoder alone us/event | check |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['provider']} | {r['input']} | {r.get('feed', '-')} | - | - | - | - | {r['error']} |")
        else:
            out.append(
                f"| {r['provider']} | {r['input']} | {r['feed']} | {r['events']} | {r['us_per_event']:.2f} | "
                f"{r['events_per_s']:,.0f} | {_f(r.get('decoder_us_per_event'))} | {r.get('check', '')} |"
            )
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Suite: start everything, run the docs/benchmarks.md scenarios


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return True
        except Exception:
            time.sleep(0.1)
    return False


class Services:
    """Child processes started by the suite; stopped by PID on exit."""

    def __init__(self, workdir: Path, log: Any = print) -> None:
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.workdir = workdir
        self.log = log

    def start(
        self, name: str, argv: list[str], health: str, timeout: float = 30.0, env: dict[str, str] | None = None
    ) -> subprocess.Popen | None:
        logf = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            argv,
            stdout=logf,
            stderr=subprocess.STDOUT,
            cwd=str(ROOT),
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self.procs.append((name, proc))
        if not wait_http(health, timeout, proc):
            self.log(f"  {name} did not become healthy at {health}; see {self.workdir / (name + '.log')}")
            tail = (self.workdir / f"{name}.log").read_bytes()[-1500:].decode("utf-8", "replace")
            self.log("  | " + tail.replace("\n", "\n  | "))
            self.stop_one(proc)
            return None
        return proc

    @staticmethod
    def stop_one(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and its workers
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    def stop_all(self) -> None:
        for _, p in reversed(self.procs):
            self.stop_one(p)


PROXY_CONFIG = """\
# The fake upstream speaks OpenAI's own shape: taken as exact, like the openai preset.
[providers.fake]
kind = "openai"
base_url = "http://127.0.0.1:{port}/v1"
api_key = "x"
normalise = false

# The same upstream as any other OpenAI-compatible provider (Mistral, Groq, vLLM...): normalised.
[providers.fakecompat]
kind = "openai"
base_url = "http://127.0.0.1:{port}/v1"
api_key = "x"

[providers.fakeanthropic]
kind = "anthropic"
base_url = "http://127.0.0.1:{port}"
api_key = "x"

[providers.fakegemini]
kind = "gemini"
base_url = "http://127.0.0.1:{port}"
api_key = "x"
"""

LITELLM_CONFIG = """\
model_list:
  - model_name: "*"
    litellm_params:
      model: "openai/*"
      api_base: "http://127.0.0.1:{port}/v1"
      api_key: "x"
litellm_settings:
  drop_params: true
  telemetry: false
"""


def start_proxy(svc: Services, python: str, cfg: Path, workers: int, name: str) -> Target | None:
    if not (ROOT / "proxy" / "__main__.py").exists() and not (ROOT / "proxy" / "cli.py").exists():
        svc.log(f"  {name}: proxy/cli.py is not there yet: skipped")
        return None
    port = free_port()
    argv = [
        python,
        "-m",
        "proxy",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--config",
        str(cfg),
        "--log-level",
        "warning",
    ]
    if workers != 1:
        argv += ["--workers", str(workers)]
    p = svc.start(name, argv, f"http://127.0.0.1:{port}/healthz")
    if p is None:
        return None
    return Target(name, f"http://127.0.0.1:{port}/v1", ["fake/"], p.pid)


def available_kinds() -> list[str]:
    """Provider kinds whose adapter module exists in this checkout."""
    import importlib.util

    return [k for k in ("openai", "anthropic", "gemini") if importlib.util.find_spec(f"proxy.providers.{k}")]


def suite(args: argparse.Namespace) -> int:
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="sse-bench-"))
    lines: list[str] = []

    def log(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    quick = args.quick
    py = sys.executable
    svc = Services(work, log)
    results: dict[str, Any] = {"environment": environment(), "quick": quick, "rows": [], "notes": []}
    kinds = available_kinds()
    try:
        up_port = free_port()
        up = svc.start(
            "upstream",
            [py, str(HERE / "fake_upstream.py"), "--port", str(up_port)],
            f"http://127.0.0.1:{up_port}/healthz",
        )
        if up is None:
            return 2
        direct = Target("direct", f"http://127.0.0.1:{up_port}/v1", [""], None)
        bport = free_port()
        bp = svc.start(
            "bare-relay",
            [py, str(HERE / "bare_relay.py"), "--port", str(bport), "--upstream", f"http://127.0.0.1:{up_port}"],
            f"http://127.0.0.1:{bport}/healthz",
        )
        bare = Target("bare-relay", f"http://127.0.0.1:{bport}/v1", [""], bp.pid if bp else None)
        cfg = work / "proxy.toml"
        cfg.write_text(PROXY_CONFIG.format(port=up_port))
        proxy1 = start_proxy(svc, py, cfg, 1, "proxy")
        proxy2 = start_proxy(svc, py, cfg, 2, "proxy-w2") if not args.no_workers2 else None
        litellm = None
        if args.litellm:
            exe = Path(args.litellm) / "bin" / "litellm"
            if exe.exists():
                lport = free_port()
                lcfg = work / "litellm.yaml"
                lcfg.write_text(LITELLM_CONFIG.format(port=up_port))
                key = "sk-bench-" + os.urandom(24).hex()
                argv = [str(exe), "--config", str(lcfg), "--host", "127.0.0.1", "--port", str(lport)]
                argv += ["--num_workers", "1"]
                env = {
                    "LITELLM_MASTER_KEY": key,
                    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                    "LITELLM_LOG": "ERROR",
                    "LITELLM_TELEMETRY": "False",
                    "DISABLE_ADMIN_UI": "True",
                }
                lp = svc.start("litellm", argv, f"http://127.0.0.1:{lport}/health/liveliness", timeout=180, env=env)
                if lp is not None:
                    # slow: one round only, and a longer warm-up window
                    litellm = Target(
                        "litellm", f"http://127.0.0.1:{lport}/v1", [""], lp.pid, rounds=1, warmup_s=8.0, key=key
                    )
                else:
                    results["notes"].append("LiteLLM installed but did not start (see the log)")
            else:
                results["notes"].append(f"LiteLLM not found at {exe}")
        log(
            f"services: upstream pid {up.pid}, bare relay pid {bare.pid}, proxy "
            f"{proxy1.pid if proxy1 else '-'}, proxy-w2 {proxy2.pid if proxy2 else '-'}, "
            f"litellm {litellm.pid if litellm else '-'}; translating kinds here: {kinds}; logs in {work}"
        )
        rounds = 1 if quick else args.rounds
        up_pid = up.pid
        rows: list[dict[str, Any]] = results["rows"]

        def matrix(targets, shape, streams, k, scenario, duration=60.0):
            targets = [t for t in targets if t is not None]
            rows.extend(run_matrix(targets, shape, streams, rounds, k, duration, None, up_pid, scenario, log))

        chatty = Shape(args.chunks or 200)
        paced = Shape(100, 300.0, 20.0)
        streams = [1, 32] if quick else [1, 32, 256]
        k_chatty = {1: 20, 32: 3, 256: 1} if quick else {1: 150, 32: 20, 256: 3}
        k_paced = {1: 2, 32: 1, 256: 1} if quick else {1: 6, 32: 2, 256: 1}
        translated = []
        if proxy1 is not None:
            if "anthropic" in kinds:
                translated.append(Target("proxy anthropic", proxy1.url, ["fakeanthropic/"], proxy1.pid))
            if "gemini" in kinds:
                translated.append(Target("proxy gemini", proxy1.url, ["fakegemini/"], proxy1.pid))
            for k in ("anthropic", "gemini"):
                if k not in kinds:
                    results["notes"].append(f"proxy.providers.{k} is not in this checkout: not measured")

        log("\n== pass-through, chatty (200 content chunks back to back) ==")
        if litellm is not None:
            log("  (litellm takes part in round 1 only)")
        matrix([direct, bare, proxy1, proxy2, litellm], chatty, streams, k_chatty, "pass-through chatty")
        log("\n== pass-through, paced (100 chunks every 20 ms after a 300 ms first token) ==")
        matrix([direct, bare, proxy1, proxy2, litellm], paced, streams, k_paced, "pass-through paced")
        # The same OpenAI frames through a provider that is normalised (any OpenAI-compatible
        # one but OpenAI itself): OpenAI's per-chunk padding defeats its template fast path.
        compat = Target("proxy compat", proxy1.url, ["fakecompat/"], proxy1.pid) if proxy1 is not None else None
        log("\n== pass-through, chatty, through a normalising provider (fakecompat) ==")
        matrix([bare, proxy1, compat], chatty, [32], k_chatty, "pass-through compat")
        log("\n== per-request overhead: short streams (10 chunks back to back), 32 streams ==")
        matrix([direct, bare, proxy1, compat, *translated], Shape(10), [32], {32: 5 if quick else 40}, "short 10-chunk")
        if translated:
            log("\n== translated (Anthropic, Gemini -> OpenAI), chatty 200 chunks ==")
            matrix([direct, bare, proxy1, *translated], chatty, streams, k_chatty, "translated chatty")
            log("\n== translated, paced ==")
            matrix(
                [direct, proxy1, *translated], paced, [32] if quick else [32, 256], {32: 1, 256: 1}, "translated paced"
            )
        add_relative(rows, "direct", "bare-relay")
        log("\n" + format_table(rows))

        soak_proxy = start_proxy(svc, py, cfg, 1, "proxy-soak") if proxy1 is not None and not args.no_soak else None
        if soak_proxy is not None:  # a fresh process, so the series starts from an idle heap
            total = 5_000 if quick else args.soak_requests
            prefixes = ["fake/"] + [f"fake{k}/" for k in kinds if k != "openai"]
            log(
                f"\n== memory: proxy RSS across {total:,} requests (10-chunk streams, 64 streams, "
                f"rotating {'/'.join(prefixes)}) =="
            )
            soak_t = Target("proxy", soak_proxy.url, prefixes, soak_proxy.pid)
            steps = 10
            per_stream = max(1, math.ceil(total / steps / 64))
            series = [{"requests": 0, "rss_mib": tree_rss(soak_proxy.pid) / 2**20}]
            soak_err = done = 0
            t0 = time.time()
            for _ in range(steps):
                res = run_once(soak_t, Shape(10), 64, per_stream, 600, 2, upstream_pid=up_pid)
                errs = sum(res["errors"].values())
                soak_err += errs
                done += res["ok"] + errs
                rss = tree_rss(soak_proxy.pid) / 2**20
                series.append(
                    {
                        "requests": done,
                        "rss_mib": rss,
                        "errors": errs,
                        "cpu_us_per_request": res["cpu_s"] / max(1, res["ok"]) * 1e6,
                        "requests_per_s": res["ok"] / max(res["wall_s"], 1e-9),
                    }
                )
                log(
                    f"  after {done:>7,} requests: RSS {rss:6.1f} MiB, errors {errs}, "
                    f"{series[-1]['requests_per_s']:,.0f} req/s, {series[-1]['cpu_us_per_request']:.0f} us CPU/request"
                    + (f"  errors: {res['errors']}" if errs else "")
                )
            results["soak"] = {
                "series": series,
                "errors": soak_err,
                "seconds": time.time() - t0,
                "growth_after_first_step_mib": series[-1]["rss_mib"] - series[1]["rss_mib"],
            }
        if proxy1 is not None and args.profile:
            results["profile"] = profile_proxy(proxy1, up_pid, work, out_dir, log, kinds)
    finally:
        svc.stop_all()

    log("\n== translators alone (sans-IO, no network) ==")
    results["translators"] = translator_bench(min_time=0.2 if quick else 0.5, log=log)
    stem = out_dir / args.name
    write_json(str(stem) + ".json", results)
    Path(str(stem) + ".md").write_text(suite_markdown(results) + "\n")
    if not args.no_png:
        draw_png(results["rows"], str(stem) + ".png")
    for n in results["notes"]:
        log(f"note: {n}")
    Path(str(stem) + ".log").write_text("\n".join(lines) + "\n")
    log(f"\nwrote {stem}.json, {stem}.md, {stem}.log" + ("" if args.no_png else f", {stem}.png"))
    bad = sum(r["errors"] for r in results["rows"]) + results.get("soak", {}).get("errors", 0)
    return 1 if bad else 0


def suite_markdown(results: dict[str, Any]) -> str:
    out = ["### Load", "", format_table(results["rows"], markdown=True), ""]
    multi = [r for r in results["rows"] if r.get("cpu_share_per_proc")]
    if multi:
        out += [
            "### CPU split across the processes of a multi-process target",
            "",
            "| scenario | C | target | chunks/s | machine cores busy | CPU share per process |",
            "|---|---|---|---|---|---|",
        ]
        out += [
            f"| {r['scenario']} | {r['streams']} | {r['target']} | {_f(r['chunks_per_s'], '{:,.0f}')} | "
            f"{_f(r['machine_cores_busy'])} | {' / '.join(f'{x * 100:.0f}%' for x in r['cpu_share_per_proc'])} |"
            for r in multi
        ]
        out.append("")
    out += [
        "### Load generator cost (same runs)",
        "",
        "| scenario | C | target | client us/chunk | upstream us/chunk | cores busy | target us CPU/request |",
        "|---|---|---|---|---|---|---|",
    ]
    out += [
        f"| {r['scenario']} | {r['streams']} | {r['target']} | {_f(r['client_us_per_chunk'])} | "
        f"{_f(r['upstream_us_per_chunk'])} | {_f(r['machine_cores_busy'])} | "
        f"{_f(r.get('cpu_us_per_request'), '{:.0f}')} |"
        for r in results["rows"]
    ]
    if "soak" in results:
        sk = results["soak"]
        out += [
            "",
            f"### Memory across {sk['series'][-1]['requests']:,} requests ({sk['errors']} errors, "
            f"{sk['seconds']:.0f} s)",
            "",
            "| requests | RSS MiB | req/s | us CPU/request |",
            "|---|---|---|---|",
        ]
        out += [
            f"| {p['requests']:,} | {p['rss_mib']:.1f} | {_f(p.get('requests_per_s'), '{:,.0f}')} | "
            f"{_f(p.get('cpu_us_per_request'), '{:.0f}')} |"
            for p in sk["series"]
        ]
    out += ["", "### Translators alone", "", translator_table_md(results["translators"])]
    for label, prof in (results.get("profile") or {}).items():
        if not isinstance(prof, dict) or "self" not in prof:
            continue
        out += [
            "",
            f"### Profile ({label}, {prof['samples']} samples): top self time",
            "",
            "| share | function |",
            "|---|---|",
        ]
        out += [f"| {v * 100:.1f}% | `{fn}` |" for fn, v in prof["self_by_function"][:15]]
        out += ["", f"Inclusive time of proxy code ({label}):", "", "| share | frame |", "|---|---|"]
        out += [f"| {v * 100:.1f}% | `{fn}` |" for fn, v in prof["inclusive_proxy"][4:16]]
    return "\n".join(out)


def profile_proxy(proxy: Target, up_pid: int, work: Path, out_dir: Path, log: Any, kinds: list[str]) -> dict[str, Any]:
    """py-spy the proxy under 32 chatty streams per kind; summarize self and inclusive time."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        log("  py-spy not installed (pip install py-spy): no profile")
        return {"error": "py-spy not installed"}
    out: dict[str, Any] = {}
    labels = {
        "openai": ("pass-through", "fake/"),
        "anthropic": ("anthropic", "fakeanthropic/"),
        "gemini": ("gemini", "fakegemini/"),
    }
    for kind in kinds:
        label, prefix = labels[kind]
        raw = work / f"profile-{label}.txt"
        dur = 8
        spy_argv = [
            spy,
            "record",
            "--pid",
            str(proxy.pid),
            "--duration",
            str(dur),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(raw),
            "--nonblocking",
        ]
        spy_p = subprocess.Popen(spy_argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        t = Target(proxy.name, proxy.url, [prefix], proxy.pid)
        run_once(t, Shape(200), 32, 1000, dur - 2.5, 2, upstream_pid=up_pid)
        try:
            spy_p.wait(dur + 20)
        except subprocess.TimeoutExpired:
            spy_p.kill()
            spy_p.wait()
        if not raw.exists():
            log(f"  py-spy produced no profile for {label}")
            continue
        top = summarize_collapsed(raw.read_text())
        shutil.copy(raw, out_dir / f"profile-{label}.collapsed")
        out[label] = top
        log(f"\n  profile ({label}, {top['samples']} samples): top self time")
        for fn, share in top["self_by_function"][:15]:
            log(f"    {share * 100:5.1f}%  {fn}")
        log("  top inclusive (proxy code)")
        for fn, share in top["inclusive_proxy"][:12]:
            log(f"    {share * 100:5.1f}%  {fn}")
    return out


def summarize_collapsed(text: str) -> dict[str, Any]:
    self_t: Counter[str] = Counter()
    self_fn: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        c = int(n)
        total += c
        frames = stack.split(";")
        self_t[frames[-1]] += c
        self_fn[re.sub(r":\d+\)$", ")", frames[-1])] += c
        for f in set(frames):
            if "proxy/" in f and "scripts/" not in f:
                incl[f] += c
    total = max(total, 1)
    return {
        "samples": total,
        "self": [(f, v / total) for f, v in self_t.most_common(30)],
        "self_by_function": [(f, v / total) for f, v in self_fn.most_common(30)],
        "inclusive_proxy": [(f, v / total) for f, v in incl.most_common(30)],
    }


# --------------------------------------------------------------------------------------------
# CLI


def parse_streams(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="sse-proxy streaming benchmark",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--suite", action="store_true", help="start everything and run the documented scenarios")
    mode.add_argument("--translators", action="store_true", help="benchmark the sans-IO translators only")
    p.add_argument("--target", action="append", default=[], help="NAME=URL[,prefix=P][,pid=PID][,rounds=N]")
    p.add_argument("--baseline", help="target to compute added TTFT against (default: the first)")
    p.add_argument("--relay", help="target the CPU ratio is computed against (default: one named bare*)")
    p.add_argument("--streams", default="1,32", help="comma-separated concurrency levels")
    p.add_argument("--chunks", type=int, default=None, help="content chunks per stream (default 200)")
    p.add_argument("--ttft-ms", type=float, default=0.0)
    p.add_argument("--gap-ms", type=float, default=0.0)
    p.add_argument("--tokens-per-chunk", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per target")
    p.add_argument("--requests-per-stream", type=int, default=5)
    p.add_argument("--duration", type=float, default=30.0, help="stop starting requests after this many s")
    p.add_argument("--clients", type=int, default=0, help="client processes (0: 1 below 16 streams, else 2)")
    p.add_argument("--upstream-pid", type=int, help="also report the upstream's CPU per chunk")
    p.add_argument("--no-warmup", action="store_true", help="no unmeasured warm-up request per stream")
    p.add_argument("--warmup-s", type=float, default=None, help="warm-up window (default 0.4 s + 4 ms/stream)")
    p.add_argument("--ramp-ms", type=float, default=0.0, help="spread the streams' first requests over this")
    p.add_argument("--json", help="write results here")
    p.add_argument("--png", help="draw a chart here (needs matplotlib)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    # suite
    p.add_argument("--quick", action="store_true", help="suite: small counts, one round")
    p.add_argument(
        "--litellm",
        nargs="?",
        const="/tmp/litellm-venv",
        default=None,
        help="suite: also start LiteLLM from this venv (default /tmp/litellm-venv)",
    )
    p.add_argument("--profile", action="store_true", help="suite: py-spy the proxy under load")
    p.add_argument("--no-soak", action="store_true")
    p.add_argument("--no-workers2", action="store_true")
    p.add_argument("--no-png", action="store_true")
    p.add_argument("--soak-requests", type=int, default=100_000)
    p.add_argument(
        "--out-dir",
        default=str(Path(tempfile.gettempdir()) / "sse-proxy-bench"),
        help="suite: where results.{json,md,png,log} and profiles go",
    )
    p.add_argument("--name", default="results")
    p.add_argument("--min-time", type=float, default=0.5, help="translators: seconds per measurement")
    args = p.parse_args(argv)

    if args.suite:
        return suite(args)
    if args.translators:
        rows = translator_bench(args.min_time, args.chunks or 200)
        if args.json:
            write_json(args.json, {"environment": environment(), "translators": rows})
        return 0 if not any("error" in r for r in rows) else 1
    if not args.target:
        p.error("give at least one --target (or --suite / --translators)")
    targets = [Target.parse(s) for s in args.target]
    shape = Shape(args.chunks or 200, args.ttft_ms, args.gap_ms, max(1, args.tokens_per_chunk))
    rows = run_matrix(
        targets,
        shape,
        parse_streams(args.streams),
        args.rounds,
        args.requests_per_stream,
        args.duration,
        args.clients or None,
        args.upstream_pid,
        warmup=not args.no_warmup,
        warmup_s=args.warmup_s,
        ramp_s=args.ramp_ms / 1000.0,
    )
    relay = args.relay or next((t.name for t in targets if t.name.startswith("bare")), None)
    add_relative(rows, args.baseline or targets[0].name, relay)
    print()
    print(format_table(rows, markdown=args.markdown))
    if args.json:
        write_json(
            args.json,
            {
                "environment": environment(),
                "targets": [t.__dict__ for t in targets],
                "shape": shape.__dict__,
                "rows": rows,
            },
        )
    if args.png:
        draw_png(rows, args.png)
    return 1 if any(r["errors"] or not r["requests_ok"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
