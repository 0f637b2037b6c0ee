"""TOML -> Config: every table checked against its schema (``presets``), every name resolved.

The TOML shape is a contract (see README): ``[server]``, ``[providers.NAME]``, ``[policies.NAME]``
and ``[aliases]``. Everything is optional; with no file the presets apply, and a provider is usable
when its key variable is set (or it needs no key). A key the schema does not know is refused with
the file, table and key named, like a wrongly typed value: a typo must not pass silently.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from proxy.config.access import build_access
from proxy.config.graph import check as check_graph
from proxy.config.model import Config, ConfigError, HealthRule, PolicyConfig, ProviderConfig, ServerConfig
from proxy.config.presets import (
    KIND_OPTIONS,
    KINDS,
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    POLICY_KEYS,
    PRESETS,
    PROVIDER_ALIASES,
    PROVIDER_KEYS,
    SERVER_KEYS,
    Option,
)

__all__ = ["build", "load"]

_TABLES = ("server", "providers", "policies", "aliases", "access")


def _check(where: str, key: str, value: Any, option: Option) -> None:
    if not option.accepts(value):
        raise ConfigError(f"{where}: key '{key}' must be {option.expected}, got {type(value).__name__} {value!r}")


def _table(where: str, key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: key '{key}' must be a table, got {type(value).__name__}")
    return value


def _unknown(where: str, key: str, known: Any) -> ConfigError:
    return ConfigError(f"{where}: unknown key '{key}' (known keys: {', '.join(sorted(known))})")


def _provider(name: str, raw: Mapping[str, Any], env: Mapping[str, str], where: str) -> ProviderConfig:
    kind = raw.get("kind")
    if kind is None:
        raise ConfigError(f"{where}: key 'kind' is missing (one of: {', '.join(sorted(KINDS))})")
    if kind not in KINDS:
        raise ConfigError(f"{where}: key 'kind' is {kind!r}, which is not one of: {', '.join(sorted(KINDS))}")
    kind_options = KIND_OPTIONS[kind]
    fields: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for key, value in raw.items():
        if key in PROVIDER_KEYS:
            _check(where, key, value, PROVIDER_KEYS[key])
            fields[key] = value
        elif key in kind_options:
            _check(where, key, value, kind_options[key])
            options[key] = value
        else:
            raise _unknown(where, key, [*PROVIDER_KEYS, *kind_options])
    if kind != "mock" and not fields.get("base_url"):
        raise ConfigError(f"{where}: key 'base_url' is missing")

    envs = list(fields.pop("api_key_envs", []))
    if "api_key_env" in fields:
        envs.insert(0, fields.pop("api_key_env"))
    keys = list(fields.pop("api_keys", []))
    if "api_key" in fields:
        keys.insert(0, fields.pop("api_key"))
    keys += [env[e] for e in envs if env.get(e)]
    # Presets list several variables as alternatives (GEMINI_API_KEY or GOOGLE_API_KEY): one key, not two.
    keys = list(dict.fromkeys(keys))
    return ProviderConfig(
        name=name,
        kind=kind,
        base_url=str(fields.pop("base_url", "")).rstrip("/"),
        api_key_envs=tuple(envs),
        api_keys=tuple(keys),
        headers=MappingProxyType(dict(fields.pop("headers", {}))),
        needs_key=fields.pop("needs_key", kind != "mock"),
        models=tuple(fields.pop("models", [])),
        options=MappingProxyType(options),
        **{k: float(v) for k, v in fields.items() if k.endswith("_s")},
    )


def _merge_provider(name: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(PRESETS.get(name, {}))
    if "api_key_env" in raw or "api_key_envs" in raw:
        merged.pop("api_key_envs", None)  # naming a variable replaces the preset's, not adds to it
    if "kind" in raw and raw["kind"] != merged.get("kind"):
        merged = {k: v for k, v in merged.items() if k in PROVIDER_KEYS}  # another kind: not its options
    merged.update(raw)
    return merged


def _providers(source: str, raw: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, ProviderConfig]:
    providers: dict[str, ProviderConfig] = {}
    for name in [*PRESETS, *(n for n in raw if n not in PRESETS)]:
        if name in PROVIDER_ALIASES:
            real = PROVIDER_ALIASES[name]
            raise ConfigError(
                f"{source}: [providers.{name}]: '{name}' is another name of the provider '{real}' "
                f"(same keys, same settings): configure it in [providers.{real}]"
            )
        if "/" in name:
            raise ConfigError(f"{source}: provider name 'providers.{name}' must not contain '/'")
        table = _table(source, f"providers.{name}", raw.get(name, {}))
        providers[name] = _provider(name, _merge_provider(name, table), env, f"{source}: [providers.{name}]")
    return providers


def _policy(name: str, raw: Any, where: str) -> PolicyConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table with a key 'type'")
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in POLICY_KEYS:
        raise ConfigError(f"{where}: key 'type' must be 'fallback' or 'loadbalance', got {kind!r}")
    for key in raw:
        if key not in POLICY_KEYS[kind]:
            raise _unknown(where, key, POLICY_KEYS[kind])
    for key in ("retries", "failure_threshold"):
        if key in raw and not NON_NEGATIVE_INT.accepts(raw[key]):
            raise ConfigError(f"{where}: key '{key}' must be a non-negative integer")
    for key in ("max_retry_s", "cooldown_s"):
        if key in raw and not NON_NEGATIVE.accepts(raw[key]):
            raise ConfigError(f"{where}: key '{key}' must be a non-negative number")
    models = raw.get("models")
    if kind == "fallback":
        if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
            raise ConfigError(f"{where}: key 'models' must be a non-empty list of model names")
        backoff = raw.get("backoff_ms", [500, 1000, 2000])
        if not isinstance(backoff, list) or not all(NON_NEGATIVE_INT.accepts(x) for x in backoff):
            raise ConfigError(f"{where}: key 'backoff_ms' must be a list of milliseconds")
        return PolicyConfig(
            name,
            "fallback",
            tuple((m, 1.0) for m in models),
            retries=raw.get("retries", 0),
            backoff_ms=tuple(backoff),
            max_retry_s=float(raw.get("max_retry_s", 30.0)),
        )
    if not isinstance(models, dict) or not models:
        raise ConfigError(f"{where}: key 'models' must be a table of model = weight")
    for member, weight in models.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
            raise ConfigError(f"{where}: weight of {member!r} must be a positive number")
    sticky = raw.get("sticky_key")
    if sticky is not None and not isinstance(sticky, str):
        raise ConfigError(f"{where}: key 'sticky_key' must be a string")
    return PolicyConfig(
        name,
        "loadbalance",
        tuple((m, float(w)) for m, w in models.items()),
        retries=raw.get("retries", 0),
        backoff_ms=None,
        max_retry_s=float(raw.get("max_retry_s", 30.0)),
        sticky_key=sticky,
        health=HealthRule(raw.get("failure_threshold", 3), float(raw.get("cooldown_s", 30.0))),
    )


def build(data: Mapping[str, Any], source: str, env: Mapping[str, str] | None = None) -> Config:
    """Build a Config from parsed TOML data; raise ConfigError naming ``source``, the table and the key."""
    env = os.environ if env is None else env
    for key in data:
        if key not in _TABLES:
            raise ConfigError(f"{source}: unknown top-level key '{key}' (known: {', '.join(_TABLES)})")

    server_raw = _table(source, "server", data.get("server", {}))
    for key, value in server_raw.items():
        if key not in SERVER_KEYS:
            raise _unknown(f"{source}: [server]", key, SERVER_KEYS)
        _check(source, f"server.{key}", value, SERVER_KEYS[key])
    providers = _providers(source, _table(source, "providers", data.get("providers", {})), env)
    policies_raw = _table(source, "policies", data.get("policies", {}))
    policies = {name: _policy(name, raw, f"{source}: [policies.{name}]") for name, raw in policies_raw.items()}
    aliases = _table(source, "aliases", data.get("aliases", {}))
    for alias, target in aliases.items():
        if not isinstance(target, str):
            raise ConfigError(f"{source}: key 'aliases.{alias}' must be a model name (a string)")
    access = build_access(server_raw, _table(source, "access", data.get("access", {})), env, source)
    server_fields = {**server_raw, "cors_origins": tuple(server_raw.get("cors_origins", ()))}
    config = Config(
        server=ServerConfig(**server_fields),
        providers=MappingProxyType(providers),
        policies=MappingProxyType(policies),
        aliases=MappingProxyType(dict(aliases)),
        provider_aliases=PROVIDER_ALIASES,
        access=access,
        source=source,
    )
    check_graph(config)
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
