"""Smoke test of the benchmark tooling: tiny runs on ephemeral loopback ports.

It checks that the bench verified every stream and reported no error -- never how fast anything
was (benchmarks are scripts, not tests).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
sys.path.insert(0, str(SCRIPTS))

import fake_upstream  # noqa: E402

pytestmark = pytest.mark.timeout(180)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{url} never became healthy")


def _start(argv: list[str], health: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        _wait_healthy(health, proc)
    except BaseException:
        _stop(proc)
        raise
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: only what this test started
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    port = _free_port()
    proc = _start(
        [sys.executable, str(SCRIPTS / "fake_upstream.py"), "--port", str(port)], f"http://127.0.0.1:{port}/healthz"
    )
    yield f"http://127.0.0.1:{port}"
    _stop(proc)


def _bench(tmp_path: Path, *targets: str, extra: tuple[str, ...] = ()) -> dict:
    out = tmp_path / "bench.json"
    argv = [
        sys.executable,
        str(SCRIPTS / "bench.py"),
        "--streams",
        "1,4",
        "--rounds",
        "1",
        "--requests-per-stream",
        "3",
        "--chunks",
        "20",
        "--duration",
        "20",
        "--warmup-s",
        "0.3",
        "--json",
        str(out),
        *extra,
    ]
    for t in targets:
        argv += ["--target", t]
    run = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert out.exists(), run.stdout + run.stderr
    result = json.loads(out.read_text())
    assert run.returncode == 0, run.stdout + run.stderr
    return result


def _assert_verified(result: dict, names: set[str]) -> None:
    rows = result["rows"]
    assert {r["target"] for r in rows} == names
    for r in rows:
        # every request of every stream came back complete and exact, and nothing failed
        assert r["errors"] == 0, r["error_kinds"]
        assert r["requests_ok"] == r["streams"] * 3
        assert r["chunks"] == r["requests_ok"] * 20
        assert r["samples"] == r["requests_ok"]


def test_fake_upstream_formats_are_deterministic() -> None:
    text = fake_upstream.expected_content(7, 2)
    assert text == "".join(fake_upstream.chunk_texts(7, 2))
    assert text.startswith("The quick brown fox")
    anth = b"".join(fake_upstream.stream_frames("anthropic", 3))
    names = [line[7:] for line in anth.split(b"\n") if line.startswith(b"event: ")]
    assert names == [
        b"message_start",
        b"content_block_start",
        b"content_block_delta",
        b"content_block_delta",
        b"content_block_delta",
        b"content_block_stop",
        b"message_delta",
        b"message_stop",
    ]
    gem = fake_upstream.stream_frames("gemini", 3)
    objs = [orjson.loads(f[6:]) for f in gem]
    assert "".join(o["candidates"][0]["content"]["parts"][0]["text"] for o in objs) == fake_upstream.expected_content(3)
    assert [o["candidates"][0].get("finishReason") for o in objs] == [None, None, "STOP"]
    oai = fake_upstream.stream_frames("openai", 3, include_usage=True)
    assert oai[-1] == b"data: [DONE]\n\n"
    assert orjson.loads(oai[-2][6:])["usage"]["completion_tokens"] == 3
    # OpenAI's padding: a string of varying length closing every delta chunk, unless turned off.
    pads = [orjson.loads(f[6:]).get("obfuscation") for f in oai[:-2]]
    assert all(isinstance(p, str) and 1 <= len(p) <= 16 for p in pads) and len(set(map(len, pads))) > 1
    assert all(f.endswith(b'"}\n\n') for f in oai[:-2])
    bare = fake_upstream.stream_frames("openai", 3, include_usage=True, obfuscation=False)
    assert not any(b"obfuscation" in f for f in bare)


def test_scenario_knobs_from_model_and_headers() -> None:
    base = fake_upstream.Scenario(200, 0, 0, 1)
    sc = base.override("fake/bench-n5-ttft300-gap20-tpc3", {})
    assert (sc.chunks, sc.ttft_ms, sc.gap_ms, sc.tokens_per_chunk) == (5, 300.0, 20.0, 3)
    sc = base.override("bench-n5", {b"x-fake-chunks": b"9"})
    assert sc.chunks == 9


@pytest.mark.slow
def test_bench_direct_and_bare_relay(upstream: str, tmp_path: Path) -> None:
    port = _free_port()
    relay = _start(
        [sys.executable, str(SCRIPTS / "bare_relay.py"), "--port", str(port), "--upstream", upstream],
        f"http://127.0.0.1:{port}/healthz",
    )
    try:
        result = _bench(tmp_path, f"direct={upstream}/v1", f"bare=http://127.0.0.1:{port}/v1,pid={relay.pid}")
    finally:
        _stop(relay)
    _assert_verified(result, {"direct", "bare"})
    bare = [r for r in result["rows"] if r["target"] == "bare"]
    assert all(r["cpu_us_per_chunk"] is not None and r["rss_peak_mib"] for r in bare)


def _kinds() -> list[str]:
    return [k for k in ("openai", "anthropic", "gemini") if importlib.util.find_spec(f"proxy.providers.{k}")]


@pytest.mark.skipif(importlib.util.find_spec("proxy.cli") is None, reason="the proxy CLI is not there yet")
@pytest.mark.slow
def test_bench_through_the_proxy(upstream: str, tmp_path: Path) -> None:
    cfg = tmp_path / "proxy.toml"
    cfg.write_text(
        f'[providers.fake]\nkind = "openai"\nbase_url = "{upstream}/v1"\napi_key = "x"\n'
        f'[providers.fakeanthropic]\nkind = "anthropic"\nbase_url = "{upstream}"\napi_key = "x"\n'
        f'[providers.fakegemini]\nkind = "gemini"\nbase_url = "{upstream}"\napi_key = "x"\n'
    )
    port = _free_port()
    proxy = _start(
        [
            sys.executable,
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
        ],
        f"http://127.0.0.1:{port}/healthz",
    )
    prefix = {"openai": "fake/", "anthropic": "fakeanthropic/", "gemini": "fakegemini/"}
    targets = [f"{k}=http://127.0.0.1:{port}/v1,prefix={prefix[k]},pid={proxy.pid}" for k in _kinds()]
    try:
        result = _bench(tmp_path, *targets)
    finally:
        _stop(proxy)
    _assert_verified(result, set(_kinds()))


@pytest.mark.slow
def test_translator_mode_verifies_synthetic_streams(tmp_path: Path) -> None:
    out = tmp_path / "tr.json"
    run = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "bench.py"),
            "--translators",
            "--min-time",
            "0.01",
            "--chunks",
            "20",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    rows = json.loads(out.read_text())["translators"]
    synthetic = [r for r in rows if r["input"].startswith("synthetic") and r["provider"] in _kinds()]
    assert synthetic, run.stdout + run.stderr
    for r in synthetic:
        assert "error" not in r, r
        assert r["check"] == "verified", r
