"""Configuration: built-in provider presets, overridden or extended by an optional TOML file.

The TOML shape is a contract (see README): ``[server]``, ``[providers.NAME]``, ``[policies.NAME]``
and ``[aliases]``. Everything is optional; with no file the presets below apply, and a provider
is usable when its key variable is set (or it needs no key).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = ["PRESETS", "Config", "ConfigError", "ProviderConfig", "ServerConfig", "load"]

EMPTY: Mapping[str, Any] = MappingProxyType({})


class ConfigError(Exception):
    """A configuration file is unreadable or wrong; the message names the file, key and problem."""


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One upstream provider. ``name`` is the prefix clients use in ``name/model``."""

    name: str
    kind: str
    base_url: str = ""
    api_key_envs: tuple[str, ...] = ()
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    headers: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    connect_timeout_s: float = 10.0
    first_byte_timeout_s: float = 600.0
    idle_timeout_s: float = 120.0
    needs_key: bool = True
    models: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=lambda: EMPTY)

    @property
    def api_key(self) -> str | None:
        """The first configured key (several keys are spread by the router)."""
        return self.api_keys[0] if self.api_keys else None

    @property
    def usable(self) -> bool:
        return bool(self.api_keys) or not self.needs_key

    def with_key(self, key: str | None) -> ProviderConfig:
        return replace(self, api_keys=(key,) if key else ())


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 32 * 1024 * 1024
    keepalive_s: float | None = None
    workers: int = 1


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    providers: Mapping[str, ProviderConfig] = field(default_factory=lambda: EMPTY)
    policies: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: EMPTY)
    aliases: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    source: str = "<built-in defaults>"


def _openai_compatible(
    name: str, base_url: str, env: str | None, models: tuple[str, ...] = (), normalise: bool = True
) -> dict[str, Any]:
    preset = {
        "kind": "openai",
        "base_url": base_url,
        "api_key_envs": [env] if env else [],
        "needs_key": env is not None,
        "models": list(models),
    }
    if not normalise:  # OpenAI's own stream needs no normalising (see proxy.protocols.openai_chat.passthrough)
        preset["normalise"] = False
    return preset


PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "openai": _openai_compatible(
            "openai",
            "https://api.openai.com/v1",
            "OPENAI_API_KEY",
            ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3"),
            normalise=False,
        ),
        "mistral": _openai_compatible("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
        "groq": _openai_compatible("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
        "deepseek": _openai_compatible("deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
        "together": _openai_compatible("together", "https://api.together.xyz/v1", "TOGETHER_API_KEY"),
        "openrouter": _openai_compatible("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
        "xai": _openai_compatible("xai", "https://api.x.ai/v1", "XAI_API_KEY"),
        "fireworks": _openai_compatible("fireworks", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"),
        "ollama": _openai_compatible("ollama", "http://127.0.0.1:11434/v1", None),
        "vllm": _openai_compatible("vllm", "http://127.0.0.1:8000/v1", None),
        "anthropic": {
            "kind": "anthropic",
            "base_url": "https://api.anthropic.com",
            "api_key_envs": ["ANTHROPIC_API_KEY"],
            "models": ["claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5"],
        },
        "gemini": {
            "kind": "gemini",
            "base_url": "https://generativelanguage.googleapis.com",
            "api_key_envs": ["GEMINI_API_KEY", "GOOGLE_API_KEY"],
            "models": ["gemini-2.5-pro", "gemini-2.5-flash"],
        },
        "google": {
            "kind": "gemini",
            "base_url": "https://generativelanguage.googleapis.com",
            "api_key_envs": ["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        },
        "mock": {"kind": "mock", "needs_key": False, "models": ["echo"]},
    }
)

_PROVIDER_KEYS = {
    "kind": str,
    "base_url": str,
    "api_key": str,
    "api_key_env": str,
    "api_key_envs": list,
    "api_keys": list,
    "headers": dict,
    "connect_timeout_s": (int, float),
    "first_byte_timeout_s": (int, float),
    "idle_timeout_s": (int, float),
    "needs_key": bool,
    "models": list,
}
_SERVER_KEYS = {
    "host": str,
    "port": int,
    "max_body_bytes": int,
    "keepalive_s": (int, float),
    "workers": int,
}


def _check(where: str, key: str, value: Any, expected: Any) -> None:
    if isinstance(value, bool) and expected in (int, (int, float)):
        raise ConfigError(f"{where}: key '{key}' must be a number, not a boolean")
    if not isinstance(value, expected):
        names = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
        raise ConfigError(f"{where}: key '{key}' must be of type {names}, got {type(value).__name__}")


def _provider(name: str, raw: Mapping[str, Any], env: Mapping[str, str], where: str) -> ProviderConfig:
    from proxy.providers import KINDS  # the registry names the valid kinds

    fields: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _PROVIDER_KEYS:
            _check(where, key, value, _PROVIDER_KEYS[key])
            fields[key] = value
        else:
            options[key] = value  # kind-specific options (e.g. a default max_tokens) live here
    if "normalise" in options:
        _check(where, "normalise", options["normalise"], bool)
    kind = fields.get("kind")
    if kind is None:
        raise ConfigError(f"{where}: key 'kind' is missing (one of: {', '.join(sorted(KINDS))})")
    if kind not in KINDS:
        raise ConfigError(f"{where}: key 'kind' is {kind!r}, which is not one of: {', '.join(sorted(KINDS))}")
    if kind != "mock" and not fields.get("base_url"):
        raise ConfigError(f"{where}: key 'base_url' is missing")
    for key in ("connect_timeout_s", "first_byte_timeout_s", "idle_timeout_s"):
        if key in fields and fields[key] <= 0:
            raise ConfigError(f"{where}: key '{key}' must be positive")
    for key in ("headers",):
        if key in fields and not all(isinstance(v, str) for v in fields[key].values()):
            raise ConfigError(f"{where}: key '{key}' must map names to strings")

    envs = list(fields.pop("api_key_envs", []))
    if "api_key_env" in fields:
        envs.insert(0, fields.pop("api_key_env"))
    keys = [str(k) for k in fields.pop("api_keys", [])]
    if "api_key" in fields:
        keys.insert(0, fields.pop("api_key"))
    keys += [env[e] for e in envs if env.get(e)]
    # Presets list several variables as alternatives (GEMINI_API_KEY or GOOGLE_API_KEY): one key, not two.
    keys = list(dict.fromkeys(keys))
    needs_key = fields.pop("needs_key", kind != "mock")
    return ProviderConfig(
        name=name,
        kind=kind,
        base_url=str(fields.pop("base_url", "")).rstrip("/"),
        api_key_envs=tuple(envs),
        api_keys=tuple(keys),
        headers=MappingProxyType(dict(fields.pop("headers", {}))),
        needs_key=needs_key,
        models=tuple(str(m) for m in fields.pop("models", [])),
        options=MappingProxyType(options),
        **{k: float(v) for k, v in fields.items() if k.endswith("_s")},
    )


def _merge_provider(name: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(PRESETS.get(name, {}))
    if "api_key_env" in raw or "api_key_envs" in raw:
        merged.pop("api_key_envs", None)  # naming a variable replaces the preset's, not adds to it
    merged.update(raw)
    return merged


def build(data: Mapping[str, Any], source: str, env: Mapping[str, str] | None = None) -> Config:
    """Build a Config from parsed TOML data; raise ConfigError naming ``source`` and the key."""
    env = os.environ if env is None else env
    unknown = set(data) - {"server", "providers", "policies", "aliases"}
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key '{sorted(unknown)[0]}'")

    server_raw = data.get("server", {})
    _check(source, "server", server_raw, dict)
    for key, value in server_raw.items():
        if key not in _SERVER_KEYS:
            raise ConfigError(f"{source}: unknown key 'server.{key}'")
        _check(source, f"server.{key}", value, _SERVER_KEYS[key])
    server = ServerConfig(**server_raw)
    if not 0 <= server.port <= 65535:
        raise ConfigError(f"{source}: key 'server.port' must be between 0 and 65535")

    providers_raw = data.get("providers", {})
    _check(source, "providers", providers_raw, dict)
    providers: dict[str, ProviderConfig] = {}
    for name in list(PRESETS) + [n for n in providers_raw if n not in PRESETS]:
        raw = providers_raw.get(name, {})
        _check(source, f"providers.{name}", raw, dict)
        if "/" in name:
            raise ConfigError(f"{source}: provider name 'providers.{name}' must not contain '/'")
        providers[name] = _provider(name, _merge_provider(name, raw), env, f"{source}: [providers.{name}]")

    policies = data.get("policies", {})
    _check(source, "policies", policies, dict)
    for name, policy in policies.items():
        _check(source, f"policies.{name}", policy, dict)
    aliases = data.get("aliases", {})
    _check(source, "aliases", aliases, dict)
    for alias, target in aliases.items():
        _check(source, f"aliases.{alias}", target, str)
    config = Config(
        server=server,
        providers=MappingProxyType(providers),
        policies=MappingProxyType({k: MappingProxyType(v) for k, v in policies.items()}),
        aliases=MappingProxyType(dict(aliases)),
        source=source,
    )
    from proxy.routing import validate  # policies are checked where they are understood

    validate(config)
    return config


def load(path: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Config:
    """Load the TOML file at ``path`` (or only the presets when ``path`` is None)."""
    if path is None:
        return build({}, "<built-in defaults>", env)
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None
    return build(data, str(p), env)
