"""The router: from a client's ``model`` string to the provider attempts that may serve it.

A model string is resolved (``proxy.config.graph``) in this order: an alias (``[aliases]``),
``policy/NAME``, then ``provider/upstream-model`` (the upstream id may contain more slashes; the
provider may be named by another name of it, ``google`` for ``gemini``). Policies:

- ``fallback``: an ordered chain; each member is tried ``1 + retries`` times (retryable
  errors only, backoff with jitter, ``Retry-After`` honoured, all retrying bounded by
  ``max_retry_s``) before the next member is tried. Moving on to the next member never
  waits: the first try of a member is made at once, whatever the previous one answered.
- ``loadbalance``: weighted choice among healthy members; with ``sticky_key`` the choice is a
  weighted rendezvous hash of the request's key, so a user stays on one model while it is
  healthy, and only that model's users move when it is not. The other members follow as
  fallbacks in weight order.

An attempt may move on only while nothing reached the client (the handler and relay ensure
that); ``Attempts`` decides retries and moving on.

Health: a member with ``failure_threshold`` consecutive failures is skipped for ``cooldown_s``,
then tried again (a client mistake or a provider's limitation is no failure of the model; a
member that is a policy or an alias is healthy while any model it leads to is). Providers with
several keys rotate them, skipping a key that was answered 429 until its ``Retry-After`` (or
``cooldown_s``) has passed. Health and keys live in a ``RoutingState`` (this process's by default).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from proxy.config.graph import Leaf, Node, PolicyNode, leaf, resolve
from proxy.config.model import POLICY_PREFIX, Config, HealthRule
from proxy.errors import MissingKey, ProxyError
from proxy.routing.attempts import Attempts
from proxy.routing.graph import Step, Target, steps
from proxy.routing.names import check_model_id
from proxy.routing.order import rendezvous_order, sticky_value, weighted_order
from proxy.routing.state import LocalState, RoutingState

__all__ = ["Router"]

_DEFAULT_HEALTH = HealthRule()
_DEFAULT_BUDGET_S = 30.0


class Router:
    """Resolves model strings; asks its ``RoutingState`` about health and keys."""

    def __init__(
        self,
        config: Config,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        state: RoutingState | None = None,
    ) -> None:
        self._config = config
        self.clock = clock
        self.rng = rng or random.Random()
        self.state: RoutingState = state or LocalState(clock)
        self._trees: dict[str, Node] = {}  # aliases and policies only: a finite set

    # -- resolution ---------------------------------------------------------------------

    def target(self, name: str) -> Target:
        """The provider model ``name`` points to (``provider/model``); 400/404 otherwise."""
        check_model_id(name)
        return leaf(self._config, name)

    def _tree(self, name: str) -> Node:
        tree = self._trees.get(name)
        if tree is None:
            tree = resolve(self._config, name)
            if not isinstance(tree, Leaf) or name in self._config.aliases:
                self._trees[name] = tree
        return tree

    def _steps(self, name: str, body: Mapping[str, Any]) -> list[Step]:
        return steps(self._tree(name), lambda node: self._order(node, body))

    def _order(self, node: PolicyNode, body: Mapping[str, Any]) -> list[Node]:
        members = [(name, weight) for name, weight, _ in node.members]
        by_name = {name: child for name, _, child in node.members}
        policy = node.policy
        return [by_name[m] for m in self.order_members(members, sticky_value(body, policy.sticky_key), policy.health)]

    def order_members(self, members: Sequence[tuple[str, float]], key: str | None, rule: HealthRule) -> list[str]:
        """Healthy members first (sticky or weighted-random order), then unhealthy ones."""
        healthy = [(m, w) for m, w in members if self.healthy(m, rule)]
        resting = [(m, w) for m, w in members if (m, w) not in healthy]
        first = rendezvous_order(healthy, key) if key is not None else weighted_order(healthy, self.rng)
        return first + [m for m, _ in sorted(resting, key=lambda mw: -mw[1])]

    # -- health and keys ----------------------------------------------------------------

    def healthy(self, member: str, rule: HealthRule = _DEFAULT_HEALTH) -> bool:
        """False while ``member`` rests after ``failure_threshold`` consecutive failures.

        A member that is a policy or an alias is healthy while any model it leads to is.
        """
        return self.state.healthy(self._leaves(member), rule)

    def _leaves(self, name: str) -> Iterable[str]:
        """The ``provider/model`` labels ``name`` may lead to (aliases and policies followed)."""
        while name in self._config.aliases:
            name = self._config.aliases[name]
        policy = self._config.policy(name)
        if policy is None:
            yield name
            return
        for member, _ in policy.members:
            yield from self._leaves(member)

    def record(self, target: Target, err: ProxyError | None) -> None:
        self.state.record(target.label, err is not None)

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
        index = self.state.next_key(provider.name, len(keys))
        return Target(provider.with_key(keys[index]), target.model, target.label)

    def has_free_key(self, target: Target) -> bool:
        """Whether the target's provider has a key that is not resting after a 429."""
        keys = target.provider.api_keys
        return len(keys) > 1 and self.state.has_free_key(target.provider.name, len(keys))

    def key_limited(self, target: Target, retry_after: float | None) -> None:
        provider = target.provider
        base = self._config.providers.get(provider.name)
        if base is None or len(base.api_keys) <= 1 or provider.api_key is None:
            return
        try:
            index = base.api_keys.index(provider.api_key)
        except ValueError:
            return
        self.state.limit_key(provider.name, index, retry_after or _DEFAULT_HEALTH.cooldown_s)

    # -- entry points -------------------------------------------------------------------

    def attempts(self, body: Mapping[str, Any]) -> Attempts:
        name = body["model"]
        check_model_id(name)  # before any provider is chosen: nothing hostile reaches a URL
        plan = self._steps(name, body)
        while name in self._config.aliases:
            name = self._config.aliases[name]
        policy = self._config.policy(name)
        return Attempts(self, plan, policy.max_retry_s if policy else _DEFAULT_BUDGET_S)

    def models(self) -> Iterable[tuple[str, str]]:
        """(id, owned_by) for GET /v1/models: usable providers' models, policies and aliases.

        A provider's other names (``google``) are not listed again: the same models, one id each.
        """
        for provider in self._config.providers.values():
            if provider.usable:
                for model in provider.models:
                    yield f"{provider.name}/{model}", provider.name
        for name in self._config.policies:
            yield POLICY_PREFIX + name, "sse-proxy"
        for name in self._config.aliases:
            yield name, "sse-proxy"
