"""Routing: from a client's ``model`` string to the provider attempts that may serve it.

A model string is resolved in this order: an alias (``[aliases]``), ``policy/NAME``, then
``provider/upstream-model`` (the upstream id may contain more slashes). Policies:

- ``fallback``: an ordered chain; each member is tried ``1 + retries`` times (retryable
  errors only, backoff with jitter, ``Retry-After`` honoured, all retrying bounded by
  ``max_retry_s``) before the next member is tried. Moving on to the next member never
  waits: the first try of a member is made at once, whatever the previous one answered.
- ``loadbalance``: weighted choice among healthy members; with ``sticky_key`` the choice is a
  weighted rendezvous hash of the request's key, so a user stays on one model while it is
  healthy, and only that model's users move when it is not. The other members follow as
  fallbacks in weight order.

An attempt may move on only while nothing reached the client (the handler and relay ensure
that). Errors are sorted in ``_classify``: client mistakes end the request at once; provider
trouble moves on; transient trouble is retried on the same model first.

Health: a member with ``failure_threshold`` consecutive failures is skipped for ``cooldown_s``,
then tried again (a client mistake is no failure of the model; a member that is a policy or an
alias is healthy while any model it leads to is). Providers with several keys rotate them,
skipping a key that was answered 429 until its ``Retry-After`` (or ``cooldown_s``) has passed;
the retry after such a 429 goes at once to another key when one is free.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from proxy.errors import BadRequest, MissingKey, NotFound, ProxyError

if TYPE_CHECKING:
    from proxy.config import Config, ProviderConfig

__all__ = ["Attempts", "Router", "Target", "rendezvous_order", "validate"]

POLICY_PREFIX = "policy/"
_FALLBACK_DEFAULTS = {"retries": 0, "backoff_ms": [500, 1000, 2000], "max_retry_s": 30.0}
_LB_DEFAULTS = {"sticky_key": None, "failure_threshold": 3, "cooldown_s": 30.0}
_POLICY_KEYS = {
    "fallback": {"type", "models", "retries", "backoff_ms", "max_retry_s"},
    "loadbalance": {"type", "models", "sticky_key", "failure_threshold", "cooldown_s", "retries", "max_retry_s"},
}


class ConfigProblem(Exception):
    """Raised by ``validate``; config.py turns it into a ConfigError naming the file."""


@dataclass(frozen=True, slots=True)
class Target:
    """One provider model to try. ``label`` is what the client would write (``openai/gpt-4o``)."""

    provider: ProviderConfig
    model: str
    label: str


@dataclass(frozen=True, slots=True)
class _Step:
    target: Target
    tries: int = 1
    backoff_ms: tuple[int, ...] = (500, 1000, 2000)


@dataclass(slots=True)
class _Health:
    failures: int = 0
    last_failure: float = 0.0


@dataclass(slots=True)
class _KeyState:
    cursor: int = 0
    limited_until: dict[int, float] = field(default_factory=dict)


def _classify(err: ProxyError) -> str:
    """``final`` (client mistake: answer now), ``retry`` (same model again) or ``next`` (move on)."""
    if err.status in (400, 413, 422):
        return "final"
    if err.retryable:
        return "retry"
    return "next"


def rendezvous_order(members: Sequence[tuple[str, float]], key: str) -> list[str]:
    """Members ordered by weighted rendezvous hashing of ``key`` (first = the sticky choice).

    Score ``-w / ln(u)`` with ``u`` uniform in (0, 1) from a hash of (key, member): the
    probability a member ranks first is its share of the weights, and removing a member
    moves only the keys that ranked it first.
    """
    scored = []
    for name, weight in members:
        digest = hashlib.blake2b(f"{key}\x00{name}".encode(), digest_size=8).digest()
        u = (int.from_bytes(digest, "big") + 0.5) / 2**64
        scored.append((-weight / math.log(u), name))
    scored.sort(reverse=True)
    return [name for _, name in scored]


def weighted_order(members: Sequence[tuple[str, float]], rng: random.Random) -> list[str]:
    """Members in a random weighted order (weighted sampling without replacement)."""
    keyed = [(rng.random() ** (1.0 / weight), name) for name, weight in members if weight > 0]
    keyed.sort(reverse=True)
    return [name for _, name in keyed]


def _sticky_value(body: Mapping[str, Any], sticky_key: str | None) -> str | None:
    if not sticky_key:
        return None
    value: Any = body
    for part in sticky_key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None and sticky_key == "user":
        metadata = body.get("metadata")
        value = metadata.get("user_id") if isinstance(metadata, Mapping) else None
    return None if value is None else str(value)


class Router:
    """Resolves model strings, keeps health and key state (per process)."""

    def __init__(self, config: Config, clock: Any = time.monotonic, rng: random.Random | None = None) -> None:
        self._config = config
        self._clock = clock
        self._rng = rng or random.Random()
        self._health: dict[str, _Health] = {}
        self._keys: dict[str, _KeyState] = {}

    # -- resolution ---------------------------------------------------------------------

    def target(self, name: str) -> Target:
        """The provider model ``name`` points to (``provider/model``); 400/404 otherwise."""
        provider_name, slash, model = name.partition("/")
        providers = self._config.providers
        if not slash or not provider_name or not model:
            raise BadRequest(
                f"model {name!r} must be 'provider/model', a policy or an alias; providers: {', '.join(providers)}",
                param="model",
            )
        provider = providers.get(provider_name)
        if provider is None:
            raise NotFound(
                f"unknown provider {provider_name!r} in model {name!r}; known providers: {', '.join(providers)}",
                param="model",
                code="model_not_found",
            )
        return Target(provider, model, name)

    def _steps(self, name: str, body: Mapping[str, Any], seen: tuple[str, ...] = ()) -> list[_Step]:
        if name in self._config.aliases:
            return self._steps(self._config.aliases[name], body, (*seen, name))
        if name.startswith(POLICY_PREFIX):
            policy_name = name[len(POLICY_PREFIX) :]
            policy = self._config.policies.get(policy_name)
            if policy is None:
                known = ", ".join(POLICY_PREFIX + p for p in self._config.policies) or "none configured"
                raise NotFound(f"unknown policy {name!r}; policies: {known}", param="model", code="model_not_found")
            if policy["type"] == "fallback":
                return self._fallback_steps(policy, body, (*seen, name))
            return self._loadbalance_steps(policy, body, (*seen, name))
        return [_Step(self.target(name))]

    def _fallback_steps(self, policy: Mapping[str, Any], body: Mapping[str, Any], seen: tuple[str, ...]) -> list[_Step]:
        tries = 1 + int(policy.get("retries", _FALLBACK_DEFAULTS["retries"]))
        backoff = tuple(int(x) for x in policy.get("backoff_ms", _FALLBACK_DEFAULTS["backoff_ms"]))
        steps = []
        for member in policy["models"]:
            for step in self._steps(member, body, seen):
                steps.append(_Step(step.target, max(step.tries, tries), backoff))
        return steps

    def _loadbalance_steps(
        self, policy: Mapping[str, Any], body: Mapping[str, Any], seen: tuple[str, ...]
    ) -> list[_Step]:
        weights: Mapping[str, float] = policy["models"]
        members = [(m, float(w)) for m, w in weights.items()]
        order = self.order_members(members, _sticky_value(body, policy.get("sticky_key")), policy)
        tries = 1 + int(policy.get("retries", 0))
        steps = []
        for member in order:
            for step in self._steps(member, body, seen):
                steps.append(_Step(step.target, max(step.tries, tries), step.backoff_ms))
        return steps

    def order_members(
        self, members: Sequence[tuple[str, float]], key: str | None, policy: Mapping[str, Any]
    ) -> list[str]:
        """Healthy members first (sticky or weighted-random order), then unhealthy ones."""
        healthy = [(m, w) for m, w in members if self.healthy(m, policy)]
        resting = [(m, w) for m, w in members if (m, w) not in healthy]
        first = rendezvous_order(healthy, key) if key is not None else weighted_order(healthy, self._rng)
        return first + [m for m, _ in sorted(resting, key=lambda mw: -mw[1])]

    # -- health and keys ----------------------------------------------------------------

    def healthy(self, member: str, policy: Mapping[str, Any] | None = None) -> bool:
        """False while ``member`` rests after ``failure_threshold`` consecutive failures.

        A member that is a policy or an alias is healthy while any model it leads to is.
        """
        if not self._health:
            return True
        policy = policy or {}
        threshold = int(policy.get("failure_threshold", _LB_DEFAULTS["failure_threshold"]))
        cooldown = float(policy.get("cooldown_s", _LB_DEFAULTS["cooldown_s"]))
        now = self._clock()
        for label in self._leaves(member):
            health = self._health.get(label)
            if health is None or health.failures < threshold or now - health.last_failure >= cooldown:
                return True
        return False

    def _leaves(self, name: str) -> Iterable[str]:
        """The ``provider/model`` labels ``name`` may lead to (aliases and policies followed)."""
        while name in self._config.aliases:
            name = self._config.aliases[name]
        policy = self._config.policies.get(name[len(POLICY_PREFIX) :]) if name.startswith(POLICY_PREFIX) else None
        if policy is None:
            yield name
            return
        for member in policy["models"]:
            yield from self._leaves(member)

    def record(self, target: Target, err: ProxyError | None) -> None:
        if err is None:
            self._health.pop(target.label, None)
            return
        health = self._health.setdefault(target.label, _Health())
        health.failures += 1
        health.last_failure = self._clock()

    def with_key(self, target: Target) -> Target:
        """The target bound to the next usable key of its provider (rotating, skipping limited ones)."""
        provider = target.provider
        keys = provider.api_keys
        if len(keys) <= 1:
            if not keys and provider.needs_key:
                envs = " or ".join(provider.api_key_envs) or "an api_key"
                raise MissingKey(
                    f"provider '{provider.name}' has no API key: set {envs} "
                    f"(or api_key in [providers.{provider.name}] of the config file)",
                    code="missing_api_key",
                )
            return target
        state = self._keys.setdefault(provider.name, _KeyState())
        now = self._clock()
        for offset in range(len(keys)):
            index = (state.cursor + offset) % len(keys)
            if state.limited_until.get(index, 0.0) <= now:
                break
        else:
            index = min(range(len(keys)), key=lambda i: state.limited_until.get(i, 0.0))
        state.cursor = index + 1
        return Target(provider.with_key(keys[index]), target.model, target.label)

    def has_free_key(self, target: Target) -> bool:
        """Whether the target's provider has a key that is not resting after a 429."""
        keys = target.provider.api_keys
        if len(keys) <= 1:
            return False
        state = self._keys.get(target.provider.name)
        now = self._clock()
        return state is None or any(state.limited_until.get(i, 0.0) <= now for i in range(len(keys)))

    def key_limited(self, target: Target, retry_after: float | None) -> None:
        provider = target.provider
        base = self._config.providers.get(provider.name)
        if base is None or len(base.api_keys) <= 1 or provider.api_key is None:
            return
        try:
            index = base.api_keys.index(provider.api_key)
        except ValueError:
            return
        state = self._keys.setdefault(provider.name, _KeyState())
        state.limited_until[index] = self._clock() + (retry_after or _LB_DEFAULTS["cooldown_s"])

    # -- entry points -------------------------------------------------------------------

    def attempts(self, body: Mapping[str, Any]) -> Attempts:
        name = body["model"]
        steps = self._steps(name, body)
        policy = self._config.policies.get(name[len(POLICY_PREFIX) :]) if name.startswith(POLICY_PREFIX) else None
        if name in self._config.aliases:
            resolved = name
            while resolved in self._config.aliases:
                resolved = self._config.aliases[resolved]
            if resolved.startswith(POLICY_PREFIX):
                policy = self._config.policies.get(resolved[len(POLICY_PREFIX) :])
        budget = float((policy or {}).get("max_retry_s", _FALLBACK_DEFAULTS["max_retry_s"]))
        return Attempts(self, steps, budget)

    def models(self) -> Iterable[tuple[str, str]]:
        """(id, owned_by) for GET /v1/models: usable providers' models, policies and aliases."""
        for provider in self._config.providers.values():
            if provider.usable:
                for model in provider.models:
                    yield f"{provider.name}/{model}", provider.name
        for name in self._config.policies:
            yield POLICY_PREFIX + name, "sse-proxy"
        for name in self._config.aliases:
            yield name, "sse-proxy"


