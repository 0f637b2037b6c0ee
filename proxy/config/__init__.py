"""Configuration: built-in presets, overridden or extended by an optional TOML file.

``model`` holds the frozen values, ``presets`` the built-in providers and every table's schema
(as data), ``load`` turns TOML into a Config, and ``graph`` resolves model strings (and so
validates policies and aliases). Config imports nothing above it: not routing, not providers.
"""

from proxy.config.load import build, load
from proxy.config.model import Config, ConfigError, HealthRule, PolicyConfig, ProviderConfig, ServerConfig
from proxy.config.presets import KIND_OPTIONS, KINDS, PRESETS, PROVIDER_ALIASES

__all__ = [
    "KINDS",
    "KIND_OPTIONS",
    "PRESETS",
    "PROVIDER_ALIASES",
    "Config",
    "ConfigError",
    "HealthRule",
    "PolicyConfig",
    "ProviderConfig",
    "ServerConfig",
    "build",
    "load",
]
