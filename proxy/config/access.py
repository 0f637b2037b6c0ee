"""Client access keys and per-key limits: ``[server] api_keys_env / api_keys_file`` and
``[access.keys.NAME]`` tables, read and checked at load time.

A key is written ``name:secret`` or just ``secret``; a key without a name is called
``key-<first 8 hex digits of its SHA-256>`` (stable across edits of the list, and not the key).
The configuration fails closed: a variable or file that is named but missing or empty is an
error, not an open proxy.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from proxy.config.model import AccessConfig, AccessKey, ConfigError, KeyLimits
from proxy.config.presets import ACCESS_KEY_LIMITS

__all__ = ["build_access", "parse_key"]

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def parse_key(text: str) -> AccessKey:
    """``name:secret`` or ``secret`` (a prefix that is no plain name is part of the secret)."""
    name, sep, secret = text.partition(":")
    if sep and secret and _NAME.fullmatch(name):
        return AccessKey(name, secret)
    return AccessKey("key-" + hashlib.sha256(text.encode()).hexdigest()[:8], text)


def _from_env(var: str, env: Mapping[str, str], where: str) -> list[AccessKey]:
    value = env.get(var, "")
    keys = [parse_key(part.strip()) for part in value.split(",") if part.strip()]
    if not keys:
        raise ConfigError(f"{where}: api_keys_env names {var}, which is not set or holds no key")
    return keys


def _from_file(path: str, where: str) -> list[AccessKey]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read api_keys_file {path!r}: {exc}") from None
    keys = [parse_key(line.strip()) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        raise ConfigError(f"{where}: api_keys_file {path!r} holds no key")
    return keys


def _limits(name: str, raw: Any, where: str) -> KeyLimits:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table")
    for key, value in raw.items():
        option = ACCESS_KEY_LIMITS.get(key)
        if option is None:
            raise ConfigError(f"{where}: unknown key '{key}' (known keys: {', '.join(sorted(ACCESS_KEY_LIMITS))})")
        if not option.accepts(value):
            raise ConfigError(f"{where}: key '{key}' must be {option.expected}, got {type(value).__name__} {value!r}")
    allowed = raw.get("allowed_models")
    return KeyLimits(
        allowed_models=None if allowed is None else tuple(allowed),
        requests_per_minute=raw.get("requests_per_minute"),
        tokens_per_minute=raw.get("tokens_per_minute"),
        max_concurrent_streams=raw.get("max_concurrent_streams"),
    )


def build_access(
    server: Mapping[str, Any], access: Mapping[str, Any], env: Mapping[str, str], source: str
) -> AccessConfig:
    """The access keys named by ``[server]`` and the ``[access]`` table, checked."""
    where = f"{source}: [server]"
    keys: list[AccessKey] = []
    if "api_keys_env" in server:
        keys += _from_env(server["api_keys_env"], env, where)
    if "api_keys_file" in server:
        keys += _from_file(server["api_keys_file"], where)
    names = [k.name for k in keys]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"{where}: access key name(s) used twice: {', '.join(twice)}")
    for key in access:
        if key != "keys":
            raise ConfigError(f"{source}: [access]: unknown key '{key}' (known keys: keys)")
    tables = access.get("keys", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{source}: [access]: key 'keys' must be a table of [access.keys.NAME] tables")
    limits: dict[str, KeyLimits] = {}
    for name, raw in tables.items():
        table = f"{source}: [access.keys.{name}]"
        if name not in names:
            known = ", ".join(names) or "none: set [server] api_keys_env or api_keys_file"
            raise ConfigError(f"{table}: no access key is named '{name}' (access keys: {known})")
        limits[name] = _limits(name, raw, table)
    return AccessConfig(tuple(keys), MappingProxyType(limits))