class Attempts:
    """The attempts of one request: ``await next()`` until one succeeds.

    ``next`` raises the last error once every step is spent; ``failed`` raises at once for a
    client mistake. ``count`` is the number of attempts made so far (``X-Proxy-Attempts``).
    """

    def __init__(self, router: Router, steps: list[_Step], budget_s: float) -> None:
        self._router = router
        self._steps = steps
        self._step = 0
        self._try = 0
        self._deadline = router._clock() + budget_s
        self._error: ProxyError | None = None
        self.count = 0

    async def next(self) -> Target:
        while self._step < len(self._steps):
            step = self._steps[self._step]
            if self._try:  # this step was tried and failed: again (after a pause), or move on
                delay = self._retry_delay(step)
                if delay is None:
                    self._step, self._try = self._step + 1, 0
                    continue
                if delay > 0:
                    await asyncio.sleep(delay)
            # The first try of a step never waits and is never skipped: the previous model's
            # error class, backoff and Retry-After say nothing about this one.
            self._try += 1
            try:
                target = self._router.with_key(step.target)
            except ProxyError as err:  # no key: not an attempt; the next step may have one
                self._error = err
                self._try = step.tries
                continue
            self.count += 1
            return target
        assert self._error is not None
        raise self._error

    def _retry_delay(self, step: _Step) -> float | None:
        """Seconds to wait before trying ``step`` again, or None to move to the next step."""
        if self._error is None or self._try >= step.tries or _classify(self._error) != "retry":
            return None
        if self._error.status == 429 and self._router.has_free_key(step.target):
            return 0.0  # the 429 binds the key that got it: another key of this provider goes at once
        base = step.backoff_ms[min(self._try - 1, len(step.backoff_ms) - 1)] / 1000 if step.backoff_ms else 0.0
        delay = base * self._router._rng.uniform(0.9, 1.1)
        if self._error.retry_after is not None:
            delay = max(delay, self._error.retry_after)
        if self._router._clock() + delay > self._deadline:
            return None
        return delay

    def failed(self, target: Target, err: ProxyError) -> None:
        kind = _classify(err)
        self._error = err
        if kind == "final":
            raise err  # the client's mistake: no other model would do better, and this one is fine
        self._router.record(target, err)
        if err.status == 429:
            self._router.key_limited(target, err.retry_after)
        if kind == "next" and self._step < len(self._steps):
            self._try = self._steps[self._step].tries  # no retry of the same model

    def succeeded(self, target: Target) -> None:
        self._router.record(target, None)


