"""The configuration as frozen values: what ``load`` returns and every other layer reads.

This module imports nothing of the proxy: config sits below routing, providers and the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

__all__ = [
    "EMPTY",
    "AccessConfig",
    "AccessKey",
    "Config",
    "ConfigError",
    "HealthRule",
    "KeyLimits",
    "PolicyConfig",
    "ProviderConfig",
    "ServerConfig",
]

EMPTY: Mapping[str, Any] = MappingProxyType({})
POLICY_PREFIX = "policy/"


class ConfigError(Exception):
    """A configuration file is unreadable or wrong; the message names the file, key and problem."""


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One upstream provider. ``name`` is the prefix clients use in ``name/model``.

    ``options`` holds the kind's own settings (see ``presets.KIND_OPTIONS``), already checked.
    """

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
    max_body_bytes: int = 16 * 1024 * 1024
    keepalive_s: float | None = None
    workers: int = 1
    # Client-side bounds (README "Bounded resources"): bytes of request bodies being read and
    # parsed at once, per process; deadlines for slow or idle clients; open client connections
    # per process (None: half the open-file limit, so every client can still reach an upstream).
    max_inflight_body_bytes: int = 64 * 1024 * 1024
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    keepalive_timeout_s: float = 15.0
    max_connections: int | None = None
    # /v1/responses with previous_response_id, for translated answers (README "Endpoints"):
    # how many stored responses each process keeps, and for how long.
    responses_store_size: int = 1000
    responses_store_ttl_s: float = 3600.0
    api_keys_env: str | None = None
    api_keys_file: str | None = None
    cors_origins: tuple[str, ...] = ()
    drain_timeout_s: float = 30.0  # SIGTERM: how long open requests may take to finish


# -- who may call (see proxy.config.access and proxy.access) ---------------------------------


@dataclass(frozen=True, slots=True)
class AccessKey:
    """One client access key. ``name`` is what logs and metrics show; ``secret`` never leaves."""

    name: str
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """One ``[access.keys.NAME]`` table: what the key may call and how much. None: no limit."""

    allowed_models: tuple[str, ...] | None = None  # globs over model strings
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent_streams: int | None = None


@dataclass(frozen=True, slots=True)
class AccessConfig:
    """The client access keys (none: the proxy is open) and the per-key limits by key name."""

    keys: tuple[AccessKey, ...] = ()
    limits: Mapping[str, KeyLimits] = field(default_factory=lambda: EMPTY)


@dataclass(frozen=True, slots=True)
class HealthRule:
    """When a member rests: after ``failure_threshold`` consecutive failures, for ``cooldown_s``."""

    failure_threshold: int = 3
    cooldown_s: float = 30.0


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """One ``[policies.NAME]`` table, checked. ``members`` are (model string, weight) in file order;
    a fallback's weights are all 1. ``backoff_ms`` is None for a loadbalance (members keep theirs)."""

    name: str
    type: Literal["fallback", "loadbalance"]
    members: tuple[tuple[str, float], ...]
    retries: int = 0
    backoff_ms: tuple[int, ...] | None = (500, 1000, 2000)
    max_retry_s: float = 30.0
    sticky_key: str | None = None
    health: HealthRule = field(default_factory=HealthRule)


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    providers: Mapping[str, ProviderConfig] = field(default_factory=lambda: EMPTY)
    policies: Mapping[str, PolicyConfig] = field(default_factory=lambda: EMPTY)
    aliases: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    provider_aliases: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    access: AccessConfig = field(default_factory=AccessConfig)
    source: str = "<built-in defaults>"

    def provider(self, prefix: str) -> ProviderConfig | None:
        """The provider a model prefix names: its own name or another name of it (``google``)."""
        found = self.providers.get(prefix)
        if found is None and prefix in self.provider_aliases:
            found = self.providers.get(self.provider_aliases[prefix])
        return found

    def policy(self, name: str) -> PolicyConfig | None:
        """The policy a model string names (``policy/NAME``), if any."""
        return self.policies.get(name[len(POLICY_PREFIX) :]) if name.startswith(POLICY_PREFIX) else None
