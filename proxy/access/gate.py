"""The gate: which access key a request carries, and what that key may do.

``Gate.authenticate`` reads ``Authorization: Bearer <key>`` or ``x-api-key: <key>`` (the
Anthropic door's header; both are accepted on every route), compares it with every configured
key in constant time (SHA-256 digests through ``hmac.compare_digest``, all keys, no early
exit), and applies the key's requests-per-minute and tokens-per-minute windows: 401 or 429 with
``Retry-After``. The ``Grant`` it returns rides on the request: the pipeline asks it to
``admit`` the model (403 when the key's ``allowed_models`` do not cover it) and a stream (429
over ``max_concurrent_streams``); ``release`` returns the stream slot when the request ends.
``on_record`` is a ``Records`` sink: it counts a finished request's tokens against its key.

All counters live in this process (``proxy.access.limits``): with ``--workers N`` each worker
enforces the limits on its own share of the traffic.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from proxy.access.limits import Window
from proxy.config import Config
from proxy.config.model import KeyLimits
from proxy.errors import ProxyError
from proxy.observability.record import RequestRecord

__all__ = ["Gate", "Grant", "model_allowed"]

_NO_LIMITS = KeyLimits()


def _unauthorized(message: str) -> ProxyError:
    return ProxyError(message, status=401, type="authentication_error", code="invalid_api_key")


def _limited(message: str, wait: float) -> ProxyError:
    err = ProxyError(message, status=429, type="rate_limit_error", code="rate_limit_exceeded")
    err.retry_after = wait
    return err


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()


@dataclass(slots=True)
class _Usage:
    """One key's counters in this process."""

    requests: Window = field(default_factory=Window)
    tokens: Window = field(default_factory=Window)
    streams: int = 0


class Grant:
    """What one request's key may do; ``name`` is the key's name (None: the proxy is open)."""

    __slots__ = ("_gate", "_streams", "limits", "name")

    def __init__(self, gate: Gate, name: str | None, limits: KeyLimits) -> None:
        self._gate = gate
        self._streams = 0
        self.name = name
        self.limits = limits

    def admit(self, model: str, stream: bool) -> None:
        """403 when the key may not call ``model``; 429 when it has all its streams open."""
        limits = self.limits
        if limits.allowed_models is not None and not model_allowed(self._gate.config, limits.allowed_models, model):
            raise ProxyError(
                f"the access key '{self.name}' may not use the model {model!r}",
                status=403,
                type="permission_error",
                param="model",
                code="model_not_allowed",
            )
        if stream and limits.max_concurrent_streams is not None and self.name is not None:
            usage = self._gate.usage(self.name)
            if usage.streams >= limits.max_concurrent_streams:
                raise _limited(
                    f"the access key '{self.name}' has {usage.streams} streams open "
                    f"(max_concurrent_streams = {limits.max_concurrent_streams})",
                    1.0,
                )
            usage.streams += 1
            self._streams += 1

    def release(self) -> None:
        """The request ended: its stream slot (if it took one) is free again."""
        if self._streams and self.name is not None:
            self._gate.usage(self.name).streams -= self._streams
            self._streams = 0


class Gate:
    """The configured access keys and their per-key counters (see the module docstring)."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._keys = [(_digest(k.secret), k.name) for k in config.access.keys]
        self._usage: dict[str, _Usage] = {}
        self._open = Grant(self, None, _NO_LIMITS)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def usage(self, name: str) -> _Usage:
        found = self._usage.get(name)
        if found is None:
            found = self._usage[name] = _Usage()
        return found

    def authenticate(self, headers: Mapping[str, str]) -> Grant:
        """The request's grant; 401 without a valid key, 429 over the key's rate limits."""
        if not self._keys:
            return self._open
        token = _token(headers)
        if token is None:
            raise _unauthorized("an access key is required: send 'Authorization: Bearer <key>' (or 'x-api-key')")
        name = self._match(token)
        if name is None:
            raise _unauthorized("the access key is not valid")
        limits = self.config.access.limits.get(name, _NO_LIMITS)
        self._count(name, limits)
        return Grant(self, name, limits)

    def _match(self, token: str) -> str | None:
        digest = _digest(token)
        found = None
        for key_digest, name in self._keys:  # every key, whatever matched: no timing by position
            if hmac.compare_digest(digest, key_digest):
                found = name
        return found

    def _count(self, name: str, limits: KeyLimits) -> None:
        if limits.requests_per_minute is None and limits.tokens_per_minute is None:
            return
        now = self.clock()
        usage = self.usage(name)
        if limits.tokens_per_minute is not None:
            wait = usage.tokens.wait(now, limits.tokens_per_minute)
            if wait > 0:
                raise _limited(f"the access key '{name}' used its {limits.tokens_per_minute} tokens per minute", wait)
        if limits.requests_per_minute is not None:
            wait = usage.requests.wait(now, limits.requests_per_minute)
            if wait > 0:
                raise _limited(
                    f"the access key '{name}' made its {limits.requests_per_minute} requests per minute", wait
                )
            usage.requests.add(now)

    def on_record(self, record: RequestRecord) -> None:
        """A ``Records`` sink: a finished request's tokens count against its key's minute."""
        name, usage = record.key_name, record.usage
        if name is None or usage is None:
            return
        limits = self.config.access.limits.get(name)
        if limits is None or limits.tokens_per_minute is None:
            return
        tokens = (usage.input_tokens or 0) + (usage.output_tokens or 0)
        self.usage(name).tokens.add(self.clock(), tokens)


def _token(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("Authorization")
    if auth is not None:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


def model_allowed(config: Config, patterns: tuple[str, ...], model: str) -> bool:
    """Whether ``model`` matches a glob, or every provider model it may lead to does (an alias
    or policy of allowed models is allowed; a provider's other name counts as the provider)."""
    if _matches(config, patterns, model):
        return True
    leaves = list(_leaves(config, model, 0))
    return bool(leaves) and leaves != [model] and all(_matches(config, patterns, leaf) for leaf in leaves)


def _matches(config: Config, patterns: tuple[str, ...], name: str) -> bool:
    names = [name]
    prefix, sep, rest = name.partition("/")
    if sep and prefix in config.provider_aliases:
        names.append(f"{config.provider_aliases[prefix]}/{rest}")
    return any(fnmatchcase(n, p) for n in names for p in patterns)


def _leaves(config: Config, name: str, depth: int) -> Iterator[str]:
    if depth > 32:  # the config graph is checked acyclic at load; this only bounds the walk
        return
    if name in config.aliases:
        yield from _leaves(config, config.aliases[name], depth + 1)
        return
    policy = config.policy(name)
    if policy is None:
        yield name
        return
    for member, _ in policy.members:
        yield from _leaves(config, member, depth + 1)
