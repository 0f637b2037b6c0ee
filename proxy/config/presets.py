"""Built-in provider presets and the schemas of every table, as data.

The kinds are named here (``KIND_OPTIONS``), not by importing the provider registry: config sits
below providers, and a test checks that both name the same kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = [
    "ACCESS_KEY_LIMITS",
    "KINDS",
    "KIND_OPTIONS",
    "MODEL_PREFIXES",
    "POLICY_KEYS",
    "PRESETS",
    "PROVIDER_ALIASES",
    "PROVIDER_KEYS",
    "SERVER_KEYS",
    "Option",
    "infer_provider",
]


@dataclass(frozen=True, slots=True)
class Option:
    """A typed key: ``accepts`` decides, ``expected`` is what the error message asks for."""

    expected: str
    accepts: Callable[[Any], bool]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


BOOL = Option("of type bool", lambda v: isinstance(v, bool))
STR = Option("a string", lambda v: isinstance(v, str))
NUMBER = Option("a number", _is_number)
NON_NEGATIVE = Option("a non-negative number", lambda v: _is_number(v) and v >= 0)
POSITIVE_NUMBER = Option("a positive number", lambda v: _is_number(v) and v > 0)
INT = Option("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool))
NON_NEGATIVE_INT = Option("a non-negative integer", lambda v: INT.accepts(v) and v >= 0)
POSITIVE_INT = Option("a positive integer", lambda v: INT.accepts(v) and v > 0)
STR_LIST = Option("a list of strings", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v))
STR_TABLE = Option("a table of strings", lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()))
TABLE_LIST = Option("a list of tables", lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v))

# Keys every provider table may have, whatever its kind.
PROVIDER_KEYS: Mapping[str, Option] = MappingProxyType(
    {
        "kind": STR,
        "base_url": STR,
        "api_key": STR,
        "api_key_env": STR,
        "api_key_envs": STR_LIST,
        "api_keys": STR_LIST,
        "headers": STR_TABLE,
        "connect_timeout_s": POSITIVE_NUMBER,
        "first_byte_timeout_s": POSITIVE_NUMBER,
        "idle_timeout_s": POSITIVE_NUMBER,
        "needs_key": BOOL,
        "models": STR_LIST,
    }
)

# Each kind's own keys; they land in ProviderConfig.options. A key in neither table is a typo.
KIND_OPTIONS: Mapping[str, Mapping[str, Option]] = MappingProxyType(
    {
        "openai": MappingProxyType({"normalise": BOOL, "stream_usage": BOOL, "responses": BOOL}),
        "anthropic": MappingProxyType({"default_max_tokens": POSITIVE_INT, "anthropic_version": STR}),
        "gemini": MappingProxyType({"safety_settings": TABLE_LIST}),
        "mock": MappingProxyType({"chunk_delay_ms": NON_NEGATIVE, "first_token_ms": NON_NEGATIVE, "text": STR}),
    }
)
KINDS = frozenset(KIND_OPTIONS)

SERVER_KEYS: Mapping[str, Option] = MappingProxyType(
    {
        "host": STR,
        "port": Option("an integer between 0 and 65535", lambda v: INT.accepts(v) and 0 <= v <= 65535),
        "max_body_bytes": POSITIVE_INT,
        "keepalive_s": NON_NEGATIVE,
        "workers": POSITIVE_INT,
        "max_inflight_body_bytes": POSITIVE_INT,
        "header_timeout_s": POSITIVE_NUMBER,
        "body_timeout_s": POSITIVE_NUMBER,
        "keepalive_timeout_s": POSITIVE_NUMBER,
        "max_connections": POSITIVE_INT,
        "responses_store_size": NON_NEGATIVE_INT,
        "responses_store_ttl_s": POSITIVE_NUMBER,
        "api_keys_env": STR,
        "api_keys_file": STR,
        "cors_origins": STR_LIST,
        "drain_timeout_s": NON_NEGATIVE,
    }
)

# One ``[access.keys.NAME]`` table (proxy.config.access).
ACCESS_KEY_LIMITS: Mapping[str, Option] = MappingProxyType(
    {
        "allowed_models": STR_LIST,
        "requests_per_minute": POSITIVE_INT,
        "tokens_per_minute": POSITIVE_INT,
        "max_concurrent_streams": POSITIVE_INT,
    }
)

_COMMON_POLICY = {"type", "models", "retries", "max_retry_s"}
POLICY_KEYS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "fallback": frozenset(_COMMON_POLICY | {"backoff_ms"}),
        "loadbalance": frozenset(_COMMON_POLICY | {"sticky_key", "failure_threshold", "cooldown_s"}),
    }
)

# Other names of a provider: one provider, one table, one set of keys, two prefixes.
PROVIDER_ALIASES: Mapping[str, str] = MappingProxyType({"google": "gemini"})

# A bare model id (no ``provider/``), as Claude Code and other agents send, goes to the provider
# its well-known prefix names, unless an alias of that exact id says otherwise. A prefix ending
# in a letter or digit matches only the whole id or the id followed by "-" (``o3``, ``o3-mini``).
MODEL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("claude-", "anthropic"),
    ("gpt-", "openai"),
    ("chatgpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("gemini-", "gemini"),
    ("mistral-", "mistral"),
    ("magistral-", "mistral"),
    ("codestral-", "mistral"),
)


def infer_provider(model: str) -> str | None:
    """The provider a bare model id belongs to by its prefix (``MODEL_PREFIXES``), or None."""
    for prefix, provider in MODEL_PREFIXES:
        if prefix.endswith("-"):
            if model.startswith(prefix):
                return provider
        elif model == prefix or model.startswith(prefix + "-"):
            return provider
    return None


def _openai_compatible(base_url: str, env: str | None, models: tuple[str, ...] = (), normalise: bool = True) -> Any:
    preset: dict[str, Any] = {
        "kind": "openai",
        "base_url": base_url,
        "api_key_envs": [env] if env else [],
        "needs_key": env is not None,
        "models": list(models),
    }
    if not normalise:  # OpenAI's own stream needs no normalising (see proxy.protocols.openai_chat.passthrough)
        preset["normalise"] = False
        preset["responses"] = True  # and it serves /v1/responses itself: that door passes through
    return preset


PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "openai": _openai_compatible(
            "https://api.openai.com/v1", "OPENAI_API_KEY", ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3"), normalise=False
        ),
        "mistral": _openai_compatible("https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
        "groq": _openai_compatible("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
        "deepseek": _openai_compatible("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
        "together": _openai_compatible("https://api.together.xyz/v1", "TOGETHER_API_KEY"),
        "openrouter": _openai_compatible("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
        "xai": _openai_compatible("https://api.x.ai/v1", "XAI_API_KEY"),
        "fireworks": _openai_compatible("https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"),
        "ollama": _openai_compatible("http://127.0.0.1:11434/v1", None),
        "vllm": _openai_compatible("http://127.0.0.1:8000/v1", None),
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
        "mock": {"kind": "mock", "needs_key": False, "models": ["echo"]},
    }
)