def _check_policy(name: str, policy: Mapping[str, Any]) -> None:
    try:
        policy = dict(policy)
    except (AttributeError, TypeError, ValueError):
        raise ConfigProblem(f"[policies.{name}]: must be a table with a key 'type'") from None
    kind = policy.get("type")
    if kind not in _POLICY_KEYS:
        raise ConfigProblem(f"[policies.{name}]: key 'type' must be 'fallback' or 'loadbalance', got {kind!r}")
    unknown = set(policy) - _POLICY_KEYS[kind]
    if unknown:
        raise ConfigProblem(f"[policies.{name}]: unknown key '{sorted(unknown)[0]}'")
    models = policy.get("models")
    if kind == "fallback":
        if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
            raise ConfigProblem(f"[policies.{name}]: key 'models' must be a non-empty list of model names")
        backoff = policy.get("backoff_ms", [])
        if not isinstance(backoff, list) or not all(isinstance(x, int) and x >= 0 for x in backoff):
            raise ConfigProblem(f"[policies.{name}]: key 'backoff_ms' must be a list of milliseconds")
    else:
        if not isinstance(models, Mapping) or not models:
            raise ConfigProblem(f"[policies.{name}]: key 'models' must be a table of model = weight")
        for member, weight in models.items():
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
                raise ConfigProblem(f"[policies.{name}]: weight of {member!r} must be a positive number")
        sticky = policy.get("sticky_key")
        if sticky is not None and not isinstance(sticky, str):
            raise ConfigProblem(f"[policies.{name}]: key 'sticky_key' must be a string")
    for key in ("retries", "failure_threshold"):
        value = policy.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigProblem(f"[policies.{name}]: key '{key}' must be a non-negative integer")
    for key in ("max_retry_s", "cooldown_s"):
        value = policy.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigProblem(f"[policies.{name}]: key '{key}' must be a non-negative number")


