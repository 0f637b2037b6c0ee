"""Configuration loading, presets and the command line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from proxy.config import ConfigError, build, load

ROOT = Path(__file__).resolve().parent.parent


def test_presets_need_only_the_usual_key_variables() -> None:
    config = load(None, env={"OPENAI_API_KEY": "sk-a", "GOOGLE_API_KEY": "g-key"})
    providers = config.providers
    assert providers["openai"].usable and providers["openai"].api_key == "sk-a"
    assert providers["gemini"].usable and providers["gemini"].api_key == "g-key"
    assert not providers["anthropic"].usable
    assert providers["ollama"].usable and providers["vllm"].usable and providers["mock"].usable
    assert {p.kind for p in providers.values()} == {"openai", "anthropic", "gemini", "mock"}
    for name in ("openai", "mistral", "groq", "deepseek", "together", "openrouter", "xai", "fireworks"):
        assert providers[name].kind == "openai" and providers[name].base_url.startswith("https://")


def test_a_table_overrides_preset_fields_and_defines_new_providers(tmp_path: Path) -> None:
    path = tmp_path / "proxy.toml"
    path.write_text(
        """
[server]
port = 9999

[providers.openai]
base_url = "http://127.0.0.1:1234/v1/"
api_key_env = "MY_OPENAI_KEY"
headers = { "X-Extra" = "1" }
idle_timeout_s = 30

[providers.local]
kind = "openai"
base_url = "http://127.0.0.1:8000/v1"
needs_key = false
models = ["llama"]
""",
        encoding="utf-8",
    )
    config = load(path, env={"MY_OPENAI_KEY": "sk-mine", "OPENAI_API_KEY": "sk-ignored"})
    openai_cfg = config.providers["openai"]
    assert config.server.port == 9999
    assert openai_cfg.base_url == "http://127.0.0.1:1234/v1"
    assert openai_cfg.api_key == "sk-mine" and openai_cfg.api_key_envs == ("MY_OPENAI_KEY",)
    assert openai_cfg.headers == {"X-Extra": "1"}
    assert openai_cfg.idle_timeout_s == 30.0 and openai_cfg.connect_timeout_s == 10.0
    assert config.providers["local"].usable and config.providers["local"].models == ("llama",)


def test_keys_are_not_in_reprs() -> None:
    config = build({"providers": {"openai": {"api_key": "sk-secret-value"}}}, "<t>", {})
    assert "sk-secret-value" not in repr(config)


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("[server]\nport = 'x'", "key 'server.port' must be an integer between 0 and 65535, got str 'x'"),
        ("[server]\nbogus = 1", "[server]: unknown key 'bogus'"),
        ("[providers.x]\nbase_url = 'http://h'", "[providers.x]: key 'kind' is missing"),
        ("[providers.x]\nkind = 'smoke'\nbase_url = 'http://h'", "key 'kind' is 'smoke', which is not one of"),
        ("[providers.x]\nkind = 'openai'", "[providers.x]: key 'base_url' is missing"),
        ("[providers.openai]\nidle_timeout_s = -1", "key 'idle_timeout_s' must be a positive number"),
        ("[providers.openai]\nheaders = 'x'", "key 'headers' must be a table of strings"),
        ("[nonsense]\nx = 1", "unknown top-level key 'nonsense'"),
        ("not toml at all [", "invalid TOML"),
    ],
)
def test_bad_config_names_file_key_and_problem(tmp_path: Path, toml: str, needle: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load(path, env={})
    assert str(path) in str(info.value)
    assert needle in str(info.value)


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load("/nonexistent/proxy.toml", env={})


def test_cli_rejects_bad_config_with_exit_code_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[providers.x]\nkind = 'openai'\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "proxy", "--config", str(path)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 2
    assert str(path) in proc.stderr and "base_url" in proc.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("workers", [1, 2])
def test_cli_serves_the_mock_and_prints_one_line(workers: int) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy", "--port", str(port), "--workers", str(workers), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"listening on http://127.0.0.1:{port}" in line
        assert f"workers: {workers}" in line and "mock" in line and "OPENAI_API_KEY" in line
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=2)
        for _ in range(4):  # with two workers, requests may land on either
            completion = client.chat.completions.create(
                model="mock/echo", messages=[{"role": "user", "content": "ping"}]
            )
            assert completion.choices[0].message.content == "ping"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
