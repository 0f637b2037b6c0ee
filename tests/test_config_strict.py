"""Config refuses typos and wrong types at start, naming the file, the table and the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import proxy.providers
from proxy.config import KIND_OPTIONS, KINDS, ConfigError, build, load

ROOT = Path(__file__).resolve().parent.parent


def refused(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        build(data, "proxy.toml", {})
    message = str(info.value)
    assert message.startswith("proxy.toml: "), message
    return message


def test_the_config_and_the_provider_registry_name_the_same_kinds() -> None:
    assert set(KINDS) == set(proxy.providers.KINDS) == set(KIND_OPTIONS)


@pytest.mark.parametrize(
    ("data", "needles"),
    [
        ({"providers": {"x": {"kind": "openai", "base_ulr": "http://h"}}}, ["[providers.x]", "unknown key 'base_ulr'"]),
        ({"providers": {"openai": {"api_kye": "sk"}}}, ["[providers.openai]", "unknown key 'api_kye'"]),
        ({"providers": {"anthropic": {"normalise": False}}}, ["[providers.anthropic]", "unknown key 'normalise'"]),
        ({"providers": {"openai": {"default_max_tokens": 5}}}, ["[providers.openai]", "'default_max_tokens'"]),
        ({"server": {"prot": 8080}}, ["[server]", "unknown key 'prot'"]),
        ({"policies": {"p": {"type": "fallback", "models": ["mock/a"], "retires": 2}}}, ["[policies.p]", "'retires'"]),
        ({"policies": {"p": {"type": "loadbalance", "models": {"mock/a": 1}, "stickey": "u"}}}, ["'stickey'"]),
    ],
)
def test_an_unknown_key_in_any_table_is_refused(data: dict[str, Any], needles: list[str]) -> None:
    message = refused(data)
    assert all(needle in message for needle in needles), message


def test_the_refusal_lists_the_keys_the_table_knows() -> None:
    message = refused({"providers": {"anthropic": {"default_max_token": 5}}})
    assert "default_max_tokens" in message and "anthropic_version" in message and "base_url" in message


@pytest.mark.parametrize(
    ("provider", "key", "value", "expected"),
    [
        ("anthropic", "default_max_tokens", "lots", "a positive integer"),
        ("anthropic", "default_max_tokens", 0, "a positive integer"),
        ("anthropic", "default_max_tokens", True, "a positive integer"),
        ("anthropic", "anthropic_version", 2023, "a string"),
        ("openai", "normalise", "no", "of type bool"),
        ("openai", "stream_usage", 1, "of type bool"),
        ("gemini", "safety_settings", {"category": "x"}, "a list of tables"),
        ("gemini", "safety_settings", ["BLOCK_NONE"], "a list of tables"),
        ("mock", "chunk_delay_ms", -1, "a non-negative number"),
        ("mock", "first_token_ms", "5", "a non-negative number"),
        ("mock", "text", 5, "a string"),
    ],
)
def test_a_wrongly_typed_option_is_refused(provider: str, key: str, value: Any, expected: str) -> None:
    message = refused({"providers": {provider: {key: value}}})
    assert f"[providers.{provider}]: key '{key}' must be {expected}" in message, message


def test_every_kind_accepts_its_options_and_keeps_them_read_only() -> None:
    config = build(
        {
            "providers": {
                "openai": {"normalise": True, "stream_usage": True, "responses": False},
                "anthropic": {"default_max_tokens": 1024, "anthropic_version": "2023-06-01"},
                "gemini": {"safety_settings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}]},
                "mock": {"chunk_delay_ms": 0, "first_token_ms": 1.5, "text": "hello"},
            }
        },
        "proxy.toml",
        {},
    )
    assert dict(config.providers["openai"].options) == {"normalise": True, "stream_usage": True, "responses": False}
    assert config.providers["anthropic"].options.get("default_max_tokens") == 1024
    assert config.providers["gemini"].options["safety_settings"][0]["threshold"] == "BLOCK_NONE"
    assert config.providers["mock"].options.get("text") == "hello"
    with pytest.raises(TypeError):
        config.providers["mock"].options["text"] = "changed"  # type: ignore[index]


def test_a_custom_provider_of_another_kind_takes_that_kinds_options() -> None:
    config = build(
        {"providers": {"claude": {"kind": "anthropic", "base_url": "http://h", "default_max_tokens": 64}}}, "t", {}
    )
    assert config.providers["claude"].options.get("default_max_tokens") == 64
    # A preset given another kind keeps none of the old kind's options (openai's normalise = false).
    changed = build({"providers": {"openai": {"kind": "mock"}}}, "t", {})
    assert dict(changed.providers["openai"].options) == {}


def test_the_cli_refuses_a_typo_at_start_naming_file_table_and_key(tmp_path: Path) -> None:
    path = tmp_path / "proxy.toml"
    path.write_text("[providers.anthropic]\ndefault_max_tokens = 'lots'\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "proxy", "--config", str(path)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 2
    assert str(path) in proc.stderr and "[providers.anthropic]" in proc.stderr
    assert "'default_max_tokens' must be a positive integer" in proc.stderr


def test_google_is_the_gemini_provider_under_another_name() -> None:
    config = build({"providers": {"gemini": {"api_key": "g-key", "base_url": "http://gem"}}}, "t", {})
    assert config.provider("google") is config.provider("gemini") is config.providers["gemini"]
    assert "google" not in config.providers  # one provider: one table, one set of keys


def test_a_google_table_is_refused_pointing_at_the_gemini_table() -> None:
    message = refused({"providers": {"google": {"api_key": "g-key"}}})
    assert "[providers.google]" in message and "configure it in [providers.gemini]" in message


def test_an_alias_may_not_hide_the_google_prefix() -> None:
    assert "would hide provider 'google'" in refused({"aliases": {"google/fast": "mock/echo"}})


def test_presets_load_without_a_file() -> None:
    assert load(None, env={}).provider("google") is not None