def validate(config: Config) -> None:
    """Reject unknown members and cycles among policies and aliases, naming the path."""
    from proxy.config import ConfigError

    for name, policy in config.policies.items():
        try:
            _check_policy(name, policy)
        except ConfigProblem as exc:
            raise ConfigError(f"{config.source}: {exc}") from None
    router = Router(config)

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            cycle = " -> ".join((*path[path.index(name) :], name))
            raise ConfigError(f"{config.source}: policies/aliases form a cycle: {cycle}")
        if name in config.aliases:
            visit(config.aliases[name], (*path, name))
        elif name.startswith(POLICY_PREFIX):
            policy = config.policies.get(name[len(POLICY_PREFIX) :])
            if policy is None:
                raise ConfigError(f"{config.source}: {path[-1] if path else name!r} refers to unknown policy {name!r}")
            for member in policy["models"]:
                visit(member, (*path, name))
        else:
            try:
                router.target(name)
            except ProxyError as exc:
                where = path[-1] if path else name
                raise ConfigError(f"{config.source}: {where!r} refers to {name!r}: {exc.message}") from None

    for alias in config.aliases:
        if alias.startswith(POLICY_PREFIX):
            raise ConfigError(f"{config.source}: alias {alias!r} would hide policies: 'policy/' names only policies")
        if "/" in alias:
            provider = alias.split("/", 1)[0]
            if provider in config.providers:
                raise ConfigError(f"{config.source}: alias {alias!r} would hide provider {provider!r}")
        visit(alias, ())
    for name in config.policies:
        visit(POLICY_PREFIX + name, ())
